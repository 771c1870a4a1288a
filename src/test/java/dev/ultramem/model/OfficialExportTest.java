package dev.ultramem.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.core.UserError;
import dev.ultramem.io.Safetensors;
import dev.ultramem.layer.MoeFfn;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Export to the official layout and back, for every layer type the official code has: the exported
 * names and shapes against the official state dict as the spec describes it (../shared/golden/README.md,
 * spec §2.2, §3.2, §4, megablocks dMoE), bit-exact weights and logits after import(export(model)), and
 * export(import(f)) = f byte for byte. Models the official code cannot represent are refused.
 */
class OfficialExportTest {
    @TempDir Path dir;

    static ModelConfig base() {
        ModelConfig c = new ModelConfig();
        c.vocabSize = 40; c.dModel = 32; c.nLayers = 2; c.nHeads = 2; c.mlpHiddenSize = 48; c.maxSeqLen = 16;
        c.memKnum = 6; c.memKdim = 8; c.memVdim = 16; c.memPreVdim = 8; c.memKnn = 4;
        c.memInit = "released";
        return c;
    }

    static ModelConfig with(Consumer<ModelConfig> edit) {
        ModelConfig c = base();
        edit.accept(c);
        return c.validate();
    }

    /** Every layer type (and layout variant) the official code has. */
    static Map<String, ModelConfig> exportable() {
        Map<String, ModelConfig> m = new LinkedHashMap<>();
        m.put("dense", with(c -> {}));
        m.put("moe", with(c -> { c.ffnType = "moe"; c.moeNumExperts = 4; c.moeTopK = 2; c.moeExpertHidden = 12; }));
        m.put("ultramem_v1 head 1", with(c -> { c.memType = "ultramem_v1"; c.memQueryMode = "released"; }));
        m.put("ultramem_v1 head 2, skip placement", with(c -> {
            c.memType = "ultramem_v1"; c.memHead = 2; c.memInsertWay = "0:1"; c.memQueryMode = "released"; }));
        m.put("ultramem_v2 released, pre-values, shared table", with(c -> {
            c.memType = "ultramem_v2"; c.memQueryMode = "released"; c.memShareRatio = 0.5; }));
        m.put("ultramem_v2 released, no pre-values, 2 heads, key expansion 2, concatenated", with(c -> {
            c.memType = "ultramem_v2"; c.memQueryMode = "released"; c.memPreVdim = 0; c.memHead = 2;
            c.memKeyExpandTime = 2; c.memValueExpandTime = 4; }));
        m.put("ultramem_v2 shared 2·kdim query", with(c -> { c.memType = "ultramem_v2"; c.memQueryMode = "shared"; c.memShareRatio = 0.5; }));
        m.put("memory_plus", with(c -> { c.memType = "memory_plus"; c.memVdim = 32; c.memHead = 2; c.memKeyNorm = false; }));
        return m;
    }

    /** A model with every tensor random (norm weights not constant), u, v derived. */
    static Model randomModel(ModelConfig cfg, long seed) {
        Model m = new Model(cfg);
        m.initialize(seed);
        Rng rng = new Rng(seed + 1);
        for (Param p : m.params()) {
            if (!p.trainable) continue;
            for (long i = 0; i < p.numel(); i++) p.set(i, (float) (p.get(i) * (1 + 0.3 * rng.nextGaussian()) + 0.01 * rng.nextGaussian()));
        }
        m.afterWeightsChanged();
        return m;
    }

    static Path export(Model m, Path file) throws Exception {
        ObjectNode cfg = OfficialWeights.officialConfig(m.config());
        Safetensors.write(file, OfficialWeights.officialTensors(m), Map.of("model_config", cfg.toString()));
        return file;
    }

    /** The official config as the official trainer would read it back: through YAML text. */
    static ModelConfig viaYaml(ObjectNode official) throws Exception {
        ObjectNode root = Configs.JSON.createObjectNode();
        root.set("model", official);
        JsonNode back = Configs.YAML.readTree(Configs.YAML.writeValueAsString(root)).get("model");
        return OfficialWeights.configFromOfficial(back);
    }

