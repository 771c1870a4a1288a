package dev.ultramem.cli;

import dev.ultramem.TestModels;
import dev.ultramem.core.Rng;
import dev.ultramem.model.Model;
import dev.ultramem.model.ModelConfig;
import dev.ultramem.model.ModelCosts;
import dev.ultramem.train.AdamW;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.train.JobConfig;
import dev.ultramem.train.TrainConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static dev.ultramem.cli.MainTest.assertUserError;
import static dev.ultramem.cli.MainTest.run;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Sizes too large for the machine (or for the engine's arrays and indices) are one-line config errors naming
 * the key, raised from the config alone before any model is built: each case returns at once and allocates
 * nothing large (the suite runs with -Xmx4g).
 */
class SizeLimitsTest {
    @TempDir Path dir;

    @Test
    void aLongPlannedScheduleIsNotRefusedAndAllocatesOnlyForTheStepsRun() {
        // 2e9 planned steps: a loss history sized by the plan would take 8 GB before the first step
        MainTest.Result r = run("train", "--preset", "dense-tiny", "--steps", "2000000000", "--stop-at", "2", "--quiet", "--no-sample",
                "--out", dir.resolve("long").toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("paused at step 2 of 2000000000"), r.out());
    }

    @Test
    void sizesBeyondArraysIndicesOrTheHeapAreConfigErrorsNamingTheKey() {
        Map<String, String[]> cases = new java.util.LinkedHashMap<>();
        // a single heap array above 2^31 elements
        cases.put("model.d_model=1000000000", new String[]{"info", "--set", "model.d_model=1000000000"});
        cases.put("model.vocab_size=2000000000", new String[]{"train", "--set", "model.vocab_size=2000000000", "--quiet"});
        cases.put("model.mlp_hidden_size=1000000000", new String[]{"train", "--set", "model.mlp_hidden_size=1000000000", "--quiet"});
        cases.put("model.max_seq_len=2000000000", new String[]{"train", "--set", "model.max_seq_len=2000000000", "--quiet"});
        cases.put("train.batch_size=100000000", new String[]{"train", "--set", "train.batch_size=100000000", "--quiet"});
        // value-table rows beyond 32-bit indices
        cases.put("model.mem_knum=1000000", new String[]{"train", "--set", "model.mem_knum=1000000", "--quiet"});
        cases.put("model.n_layers=1000000", new String[]{"train", "--set", "model.n_layers=1000000", "--quiet"});
        // more heap than -Xmx: weights of a hundred thousand layers
        cases.put("model.n_layers=100000", new String[]{"train", "--preset", "dense-tiny", "--set", "model.n_layers=100000", "--quiet"});
        // the default job checks as train does
        cases.put("model.d_model=500000000", new String[]{"--set", "model.d_model=500000000", "--quiet"});
        // more off-heap memory for training than the direct-memory limit or RAM
        cases.put("model.mem_knum=40000", new String[]{"train", "--preset", "family-pkm", "--set", "model.mem_knum=40000",
                "--set", "train.batch_size=1", "--quiet"});
        Path out = dir.resolve("never-written");
        for (var c : cases.entrySet()) {
            String[] args = c.getValue()[0].equals("info") ? c.getValue() : withOut(c.getValue(), out);
            MainTest.Result r = run(args);
            assertUserError(r, "config: " + c.getKey());
            if (c.getKey().equals("model.n_layers=100000"))
                assertTrue(r.err().contains("of heap for training") && r.err().contains("raise -Xmx"), r.err());
            if (c.getKey().equals("model.mem_knum=40000")) assertTrue(r.err().contains("of off-heap memory for training"), r.err());
        }
        assertFalse(Files.exists(out), "refused before the output folder is created");
    }

    private static String[] withOut(String[] args, Path out) {
        String[] a = java.util.Arrays.copyOf(args, args.length + 2);
        a[args.length] = "--out";
        a[args.length + 1] = out.toString();
        return a;
    }

    /** A checkpoint whose stored config is far too large: eval, generate and resume refuse it from its header alone. */
    @Test
    void checkpointCommandsCheckTheStoredConfigBeforeLoading() throws Exception {
        ModelConfig huge = TestModels.tinyModel().copy();
        huge.nLayers = 1_000_000;  // about 7 GB of weights
        Path ck = savedWithConfig(huge, "huge");
        for (String cmd : new String[]{"eval", "generate", "resume"}) {
            MainTest.Result r = run(cmd, ck.toString());
            assertUserError(r, "config: model.n_layers=1000000 needs");
            assertTrue(r.err().contains(ck.toString()), r.err());
        }
        assertUserError(run("resume", ck.toString(), "--steps", "2000000000"), "model.n_layers=1000000");

        // info reads the header and counts from the config
        MainTest.Result info = run("info", ck.toString());
        assertEquals(0, info.code(), info.err());
        assertTrue(info.out().contains("header only"), info.out());
        assertTrue(info.out().contains("skipped, the model is too large to build here"), info.out());
        assertTrue(info.out().contains(String.format("parameters: %,d total", ModelCosts.of(huge, 16).totalParams())), info.out());
        assertTrue(info.out().contains("more than this machine offers"), info.out());
    }

    /** info on a config too large to build here counts it from the config instead of allocating it. */
    @Test
    void infoCountsAModelTooLargeToBuildFromItsConfig() {
        String[] sets = {"model.mem_knum=40000", "train.batch_size=1"};
        MainTest.Result r = run("info", "--preset", "family-pkm", "--set", sets[0], "--set", sets[1]);
        assertEquals(0, r.code(), r.err());
        JobConfig job = JobConfig.build("family-pkm", null, java.util.List.of(sets));
        ModelCosts k = ModelCosts.of(job.model, job.train.seqLen);
        assertTrue(r.out().contains(String.format("parameters: %,d total", k.totalParams())), r.out());
        assertTrue(r.out().contains(String.format("activated parameters per token: %,d", k.activatedParamsPerToken())), r.out());
        assertTrue(r.out().contains("skipped, the model is too large to build here"), r.out());
        assertTrue(r.out().contains("memory for training (batch 1 x 256 tokens"), r.out());
        assertTrue(r.out().contains("value tables 3.0 TB memory-mapped from the checkpoint"), r.out());
    }

    /** Tables larger than RAM are fine for inference: they are memory-mapped, so only training refuses them. */
    @Test
    void mappedTablesLargerThanMemoryAreNotRefusedForInference() throws Exception {
        ModelConfig pkm = TestModels.tinyModel().copy();
        pkm.memType = "pkm";
        pkm.memVdim = pkm.dModel;
        pkm.memKnum = 40000;  // 1.6e9 rows × 16 floats = 95 GB of table
        Path ck = savedWithConfig(pkm, "pkm");
        assertUserError(run("resume", ck.toString()), "config: model.mem_knum=40000 needs");
        for (String cmd : new String[]{"eval", "generate"}) {
            // past the memory check; the file (written from a small model) then lacks the table
            MainTest.Result r = run(cmd, ck.toString());
            assertUserError(r, "missing tensor");
        }
    }

    /** A checkpoint of a tiny model whose metadata carries another config. */
    private Path savedWithConfig(ModelConfig stored, String name) {
        Model m = new Model(TestModels.tinyModel());
        m.initialize(1);
        TrainConfig t = TestModels.tinyTrain(4);
        Path file = dir.resolve(name).resolve(Checkpoint.LATEST);
        Checkpoint.save(file, new JobConfig(stored, t), m, new AdamW(m.params(), t),
                new Checkpoint.Progress(0, new Rng(1).state(), null, new float[0], new float[0], new float[0]));
        return file;
    }

    @Test
    void importChecksTheOfficialConfigBeforeBuildingTheModel() throws Exception {
        Path weights = dir.resolve("w.safetensors");
        dev.ultramem.io.Safetensors.write(weights, java.util.List.of(), Map.of());
        Path cfg = Files.writeString(dir.resolve("official.json"), """
                {"d_model": 16, "n_layers": 1000000, "n_heads": 2, "vocab_size": 256, "max_sequence_length": 16,
                 "mlp_hidden_size": 32, "block_type": "sequential", "mem_insert_way": "no_mem"}""");
        assertUserError(run("import", weights.toString(), "--config", cfg.toString(), "--out", dir.resolve("imp").toString()),
                "config: model.n_layers=1000000 needs");
    }

    @Test
    void layeredConfigValuesAreCheckedWhereTheyComeFrom() throws Exception {
        Path file = Files.writeString(dir.resolve("c.json"), "{\"model\": {\"d_model\": \"abc\"}}");
        MainTest.Result r = run("train", "--config", file.toString(), "--set", "model.d_model=32", "--quiet");
        assertUserError(r, file + ": model config: 'd_model' must be an integer, got \"abc\"");
        assertUserError(run("info", "--set", "model.n_layers=0", "--set", "model.n_layers=2"), "--set model.n_layers=0: n_layers must be > 0");
    }
}
