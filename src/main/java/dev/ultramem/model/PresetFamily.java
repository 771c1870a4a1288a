package dev.ultramem.model;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ultramem.core.UserError;

import java.io.IOException;
import java.io.InputStream;
import java.util.List;

/**
 * The fair-comparison preset family (resources {@code presets/family-*.json}): dense, MoE and memory
 * models at d = 256, 8 layers with matched activated compute, the sparse ones with matched total
 * parameters (see docs/PRESETS.md).
 */
public final class PresetFamily {
    private PresetFamily() {}

    /** Preset names, the reference (MoE top-2 of 16) first. */
    public static final List<String> NAMES = List.of("family-moe-2of16", "family-dense", "family-moe-8of64",
            "family-pkm", "family-memory-plus", "family-ultramem", "family-ultramem-v2");

    /** The {"model": ..., "train": ...} tree of a shipped preset. */
    public static JsonNode tree(String name) {
        try (InputStream in = PresetFamily.class.getResourceAsStream("/presets/" + name + ".json")) {
            if (in == null) throw new UserError("preset '" + name + "' not found");
            return Configs.JSON.readTree(in);
        } catch (IOException e) {
            throw new UserError("preset '" + name + "': malformed JSON (" + Configs.firstLine(e.getMessage()) + ")");
        }
    }

    /** The validated model config of a shipped preset. */
    public static ModelConfig modelConfig(String name) {
        JsonNode m = tree(name).get("model");
        if (m == null) throw new UserError("preset '" + name + "' has no \"model\" section");
        return Configs.convert(m, ModelConfig.class, "preset " + name).validate();
    }
}
