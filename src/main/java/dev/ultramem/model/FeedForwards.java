package dev.ultramem.model;

import dev.ultramem.core.UserError;
import dev.ultramem.layer.DenseFfn;
import dev.ultramem.layer.MoeFfn;
import dev.ultramem.layer.TokenLayer;

/** Builds a block's FFN-slot layer from {@code ffn_type}. */
public final class FeedForwards {
    private FeedForwards() {}

    /** @param prefix name prefix of the block, e.g. {@code transformer.blocks.2.} */
    public static TokenLayer create(ModelConfig cfg, String prefix) {
        switch (cfg.ffnType) {
            case "dense" -> { return new DenseFfn(LayerConfigs.denseFfn(cfg), prefix); }
            case "moe" -> { return new MoeFfn(LayerConfigs.moeFfn(cfg), prefix); }
            default -> throw new UserError("config: ffn_type '" + cfg.ffnType + "' is not available in this build");
        }
    }
}