    static int[] tokens(int n, int vocab, long seed) {
        Rng r = new Rng(seed);
        int[] t = new int[n];
        for (int i = 0; i < n; i++) t[i] = (int) Math.floorMod(r.nextLong(), vocab);
        return t;
    }

    @TestFactory
    List<DynamicTest> importOfExportIsBitExact() {
        List<DynamicTest> tests = new ArrayList<>();
        exportable().forEach((name, cfg) -> tests.add(DynamicTest.dynamicTest(name, () -> {
            Model run = randomModel(cfg, 7);
            Path f = export(run, dir.resolve("a.safetensors"));
            Model back;
            try (Safetensors st = Safetensors.open(f)) {
                back = new Model(viaYaml(OfficialWeights.officialConfig(cfg)));
                OfficialWeights.load(back, st, true);
            }
            boolean shared = cfg.memQueryMode.equals("shared") && cfg.memType.equals("ultramem_v2");
            Map<String, Param> byName = new LinkedHashMap<>();
            for (Param p : back.params()) byName.put(p.name, p);
            assertEquals(run.params().size(), byName.size(), "tensor count");
            for (Param p : run.params()) {
                Param q = byName.get(p.name);
                assertNotNull(q, p.name);
                float[] a = floats(p), b = floats(q);
                if (shared && p.name.endsWith("query_proj.weight")) {
                    // the 2·kdim shared query, widened to the released 4·kdim layout: the rest is zero
                    assertEquals(2 * a.length, b.length, p.name);
                    assertTrue(bitsEqual(a, Arrays.copyOf(b, a.length)), p.name);
                    for (int i = a.length; i < b.length; i++) assertEquals(0, Float.floatToRawIntBits(b[i]), p.name + " padding");
                } else {
                    assertArrayEquals(p.shape, q.shape, p.name);
                    assertTrue(bitsEqual(a, b), p.name + " bit for bit");
                }
            }
            for (int i = 0; i < run.indexBuffers().size(); i++)
                assertArrayEquals(run.indexBuffers().get(i).data(), back.indexBuffers().get(i).data(), run.indexBuffers().get(i).name());
            int B = 2, T = 12;
            int[] ids = tokens(B * T, cfg.vocabSize, 3);
            float[] want = run.logits(ids, B, T).clone(), got = back.logits(ids, B, T);
            assertTrue(bitsEqual(want, got), name + ": logits bit for bit");

            // export(import(f)) = f: the same names, shapes, dtypes and bytes
            Path g = export(back, dir.resolve("b.safetensors"));
            assertSameTensors(f, g);
        })));
        return tests;
    }

    @TestFactory
    List<DynamicTest> exportedNamesAndShapesAreTheOfficialStateDict() {
        List<DynamicTest> tests = new ArrayList<>();
        exportable().forEach((name, cfg) -> tests.add(DynamicTest.dynamicTest(name, () -> {
            Path f = export(randomModel(cfg, 11), dir.resolve("n.safetensors"));
            Map<String, String> want = officialStateDict(cfg);
            Map<String, String> got = new LinkedHashMap<>();
            try (Safetensors st = Safetensors.open(f)) {
                for (Safetensors.Entry e : st.entries().values()) got.put(e.name(), e.dtype() + Arrays.toString(e.shape()));
            }
            assertEquals(new java.util.TreeMap<>(want), new java.util.TreeMap<>(got), name);
        })));
        return tests;
    }

