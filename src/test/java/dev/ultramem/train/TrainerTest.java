package dev.ultramem.train;

import dev.ultramem.TestModels;
import dev.ultramem.core.Param;
import dev.ultramem.data.Corpus;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class TrainerTest {
    @TempDir Path dir;

    static final Trainer.Listener NONE = new Trainer.Listener() {};

    static Corpus corpus(JobConfig job) { return Corpus.builtin(5, 20_000, job.train.valFraction); }

    @Test
    void resumedRunReproducesTheUninterruptedLossCurve() {
        assertResumeExact(dir, "dense", TestModels.tinyJob(10), 10);
    }

    /**
     * Resumed and uninterrupted runs must agree bit for bit: every kernel gives the same bits whether
     * it runs interpreted or JIT-compiled (see VectorKernels.exp and sumLanes).
     */
    static void close(float want, float got, String what) {
        assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got), what + ": " + want + " vs " + got);
    }

    static void assertResumeExact(Path dir, String name, JobConfig job, int n) {
        String json = dev.ultramem.model.Configs.toJson(job.toTree());
        Trainer full = Trainer.fresh(job, corpus(job), dir.resolve(name + "-full"));
        full.run(0, NONE);
        assertEquals(n, full.step());

        JobConfig job2 = JobConfig.fromTree((com.fasterxml.jackson.databind.node.ObjectNode) dev.ultramem.model.Configs.JSON.valueToTree(
                readTree(json)));
        Trainer first = Trainer.fresh(job2, corpus(job2), dir.resolve(name + "-split"));
        first.run(n / 2, 0, NONE);
        assertEquals(n / 2, first.step());
        Checkpoint.Loaded ck = Checkpoint.load(dir.resolve(name + "-split"), true);
        Trainer second = Trainer.resume(ck, ck.job(), Corpus.fromSource(ck.progress().dataSource(), ck.job().train.valFraction), dir.resolve(name + "-split"));
        second.run(0, NONE);

        float[] a = full.trainLossHistory(), b = second.trainLossHistory();
        assertEquals(n, a.length);
        for (int i = 0; i < n; i++) close(a[i], b[i], name + ": loss at step " + (i + 1));
        assertArrayEquals(full.valStepHistory(), second.valStepHistory());
        float[] va = full.valLossHistory(), vb = second.valLossHistory();
        for (int i = 0; i < va.length; i++) close(va[i], vb[i], name + ": validation loss " + i);
        List<Param> pa = full.model.params(), pb = second.model.params();
        for (int i = 0; i < pa.size(); i++) {
            var x = pa.get(i).segment();
            var y = pb.get(i).segment();
            long m = pa.get(i).numel();
            for (long j = 0; j < m; j++)
                close(x.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, j), y.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, j), name + ": " + pa.get(i).name);
        }
        var ia = full.model.indexBuffers();
        var ib = second.model.indexBuffers();
        for (int i = 0; i < ia.size(); i++) assertArrayEquals(ia.get(i).data(), ib.get(i).data(), ia.get(i).name());
    }

    private static com.fasterxml.jackson.databind.JsonNode readTree(String json) {
        try {
            return dev.ultramem.model.Configs.JSON.readTree(json);
        } catch (java.io.IOException e) {
            throw new IllegalStateException(e);
        }
    }

    @Test
    void lossFallsAndOutputsAreWritten() throws Exception {
        JobConfig job = TestModels.tinyJob(40);
        job.train.evalEvery = 20;
        Path out = dir.resolve("run");
        Trainer t = Trainer.fresh(job, corpus(job), out);
        t.run(0, NONE);
        float[] l = t.trainLossHistory();
        double first = (l[0] + l[1] + l[2]) / 3, last = (l[37] + l[38] + l[39]) / 3;
        assertTrue(last < first - 0.3, "loss should fall: " + first + " -> " + last);
        List<String> csv = Files.readAllLines(out.resolve("metrics.csv"));
        assertEquals("step,train_loss,val_loss,lr", csv.get(0));
        assertEquals(41, csv.size());
        assertEquals(l[39], Float.parseFloat(csv.get(40).split(",")[1]));
        assertFalse(csv.get(20).split(",")[2].isEmpty(), "validation loss at step 20");
        byte[] png = Files.readAllBytes(out.resolve("loss.png"));
        assertEquals((byte) 0x89, png[0]);
        assertEquals('P', png[1]);
        assertTrue(Files.exists(out.resolve(Checkpoint.LATEST)));
    }

    @Test
    void nonFiniteLossStopsWithoutOverwritingTheLastCheckpoint() throws Exception {
        JobConfig job = TestModels.tinyJob(8);
        Path out = dir.resolve("nan");
        Trainer t = Trainer.fresh(job, corpus(job), out);
        t.run(2, 0, NONE);
        Path ck = out.resolve(Checkpoint.LATEST);
        byte[] before = Files.readAllBytes(ck);
        for (Param p : t.model.params()) if (p.trainable && p.isHeap()) Arrays.fill(p.data(), Float.NaN);
        Trainer.NonFiniteLoss e = assertThrows(Trainer.NonFiniteLoss.class, () -> t.run(0, NONE));
        assertEquals(3, e.step);
        assertTrue(e.getMessage().contains("step 3"), e.getMessage());
        assertArrayEquals(before, Files.readAllBytes(ck));
        assertEquals(2, Checkpoint.load(out, true).progress().step());
    }

    @Test
    void timeLimitStopsWithACheckpointAndAValidationPoint() {
        JobConfig job = TestModels.tinyJob(50);
        Path out = dir.resolve("timed");
        Trainer t = Trainer.fresh(job, corpus(job), out);
        // the listener makes every step last longer than the 1 ms budget, so the run stops after step 1
        Trainer.Listener slow = new Trainer.Listener() {
            @Override public void onStep(long step, float loss, double lr, double tps) {
                try { Thread.sleep(5); } catch (InterruptedException e) { Thread.currentThread().interrupt(); }
            }
        };
        long reached = t.run(1, slow);
        assertEquals(1, reached);
        assertArrayEquals(new float[]{1f}, t.valStepHistory());
        Checkpoint.Loaded ck = Checkpoint.load(out, true);
        assertEquals(1, ck.progress().step());
        assertEquals(50, ck.job().train.steps);
    }

    @Test
    void fittingStepsToATimeBudgetHappensInsideWarmup() {
        JobConfig job = TestModels.tinyJob(500);
        job.train.warmupSteps = 10;
        Trainer t = Trainer.fresh(job, corpus(job), null);
        int steps = t.fitStepsToTime(1, NONE);  // 1 ms: the smallest run the probe allows
        assertEquals(t.step() + 1, steps);
        assertEquals(steps, t.job.train.steps);
        Trainer big = Trainer.fresh(TestModels.tinyJob(12), corpus(job), null);
        assertEquals(12, big.fitStepsToTime(3_600_000, NONE), "never more than the configured steps");
    }

    @Test
    void aStopRequestEndsTheRunAfterTheStepWithCheckpointMetricsAndPlot() throws Exception {
        JobConfig job = TestModels.tinyJob(20);
        job.train.checkpointEvery = 8;
        Path out = dir.resolve("stopped");
        Trainer t = Trainer.fresh(job, corpus(job), out);
        t.setStopRequest(() -> t.step() >= 5);
        assertEquals(5, t.run(0, NONE));
        Checkpoint.Loaded ck = Checkpoint.load(out, true);
        assertEquals(5, ck.progress().step(), "checkpoint at the stop, not at the last scheduled one (none yet)");
        assertEquals(6, Files.readAllLines(out.resolve("metrics.csv")).size());
        assertTrue(Files.size(out.resolve("loss.png")) > 0);
    }

    @Test
    void metricsRowsReachTheDiskWithEveryCheckpoint() throws Exception {
        JobConfig job = TestModels.tinyJob(20);
        job.train.checkpointEvery = 4;
        Path out = dir.resolve("metrics");
        Trainer t = Trainer.fresh(job, corpus(job), out);
        List<Long> rowsAtCheckpoint = new java.util.ArrayList<>();
        t.run(10, 0, new Trainer.Listener() {
            @Override public void onCheckpoint(long step, Path file) {
                try {
                    rowsAtCheckpoint.add(Files.readAllLines(out.resolve("metrics.csv")).size() - 1L);
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            }
        });
        // what a kill -9 right after each checkpoint would leave: the rows up to that checkpoint
        assertEquals(List.of(4L, 8L, 10L), rowsAtCheckpoint);
        List<String> appended = Files.readAllLines(out.resolve("metrics.csv"));
        t.writeMetrics();
        assertEquals(Files.readAllLines(out.resolve("metrics.csv")), appended, "appended rows equal the full rewrite");
    }

    @Test
    void aLongPlannedScheduleAllocatesOnlyForTheStepsRun() {
        // 2e9 planned steps: a history sized by the plan would need 8 GB before the first step
        JobConfig job = TestModels.tinyJob(2_000_000_000);
        Trainer t = Trainer.fresh(job, corpus(job), dir.resolve("long"));
        assertEquals(2, t.run(2, 0, NONE));
        Checkpoint.Loaded ck = Checkpoint.load(dir.resolve("long"), true);
        Trainer r = Trainer.resume(ck, ck.job(), corpus(job), dir.resolve("long"));
        assertEquals(3, r.run(3, 0, NONE));
    }

    /**
     * A machine that gets 40% slower right after the speed probe (seen: the VM's speed drifts that
     * much within minutes) still finishes the whole fitted schedule inside the budget. The clock is
     * simulated: each training step costs 10 ms, 14 ms after the probe, evaluations 2 ms per batch.
     */
    @Test
    void aTimeFittedScheduleFinishesInsideItsBudgetOnAMachineSlowerThanTheProbe() {
        JobConfig job = TestModels.tinyJob(5000);
        job.train.warmupSteps = 60;
        job.train.evalEvery = 50;
        Trainer t = Trainer.fresh(job, corpus(job), null);
        long budgetMs = 5_000;
        SimulatedClock clock = new SimulatedClock(t, 24);
        t.setClock(clock);
        int planned = t.fitStepsToTime(budgetMs, NONE);
        assertTrue(planned > 100 && planned < 5000, "planned " + planned);
        t.run(0, NONE);
        assertEquals(t.job.train.steps, t.step(), "the whole schedule ran");
        assertTrue(clock.read() <= budgetMs * 1_000_000L, "finished at " + clock.read() / 1e6 + " ms of " + budgetMs);
        assertTrue(t.step() >= 0.7 * 5_000 / 14.0 * Trainer.TIME_FIT_SHARE, "used most of the budget: " + t.step() + " steps");
    }

    /** Simulated time: the sum of the costs of the steps and evaluations done so far. */
    static final class SimulatedClock implements java.util.function.LongSupplier {
        private final Trainer t;
        private final int probeSteps;
        SimulatedClock(Trainer t, int probeSteps) { this.t = t; this.probeSteps = probeSteps; }

        long read() {
            long ns = 0;
            for (long s = 1; s <= t.step(); s++) ns += s <= probeSteps ? 10_000_000L : 14_000_000L;
            ns += (long) t.valStepHistory().length * t.job.train.evalBatches * 2_000_000L;
            return ns;
        }

        @Override public long getAsLong() { return read(); }
    }
}
