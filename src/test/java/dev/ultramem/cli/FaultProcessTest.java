package dev.ultramem.cli;

import dev.ultramem.TestModels;
import dev.ultramem.model.Configs;
import dev.ultramem.model.ModelConfig;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.train.TrainConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Faults a user causes on real processes: a second run into a locked folder, Ctrl-C and SIGTERM
 * during training, and kill -9 at random moments while checkpoints are being written. Every child
 * is a separate JVM running the CLI; the checks read what it left on disk.
 */
class FaultProcessTest {
    @TempDir Path dir;

    private int children;

    private Child start(String... args) throws IOException { return Child.start(dir, "child-" + (children++), args); }

    private static void await(BooleanSupplier cond, Child c, String what) throws InterruptedException { c.await(cond, what); }

    private static boolean training(Child c) { return c.output().contains("training: steps"); }

    /** Starts a CLI run (train or resume) and returns once it trains, i.e. holds the folder's lock. */
    private Child startTraining(String... args) throws Exception {
        Child c = start(args);
        await(() -> training(c), c, "training to start");
        return c;
    }

    /** A config whose run lasts far longer than any test waits: the tests stop it. */
    private Path longConfig(ModelConfig model, int batch, int seqLen, int checkpointEvery) throws IOException {
        TrainConfig train = TestModels.tinyTrain(1_000_000);
        train.batchSize = batch;
        train.seqLen = seqLen;
        train.checkpointEvery = checkpointEvery;
        train.evalEvery = 1_000;
        train.validate();
        var tree = Configs.JSON.createObjectNode();
        tree.set("model", Configs.toTree(model));
        tree.set("train", Configs.toTree(train));
        Path cfg = dir.resolve("long-" + model.dModel + "-" + batch + "-" + seqLen + "-" + checkpointEvery + ".json");
        Files.writeString(cfg, tree.toString());
        return cfg;
    }

    private static long checkpointStep(Path run) {
        return Checkpoint.load(run, true).progress().step();
    }

    private static long metricsRows(Path run) throws IOException {
        return Files.readAllLines(run.resolve("metrics.csv")).size() - 1;
    }

    private static List<Path> tempFiles(Path run) throws IOException {
        try (Stream<Path> s = Files.list(run)) {
            return s.filter(p -> p.getFileName().toString().endsWith(".tmp")).toList();
        }
    }

    private static void assertOneErrorLine(String output, String part) {
        List<String> lines = output.lines().filter(l -> !l.startsWith("WARNING")).toList();
        assertEquals(1, lines.size(), output);
        assertTrue(lines.get(0).startsWith("error: ") && lines.get(0).contains(part), output);
    }

    @Test
    void aSecondRunIntoALockedFolderIsRefusedAndSigtermSavesTheFirst() throws Exception {
        Path cfg = longConfig(TestModels.tinyModel(), 2, 16, 50);
        Path run = dir.resolve("run");
        Child a = startTraining("train", "--config", cfg.toString(), "--out", run.toString(), "--quiet", "--no-sample");

        Child b = start("train", "--config", cfg.toString(), "--out", run.toString(), "--force", "--quiet", "--no-sample");
        assertEquals(2, b.waitExit(), b.output());
        assertOneErrorLine(b.output(), "in use by another ultramem run (pid " + a.process().pid());
        await(() -> Files.exists(run.resolve(Checkpoint.LATEST)), a, "the first checkpoint");
        Child c = start("resume", run.toString(), "--quiet");
        assertEquals(2, c.waitExit(), c.output());
        assertOneErrorLine(c.output(), "pid " + a.process().pid());

        a.signal("TERM");
        assertEquals(143, a.waitExit(), a.output());
        assertTrue(a.output().contains("stopped by SIGTERM at step"), a.output());
        long step = checkpointStep(run);
        assertTrue(step > 50, "saved at the signal, after the last scheduled checkpoint: " + step);
        assertEquals(step, metricsRows(run));
        assertTrue(Files.size(run.resolve("loss.png")) > 0);

        // the lock went with the process: the folder can be resumed at once
        Child d = start("resume", run.toString(), "--steps", Long.toString(step + 3), "--quiet");
        assertEquals(0, d.waitExit(), d.output());
        assertEquals(step + 3, checkpointStep(run));
        assertEquals(step + 3, metricsRows(run));
    }