    /**
     * The official state dict's names → dtype and shape, written from the spec's tables (not from the
     * engine): OLMo blocks, UltraMem v1 (§2.2), UltraMemV2 with the shared table (§3.2), Memory+ (§4),
     * megablocks dMoE (router.layer, experts.mlp.w1/v1/w2 of [E·f, d]).
     */
    static Map<String, String> officialStateDict(ModelConfig c) {
        Map<String, String> m = new LinkedHashMap<>();
        int d = c.dModel, hd = d / c.nHeads;
        put(m, "transformer.wte.weight", c.vocabSize, d);
        put(m, "transformer.ln_f.weight", d);
        for (int l = 0; l < c.nLayers; l++) {
            String b = "transformer.blocks." + l + ".";
            put(m, b + "att_proj.weight", 3 * d, d);
            put(m, b + "attn_out.weight", d, d);
            put(m, b + "attn_norm.weight", d);
            put(m, b + "ff_norm.weight", d);
            put(m, b + "q_norm.weight", hd);
            put(m, b + "k_norm.weight", hd);
            if (c.ffnType.equals("moe")) {
                put(m, b + "ffn.router.layer.weight", c.moeNumExperts, d);
                for (String w : List.of("w1", "v1", "w2")) put(m, b + "ffn.experts.mlp." + w, c.moeNumExperts * c.moeExpertHidden, d);
            } else {
                put(m, b + "ff_proj.weight", c.mlpHiddenSize, d);
                put(m, b + "ff_out.weight", d, c.mlpHiddenSize / 2);
            }
        }
        if (!c.hasMemory()) return m;
        int M = c.memInsertWay.equals("full") ? c.nLayers : c.memInsertWay.split("/").length;
        int H = c.memHead, kdim = c.memKdim, knum = c.memKnum;
        for (int k = 0; k < M; k++) {
            String p = "transformer.mem_blocks." + k + ".";
            put(m, p + "query_norm.weight", kdim);
            put(m, p + "keys_norm.weight", kdim);
            switch (c.memType) {
                case "ultramem_v1" -> {
                    put(m, p + "query_proj.weight", 2 * kdim, d);
                    put(m, p + "keys", H, 2, 2 * knum, kdim, 2);
                    tucker(m, p, H);
                    m.put(p + "shuffle_index", "I64[" + 4 * knum * knum + "]");
                    put(m, p + "values_for_look_up", knum * knum, c.memVdim);
                    put(m, p + "values_proj.weight", d, 4 * c.memVdim);
                }
                case "ultramem_v2" -> {
                    int all = knum * knum * M, knumL = (int) Math.floor(Math.sqrt(all * c.memShareRatio)), ket = c.memKeyExpandTime;
                    put(m, p + "query_proj.weight", 4 * kdim, d);
                    put(m, p + "keys", H, 2, ket * knumL, kdim, 2);
                    tucker(m, p, H);
                    m.put(p + "shuffle_index", "I64[" + ket * ket * knumL * knumL + "]");
                    if (c.memPreVdim > 0) put(m, p + "pre_values_proj.weight", c.memPreVdim, d);
                    put(m, p + "values_proj.weight", d, c.memValueExpandTime * c.memVdim);
                    put(m, "transformer.full_memory_layer.values_for_look_up", all, c.memVdim);
                    if (c.memPreVdim > 0) put(m, "transformer.full_memory_layer.pre_values_for_look_up", all, c.memPreVdim);
                }
                case "memory_plus" -> {
                    put(m, p + "query_proj.weight", 2 * kdim * H, d);
                    put(m, p + "keys", H, 2, knum, kdim);
                    put(m, p + "swilu_projection.weight", c.memVdim, d);
                    put(m, p + "values_proj.weight", d, c.memVdim);
                    put(m, "transformer.full_memory_layer.values_for_look_up", knum * knum, c.memVdim);
                }
                default -> fail(c.memType);
            }
        }
        return m;
    }

    private static void tucker(Map<String, String> m, String p, int H) {
        put(m, p + "tucker_core.0", H, 2, 2);
        put(m, p + "tucker_core.1", H, 2, 2);
        put(m, p + "tucker_core_u", 1, H, 1, 2);
        put(m, p + "tucker_core_v", 1, H, 1, 2);
    }

