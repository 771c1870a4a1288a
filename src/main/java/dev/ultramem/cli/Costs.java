package dev.ultramem.cli;

import dev.ultramem.core.Param;
import dev.ultramem.layer.TokenLayer;
import dev.ultramem.model.Model;
import dev.ultramem.model.ModelConfig;

/**
 * Parameter and compute counts for {@code info} and {@code bench}. Attention, norms and the tied
 * output projection are counted from the config; FFN slots and memory layers report through their
 * {@link TokenLayer} cost methods.
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

    /** {activated params per token, forward multiply-adds per token} of all FFN slots. */
    static long[] ffnPerToken(Model m) {
        long p = 0, macs = 0;
        for (int l = 0; l < m.config().nLayers; l++) {
            TokenLayer f = m.ffn(l);
            p += f.activatedParamsPerToken();
            macs += f.forwardMacsPerToken();
        }
        return new long[]{p, macs};
    }

    /** {activated params per token, forward MACs per token} of all memory layers (shared tables included by the layers). */
    static long[] memoryPerToken(Model m) {
        long p = 0, macs = 0;
        for (TokenLayer l : m.memoryLayers()) {
            p += l.activatedParamsPerToken();
            macs += l.forwardMacsPerToken();
        }
        return new long[]{p, macs};
    }

    /** Activated parameters per token: attention, norms, FFN slots, memory layers, tied output projection. */
    static long activatedParams(Model m) {
        ModelConfig c = m.config();
        long d = c.dModel;
        long attn = 4 * d * d;
        long norms = 0;  // every norm weight (block norms, QK norms, final norm) is read for every token
        for (Param p : m.params()) if (p.trainable && (p.name.endsWith("norm.weight") || p.name.endsWith("ln_f.weight"))) norms += p.numel();
        return c.nLayers * attn + norms + ffnPerToken(m)[0] + memoryPerToken(m)[0] + (long) c.vocabSize * d;
    }

    /** Forward multiply-adds per token at context length ctx (causal attention sees (ctx+1)/2 keys on average). */
    static long forwardMacs(Model m, int ctx) {
        ModelConfig c = m.config();
        long d = c.dModel;
        long attn = 4 * d * d + 2 * d * ((ctx + 1) / 2);
        return c.nLayers * attn + ffnPerToken(m)[1] + memoryPerToken(m)[1] + (long) c.vocabSize * d;
    }
}
