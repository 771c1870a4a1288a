package dev.ultramem.memory;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;
import dev.ultramem.io.Safetensors;
import dev.ultramem.model.ModelConfig;
import org.junit.jupiter.api.DynamicTest;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Locating and reading the golden reference files (layout: ../shared/golden/README.md). */
public final class GoldenFiles {
    private GoldenFiles() {}

    /** GOLDEN_DIR env var, else system property golden.dir, else ../shared/golden. */
    public static Path dir() {
        String env = System.getenv("GOLDEN_DIR");
        if (env != null && !env.isBlank()) return Path.of(env);
        return Path.of(System.getProperty("golden.dir", "../shared/golden"));
    }

    /** Every *.safetensors in the golden dir whose metadata layer_type is one of the given types. */
    public static List<Path> filesOfType(String... types) throws IOException {
        List<Path> out = new ArrayList<>();
        try (Stream<Path> s = Files.list(dir())) {
            for (Path p : s.sorted().toList()) {
                if (!p.getFileName().toString().endsWith(".safetensors")) continue;
                try (Safetensors st = Safetensors.open(p)) {
                    JsonNode m = st.metadataJson("config");
                    if (m == null) continue;
                    String lt = m.path("layer_type").asText();
                    for (String t : types) if (t.equals(lt)) out.add(p);
                }
            }
        }
        return out;
    }

    /**
     * One dynamic test per golden file of the given layer types, named after the file; fails when the
     * folder holds none of them.
     */
    public static List<DynamicTest> testsPerFile(Consumer<Path> check, String... types) throws IOException {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path p : filesOfType(types)) tests.add(DynamicTest.dynamicTest(p.getFileName().toString(), () -> check.accept(p)));
        assertFalse(tests.isEmpty(), "no " + String.join(" or ", types) + " golden file in " + dir());
        return tests;
    }

    /** The fields every memory-layer golden case has: layer type, width, keys, values, knn and heads. */
    public static ModelConfig memoryConfig(JsonNode meta) {
        JsonNode h = meta.get("hyper");
        ModelConfig c = new ModelConfig();
        c.memType = meta.get("layer_type").asText();
        c.dModel = meta.get("d").asInt();
        c.memKnum = h.get("knum").asInt();
        c.memKdim = h.get("kdim").asInt();
        c.memVdim = h.get("vdim").asInt();
        c.memKnn = h.get("knn").asInt();
        c.memHead = h.get("head").asInt();
        return c;
    }

    /** The layer config of an UltraMem v1/v2 golden case (released mode, no aux losses). */
    public static ModelConfig layerConfig(JsonNode meta) {
        JsonNode h = meta.get("hyper"), dv = meta.get("derived");
        ModelConfig c = memoryConfig(meta);
        c.memTuckerRank = dv.get("tucker_rank").asInt();
        c.memTuckerCores = dv.get("tucker_multihead").asInt();
        c.memQueryMode = "released";
        c.memInit = "released";
        c.memTuckerPenalty = 0.0; // the official forward never adds the penalty
        if (c.memType.equals("ultramem_v1")) {
            c.memV1ValueExpandTime = dv.get("value_expand_time").asInt();
        } else {
            c.memPreVdim = h.get("pre_vdim").asInt();
            c.memShareRatio = h.get("share_ratio").asDouble();
            c.memKeyExpandTime = h.get("key_expand_time").asInt();
            c.memValueExpandTime = h.get("value_expand_time").asInt();
        }
        return c;
    }

    /** Copies the file's tensor of the same name into p (shapes must match). */
    public static void load(Safetensors st, Param p, String fileName) {
        Safetensors.Entry e = st.get(fileName);
        assertArrayEquals(p.shape, e.shape(), "shape of " + fileName);
        e.requireDtype("F32");
        long n = p.numel();
        MemorySegment dst = p.segment();
        for (long i = 0; i < n; i++) dst.setAtIndex(ValueLayout.JAVA_FLOAT, i, e.data().getAtIndex(Safetensors.LE_FLOAT, i));
    }

    public static void load(Safetensors st, IndexBuffer b, String fileName) {
        int[] v = st.get(fileName).toInts();
        assertEquals(b.data().length, v.length, "length of " + fileName);
        System.arraycopy(v, 0, b.data(), 0, v.length);
    }

    public static float[] floats(Safetensors st, String name) { return st.get(name).toFloats(); }

    public static float[] gradOf(Param p) {
        long n = p.numel();
        float[] out = new float[(int) n];
        if (!p.hasGrad()) return out;
        MemorySegment g = p.gradSegment();
        for (int i = 0; i < n; i++) out[i] = g.getAtIndex(ValueLayout.JAVA_FLOAT, i);
        return out;
    }

    /** max|port − ref| ≤ rel · max|ref| (the README's acceptance measure). */
    public static void assertClose(String what, float[] ref, float[] port, int len, double rel) {
        assertTrue(port.length >= len, what + ": port tensor too short");
        assertEquals(ref.length, len, what + ": length");
        double mx = 0, diff = 0;
        int at = -1;
        for (int i = 0; i < len; i++) {
            mx = Math.max(mx, Math.abs(ref[i]));
            double dd = Math.abs((double) ref[i] - port[i]);
            if (dd > diff) { diff = dd; at = i; }
        }
        assertTrue(diff <= rel * mx, what + ": max|port-ref| = " + diff + " at " + at + " (ref " + (at >= 0 ? ref[at] : 0)
                + ", port " + (at >= 0 ? port[at] : 0) + "), allowed " + rel * mx);
    }
}