    private static void put(Map<String, String> m, String name, long... shape) { m.put(name, "F32" + Arrays.toString(shape)); }

    /**
     * The dMoE layout means what megablocks computes: the block-0 FFN of the engine equals
     * Σ_{e∈topk(softmax(x·routerᵀ))} p_e · (SiLU(x·w1_eᵀ) ⊙ (x·v1_eᵀ))·w2_e evaluated in double precision
     * from the exported tensors (megablocks SparseGLU with w1, v1, w2 of [E·f, d]).
     */
    @Test
    void exportedMoeTensorsMeanWhatMegablocksComputes() throws Exception {
        ModelConfig cfg = exportable().get("moe");
        Model m = randomModel(cfg, 5);
        Path f = export(m, dir.resolve("moe.safetensors"));
        int d = cfg.dModel, E = cfg.moeNumExperts, h = cfg.moeExpertHidden, k = cfg.moeTopK, n = 9;
        float[] x = new float[n * d];
        new Rng(2).fillNormal(x, 1.0);
        float[] y = new float[n * d];
        m.ffn(0).forward(x, y, n);
        try (Safetensors st = Safetensors.open(f)) {
            String b = "transformer.blocks.0.ffn.";
            float[] router = st.get(b + "router.layer.weight").toFloats(), w1 = st.get(b + "experts.mlp.w1").toFloats(),
                    v1 = st.get(b + "experts.mlp.v1").toFloats(), w2 = st.get(b + "experts.mlp.w2").toFloats();
            double maxRef = 0, maxDiff = 0;
            for (int t = 0; t < n; t++) {
                double[] logit = new double[E];
                double mx = Double.NEGATIVE_INFINITY, z = 0;
                for (int e = 0; e < E; e++) {
                    for (int i = 0; i < d; i++) logit[e] += (double) x[t * d + i] * router[e * d + i];
                    mx = Math.max(mx, logit[e]);
                }
                for (int e = 0; e < E; e++) z += Math.exp(logit[e] - mx);
                Integer[] order = new Integer[E];
                for (int e = 0; e < E; e++) order[e] = e;
                double[] lg = logit;
                Arrays.sort(order, (a, c) -> Double.compare(lg[c], lg[a]));
                double[] ref = new double[d];
                for (int r = 0; r < k; r++) {
                    int e = order[r];
                    double p = Math.exp(logit[e] - mx) / z;
                    for (int j = 0; j < h; j++) {
                        double g = 0, a = 0;
                        for (int i = 0; i < d; i++) {
                            g += (double) x[t * d + i] * w1[(e * h + j) * d + i];
                            a += (double) x[t * d + i] * v1[(e * h + j) * d + i];
                        }
                        double act = g / (1 + Math.exp(-g)) * a;
                        for (int i = 0; i < d; i++) ref[i] += p * act * w2[(e * h + j) * d + i];
                    }
                }
                for (int i = 0; i < d; i++) {
                    maxRef = Math.max(maxRef, Math.abs(ref[i]));
                    maxDiff = Math.max(maxDiff, Math.abs(ref[i] - y[t * d + i]));
                }
            }
            assertTrue(maxRef > 0, "non-trivial output");
            assertTrue(maxDiff <= 1e-5 * maxRef, "max |engine − megablocks reference| = " + maxDiff + " of " + maxRef);
        }
    }

