package dev.ultramem.train;

import dev.ultramem.data.Corpus;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Every shipped preset trains on the built-in corpus: finite losses throughout and a clearly lower
 * loss at the end. Shapes stay as shipped (full model and tables); only the batch is made small so
 * the whole family runs in seconds.
 */
class PresetTrainingTest {

    @TestFactory
    List<DynamicTest> everyPresetLowersTheLoss() {
        List<DynamicTest> tests = new ArrayList<>();
        for (String name : JobConfig.presetNames())
            tests.add(DynamicTest.dynamicTest(name, () -> trains(name)));
        assertTrue(tests.size() >= 10, "expected the shipped presets, found " + tests.size());
        return tests;
    }

    private static void trains(String preset) {
        JobConfig job = JobConfig.build(preset, null, List.of(
                "train.batch_size=4", "train.seq_len=32", "train.steps=16", "train.warmup_steps=2",
                "train.eval_every=1000", "train.checkpoint_every=1000"));
        Trainer t = Trainer.fresh(job, Corpus.builtin(21, 60_000, job.train.valFraction), null);
        float[] loss = new float[job.train.steps];
        for (int i = 0; i < loss.length; i++) {
            loss[i] = t.trainStep();
            assertTrue(Float.isFinite(loss[i]), preset + ": loss " + loss[i] + " at step " + (i + 1));
        }
        double first = (loss[0] + loss[1] + loss[2]) / 3, last = (loss[13] + loss[14] + loss[15]) / 3;
        // a byte-level model starts near ln 256 ≈ 5.5; the synthetic corpus is learnable within a few steps
        assertTrue(last < first - 0.5, preset + ": loss went from " + first + " to " + last);
    }
}
