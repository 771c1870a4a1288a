package dev.ultramem.train;

import dev.ultramem.core.UserError;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class JobConfigTest {
    @TempDir Path dir;

    @Test
    void shippedPresetsLoadWithTheirDocumentedShapes() {
        assertTrue(JobConfig.presetNames().containsAll(List.of("dense-tiny", "ref-256")));
        for (String n : JobConfig.presetNames()) JobConfig.build(n, null, List.of());
        JobConfig ref = JobConfig.build("ref-256", null, List.of());
        assertEquals(256, ref.model.dModel);
        assertEquals(4, ref.model.nLayers);
        assertEquals(4, ref.model.nHeads);
        assertEquals(256, ref.model.maxSeqLen);
        assertEquals(2048, ref.model.mlpHiddenSize);
        assertEquals(256, ref.model.vocabSize);
        JobConfig tiny = JobConfig.build("dense-tiny", null, List.of());
        assertEquals(128, tiny.model.dModel);
        assertEquals(1024, tiny.model.mlpHiddenSize);
    }

    @Test
    void layersApplyInOrderPresetThenFileThenOverrides() throws Exception {
        Path yaml = dir.resolve("c.yaml");
        Files.writeString(yaml, "model:\n  d_model: 64\n  n_heads: 2\ntrain:\n  lr: 0.01\n  steps: 50\n");
        JobConfig j = JobConfig.build("dense-tiny", yaml, List.of("train.lr=1e-3", "model.n_layers=2", "model.mem_type=none", "train.decay_norm_and_embeddings=false"));
        assertEquals(64, j.model.dModel);
        assertEquals(2, j.model.nHeads);
        assertEquals(2, j.model.nLayers);
        assertEquals(1e-3, j.train.lr);
        assertEquals(50, j.train.steps);
        assertFalse(j.train.decayNormAndEmbeddings);
        assertEquals(1024, j.model.mlpHiddenSize);  // from the preset
    }

    @Test
    void badConfigsAreOneLineErrors() throws Exception {
        Path bad = dir.resolve("bad.json");
        Files.writeString(bad, "{\"model\": {\"d_model\": 64,, }");
        assertMessage(() -> JobConfig.build(null, bad, List.of()), "malformed");
        Path unknownSection = dir.resolve("u.json");
        Files.writeString(unknownSection, "{\"modle\": {}}");
        assertMessage(() -> JobConfig.build(null, unknownSection, List.of()), "unknown section 'modle'");
        assertMessage(() -> JobConfig.build(null, null, List.of("model.no_such_key=3")), "unknown key 'no_such_key'");
        assertMessage(() -> JobConfig.build(null, null, List.of("train.lr=0")), "lr must be > 0");
        assertMessage(() -> JobConfig.build(null, null, List.of("lr=3")), "section.key=value");
        assertMessage(() -> JobConfig.build(null, null, List.of("model.d_model=abc")), "'d_model' must be an integer, got \"abc\"");
        assertMessage(() -> JobConfig.build(null, null, List.of("train.seq_len=512")), "exceeds model.max_seq_len");
        assertMessage(() -> JobConfig.build(null, dir.resolve("none.yaml"), List.of()), "not found");
        assertMessage(() -> JobConfig.build("../etc", null, List.of()), "unknown preset");
    }

    @Test
    void valuesOfTheWrongTypeOrNotFiniteAreRejectedNotCoerced() throws Exception {
        assertMessage(() -> JobConfig.build(null, null, List.of("model.d_model=32.5")), "'d_model' must be an integer");
        assertMessage(() -> JobConfig.build(null, null, List.of("train.steps=1e1")), "'steps' must be an integer");
        assertMessage(() -> JobConfig.build(null, null, List.of("model.d_model=")), "'d_model' must be an integer");
        assertMessage(() -> JobConfig.build(null, null, List.of("train.lr=abc")), "'lr' must be a number");
        Path quoted = dir.resolve("q.json");
        Files.writeString(quoted, "{\"model\": {\"d_model\": \"64\"}}");
        assertMessage(() -> JobConfig.build(null, quoted, List.of()), "'d_model' must be an integer, got \"64\"");
        for (String o : List.of("train.eps=Infinity", "train.lr=Infinity", "train.weight_decay=NaN", "train.grad_clip=NaN",
                "train.mem_value_lr_times=NaN", "train.final_lr_ratio=NaN", "model.rope_theta=Infinity", "model.moe_lb_weight=NaN"))
            assertMessage(() -> JobConfig.build(null, null, List.of(o)), "must be a finite number");
        assertMessage(() -> JobConfig.build(null, null, List.of("model.ffn_type=moe", "model.moe_lb_weight=-1")), "must be >= 0");
        assertMessage(() -> JobConfig.build(null, null, List.of("model.mem_type=ultramem_v2", "model.mem_insert_way=")), "mem_insert_way is empty");
    }

    @Test
    void everyLayerIsCheckedAsItIsReadEvenWhenALaterLayerOverridesIt() throws Exception {
        Path typo = Files.writeString(dir.resolve("typo.json"), "{\"model\": {\"d_model\": \"abc\"}}");
        assertMessage(() -> JobConfig.build(null, typo, List.of("model.d_model=32")), typo + ": model config: 'd_model' must be an integer, got \"abc\"");
        Path negative = Files.writeString(dir.resolve("neg.yaml"), "model:\n  n_layers: -1\n");
        assertMessage(() -> JobConfig.build("dense-tiny", negative, List.of("model.n_layers=2")), negative + ": n_layers must be > 0, got -1");
        Path unknown = Files.writeString(dir.resolve("u.json"), "{\"train\": {\"sed\": 3}}");
        assertMessage(() -> JobConfig.build(null, unknown, List.of()), unknown + ": train config: unknown key 'sed'");
        assertMessage(() -> JobConfig.build(null, null, List.of("model.d_model=abc", "model.d_model=32")), "--set model.d_model=abc: model config: 'd_model' must be an integer");
        assertMessage(() -> JobConfig.build(null, null, List.of("train.lr=NaN", "train.lr=0.01")), "--set train.lr=NaN: lr must be a finite number");
        assertMessage(() -> JobConfig.build(null, null, List.of("model.ffn_type=moe", "model.moe_top_k=0", "model.ffn_type=dense")), "--set model.moe_top_k=0: moe_top_k must be > 0");
        // keys that must agree with each other are checked once all layers are in: the order of the overrides does not matter
        JobConfig j = JobConfig.build("dense-tiny", null, List.of("model.n_heads=3", "model.d_model=96"));
        assertEquals(32, j.model.headDim());
        assertMessage(() -> JobConfig.build("dense-tiny", null, List.of("model.n_heads=3")), "config: n_heads (3) must divide d_model (128)");
    }

    @Test
    void trailingContentDuplicateKeysAndSecondDocumentsAreErrors() throws Exception {
        var cases = java.util.Map.of(
                "t.json", List.of("{\"model\": {\"d_model\": 64}} trailing", "malformed"),
                "d.json", List.of("{\"model\": {\"d_model\": 64, \"d_model\": 128}}", "Duplicate field 'd_model'"),
                "d.yaml", List.of("model:\n  d_model: 64\n  d_model: 128\n", "Duplicate field 'd_model'"),
                "two.yaml", List.of("model:\n  d_model: 64\n---\nmodel:\n  d_model: 128\n", "second YAML document"));
        for (var c : cases.entrySet()) {
            Path f = Files.writeString(dir.resolve(c.getKey()), c.getValue().get(0));
            assertMessage(() -> JobConfig.build(null, f, List.of()), c.getValue().get(1));
        }
        Path folder = Files.createDirectory(dir.resolve("cfg.json"));
        assertMessage(() -> JobConfig.build(null, folder, List.of()), "is a folder");
    }

    private static void assertMessage(org.junit.jupiter.api.function.Executable ex, String part) {
        UserError e = assertThrows(UserError.class, ex);
        assertTrue(e.getMessage().contains(part), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
    }
}
