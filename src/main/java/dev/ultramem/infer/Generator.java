package dev.ultramem.infer;

import dev.ultramem.model.Model;

import java.util.function.IntConsumer;

/**
 * Autoregressive generation with the model's KV-cache decoder. When the context window is full the
 * decoder is restarted on the most recent half of the window.
 */
public final class Generator {
    private Generator() {}

    /**
     * Feeds the prompt, then samples maxTokens tokens, calling onToken for each new one.
     * An empty prompt starts from a newline byte.
     */
    public static int[] generate(Model model, int[] prompt, int maxTokens, Sampler sampler, IntConsumer onToken) {
        int ctx = model.config().maxSeqLen;
        int[] all = new int[Math.max(1, prompt.length) + maxTokens];
        int n = 0;
        if (prompt.length == 0) all[n++] = '\n';
        else for (int t : prompt) all[n++] = t;
        int start = Math.max(0, n - ctx);
        Model.Decoder dec = model.newDecoder(ctx);
        float[] logits = null;
        for (int i = start; i < n; i++) logits = dec.step(all[i]);
        int[] out = new int[maxTokens];
        for (int g = 0; g < maxTokens; g++) {
            int next = sampler.sample(logits);
            out[g] = next;
            all[n++] = next;
            if (onToken != null) onToken.accept(next);
            if (g == maxTokens - 1) break;
            if (dec.position() >= ctx) {
                dec = model.newDecoder(ctx);
                for (int i = n - ctx / 2; i < n; i++) logits = dec.step(all[i]);
            } else {
                logits = dec.step(next);
            }
        }
        return out;
    }
}
