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
        assertMessage(() -> JobConfig.build(null, null, List.of("model.d_model=abc")), "invalid value");
        assertMessage(() -> JobConfig.build(null, null, List.of("train.seq_len=512")), "exceeds model.max_seq_len");
        assertMessage(() -> JobConfig.build(null, dir.resolve("none.yaml"), List.of()), "not found");
        assertMessage(() -> JobConfig.build("../etc", null, List.of()), "unknown preset");
    }

    private static void assertMessage(org.junit.jupiter.api.function.Executable ex, String part) {
        UserError e = assertThrows(UserError.class, ex);
        assertTrue(e.getMessage().contains(part), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
    }
}
