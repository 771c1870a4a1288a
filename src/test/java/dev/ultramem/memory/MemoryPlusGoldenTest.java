package dev.ultramem.memory;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ultramem.core.Param;
import dev.ultramem.io.Safetensors;
import dev.ultramem.model.LayerConfigs;
import dev.ultramem.model.ModelConfig;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.nio.file.Path;
import java.util.List;

import static dev.ultramem.memory.GoldenFiles.assertClose;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Memory+ against the official implementation's vectors: every golden file with layer_type
 * memory_plus (memory_plus_h2.safetensors, and any further file of the same format in GOLDEN_DIR).
 */
class MemoryPlusGoldenTest {

    @TestFactory
    List<DynamicTest> matchesOfficialMemoryPlus() throws Exception {
        return GoldenFiles.testsPerFile(MemoryPlusGoldenTest::check, "memory_plus");
    }

    /** The layer config of a golden case: official Memory+ leaves the keys unnormalised. */
    static ModelConfig config(JsonNode meta) {
        ModelConfig cfg = GoldenFiles.memoryConfig(meta);
        cfg.memKeyNorm = false;
        cfg.nLayers = 1;
        cfg.nHeads = 1;
        return cfg.validate();
    }

    static void check(Path f) {
        try (Safetensors st = Safetensors.open(f)) {
            JsonNode meta = st.metadataJson("config");
            ModelConfig cfg = config(meta);
            SharedMemory shared = SharedMemory.create(LayerConfigs.memory(cfg), 1, "full_memory_layer.");
            MemoryPlus layer = new MemoryPlus(LayerConfigs.memory(cfg), shared, "");
            for (Param p : layer.params()) GoldenFiles.load(st, p, p.name);
            GoldenFiles.load(st, shared.values, "full_memory_layer.values_for_look_up");

            int n = meta.get("B").asInt() * meta.get("T").asInt(), d = cfg.dModel;
            float[] x = st.get("input").toFloats();
            float[] y = new float[n * d];
            layer.forward(x, y, n);
            assertClose("output", st.get("output").toFloats(), y, n * d, 1e-5);

            int[] refIdx = st.get("debug.best_indices").toInts();
            int[] idx = layer.lastIndices();
            for (int i = 0; i < refIdx.length; i++) assertEquals(refIdx[i], idx[i], "best_indices[" + i + "]");
            assertClose("best_scores_raw", st.get("debug.best_scores_raw").toFloats(), layer.lastRawScores(), refIdx.length, 1e-5);
            assertClose("best_weights", st.get("debug.best_weights").toFloats(), layer.lastWeights(), refIdx.length, 1e-5);
            assertClose("lookup_output", st.get("debug.lookup_output").toFloats(), layer.lastLookupOutput(), n * cfg.memVdim, 1e-5);

            float[] dy = st.get("grad_output").toFloats();
            float[] dx = new float[n * d];
            layer.backward(x, dy, dx, n);
            assertClose("grad.input", st.get("grad.input").toFloats(), dx, n * d, 5e-5);
            for (Param p : layer.params()) {
                float[] ref = st.get("grad." + p.name).toFloats();
                if (p.name.equals("keys_norm.weight")) {
                    for (float r : ref) assertEquals(0f, r);
                    for (float g : p.grad()) assertEquals(0f, g, 0f, "keys_norm.weight is unused without key normalisation");
                    continue;
                }
                assertClose("grad." + p.name, ref, p.grad(), ref.length, 5e-5);
            }
            float[] refV = st.get("grad.full_memory_layer.values_for_look_up").toFloats();
            float[] gV = GoldenFiles.gradOf(shared.values);
            assertClose("grad.values_for_look_up", refV, gV, refV.length, 5e-5);
            // rows never selected: exactly zero, as in the reference
            int rows = (int) shared.allValueNum, vdim = cfg.memVdim;
            boolean[] used = new boolean[rows];
            for (int z : refIdx) used[z] = true;
            for (int r = 0; r < rows; r++)
                if (!used[r]) for (int i = 0; i < vdim; i++) assertEquals(0f, gV[r * vdim + i], 0f);
            assertTrue(layer.lastForwardParamBytes() > 0);
        }
    }
}