    @Test
    void whatTheOfficialCodeCannotRepresentIsRefused() {
        Map<String, Consumer<ModelConfig>> cases = new LinkedHashMap<>();
        cases.put("mem_type pkm", c -> { c.memType = "pkm"; c.memVdim = 32; });
        cases.put("mem_query_mode paper", c -> { c.memType = "ultramem_v2"; c.memQueryMode = "paper"; });
        cases.put("mem_key_norm true", c -> { c.memType = "memory_plus"; c.memVdim = 32; c.memKeyNorm = true; });
        cases.put("mem_tucker_rank 3", c -> { c.memType = "ultramem_v1"; c.memTuckerRank = 3; });
        cases.put("mem_tucker_cores 4", c -> { c.memType = "ultramem_v2"; c.memQueryMode = "released"; c.memTuckerCores = 4; });
        cases.put("mem_head 3", c -> { c.memType = "ultramem_v1"; c.memHead = 3; });
        cases.put("mem_v1_value_expand_time 9", c -> { c.memType = "ultramem_v1"; c.memV1ValueExpandTime = 9; });
        cases.put("mem_stage1_knn 5", c -> { c.memType = "ultramem_v1"; c.memStage1Knn = 5; });
        cases.put("beside an MoE FFN", c -> { c.memType = "ultramem_v1"; c.ffnType = "moe"; c.moeNumExperts = 4; });
        cases.put("rope_theta 10000.5", c -> { c.ropeTheta = 10000.5; });
        cases.forEach((what, edit) -> {
            ModelConfig cfg = with(edit);
            Model m = new Model(cfg);
            for (var call : List.<org.junit.jupiter.api.function.Executable>of(
                    () -> OfficialWeights.officialTensors(m), () -> OfficialWeights.officialConfig(cfg))) {
                UserError e = assertThrows(UserError.class, call, what);
                assertTrue(e.getMessage().startsWith("export: the official code cannot represent "), e.getMessage());
                assertTrue(e.getMessage().contains(what), what + " named in: " + e.getMessage());
                assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
            }
        });
    }

    /** The official config lists the official ModelConfig fields with their official types and values. */
    @Test
    void officialConfigUsesTheOfficialFieldsAndTypes() throws Exception {
        ModelConfig cfg = exportable().get("ultramem_v2 released, pre-values, shared table");
        JsonNode o = OfficialWeights.officialConfig(cfg);
        assertEquals("sequential", o.get("block_type").asText());
        assertEquals("swiglu", o.get("activation_type").asText());
        assertEquals("rms", o.get("layer_norm_type").asText());
        assertTrue(o.get("rope_theta").isIntegralNumber(), "rope_theta is an int field");
        assertTrue(o.get("weight_tying").asBoolean());
        assertFalse(o.get("include_bias").asBoolean());
        assertTrue(o.get("mem_q_for_each_tucker_rank").asBoolean());
        assertEquals("ultramem_v2", o.get("mem_type").asText());
        assertEquals(0.5, o.get("mem_share_ratio").asDouble());
        assertEquals(cfg.memKnum, o.get("mem_knum").asInt());
        ModelConfig dense = OfficialWeights.configFromOfficial(OfficialWeights.officialConfig(exportable().get("dense")));
        assertEquals("none", dense.memType, "no_mem reads back as no memory");
        JsonNode moe = OfficialWeights.officialConfig(exportable().get("moe"));
        assertEquals("moe", moe.get("block_type").asText());
        assertEquals("no_mem", moe.get("mem_insert_way").asText());
        assertEquals(24, moe.get("mlp_hidden_size").asInt(), "experts of width ½·mlp_hidden_size (config_to_moe_args)");
        // every field name is one of the official ModelConfig's (the golden model file carries the full official config)
        JsonNode ref = goldenModelConfig();
        if (ref != null) for (var it = o.fieldNames(); it.hasNext(); ) {
            String key = it.next();
            assertTrue(ref.has(key), "not an official ModelConfig field: " + key);
        }
    }

    private static JsonNode goldenModelConfig() throws Exception {
        List<Path> files = dev.ultramem.memory.GoldenFiles.filesOfType("olmo_model");
        if (files.isEmpty()) return null;
        try (Safetensors st = Safetensors.open(files.get(0))) {
            return st.metadataJson("config").get("model_config");
        }
    }

