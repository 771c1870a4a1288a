package dev.ultramem.memory;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;
import dev.ultramem.io.Safetensors;
import dev.ultramem.layer.TokenLayer;
import dev.ultramem.model.LayerConfigs;
import dev.ultramem.model.ModelConfig;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static dev.ultramem.memory.GoldenFiles.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * UltraMem v1 / UltraMemV2 layers against the official implementation's golden vectors: every
 * *.safetensors in the golden dir with layer_type ultramem_v1 or ultramem_v2 is checked (forward,
 * debug intermediates, input and parameter gradients).
 */
class UltraMemGoldenTest {

    static final double OUT_TOL = 1e-5, GRAD_TOL = 5e-5;

    @Test
    void expectedCasesPresent() throws Exception {
        Set<String> names = new HashSet<>();
        for (Path p : filesOfType("ultramem_v1", "ultramem_v2")) names.add(p.getFileName().toString());
        for (String c : List.of("ultramem_v1_h1", "ultramem_v1_h2", "ultramem_v2_pre16", "ultramem_v2_pre0", "ultramem_v2_ket2"))
            assertTrue(names.contains(c + ".safetensors"), "golden case missing: " + c + " in " + dir());
    }

    @TestFactory
    List<DynamicTest> goldenCases() throws Exception {
        return testsPerFile(UltraMemGoldenTest::check, "ultramem_v1", "ultramem_v2");
    }

    /** A layer built from a golden file with every weight and buffer loaded (u, v: the stored ones). */
    record Loaded(TokenLayer layer, TuckerRetrieval retrieval, SharedMemory shared, ValueLookup lookup, List<Param> all, ModelConfig cfg) {}

    static Loaded build(Safetensors st) {
        JsonNode meta = st.metadataJson("config");
        ModelConfig cfg = layerConfig(meta);
        TokenLayer layer;
        TuckerRetrieval ret;
        SharedMemory shared = null;
        ValueLookup lk;
        List<Param> all = new ArrayList<>();
        if (cfg.memType.equals("ultramem_v1")) {
            UltraMemV1 l = new UltraMemV1(LayerConfigs.memory(cfg), 1, "");
            layer = l; ret = l.retrieval; lk = l.lookup;
        } else {
            JsonNode h = meta.get("hyper");
            int memLayers = h.get("mem_layer_num").asInt();
            shared = SharedMemory.create(LayerConfigs.memory(cfg), memLayers, "full_memory_layer.");
            UltraMemV2 l = new UltraMemV2(LayerConfigs.memory(cfg), h.get("layer_id").asInt(), memLayers, shared, "");
            layer = l; ret = l.retrieval; lk = l.lookup;
            JsonNode dv = meta.get("derived");
            assertEquals(dv.get("value_num").asLong(), l.valueNum, "value_num");
            assertEquals(dv.get("offset").asLong(), l.offset, "offset");
            assertEquals(dv.get("all_value_num").asLong(), l.allValueNum, "all_value_num");
            assertEquals(dv.get("key_num").asInt(), l.keyNum, "key_num");
            all.addAll(shared.params());
        }
        all.addAll(layer.params());
        Set<String> loaded = new HashSet<>();
        for (Param p : all) { load(st, p, p.name); loaded.add(p.name); }
        for (IndexBuffer b : layer.indexBuffers()) { load(st, b, b.name()); loaded.add(b.name()); }
        // every weight/buffer of the file must belong to the layer
        for (String name : st.entries().keySet()) {
            if (name.startsWith("grad") || name.startsWith("debug.") || name.equals("input") || name.equals("output")) continue;
            assertTrue(loaded.contains(name), "tensor of the file not used by the layer: " + name);
        }
        return new Loaded(layer, ret, shared, lk, all, cfg);
    }

