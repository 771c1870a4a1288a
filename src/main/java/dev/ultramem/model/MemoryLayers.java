package dev.ultramem.model;

import dev.ultramem.core.UserError;
import dev.ultramem.layer.TokenLayer;
import dev.ultramem.memory.MemoryPlus;
import dev.ultramem.memory.Pkm;
import dev.ultramem.memory.SharedMemory;
import dev.ultramem.memory.UltraMemV1;
import dev.ultramem.memory.UltraMemV2;

/** Builds the memory layer named by {@code mem_type}. */
public final class MemoryLayers {
    private MemoryLayers() {}

    /**
     * @param memLayerIndex index of this memory layer in the model's list (v2: drives the table offset)
     * @param memLayerNum   number of memory layers in the model
     * @param prefix        name prefix, e.g. {@code transformer.mem_blocks.3.}
     */
    public static TokenLayer create(ModelConfig cfg, int memLayerIndex, int memLayerNum, SharedMemory shared, String prefix) {
        return switch (cfg.memType) {
            case "ultramem_v1" -> new UltraMemV1(LayerConfigs.memory(cfg), memLayerNum, prefix);
            case "ultramem_v2" -> new UltraMemV2(LayerConfigs.memory(cfg), memLayerIndex, memLayerNum, shared, prefix);
            case "memory_plus" -> new MemoryPlus(LayerConfigs.memory(cfg), shared, prefix);
            case "pkm" -> new Pkm(LayerConfigs.memory(cfg), prefix);
            default -> throw new UserError("config: mem_type '" + cfg.memType + "' is not available in this build");
        };
    }

    /** The tables shared by the memory layers of a model ({@link SharedMemory#create}). */
    public static SharedMemory shared(ModelConfig cfg, int memLayerNum, String prefix) {
        return SharedMemory.create(LayerConfigs.memory(cfg), memLayerNum, prefix);
    }
}