    /** An official config with mem_q_for_each_tucker_rank false (the official code's default) imports as the shared 2·kdim query. */
    @Test
    void officialV2ConfigWithoutPerRankQueryImportsAsSharedQuery() {
        ObjectNode o = OfficialWeights.officialConfig(exportable().get("ultramem_v2 released, pre-values, shared table"));
        o.put("mem_q_for_each_tucker_rank", false);
        ModelConfig c = OfficialWeights.configFromOfficial(o);
        assertEquals("shared", c.memQueryMode);
        Model m = new Model(c);
        assertEquals(2L * c.memKdim, ((dev.ultramem.memory.UltraMemV2) m.memoryLayers().get(0)).retrieval.queryProj.shape[0]);
    }

    /**
     * Official weights stored as BF16 or F16 (as a bf16 training run saves them) import exactly: the
     * model's weights are first rounded to values the 16-bit format holds exactly, the file is written
     * by hand in that dtype, and the import must give those float32 values bit for bit, and the logits
     * of the rounded model.
     */
    @TestFactory
    List<DynamicTest> bf16AndF16WeightsImportExactly() {
        List<DynamicTest> tests = new ArrayList<>();
        for (String dtype : List.of("BF16", "F16"))
            for (String type : List.of("dense", "moe", "ultramem_v2 released, pre-values, shared table", "memory_plus"))
                tests.add(DynamicTest.dynamicTest(dtype + " " + type, () -> {
                    ModelConfig cfg = exportable().get(type);
                    Model m = randomModel(cfg, 17);
                    for (Param p : m.params())
                        for (long i = 0; i < p.numel(); i++) p.set(i, representable(dtype, p.get(i)));
                    // values at the edges of the formats: F16 subnormals and its largest value, BF16 tiny and huge
                    Param wte = m.params().get(0);
                    float[] edge = dtype.equals("F16") ? new float[]{0x1p-24f, -0x1p-20f, 65504f, -0.0f, 0x1.ff8p-15f}
                            : new float[]{0x1p-133f, -0x1p-126f, 0x1.fep127f, -0.0f, 1.5f};
                    for (int i = 0; i < edge.length; i++) wte.set(i, edge[i]);
                    m.afterWeightsChanged();
                    // the Tucker vectors derived from the rounded cores are stored in the 16-bit file too
                    for (Param p : m.params())
                        if (!p.trainable) for (long i = 0; i < p.numel(); i++) p.set(i, representable(dtype, p.get(i)));
                    Path f32 = export(m, dir.resolve("f32.safetensors"));
                    Path half = rewriteAs16(f32, dir.resolve("half.safetensors"), dtype);
                    Model back = new Model(viaYaml(OfficialWeights.officialConfig(cfg)));
                    try (Safetensors st = Safetensors.open(half)) {
                        assertTrue(st.entries().values().stream().anyMatch(e -> e.dtype().equals(dtype)), "a " + dtype + " file");
                        OfficialWeights.load(back, st, true);
                    }
                    for (int i = 0; i < m.params().size(); i++)
                        assertTrue(bitsEqual(floats(m.params().get(i)), floats(back.params().get(i))), m.params().get(i).name);
                    int[] ids = tokens(24, cfg.vocabSize, 5);
                    assertTrue(bitsEqual(m.logits(ids, 2, 12).clone(), back.logits(ids, 2, 12)), "logits");
                }));
        return tests;
    }

    /** x rounded to a value the 16-bit format represents exactly (bf16: upper 16 bits; f16: nearest half). */
    static float representable(String dtype, float x) {
        return dtype.equals("BF16") ? Float.intBitsToFloat(Float.floatToRawIntBits(x) & 0xffff0000)
                : Float.float16ToFloat(Float.floatToFloat16(x));
    }

