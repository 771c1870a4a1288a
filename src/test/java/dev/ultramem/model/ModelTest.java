package dev.ultramem.model;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.layer.GradCheck;
import dev.ultramem.layer.NaiveRef;
import dev.ultramem.train.AdamW;
import dev.ultramem.train.LrSchedule;
import dev.ultramem.train.TrainConfig;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The whole dense model against a double-precision reference written here from the OLMo
 * definition (embedding, pre-norm blocks, ln_f, tied output, mean CE), plus decoding, determinism
 * and a one-batch overfit.
 */
class ModelTest {

    static ModelConfig tiny() {
        ModelConfig c = new ModelConfig();
        c.vocabSize = 11; c.dModel = 12; c.nHeads = 2; c.nLayers = 2; c.mlpHiddenSize = 18; c.maxSeqLen = 8;
        c.initStd = 0.25; // larger than the default so the check exercises non-linear regimes
        return c;
    }

    /** Mean CE over B·T of the reference model; targets −1 contribute 0. */
    static double refLoss(Map<String, double[]> p, ModelConfig c, int[] in, int[] tg, int B, int T, double[] logitsOut) {
        int d = c.dModel, V = c.vocabSize, n = B * T, f = c.mlpHiddenSize / 2;
        double[] wte = p.get("transformer.wte.weight");
        double[] x = new double[n * d];
        for (int i = 0; i < n; i++) System.arraycopy(wte, in[i] * d, x, i * d, d);
        for (int l = 0; l < c.nLayers; l++) {
            x = NaiveRef.block(x, p, l, c, B, T, f)[1];
        }
        double[] xf = NaiveRef.rmsnorm(x, p.get("transformer.ln_f.weight"), c.normEps, n, d);
        double[] logits = NaiveRef.linear(xf, wte, 0, n, d, V);
        if (logitsOut != null) System.arraycopy(logits, 0, logitsOut, 0, n * V);
        double loss = 0;
        for (int i = 0; i < n; i++) {
            if (tg[i] < 0) continue;
            double max = Double.NEGATIVE_INFINITY, z = 0;
            for (int j = 0; j < V; j++) max = Math.max(max, logits[i * V + j]);
            for (int j = 0; j < V; j++) z += Math.exp(logits[i * V + j] - max);
            loss += max + Math.log(z) - logits[i * V + tg[i]];
        }
        return loss / n;
    }

