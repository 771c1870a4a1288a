package dev.ultramem.model;

import dev.ultramem.layer.Attention;
import dev.ultramem.layer.DenseFfn;
import dev.ultramem.layer.MoeFfn;

/**
 * The one place a {@link ModelConfig} is read into the layers' own configs: each layer takes the
 * slice of the model config it needs, so the layer package does not depend on the model. Derived
 * values (the init std when {@code init_std} is 0, the SwiGLU inner width) are resolved here.
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
}
