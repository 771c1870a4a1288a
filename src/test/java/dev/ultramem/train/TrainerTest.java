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

    private static final Trainer.Listener NONE = new Trainer.Listener() {};

    private static Corpus corpus(JobConfig job) { return Corpus.builtin(5, 20_000, job.train.valFraction); }

    @Test
    void resumedRunReproducesTheUninterruptedLossCurveBitForBit() {
        int n = 10;
        JobConfig job = TestModels.tinyJob(n);
        Trainer full = Trainer.fresh(job, corpus(job), dir.resolve("full"));
        full.run(0, NONE);
        assertEquals(n, full.step());

        JobConfig job2 = TestModels.tinyJob(n);
        Trainer first = Trainer.fresh(job2, corpus(job2), dir.resolve("split"));
        first.run(n / 2, 0, NONE);
        assertEquals(n / 2, first.step());
        Checkpoint.Loaded ck = Checkpoint.load(dir.resolve("split"), true);
        Trainer second = Trainer.resume(ck, ck.job(), Corpus.fromSource(ck.progress().dataSource(), ck.job().train.valFraction), dir.resolve("split"));
        second.run(0, NONE);

        float[] a = full.trainLossHistory(), b = second.trainLossHistory();
        assertEquals(n, a.length);
        for (int i = 0; i < n; i++) assertEquals(Float.floatToRawIntBits(a[i]), Float.floatToRawIntBits(b[i]), "loss at step " + (i + 1));
        assertArrayEquals(full.valStepHistory(), second.valStepHistory());
        float[] va = full.valLossHistory(), vb = second.valLossHistory();
        for (int i = 0; i < va.length; i++) assertEquals(Float.floatToRawIntBits(va[i]), Float.floatToRawIntBits(vb[i]));
        List<Param> pa = full.model.params(), pb = second.model.params();
        for (int i = 0; i < pa.size(); i++) {
            if (!pa.get(i).isHeap()) continue;
            float[] x = pa.get(i).data(), y = pb.get(i).data();
            for (int j = 0; j < x.length; j++) assertEquals(Float.floatToRawIntBits(x[j]), Float.floatToRawIntBits(y[j]), pa.get(i).name);
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
        long reached = t.run(1, NONE);  // 1 ms: stops after the first step
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
}
