package dev.ultramem.memory;

import dev.ultramem.core.UserError;
import dev.ultramem.layer.TokenLayer;
import dev.ultramem.model.ModelConfig;

/** Builds the memory layer named by {@code mem_type}. */
public final class MemoryLayers {
    private MemoryLayers() {}

    /**
     * @param memLayerIndex index of this memory layer in the model's list (v2: drives the table offset)
     * @param memLayerNum   number of memory layers in the model
     * @param prefix        name prefix, e.g. {@code transformer.mem_blocks.3.}
     */
    public static TokenLayer create(ModelConfig cfg, int memLayerIndex, int memLayerNum, SharedMemory shared, String prefix) {
        switch (cfg.memType) {
            case "ultramem_v1" -> { return new UltraMemV1(cfg, memLayerNum, prefix); }
            case "ultramem_v2" -> { return new UltraMemV2(cfg, memLayerIndex, memLayerNum, shared, prefix); }
            case "memory_plus" -> { return new MemoryPlus(cfg, shared, prefix); }
            case "pkm" -> { return new Pkm(cfg, prefix); }
            default -> throw new UserError("config: mem_type '" + cfg.memType + "' is not available in this build");
        }
    }
}