    static int[] randomTokens(Rng rng, int n, int V) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) t[i] = rng.nextInt(V);
        return t;
    }

    @Test
    void paramNamesShapesAndInit() {
        ModelConfig c = tiny();
        c.initStd = 0;
        Model m = new Model(c);
        m.initialize(5);
        List<Param> ps = m.params();
        assertEquals("transformer.wte.weight", ps.get(0).name);
        assertEquals(List.of("transformer.blocks.0.attn_norm.weight", "transformer.blocks.0.att_proj.weight",
                "transformer.blocks.0.q_norm.weight", "transformer.blocks.0.k_norm.weight", "transformer.blocks.0.attn_out.weight",
                "transformer.blocks.0.ff_norm.weight", "transformer.blocks.0.ff_proj.weight", "transformer.blocks.0.ff_out.weight"),
                ps.subList(1, 9).stream().map(p -> p.name).toList());
        assertEquals("transformer.ln_f.weight", ps.get(ps.size() - 1).name);
        assertEquals(2 + 8 * 2, ps.size());
        Map<String, Param> by = new HashMap<>();
        for (Param p : ps) by.put(p.name, p);
        assertArrayEquals(new long[]{36, 12}, by.get("transformer.blocks.1.att_proj.weight").shape);
        assertArrayEquals(new long[]{6}, by.get("transformer.blocks.1.q_norm.weight").shape);
        assertArrayEquals(new long[]{18, 12}, by.get("transformer.blocks.1.ff_proj.weight").shape);
        assertArrayEquals(new long[]{12, 9}, by.get("transformer.blocks.1.ff_out.weight").shape);
        double std = Math.sqrt(2.0 / (5 * 12));
        for (Param p : ps) {
            float[] a = p.data();
            if (p.name.endsWith("norm.weight") || p.name.endsWith("ln_f.weight")) {
                for (float v : a) assertEquals(1f, v);
                continue;
            }
            double s = p.name.endsWith("attn_out.weight") || p.name.endsWith("ff_out.weight") ? std / Math.sqrt(4) : std;
            double ss = 0, max = 0;
            for (float v : a) { ss += v * v; max = Math.max(max, Math.abs(v)); }
            assertTrue(max <= 3 * s + 1e-7, p.name + " exceeds the truncation");
            double emp = Math.sqrt(ss / a.length), truncStd = s * 0.9866; // std of a ±3σ truncated normal
            assertEquals(truncStd, emp, truncStd * 0.25, p.name + " std");
        }
    }

    @Test
    void lossLogitsAndEveryGradientMatchReference() {
        ModelConfig c = tiny();
        Model m = new Model(c);
        m.initialize(11);
        // perturb the norm weights away from 1 so their gradients are checked at a generic point
        Rng rng = new Rng(2);
        for (Param p : m.params())
            if (p.name.endsWith("norm.weight")) for (int i = 0; i < p.data().length; i++) p.data()[i] += (float) (0.2 * rng.nextGaussian());
        int B = 2, T = 5;
        int[] in = randomTokens(rng, B * T, c.vocabSize), tg = randomTokens(rng, B * T, c.vocabSize);
        tg[3] = -1; // ignored position
        Map<String, double[]> ref = new HashMap<>();
        for (Param p : m.params()) ref.put(p.name, NaiveRef.toDouble(p.data()));
        double[] refLogits = new double[B * T * c.vocabSize];
        double lRef = refLoss(ref, c, in, tg, B, T, refLogits);

        float[] logits = m.logits(in, B, T);
        assertTrue(GradCheck.relMaxDiff(logits, refLogits) < 1e-4);
        assertEquals(lRef, m.loss(in, tg, B, T), 1e-5 * lRef);
        for (Param p : m.params()) p.zeroGrad();
        float l = m.forwardBackward(in, tg, B, T);
        assertEquals(lRef, l, 1e-5 * lRef);
        for (Param p : m.params())
            GradCheck.check(p.name, p.grad(), ref.get(p.name), () -> refLoss(ref, c, in, tg, B, T, null), 25, 3e-3);
    }

    @Test
    void decoderMatchesFullForwardAtEveryPosition() {
        ModelConfig c = tiny();
        c.initStd = 0;
        Model m = new Model(c);
        m.initialize(3);
        int T = 8;
        int[] seq = randomTokens(new Rng(9), T, c.vocabSize);
        float[] full = m.logits(seq, 1, T).clone();
        Model.Decoder dec = m.newDecoder(T);
        for (int t = 0; t < T; t++) {
            float[] step = dec.step(seq[t]);
            assertEquals(t + 1, dec.position());
            for (int j = 0; j < c.vocabSize; j++)
                assertEquals(full[t * c.vocabSize + j], step[j], 1e-5, "position " + t + " logit " + j);
        }
        assertThrows(dev.ultramem.core.UserError.class, () -> dec.step(0));
    }

    static TrainConfig train(int steps, double lr) {
        TrainConfig tc = new TrainConfig();
        tc.steps = steps; tc.lr = lr; tc.warmupSteps = 10; tc.weightDecay = 0.0; tc.gradClip = 1.0;
        return tc;
    }

    static float[] trainLosses(long seed, int steps, ModelConfig c, int B, int T, double lr) {
        Model m = new Model(c);
        m.initialize(seed);
        TrainConfig tc = train(steps, lr);
        AdamW opt = new AdamW(m.params(), tc);
        LrSchedule sched = new LrSchedule(tc, c.memType);
        Rng rng = new Rng(seed + 1);
        int[] seq = randomTokens(rng, B * (T + 1), c.vocabSize);
        int[] in = new int[B * T], tg = new int[B * T];
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) { in[b * T + t] = seq[b * (T + 1) + t]; tg[b * T + t] = seq[b * (T + 1) + t + 1]; }
        float[] losses = new float[steps];
        for (int s = 0; s < steps; s++) {
            opt.zeroGrad();
            losses[s] = m.forwardBackward(in, tg, B, T);
            opt.step(sched);
            m.afterWeightsChanged();
        }
        return losses;
    }

    @Test
    void sameSeedGivesBitIdenticalLosses() {
        ModelConfig c = tiny();
        c.initStd = 0;
        float[] a = trainLosses(21, 6, c, 2, 8, 1e-2), b = trainLosses(21, 6, c, 2, 8, 1e-2);
        assertArrayEquals(a, b);
        float[] other = trainLosses(22, 6, c, 2, 8, 1e-2);
        assertFalse(Arrays.equals(a, other));
    }

    @Test
    void resultsDoNotDependOnTheThreadCount() {
        ModelConfig c = tiny();
        c.initStd = 0; c.nHeads = 3; c.dModel = 18; c.maxSeqLen = 70;
        int before = dev.ultramem.core.Parallel.threads();
        try {
            dev.ultramem.core.Parallel.setThreads(1);
            float[] one = trainLosses(31, 3, c, 3, 70, 1e-2);
            dev.ultramem.core.Parallel.setThreads(3);
            float[] three = trainLosses(31, 3, c, 3, 70, 1e-2);
            assertArrayEquals(one, three);
        } finally {
            dev.ultramem.core.Parallel.setThreads(before);
        }
    }

    @Test
    void overfitsOneBatch() {
        ModelConfig c = new ModelConfig();
        c.vocabSize = 16; c.dModel = 32; c.nHeads = 2; c.nLayers = 2; c.mlpHiddenSize = 128; c.maxSeqLen = 16;
        float[] losses = trainLosses(4, 200, c, 2, 16, 1e-2);
        assertTrue(losses[0] > 2.0, "initial loss " + losses[0]);
        assertTrue(losses[losses.length - 1] < 0.05, "final loss " + losses[losses.length - 1]);
    }

    @Test
    void sizeAccounting() {
        Model m = new Model(tiny());
        // wte 11·12; per block: 2 norms 24, att_proj 432, q/k norms 12, attn_out 144, ff_proj 216, ff_out 108; ln_f 12
        ModelCosts k = ModelCosts.of(m, m.config().maxSeqLen);
        assertEquals(132 + 2 * (24 + 432 + 12 + 144 + 216 + 108) + 12, k.totalParams());
        assertEquals(k.totalParams(), k.activatedParamsPerToken());
        // logits 11·12; per block: 4·12² projections, (5+1)·12 causal products, 3·9·12 FFN
        assertEquals(132 + 2 * (576 + 72 + 324), ModelCosts.of(m, 5).forwardMacsPerToken());
    }

    @Test
    void badInputIsAUserError() {
        Model m = new Model(tiny());
        assertThrows(dev.ultramem.core.UserError.class, () -> m.loss(new int[]{0, 11}, new int[]{0, 0}, 1, 2));
        assertThrows(dev.ultramem.core.UserError.class, () -> m.loss(new int[]{0, 1}, new int[]{0}, 1, 2));
        assertThrows(dev.ultramem.core.UserError.class, () -> m.logits(new int[9], 1, 9));
        assertThrows(dev.ultramem.core.UserError.class, () -> m.newDecoder(9));
    }
}
