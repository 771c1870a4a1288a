package dev.ultramem.infer;

import dev.ultramem.model.Model;

import java.util.function.IntConsumer;

/**
 * Autoregressive generation with the model's KV-cache decoder. When the context window (max_seq_len)
 * is full the decoder is restarted on the most recent half of the window (at least one token), so
 * generation continues past the window; memory stays O(max_seq_len) however many tokens are generated.
 */
public final class Generator {
    private Generator() {}

    /**
     * Feeds the prompt, then samples maxTokens tokens, calling onToken for each new one, and returns them.
     * An empty prompt starts from a newline byte.
     */
    public static int[] generate(Model model, int[] prompt, int maxTokens, Sampler sampler, IntConsumer onToken) {
        int[] out = new int[maxTokens];
        int[] count = {0};
        stream(model, prompt, maxTokens, sampler, t -> {
            out[count[0]++] = t;
            if (onToken != null) onToken.accept(t);
        });
        return out;
    }

    /**
     * As {@link #generate} without collecting the tokens: each goes to onToken as it is sampled. Allocates
     * the decoder and a window of the last max_seq_len tokens once, nothing per token.
     */
    public static void stream(Model model, int[] prompt, long maxTokens, Sampler sampler, IntConsumer onToken) {
        int ctx = model.config().maxSeqLen;
        // the last ctx tokens of the sequence: token i sits at window[i % ctx]
        int[] window = new int[ctx];
        long n = 0;
        for (int t : prompt.length == 0 ? new int[]{'\n'} : prompt) window[(int) (n++ % ctx)] = t;
        Model.Decoder dec = model.newDecoder(ctx);
        float[] logits = null;
        for (long i = Math.max(0, n - ctx); i < n; i++) logits = dec.step(window[(int) (i % ctx)]);
        int keep = Math.max(1, ctx / 2);
        for (long g = 0; g < maxTokens; g++) {
            int next = sampler.sample(logits);
            window[(int) (n++ % ctx)] = next;
            if (onToken != null) onToken.accept(next);
            if (g == maxTokens - 1) break;
            if (dec.position() >= ctx) {
                dec.reset();
                for (long i = n - keep; i < n; i++) logits = dec.step(window[(int) (i % ctx)]);
            } else {
                logits = dec.step(next);
            }
        }
    }
}
