package dev.ultramem.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ultramem.core.Param;
import dev.ultramem.train.TrainConfig;
import org.junit.jupiter.api.Test;

import java.io.InputStream;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The preset family is a fair comparison: every model's forward MACs per token within 5% of the
 * MoE top-2-of-16 reference, every sparse model's trainable parameter count (summed from the built
 * model's tensors) within 5% of it, and the whole family shares the dense shape and training settings.
 */
class PresetFamilyTest {

    static final String REF = "family-moe-2of16";
    static final List<String> FILES = List.of("family-dense", "family-moe-2of16", "family-moe-8of64", "family-pkm",
            "family-memory-plus", "family-ultramem", "family-ultramem-v2");
    static final int CTX = 256;

    record Built(JsonNode tree, ModelConfig cfg, TrainConfig train, long totalParams, long forwardMacs) {}

    static JsonNode tree(String name) throws Exception {
        try (InputStream in = PresetFamilyTest.class.getResourceAsStream("/presets/" + name + ".json")) {
            assertNotNull(in, "missing preset resource " + name);
            return new ObjectMapper().readTree(in);
        }
    }

    static ModelConfig config(String name) throws Exception {
        return Configs.convert(tree(name).get("model"), ModelConfig.class, name).validate();
    }

    static TrainConfig train(String name) throws Exception {
        return Configs.convert(tree(name).get("train"), TrainConfig.class, name).validate();
    }

    static Built load(String name) throws Exception {
        JsonNode tree = tree(name);
        ModelConfig cfg = config(name);
        TrainConfig train = train(name);
        Model m = new Model(cfg);
        long total = 0;
        for (Param p : m.params()) if (p.trainable) total += p.numel();
        long macs = ModelCosts.of(m, CTX).forwardMacsPerToken();
        return new Built(tree, cfg, train, total, macs);
    }

    @Test
    void familyIsMatchedOnComputeAndParameters() throws Exception {
        Map<String, Built> all = new LinkedHashMap<>();
        for (String f : FILES) all.put(f, load(f));
        assertEquals(FILES, PresetFamily.NAMES.stream().sorted((a, b) -> FILES.indexOf(a) - FILES.indexOf(b)).toList(),
                "PresetFamily.NAMES lists exactly the family files");
        Built ref = all.get(REF);
        // the family shares the dense shape and the training recipe
        for (var e : all.entrySet()) {
            ModelConfig c = e.getValue().cfg;
            assertEquals(256, c.vocabSize, e.getKey());
            assertEquals(256, c.dModel, e.getKey());
            assertEquals(8, c.nLayers, e.getKey());
            assertEquals(4, c.nHeads, e.getKey());
            assertEquals(256, c.maxSeqLen, e.getKey());
            TrainConfig t = e.getValue().train, r = ref.train;
            assertEquals(256, t.seqLen, e.getKey());
            assertEquals(16, t.batchSize, e.getKey());
            assertEquals(r.lr, t.lr, e.getKey());
            assertEquals(r.warmupSteps, t.warmupSteps, e.getKey());
            assertEquals(r.steps, t.steps, e.getKey());
        }
        for (var e : all.entrySet()) {
            double macRatio = (double) e.getValue().forwardMacs / ref.forwardMacs;
            assertEquals(1.0, macRatio, 0.05, e.getKey() + ": forward MACs/token " + e.getValue().forwardMacs + " vs " + ref.forwardMacs);
            if (!e.getKey().equals("family-dense")) {
                double pRatio = (double) e.getValue().totalParams / ref.totalParams;
                assertEquals(1.0, pRatio, 0.05, e.getKey() + ": total params " + e.getValue().totalParams + " vs " + ref.totalParams);
            }
        }
        // the sparse models really are sparse: several times the dense model's parameters
        assertTrue(ref.totalParams > 5 * all.get("family-dense").totalParams);
    }

    @Test
    void memoryPresetsFollowTheDecisionTable() throws Exception {
        ModelConfig v2 = config("family-ultramem-v2"), v1 = config("family-ultramem"), mp = config("family-memory-plus");
        assertEquals("full", v2.memInsertWay);
        // the released recipe, as the recipe experiment decided (docs/memory-layers.md)
        assertEquals("released", v2.memQueryMode);
        assertFalse(v2.paperInit());
        assertEquals("released", new ModelConfig().memQueryMode);
        assertFalse(new ModelConfig().paperInit());
        assertEquals(0.0, v2.tuckerPenalty());
        assertFalse(v1.paperInit());
        assertTrue(v1.tuckerPenalty() > 0);
        assertTrue(mp.memKeyNorm);
        // v1's 4 → 1 value LR comes from the type default, not from the preset
        assertNull(train("family-ultramem").memValueLrTimes);
        assertEquals(4.0, train("family-ultramem").valueLrTimes(v1.memType));
        assertEquals(1.0, train("family-ultramem-v2").valueLrTimes(v2.memType));
        // equal activated value rows per token: layers × heads × knn (Table 10 note)
        long rowsV2 = (long) MemoryPlacement.parse(v2.memInsertWay, v2.nLayers).size() * v2.memHead * v2.memKnn;
        for (ModelConfig c : List.of(v1, mp, config("family-pkm")))
            assertEquals(rowsV2, (long) MemoryPlacement.parse(c.memInsertWay, c.nLayers).size() * c.memHead * c.memKnn, c.memType);
    }
}
