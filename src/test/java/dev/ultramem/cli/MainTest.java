package dev.ultramem.cli;

import dev.ultramem.TestModels;
import dev.ultramem.core.Parallel;
import dev.ultramem.model.Configs;
import dev.ultramem.train.Checkpoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class MainTest {
    @TempDir Path dir;

    record Result(int code, String out, String err) {}

    static Result run(String... args) {
        StringWriter o = new StringWriter(), e = new StringWriter();
        int code = Main.run(args, new PrintWriter(o), new PrintWriter(e));
        return new Result(code, o.toString(), e.toString());
    }

    /** Exit code 2, exactly one line on stderr starting with "error:", no stack trace. */
    static void assertUserError(Result r, String part) {
        assertEquals(2, r.code(), r.err());
        String err = r.err().strip();
        assertTrue(err.startsWith("error: "), err);
        assertEquals(1, err.lines().count(), err);
        assertFalse(err.contains("\tat "), err);
        assertTrue(err.contains(part), err);
    }

    private Path tinyConfig() throws Exception { return tinyConfig(dir, 6); }

    /** A config file for the tiny test model trained for the given steps. */
    static Path tinyConfig(Path dir, int steps) throws java.io.IOException {
        Path cfg = dir.resolve("tiny-" + steps + ".json");
        var tree = Configs.JSON.createObjectNode();
        tree.set("model", Configs.toTree(TestModels.tinyModel()));
        tree.set("train", Configs.toTree(TestModels.tinyTrain(steps)));
        Files.writeString(cfg, tree.toString());
        return cfg;
    }

    @Test
    void errorCasesPrintOneLineAndExitNonZero() throws Exception {
        assertUserError(run("train", dir.resolve("missing.txt").toString(), "--quiet"), "not found");
        Path empty = dir.resolve("empty.txt");
        Files.writeString(empty, "");
        assertUserError(run("train", empty.toString(), "--quiet"), "empty");
        Path shortText = dir.resolve("short.txt");
        Files.writeString(shortText, "too short");
        assertUserError(run("train", shortText.toString(), "--quiet"), "too short");
        Path notUtf8 = dir.resolve("bin.txt");
        Files.write(notUtf8, new byte[]{(byte) 0xC0, (byte) 0xFF, 0, 1});
        assertUserError(run("train", notUtf8.toString(), "--quiet"), "not UTF-8");
        assertUserError(run("train", "--set", "train.lr=-1", "--quiet"), "lr must be > 0");
        assertUserError(run("train", "--set", "model.d_model=-5", "--quiet"), "d_model");
        assertUserError(run("train", "--set", "model.bogus=1", "--quiet"), "unknown key 'bogus'");
        Path badJson = dir.resolve("bad.json");
        Files.writeString(badJson, "{\"model\": [1,");
        assertUserError(run("train", "--config", badJson.toString(), "--quiet"), "malformed");
        Path badYaml = dir.resolve("bad.yaml");
        Files.writeString(badYaml, "model:\n  d_model: [\n");
        assertUserError(run("train", "--config", badYaml.toString(), "--quiet"), "malformed");
        assertUserError(run("train", "--preset", "nope"), "unknown preset");
        assertUserError(run("train", "--no-such-option"), "no-such-option");
        assertUserError(run("eval", dir.resolve("none.safetensors").toString()), "not found");
        Path junk = dir.resolve("junk.safetensors");
        Files.write(junk, new byte[]{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
        assertUserError(run("generate", junk.toString()), "corrupt");
        assertUserError(run("generate", junk.toString(), "--top-p", "0"), "top-p");
        assertUserError(run("info", "--set", "model.n_heads=3"), "n_heads");
        assertUserError(run("train", "--threads", "0"), "threads");
    }

    @Test
    void threadsAreBoundedByTheMachine() {
        int max = Math.min(1024, 4 * Runtime.getRuntime().availableProcessors());
        Result r = run("train", "--threads", "100000", "--quiet");
        assertUserError(r, "--threads 100000 is more than this machine can use: at most " + max);
        assertUserError(run("eval", "--threads", Integer.toString(max + 1), dir.resolve("none").toString()), "at most " + max);
        // the bound itself is accepted (the command then fails on its missing checkpoint)
        int saved = Parallel.threads();
        try {
            assertUserError(run("eval", "--threads", Integer.toString(max), dir.resolve("none").toString()), "not found");
        } finally {
            Parallel.setThreads(saved);
        }
    }

    @Test
    void internalErrorsAreOneLineWithExitOne() {
        StringWriter o = new StringWriter(), e = new StringWriter();
        var cl = Main.commandLine(new PrintWriter(o), new PrintWriter(e), false);
        cl.addSubcommand("boom", new picocli.CommandLine(new Boom()));
        int code = cl.execute("boom");
        assertEquals(1, code);
        assertEquals("error: internal: java.lang.IllegalStateException: broken", e.toString().strip());
    }

    @picocli.CommandLine.Command(name = "boom")
    static final class Boom implements java.util.concurrent.Callable<Integer> {
        public Integer call() { throw new IllegalStateException("broken"); }
    }

    @Test
    void trainResumeEvalGenerateInfoWorkEndToEnd() throws Exception {
        Path cfg = tinyConfig();
        Path text = dir.resolve("text.txt");
        Files.writeString(text, "the cat sat on the mat. the dog sat on the log. ".repeat(60));
        Path out = dir.resolve("run");
        Result t = run("train", text.toString(), "--config", cfg.toString(), "--out", out.toString(), "--steps", "4", "--quiet", "--no-sample");
        assertEquals(0, t.code(), t.err());
        assertTrue(t.out().contains("validation loss"), t.out());
        assertFalse(t.out().contains("sample ("), "--no-sample");
        assertTrue(Files.exists(out.resolve(Checkpoint.LATEST)));
        assertUserError(run("train", text.toString(), "--config", cfg.toString(), "--out", out.toString(), "--quiet"), "already holds a checkpoint");

        Result r = run("resume", out.toString(), "--steps", "6", "--quiet");
        assertEquals(0, r.code(), r.err());
        assertEquals(6, Checkpoint.load(out, false).progress().step());
        assertUserError(run("resume", out.toString()), "already finished");

        Result e = run("eval", out.toString(), "--max-batches", "4");
        assertEquals(0, e.code(), e.err());
        assertTrue(e.out().contains("bits per byte"), e.out());

        Result g1 = run("generate", out.toString(), "--prompt", "the ", "--max-tokens", "20", "--temperature", "0");
        Result g2 = run("generate", out.toString(), "--prompt", "the ", "--max-tokens", "20", "--temperature", "0");
        assertEquals(0, g1.code(), g1.err());
        assertTrue(g1.out().startsWith("the "));
        assertEquals(g1.out(), g2.out(), "greedy decoding is deterministic");

        Result i = run("info", out.toString());
        assertEquals(0, i.code(), i.err());
        assertTrue(i.out().contains("activated parameters per token"), i.out());
        assertTrue(i.out().contains("FLOPs per token"), i.out());
    }

    @Test
    void everyCommandHasHelp() {
        for (String c : new String[]{"train", "resume", "eval", "generate", "info", "bench"}) {
            Result r = run(c, "--help");
            assertEquals(0, r.code(), c);
            assertTrue(r.out().contains("Usage: ultramem " + c), r.out());
        }
        Result r = run("--help");
        assertEquals(0, r.code());
        assertTrue(r.out().contains("default job"));
    }

    @Test
    void divergingLossExitsNonZeroAndKeepsTheCheckpoint() throws Exception {
        Path cfg = tinyConfig();
        Path out = dir.resolve("nan");
        assertEquals(0, run("train", "--config", cfg.toString(), "--out", out.toString(), "--steps", "2", "--quiet", "--no-sample").code());
        byte[] before = Files.readAllBytes(out.resolve(Checkpoint.LATEST));
        // an absurd learning rate overflows the weights within a few steps
        Result r = run("train", "--config", cfg.toString(), "--out", out.toString(), "--force", "--set", "train.lr=1e30",
                "--set", "train.checkpoint_every=100", "--set", "train.warmup_steps=0", "--steps", "50", "--quiet", "--no-sample");
        assertUserError(r, "became");
        assertTrue(r.err().contains("at step"), r.err());
        assertArrayEquals(before, Files.readAllBytes(out.resolve(Checkpoint.LATEST)));
        // config.json still describes the kept checkpoint, not the failed run's config
        assertFalse(Files.readString(out.resolve("config.json")).contains("1.0E30"), "config.json of the failed run");
        assertTrue(Files.exists(out.resolve("metrics.csv")), "the curve up to the failure is written");

        Path fresh = dir.resolve("nan-fresh");
        Result f = run("train", "--config", cfg.toString(), "--out", fresh.toString(), "--set", "train.lr=1e30",
                "--set", "train.checkpoint_every=100", "--set", "train.warmup_steps=0", "--steps", "50", "--quiet", "--no-sample");
        assertUserError(f, "no checkpoint was written");
        assertFalse(Files.exists(fresh.resolve(Checkpoint.LATEST)));
    }

    @Test
    void resumeIntoAnotherRunsFolderNeedsForceAndCheckpointsAreWorldReadable() throws Exception {
        Path cfg = tinyConfig();
        Path a = dir.resolve("a"), b = dir.resolve("b");
        for (Path p : List.of(a, b))
            assertEquals(0, run("train", "--config", cfg.toString(), "--out", p.toString(), "--steps", "2", "--quiet", "--no-sample").code());
        byte[] before = Files.readAllBytes(b.resolve(Checkpoint.LATEST));
        assertUserError(run("resume", a.toString(), "--out", b.toString(), "--steps", "3", "--quiet"), "another run's checkpoint");
        assertArrayEquals(before, Files.readAllBytes(b.resolve(Checkpoint.LATEST)));
        assertEquals(0, run("resume", a.toString(), "--out", b.toString(), "--steps", "3", "--quiet", "--force").code());
        assertEquals(3, Checkpoint.load(b, false).progress().step());
        if (b.getFileSystem().supportedFileAttributeViews().contains("posix"))
            assertEquals("rw-r--r--", java.nio.file.attribute.PosixFilePermissions.toString(
                    Files.getPosixFilePermissions(b.resolve(Checkpoint.LATEST))));
    }

    @Test
    void contradictoryOrEmptyArgumentsAreErrors() throws Exception {
        Path cfg = tinyConfig();
        Path out = dir.resolve("run");
        assertEquals(0, run("train", "--config", cfg.toString(), "--out", out.toString(), "--steps", "2", "--quiet", "--no-sample").code());
        assertUserError(run("info", out.toString(), "--set", "model.d_model=64"), "cannot be combined with a checkpoint");
        Path text = dir.resolve("text.txt");
        Files.writeString(text, "some text to score. ".repeat(40));
        assertUserError(run("eval", out.toString(), "--builtin", "--data", text.toString()), "--builtin and --data");
        assertUserError(run("train", "--config", cfg.toString(), "--out", "", "--quiet"), "empty path");
        assertUserError(run("train", "--config", cfg.toString(), "--max-minutes", "NaN", "--quiet"), "--max-minutes");
        assertUserError(run("--max-minutes", "-2"), "--max-minutes");
        assertUserError(run("train", "--config", cfg.toString(), "--out", dir.resolve("v").toString(), "--set", "model.vocab_size=10", "--quiet"),
                "vocab_size (10) is below the 256");
        Path folder = Files.createDirectories(dir.resolve("folder").resolve(Checkpoint.LATEST)).getParent();
        assertUserError(run("eval", folder.toString()), "is a folder");
    }

    @Test
    void benchReportsThroughputProfileAndDecodeBandwidth() {
        Result r = run("bench", "--quick", "--skip-kernels", "--skip-layers", "--steps", "1", "--set", "model.d_model=32", "--set", "model.n_heads=2",
                "--set", "model.mlp_hidden_size=64", "--set", "model.n_layers=1", "--batch", "2", "--seq", "16", "--decode-tokens", "8");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("tokens/s"), r.out());
        assertTrue(r.out().contains("attention"), r.out());
        assertTrue(r.out().contains("implied bandwidth"), r.out());
        assertTrue(r.out().contains("model-FLOP utilisation"), r.out());
    }
}
