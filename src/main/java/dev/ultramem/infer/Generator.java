package dev.ultramem.infer;

import dev.ultramem.model.Model;

import java.util.function.IntConsumer;

/**
 * Autoregressive generation with the model's batch decoder. The prompt goes through in one batched
 * prefill; past max_seq_len the window slides (each new token sees the last max_seq_len positions), so
 * generation continues however many tokens are asked for, in O(max_seq_len) memory.
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

    /** As {@link #generate} without collecting the tokens: each goes to onToken as it is sampled. */
    public static void stream(Model model, int[] prompt, long maxTokens, Sampler sampler, IntConsumer onToken) {
        if (maxTokens <= 0) return;
        Model.BatchDecoder dec = model.newBatchDecoder(1, model.config().maxSeqLen);
        int V = dec.vocab();
        int[] slot = {0}, tok = new int[1];
        float[] logits = dec.forward(slot, new int[][]{prompt.length == 0 ? new int[]{'\n'} : prompt}, 1);
        for (long g = 0; g < maxTokens; g++) {
            tok[0] = sampler.sample(logits, 0, V);
            if (onToken != null) onToken.accept(tok[0]);
            if (g < maxTokens - 1) logits = dec.step(slot, tok, 1);
        }
    }

    /**
     * Generates maxTokens tokens for each prompt together: one batched prefill, then one decode step
     * per token for the whole batch; prompt b is sampled with samplers[b]. Returns [B][maxTokens].
     */
    public static int[][] generateBatch(Model model, int[][] prompts, int maxTokens, Sampler[] samplers) {
        int B = prompts.length;
        int[][] out = new int[B][maxTokens];
        if (B == 0 || maxTokens <= 0) return out;
        Model.BatchDecoder dec = model.newBatchDecoder(B, model.config().maxSeqLen);
        int V = dec.vocab();
        int[] slots = new int[B], tok = new int[B];
        int[][] chunks = new int[B][];
        for (int b = 0; b < B; b++) {
            slots[b] = b;
            chunks[b] = prompts[b].length == 0 ? new int[]{'\n'} : prompts[b];
        }
        float[] logits = dec.forward(slots, chunks, B);
        for (int g = 0; g < maxTokens; g++) {
            for (int b = 0; b < B; b++) out[b][g] = tok[b] = samplers[b].sample(logits, b * V, V);
            if (g < maxTokens - 1) logits = dec.step(slots, tok, B);
        }
        return out;
    }
}
