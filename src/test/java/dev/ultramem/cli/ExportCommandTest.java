package dev.ultramem.cli;

import dev.ultramem.core.Rng;
import dev.ultramem.io.Safetensors;
import dev.ultramem.memory.GoldenFiles;
import dev.ultramem.model.Configs;
import dev.ultramem.model.Model;
import dev.ultramem.model.ModelConfig;
import dev.ultramem.model.OfficialWeights;
import dev.ultramem.train.AdamW;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.train.JobConfig;
import dev.ultramem.train.TrainConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** `export` and `import` in both directions through the command line, on a run and on the golden official model files. */
class ExportCommandTest {
    @TempDir Path dir;

    record Result(int code, String out, String err) {}

    static Result run(String... args) {
        StringWriter o = new StringWriter(), e = new StringWriter();
        CommandLine cl = Main.commandLine(new PrintWriter(o), new PrintWriter(e), false);
        int code = cl.execute(args);
        return new Result(code, o.toString(), e.toString());
    }

    /** A run folder holding a checkpoint of a random model of that config. */
    Path runOf(ModelConfig cfg, String name) {
        TrainConfig train = new TrainConfig();
        train.seqLen = Math.min(train.seqLen, cfg.maxSeqLen);
        JobConfig job = new JobConfig(cfg.validate(), train.validate());
        Model m = new Model(cfg);
        m.initialize(3);
        Path run = dir.resolve(name);
        Checkpoint.save(run.resolve(Checkpoint.LATEST), job, m, new AdamW(m.params(), train),
                new Checkpoint.Progress(0, new Rng(1).state(), null, new float[0], new float[0], new float[0]));
        return run;
    }

    static ModelConfig v2() {
        ModelConfig c = new ModelConfig();
        c.vocabSize = 256; c.dModel = 32; c.nLayers = 2; c.nHeads = 2; c.mlpHiddenSize = 48; c.maxSeqLen = 16;
        c.memType = "ultramem_v2"; c.memQueryMode = "released"; c.memKnum = 6; c.memKdim = 8; c.memVdim = 16; c.memPreVdim = 8;
        c.memKnn = 4; c.memShareRatio = 0.5;
        return c;
    }

    @Test
    void exportThenImportGivesTheRunsWeightsAndLogitsAndRefusesToOverwrite() throws Exception {
        Path run = runOf(v2(), "run");
        Path out = dir.resolve("official");
        Result r = run("export", run.toString(), "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(Files.exists(out.resolve("model.safetensors")) && Files.exists(out.resolve("config.yaml")));
        var yaml = Configs.readTree(out.resolve("config.yaml"));
        assertEquals("ultramem_v2", yaml.get("model").get("mem_type").asText());
        try (Safetensors st = Safetensors.open(out.resolve("model.safetensors"))) {
            for (String n : st.entries().keySet())
                assertFalse(n.startsWith("optim.") || n.startsWith("train."), "no optimizer or training tensor: " + n);
        }

        Result back = run("import", out.toString(), "--out", dir.resolve("back").toString());
        assertEquals(0, back.code(), back.err());
        Model a = Checkpoint.load(run, false).model(), b = Checkpoint.load(dir.resolve("back"), false).model();
        for (int i = 0; i < a.params().size(); i++) {
            var p = a.params().get(i);
            var q = b.params().get(i);
            assertEquals(p.name, q.name);
            for (long j = 0; j < p.numel(); j++)
                assertEquals(Float.floatToRawIntBits(p.get(j)), Float.floatToRawIntBits(q.get(j)), p.name + "[" + j + "]");
        }
        int[] ids = new int[32];
        for (int i = 0; i < ids.length; i++) ids[i] = (i * 37) % 256;
        float[] la = a.logits(ids, 2, 16).clone(), lb = b.logits(ids, 2, 16);
        for (int i = 0; i < la.length; i++) assertEquals(Float.floatToRawIntBits(la[i]), Float.floatToRawIntBits(lb[i]), "logit " + i);

        // a folder that is not empty is left alone without --force
        byte[] before = Files.readAllBytes(out.resolve("model.safetensors"));
        Result again = run("export", run.toString(), "--out", out.toString());
        assertEquals(2, again.code(), again.err());
        assertTrue(again.err().contains("--force"), again.err());
        assertEquals(1, again.err().strip().lines().count(), again.err());
        assertArrayEquals(before, Files.readAllBytes(out.resolve("model.safetensors")));
        assertEquals(0, run("export", run.toString(), "--out", out.toString(), "--force").code());
    }

    @Test
    void whatTheOfficialCodeCannotRepresentIsAOneLineErrorAndWritesNothing() {
        ModelConfig c = v2();
        c.memQueryMode = "paper";
        Path run = runOf(c, "paper");
        Path out = dir.resolve("refused");
        Result r = run("export", run.toString(), "--out", out.toString());
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("cannot represent mem_query_mode paper"), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertFalse(Files.exists(out), "nothing written");
    }

    /** export(import(f)) = f for the official model files: every weight and buffer, byte for byte. */
    @Test
    void goldenOfficialModelsSurviveImportThenExportByteForByte() throws Exception {
        List<Path> files = GoldenFiles.filesOfType("olmo_model");
        assertFalse(files.isEmpty(), "no olmo_model golden file in " + GoldenFiles.dir());
        for (Path f : files) {
            String name = f.getFileName().toString();
            Path imported = dir.resolve("imp-" + name), exported = dir.resolve("exp-" + name);
            Result i = run("import", f.toString(), "--out", imported.toString());
            assertEquals(0, i.code(), i.err());
            Result e = run("export", imported.toString(), "--out", exported.toString());
            assertEquals(0, e.code(), e.err());
            try (Safetensors ref = Safetensors.open(f); Safetensors got = Safetensors.open(exported.resolve("model.safetensors"))) {
                int weights = 0;
                for (Safetensors.Entry t : ref.entries().values()) {
                    if (OfficialWeights.isReferenceRunTensor(t.name())) continue;
                    Safetensors.Entry g = got.get(t.name());
                    assertEquals(t.dtype(), g.dtype(), t.name());
                    assertArrayEquals(t.shape(), g.shape(), t.name());
                    assertEquals(-1, t.data().mismatch(g.data()), name + ": " + t.name() + " bytes");
                    weights++;
                }
                assertEquals(weights, got.entries().size(), "exactly the file's weights and buffers");
            }
        }
    }
}
