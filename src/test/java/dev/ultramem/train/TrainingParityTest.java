package dev.ultramem.train;

import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;
import dev.ultramem.data.BatchSampler;
import dev.ultramem.data.Corpus;
import dev.ultramem.model.Model;
import dev.ultramem.model.ModelConfig;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Training dynamics against the official optimizer: a few {@link Trainer#trainStep()}s of tiny models,
 * and after each step every trainable weight is compared with {@link OfficialOptimizer} (official
 * parameter groups, warmup + cosine schedule at the official 1-based step, value-LR multiplier, Memory+
 * constant value LR, global-norm clipping, torch AdamW, all in double) fed the engine's raw gradients of
 * that step. The gradients come from a twin model holding the trainer's weights, run on the batch the
 * trainer's sampler draws.
 *
 * <p>Tolerance: the engine updates in float32, the reference in double, so a weight may differ by a few
 * float ulps of the weight and of each step's update (≈ lr); the bound, 2e-6·|w| + 1e-4·lr per step, is
 * far below what a wrong group, LR, multiplier, decay or clip would change (at least ≈ 0.02·lr here).
 */
class TrainingParityTest {

    static final int STEPS = 5;

    static ModelConfig tiny(String memType) {
        ModelConfig c = new ModelConfig();
        c.vocabSize = 256; c.dModel = 32; c.nLayers = 2; c.nHeads = 2; c.mlpHiddenSize = 64; c.maxSeqLen = 16;
        c.memType = memType;
        if (!memType.equals("none")) {
            c.memKnum = 6; c.memKdim = 8; c.memVdim = memType.equals("memory_plus") ? 32 : 16; c.memPreVdim = 8; c.memKnn = 4;
            c.memShareRatio = 0.5;
            c.memInsertWay = memType.equals("ultramem_v2") ? "full" : "0:1";
        }
        return c.validate();
    }

    static TrainConfig train() {
        TrainConfig t = new TrainConfig();
        t.steps = 8; t.warmupSteps = 3; t.batchSize = 2; t.seqLen = 16; t.lr = 1e-2; t.finalLrRatio = 0.1;
        t.weightDecay = 0.1; t.gradClip = 0.5; t.seed = 11; t.valFraction = 0.1;
        return t.validate();
    }

    static void copyWeights(Model from, Model to) {
        List<Param> a = from.params(), b = to.params();
        for (int i = 0; i < a.size(); i++) {
            assertEquals(a.get(i).name, b.get(i).name);
            MemorySegment.copy(a.get(i).segment(), 0, b.get(i).segment(), 0, a.get(i).numel() * Float.BYTES);
        }
        List<IndexBuffer> ia = from.indexBuffers(), ib = to.indexBuffers();
        for (int i = 0; i < ia.size(); i++) System.arraycopy(ia.get(i).data(), 0, ib.get(i).data(), 0, ia.get(i).data().length);
    }

    /** Runs the steps; returns the worst error / bound ratio over all weights and steps. */
    static double parity(ModelConfig mc, TrainConfig tc) {
        JobConfig job = new JobConfig(mc, tc);
        Corpus corpus = Corpus.builtin(5, 20_000, tc.valFraction);
        Trainer trainer = Trainer.fresh(job, corpus, null);
        Model twin = new Model(mc);
        twin.initialize(tc.seed);
        BatchSampler sampler = new BatchSampler(corpus.train(), Trainer.samplerSeed(tc.seed));
        int B = tc.batchSize, T = tc.seqLen;
        int[] in = new int[B * T], tg = new int[B * T];
        OfficialOptimizer ref = new OfficialOptimizer(trainer.model.params(), tc, mc.memType);
        double worst = 0;
        int clipped = 0;
        for (int step = 1; step <= STEPS; step++) {
            // the engine's raw gradient at the trainer's current weights, on the batch the trainer will draw
            copyWeights(trainer.model, twin);
            twin.setTraining(true);
            for (Param p : twin.params()) p.zeroGrad();
            sampler.next(in, tg, B, T);
            twin.forwardBackward(in, tg, B, T);
            Map<String, double[]> grads = new LinkedHashMap<>();
            for (Param p : twin.params()) if (p.trainable && p.hasGrad()) grads.put(p.name, OfficialOptimizer.gradOf(p));
            trainer.trainStep();
            ref.step(grads);
            assertEquals(ref.lastNorm, trainer.lastGradNorm(), 1e-5 * ref.lastNorm, "gradient norm at step " + step);
            if (ref.lastClip < 1) clipped++;
            for (Param p : trainer.model.params()) {
                if (!p.trainable) continue;
                double[] w = ref.w.get(p.name);
                for (int i = 0; i < w.length; i++) {
                    double err = Math.abs(p.get(i) - w[i]), bound = 2e-6 * Math.abs(w[i]) + 1e-4 * tc.lr * step;
                    worst = Math.max(worst, err / bound);
                    if (err > bound)
                        fail(mc.memType + " step " + step + ": " + p.name + "[" + i + "] engine " + p.get(i) + " official " + w[i]);
                }
            }
        }
        assertTrue(clipped > 0, "clipping must be active in some step for the test to cover it");
        return worst;
    }

    @Test
    void denseWithoutNormDecay() {
        TrainConfig tc = train();
        tc.decayNormAndEmbeddings = false;
        System.out.printf("parity dense: worst err/bound %.3f%n", parity(tiny("none"), tc));
    }

    @Test
    void ultraMemV2WithValueLrMultiplier() {
        TrainConfig tc = train();
        tc.memValueLrTimes = 3.0; tc.memValueLrMaxStepsRate = 0.5;
        System.out.printf("parity ultramem_v2: worst err/bound %.3f%n", parity(tiny("ultramem_v2"), tc));
    }

    @Test
    void ultraMemV1WithTheTypeDefaultValueLr() {
        System.out.printf("parity ultramem_v1: worst err/bound %.3f%n", parity(tiny("ultramem_v1"), train()));
    }

    @Test
    void memoryPlusWithConstantValueLr() {
        System.out.printf("parity memory_plus: worst err/bound %.3f%n", parity(tiny("memory_plus"), train()));
    }
}
