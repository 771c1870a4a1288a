package dev.ultramem.memory;

import dev.ultramem.core.Param;
import dev.ultramem.io.Safetensors;
import dev.ultramem.model.ModelConfig;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** Memory+ against the official implementation's vectors (memory_plus_h2.safetensors). */
class MemoryPlusGoldenTest {

    static Path goldenDir() {
        String env = System.getenv("GOLDEN_DIR");
        if (env != null && !env.isEmpty()) return Path.of(env);
        String prop = System.getProperty("golden.dir");
        if (prop != null && !prop.isEmpty()) return Path.of(prop);
        return Path.of("../shared/golden");
    }

    static void load(Safetensors st, String name, Param p) {
        var e = st.get(name);
        assertArrayEquals(p.shape, e.shape(), "shape of " + name);
        float[] v = e.toFloats();
        for (int i = 0; i < v.length; i++) p.set(i, v[i]);
    }

    /** max|port − ref| ≤ tol · max|ref| */
    static void close(String what, float[] ref, float[] got, int len, double tol) {
        double maxRef = 0, maxErr = 0;
        for (int i = 0; i < len; i++) {
            maxRef = Math.max(maxRef, Math.abs(ref[i]));
            maxErr = Math.max(maxErr, Math.abs((double) ref[i] - got[i]));
        }
        assertTrue(maxRef > 0, what + ": reference is all zeros");
        assertTrue(maxErr <= tol * maxRef, what + ": max error " + maxErr + " > " + tol + " · " + maxRef);
    }

    static float[] segmentToFloats(MemorySegment s, int len) {
        float[] out = new float[len];
        for (int i = 0; i < len; i++) out[i] = s.getAtIndex(ValueLayout.JAVA_FLOAT, i);
        return out;
    }

    @Test
    void matchesOfficialMemoryPlus() {
        Path f = goldenDir().resolve("memory_plus_h2.safetensors");
        assertTrue(Files.exists(f), "golden file missing: " + f.toAbsolutePath());
        try (Safetensors st = Safetensors.open(f)) {
            ModelConfig cfg = new ModelConfig();
            cfg.dModel = 64; cfg.memType = "memory_plus"; cfg.memKnum = 8; cfg.memKdim = 16; cfg.memVdim = 64;
            cfg.memKnn = 4; cfg.memHead = 2; cfg.memKeyNorm = false; cfg.nLayers = 1; cfg.nHeads = 4;
            cfg.validate();
            SharedMemory shared = SharedMemory.create(cfg, 1, "full_memory_layer.");
            MemoryPlus layer = new MemoryPlus(cfg, shared, "");
            for (Param p : layer.params()) load(st, p.name, p);
            load(st, "full_memory_layer.values_for_look_up", shared.values);

            int n = 16, d = 64;
            float[] x = st.get("input").toFloats();
            float[] y = new float[n * d];
            layer.forward(x, y, n);
            close("output", st.get("output").toFloats(), y, n * d, 1e-5);

            int[] refIdx = st.get("debug.best_indices").toInts();
            int[] idx = layer.lastIndices();
            for (int i = 0; i < refIdx.length; i++) assertEquals(refIdx[i], idx[i], "best_indices[" + i + "]");
            close("best_scores_raw", st.get("debug.best_scores_raw").toFloats(), layer.lastRawScores(), refIdx.length, 1e-5);
            close("best_weights", st.get("debug.best_weights").toFloats(), layer.lastWeights(), refIdx.length, 1e-5);
            close("lookup_output", st.get("debug.lookup_output").toFloats(), layer.lastLookupOutput(), n * d, 1e-5);

            float[] dy = st.get("grad_output").toFloats();
            float[] dx = new float[n * d];
            layer.backward(x, dy, dx, n);
            close("grad.input", st.get("grad.input").toFloats(), dx, n * d, 5e-5);
            for (Param p : layer.params()) {
                float[] ref = st.get("grad." + p.name).toFloats();
                if (p.name.equals("keys_norm.weight")) {
                    for (int i = 0; i < ref.length; i++) assertEquals(0f, ref[i]);
                    for (float g : p.grad()) assertEquals(0f, g, 0f, "keys_norm.weight is unused without key normalisation");
                    continue;
                }
                close("grad." + p.name, ref, p.grad(), ref.length, 5e-5);
            }
            float[] refV = st.get("grad.full_memory_layer.values_for_look_up").toFloats();
            float[] gV = segmentToFloats(shared.values.gradSegment(), refV.length);
            close("grad.values_for_look_up", refV, gV, refV.length, 5e-5);
            // rows never selected: exactly zero, as in the reference
            boolean[] used = new boolean[64];
            for (int z : refIdx) used[z] = true;
            for (int r = 0; r < 64; r++)
                if (!used[r]) for (int i = 0; i < 64; i++) assertEquals(0f, gV[r * 64 + i], 0f);
            assertTrue(layer.lastForwardParamBytes() > 0);
        }
    }
}
