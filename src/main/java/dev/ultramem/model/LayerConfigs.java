package dev.ultramem.model;

import dev.ultramem.layer.Attention;
import dev.ultramem.layer.DenseFfn;
import dev.ultramem.layer.MoeFfn;
import dev.ultramem.memory.MemoryConfig;

/**
 * The one place a {@link ModelConfig} is read into the layers' own configs: each layer takes the
 * slice of the model config it needs, so the layer and memory packages do not depend on the model.
 * Derived values (the init std when {@code init_std} is 0, the SwiGLU inner width, {@code mem_init}
 * and {@code mem_tucker_penalty} resolved by type) are resolved here.
 */
public final class LayerConfigs {
    private LayerConfigs() {}

    public static Attention.Config attention(ModelConfig c) {
        return new Attention.Config(c.dModel, c.nHeads, c.nLayers, c.maxSeqLen, c.ropeTheta, c.normEps,
                c.effectiveInitStd(), c.initCutoffFactor);
    }

    /** {@code mlp_hidden_size} is the {@code ff_proj} output size: the SwiGLU inner width is half of it. */
    public static DenseFfn.Config denseFfn(ModelConfig c) {
        return new DenseFfn.Config(c.dModel, c.mlpHiddenSize / 2, c.nLayers, c.effectiveInitStd(), c.initCutoffFactor);
    }

    public static MoeFfn.Config moeFfn(ModelConfig c) {
        return new MoeFfn.Config(c.dModel, c.moeNumExperts, c.moeTopK, c.moeExpertHidden, c.moeLbWeight, c.moeZWeight,
                c.nLayers, c.effectiveInitStd(), c.initCutoffFactor);
    }

    /** The memory-layer slice, with the FFN slot's inner width the paper init matches (MoE: top-k × expert width). */
    public static MemoryConfig memory(ModelConfig c) {
        double ffnInner = c.ffnType.equals("moe") ? (double) c.moeTopK * c.moeExpertHidden : c.mlpHiddenSize / 2.0;
        return new MemoryConfig(c.memType, c.dModel, ffnInner,
                c.memKnum, c.memKdim, c.memVdim, c.memPreVdim, c.memKnn, c.memStage1Knn, c.memHead,
                c.memShareRatio, c.memKeyExpandTime, c.memValueExpandTime, c.memV1ValueExpandTime,
                c.memTuckerRank, c.memTuckerCores, c.memQueryMode, c.paperInit(),
                c.tuckerPenalty(), c.memTuckerTau, c.memKeyBalanceCoef, c.memOutputDropout,
                c.memUseGluAct, c.memKeyNorm);
    }
}
