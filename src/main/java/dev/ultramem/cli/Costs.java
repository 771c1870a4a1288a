package dev.ultramem.cli;

import dev.ultramem.core.Param;
import dev.ultramem.layer.FeedForwards;
import dev.ultramem.layer.TokenLayer;
import dev.ultramem.model.Model;
import dev.ultramem.model.ModelConfig;

/**
 * Parameter and compute counts for {@code info} and {@code bench}. The attention, norms and tied
 * output projection are counted from the config; the FFN slot asks its {@link TokenLayer} when the
 * layer type is available, else uses the dense/MoE formula. Memory layers report through their
 * layer when the model exposes it (see {@link #memoryPerToken}).
 */
final class Costs {
    private Costs() {}

    static long totalParams(Model m) {
        long n = 0;
        for (Param p : m.params()) if (p.trainable) n += p.numel();
        return n;
    }

    static long bufferElements(Model m) {
        long n = 0;
        for (Param p : m.params()) if (!p.trainable) n += p.numel();
        return n;
    }

    /** {activated params per token, forward multiply-adds per token} of one FFN slot. */
    static long[] ffnPerToken(ModelConfig c) {
        try {
            TokenLayer l = FeedForwards.create(c, "transformer.blocks.0.");
            return new long[]{l.activatedParamsPerToken(), l.forwardMacsPerToken()};
        } catch (RuntimeException notAvailable) {
            long d = c.dModel;
            long p = "moe".equals(c.ffnType)
                    ? d * c.moeNumExperts + (long) c.moeTopK * 3 * d * c.moeExpertHidden
                    : d * c.mlpHiddenSize + (long) (c.mlpHiddenSize / 2) * d;
            return new long[]{p, p};
        }
    }

    /**
     * {activated params per token, forward MACs per token} of all memory layers, or null when the
     * memory layer cannot report (the lead wires this to the model's memory layers).
     */
    static long[] memoryPerToken(Model m) {
        if (!m.config().hasMemory()) return new long[]{0, 0};
        return null;
    }

    /** Activated parameters per token: attention, norms, FFN slots, memory layers, tied output projection. */
    static long activatedParams(Model m) {
        ModelConfig c = m.config();
        long d = c.dModel;
        long attn = 4 * d * d + 2L * c.headDim() * 2;  // qkv + out, q/k norm weights
        long norms = 2 * d;
        long ffn = ffnPerToken(c)[0];
        long[] mem = memoryPerToken(m);
        return c.nLayers * (attn + norms + ffn) + d + (long) c.vocabSize * d + (mem == null ? 0 : mem[0]);
    }

    /** Forward multiply-adds per token at context length ctx (causal attention sees (ctx+1)/2 keys on average). */
    static long forwardMacs(Model m, int ctx) {
        ModelConfig c = m.config();
        long d = c.dModel;
        long attn = 4 * d * d + 2 * d * ((ctx + 1) / 2);
        long ffn = ffnPerToken(c)[1];
        long[] mem = memoryPerToken(m);
        return c.nLayers * (attn + ffn) + (long) c.vocabSize * d + (mem == null ? 0 : mem[1]);
    }
}