    /** A copy of a safetensors file with every F32 tensor stored in {@code dtype} (values must be exact in it). */
    static Path rewriteAs16(Path from, Path to, String dtype) throws Exception {
        ObjectNode header = Configs.JSON.createObjectNode();
        java.io.ByteArrayOutputStream data = new java.io.ByteArrayOutputStream();
        try (Safetensors st = Safetensors.open(from)) {
            ObjectNode meta = header.putObject("__metadata__");
            st.metadata().forEach(meta::put);
            for (Safetensors.Entry e : st.entries().values()) {
                byte[] bytes;
                String dt = e.dtype();
                if (dt.equals("F32")) {
                    float[] v = e.toFloats();
                    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(2 * v.length).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                    for (float x : v) {
                        short h = dtype.equals("BF16") ? (short) (Float.floatToRawIntBits(x) >>> 16) : Float.floatToFloat16(x);
                        assertEquals(Float.floatToRawIntBits(x), Float.floatToRawIntBits(representable(dtype, x)), "exact in " + dtype);
                        b.putShort(h);
                    }
                    bytes = b.array();
                    dt = dtype;
                } else {
                    bytes = e.data().toArray(ValueLayout.JAVA_BYTE);
                }
                ObjectNode o = header.putObject(e.name());
                o.put("dtype", dt);
                var sh = o.putArray("shape");
                for (long x : e.shape()) sh.add(x);
                o.putArray("data_offsets").add(data.size()).add(data.size() + bytes.length);
                data.write(bytes);
            }
        }
        byte[] h = Configs.JSON.writeValueAsBytes(header);
        java.nio.ByteBuffer out = java.nio.ByteBuffer.allocate(8 + h.length + data.size()).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        out.putLong(h.length).put(h).put(data.toByteArray());
        java.nio.file.Files.write(to, out.array());
        return to;
    }

    static float[] floats(Param p) {
        float[] a = new float[Math.toIntExact(p.numel())];
        MemorySegment.copy(p.segment(), ValueLayout.JAVA_FLOAT, 0, a, 0, a.length);
        return a;
    }

    static boolean bitsEqual(float[] a, float[] b) {
        if (a.length != b.length) return false;
        for (int i = 0; i < a.length; i++) if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) return false;
        return true;
    }

    /** Same tensor names, dtypes, shapes and data bytes (metadata aside). */
    static void assertSameTensors(Path f, Path g) {
        try (Safetensors a = Safetensors.open(f); Safetensors b = Safetensors.open(g)) {
            assertEquals(a.entries().keySet(), b.entries().keySet(), "tensor names");
            for (Safetensors.Entry e : a.entries().values()) {
                Safetensors.Entry o = b.get(e.name());
                assertEquals(e.dtype(), o.dtype(), e.name());
                assertArrayEquals(e.shape(), o.shape(), e.name());
                assertEquals(-1, e.data().mismatch(o.data()), e.name() + " bytes");
            }
        }
    }

    @Test
    void indexBuffersExportAsI64() throws Exception {
        Model m = randomModel(exportable().get("ultramem_v1 head 1"), 3);
        Path f = export(m, dir.resolve("i.safetensors"));
        try (Safetensors st = Safetensors.open(f)) {
            for (IndexBuffer b : m.indexBuffers()) {
                assertEquals("I64", st.get(b.name()).dtype());
                assertArrayEquals(b.data(), st.get(b.name()).toInts());
            }
        }
    }

    @Test
    void moeConfigReadsTheExpertWidthLikeTheOfficialCode() {
        ObjectNode o = OfficialWeights.officialConfig(exportable().get("moe"));
        o.remove("mlp_hidden_size");
        o.put("mlp_ratio", 1);
        assertEquals(16, OfficialWeights.configFromOfficial(o).moeExpertHidden, "½·mlp_ratio·d_model");
        o.put("moe_dropless", false);
        UserError e = assertThrows(UserError.class, () -> OfficialWeights.configFromOfficial(o));
        assertTrue(e.getMessage().contains("moe_dropless"), e.getMessage());
        assertTrue(MoeFfn.class.isInstance(new Model(exportable().get("moe")).ffn(0)));
    }
}