    static void check(Path path) {
        try (Safetensors st = Safetensors.open(path)) {
            Loaded L = build(st);
            TokenLayer layer = L.layer();
            TuckerRetrieval ret = L.retrieval();
            int H = ret.heads, knn = ret.knn, C = ret.cores, r = ret.rank, keyNum = ret.keyNum;
            float[] storedU = floats(st, "tucker_core_u"), storedV = floats(st, "tucker_core_v");
            // our own Tucker update must agree with the stored u, v up to one common sign per head
            layer.afterWeightsChanged();
            for (int h = 0; h < H; h++) {
                double dot = 0;
                for (int p = 0; p < r; p++) dot += storedU[h * r + p] * ret.u.data()[h * r + p];
                double sgn = Math.signum(dot);
                assertNotEquals(0.0, sgn);
                for (int p = 0; p < r; p++) {
                    assertEquals(storedU[h * r + p], sgn * ret.u.data()[h * r + p], 1e-5, "u head " + h);
                    assertEquals(storedV[h * r + p], sgn * ret.v.data()[h * r + p], 1e-5, "v head " + h);
                }
            }
            // the forward uses the stored buffers
            load(st, ret.u, ret.u.name);
            load(st, ret.v, ret.v.name);

            float[] x = floats(st, "input"), gy = floats(st, "grad_output");
            int d = ret.d, n = x.length / d;
            float[] y = new float[n * d];
            layer.forward(x, y, n);
            assertClose("output", floats(st, "output"), y, n * d, OUT_TOL);

            // debug intermediates
            int[] bi = st.get("debug.best_indices").toInts(), bis = st.get("debug.best_indices_shuffled").toInts();
            for (int e = 0; e < n * H * knn; e++) {
                assertEquals(bi[e], ret.bestIndices[e], "best_indices at " + e);
                assertEquals(bis[e], L.lookup().shuffled[e], "best_indices_shuffled at " + e);
            }
            assertClose("best_scores", floats(st, "debug.best_scores"), ret.scores, n * H * knn * C, OUT_TOL);
            assertClose("query_normed", floats(st, "debug.query_normed"), ret.queryNormed(), n * ret.nSlots * ret.kdim, OUT_TOL);
            float[] kn = floats(st, "debug.keys_normed"), kp = new float[kn.length];
            float[] rs = floats(st, "debug.row_scores"), cs = floats(st, "debug.col_scores");
            float[] rp = new float[rs.length], cp = new float[cs.length];
            for (int h = 0; h < H; h++)
                for (int s = 0; s < 2; s++)
                    for (int k = 0; k < keyNum; k++)
                        for (int j = 0; j < ret.kdim; j++)
                            for (int p = 0; p < r; p++)
                                kp[((((h * 2 + s) * keyNum + k) * ret.kdim) + j) * r + p] = ret.keyNormed(h, s, k, j, p);
            for (int t = 0; t < n; t++)
                for (int h = 0; h < H; h++)
                    for (int k = 0; k < keyNum; k++)
                        for (int p = 0; p < r; p++) {
                            rp[((t * H + h) * keyNum + k) * r + p] = ret.score(0, t, h, k, p);
                            cp[((t * H + h) * keyNum + k) * r + p] = ret.score(1, t, h, k, p);
                        }
            assertClose("keys_normed", kn, kp, kn.length, OUT_TOL);
            assertClose("row_scores", rs, rp, rs.length, OUT_TOL);
            assertClose("col_scores", cs, cp, cs.length, OUT_TOL);
            if (layer instanceof UltraMemV2 v2) {
                if (v2.preVdim > 0) {
                    assertClose("pre_input", floats(st, "debug.pre_input"), v2.preInput(), n * v2.preVdim, OUT_TOL);
                    assertClose("pre_scores", floats(st, "debug.pre_scores"), v2.preScores(), n * H * knn, OUT_TOL);
                }
                float[] lo = floats(st, "debug.lookup_output");
                int W = v2.lookup.outWidth(), G = lo.length / (n * v2.vdim);
                float[] ref = lo;
                if (W != lo.length / n) {
                    // reference keeps the G groups; the port sums them on the fly (values_expand_time 1)
                    ref = new float[n * W];
                    for (int t = 0; t < n; t++)
                        for (int g = 0; g < G; g++)
                            for (int j = 0; j < W; j++) ref[t * W + j] += lo[(t * G + g) * v2.vdim + j];
                }
                assertClose("lookup_output", ref, v2.lookupOutput(), n * W, OUT_TOL);
            }

            // backward of sum(output · grad_output)
            for (Param p : L.all()) p.zeroGrad();
            float[] dx = new float[n * d];
            layer.backward(x, gy, dx, n);
            assertClose("grad.input", floats(st, "grad.input"), dx, n * d, GRAD_TOL);
            for (Param p : L.all()) {
                if (!p.trainable) {
                    assertFalse(st.has("grad." + p.name), "buffer with a gradient: " + p.name);
                    continue;
                }
                float[] ref = floats(st, "grad." + p.name), port = gradOf(p);
                assertClose("grad." + p.name, ref, port, ref.length, GRAD_TOL);
                if (p.name.endsWith("values_for_look_up")) {
                    // rows never selected get exactly zero
                    int w = p.dim(1);
                    for (int row = 0; row < p.dim(0); row++) {
                        boolean refZero = true;
                        for (int j = 0; j < w; j++) refZero &= ref[row * w + j] == 0f;
                        if (!refZero) continue;
                        for (int j = 0; j < w; j++) assertEquals(0f, port[row * w + j], "unselected row " + row + " of " + p.name);
                    }
                }
            }
            assertEquals(0.0, layer.auxLoss());
        }
    }

    @Test
    void goldenDirExists() {
        assertTrue(Files.isDirectory(dir()), "golden dir " + dir());
    }
}