    @Test
    void ctrlCFinishesTheStepAndSavesASecondOneExitsAtOnce() throws Exception {
        Path cfg = longConfig(TestModels.tinyModel(), 2, 16, 1000);
        Path run = dir.resolve("int");
        Child a = startTraining("train", "--config", cfg.toString(), "--out", run.toString(), "--quiet", "--no-sample");
        Thread.sleep(500);
        a.signal("INT");
        assertEquals(130, a.waitExit(), a.output());
        assertTrue(a.output().contains("stopped by SIGINT at step"), a.output());
        long step = checkpointStep(run);
        assertTrue(step > 0 && step < 1000, "a checkpoint where it stopped, none was scheduled yet: " + step);
        assertEquals(step, metricsRows(run));
        assertTrue(Files.exists(run.resolve("loss.png")));

        // steps of about half a second: the second signal arrives while the first waits for the step to end
        ModelConfig slow = TestModels.tinyModel();
        slow.dModel = 256;
        slow.nHeads = 4;
        slow.nLayers = 2;
        slow.mlpHiddenSize = 1024;
        slow.maxSeqLen = 128;
        Path slowCfg = longConfig(slow.validate(), 64, 128, 1000);
        Path run2 = dir.resolve("int2");
        Child b = startTraining("train", "--config", slowCfg.toString(), "--out", run2.toString(), "--quiet", "--no-sample");
        Thread.sleep(1500);
        b.signal("INT");
        Thread.sleep(100);
        b.signal("INT");
        assertEquals(130, b.waitExit(), b.output());
        assertTrue(b.output().contains("stopped at once by a second SIGINT"), b.output());
        assertFalse(Files.exists(run2.resolve(Checkpoint.LATEST)), "no checkpoint was due and none half-written");
    }

    /**
     * kill -9 at seeded random moments while a checkpoint is written at every step: every surviving
     * checkpoint loads, metrics.csv holds at least the rows up to it, and the next start removes the
     * temporary files the killed writers left.
     */
    @Test
    void killNineDuringCheckpointWritesNeverLosesACheckpoint() throws Exception {
        ModelConfig m = TestModels.tinyModel();
        m.dModel = 128;
        m.nHeads = 4;
        m.mlpHiddenSize = 512;
        m.nLayers = 2;
        Path cfg = longConfig(m.validate(), 2, 16, 1);  // about 5 MB written per step
        Path run = dir.resolve("kill");
        Random rnd = new Random(20261203);
        int kills = 8, leftTemp = 0;
        long lastStep = 0;
        List<Path> leftBefore = List.of();
        for (int i = 0; i < kills; i++) {
            // a kill before the first checkpoint (a slow or busy machine) leaves nothing to resume: start again
            Child c = !Files.exists(run.resolve(Checkpoint.LATEST))
                    ? startTraining("train", "--config", cfg.toString(), "--out", run.toString(), "--quiet", "--no-sample")
                    : startTraining("resume", run.toString(), "--quiet");
            Thread.sleep(300 + rnd.nextInt(2000));
            c.process().destroyForcibly();
            assertTrue(c.process().waitFor(60, TimeUnit.SECONDS));
            // this child held the lock and trained, so it removed what the previous kill left
            for (Path p : leftBefore) assertFalse(Files.exists(p), "stale " + p + " outlived the next start");
            leftBefore = tempFiles(run);
            if (!leftBefore.isEmpty()) leftTemp++;
            if (!Files.exists(run.resolve(Checkpoint.LATEST))) continue;
            long step = checkpointStep(run);  // loads: weights, optimizer state, checksum
            assertTrue(step >= lastStep, "a checkpoint never goes back: " + step + " after " + lastStep);
            assertTrue(metricsRows(run) >= step, "metrics up to the checkpoint survive: " + metricsRows(run) + " rows, step " + step);
            lastStep = step;
        }
        assertTrue(lastStep > 0, "some checkpoint survived");
        Child end = start("resume", run.toString(), "--steps", Long.toString(lastStep + 2), "--quiet");
        assertEquals(0, end.waitExit(), end.output());
        assertEquals(List.of(), tempFiles(run), "the next start removed the temporary files");
        assertEquals(lastStep + 2, metricsRows(run));
        System.out.println("kill -9 loop: " + kills + " kills, " + leftTemp + " left a temporary file, last checkpoint at step " + lastStep);
    }
}
