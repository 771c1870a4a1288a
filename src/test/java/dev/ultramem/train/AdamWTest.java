package dev.ultramem.train;

import dev.ultramem.core.Param;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class AdamWTest {

    static TrainConfig cfg() {
        TrainConfig c = new TrainConfig();
        c.beta1 = 0.9; c.beta2 = 0.95; c.eps = 1e-8; c.weightDecay = 0.1; c.gradClip = 0;
        return c;
    }

    /** The first step: m̂ = g, v̂ = g², so p ← p·(1 − lr·wd) − lr·g/(|g| + eps). */
    static double firstStep(double p, double g, double lr, double wd) {
        return p * (1 - lr * wd) - lr * g / (Math.abs(g) + 1e-8);
    }

    @Test
    void oneAndTwoStepsMatchHandComputedUpdates() {
        Param w = Param.of("blk.att_proj.weight", Param.Group.DECAY, 3);
        float[] p0 = {0.5f, -1.0f, 2.0f}, g1 = {0.1f, -0.2f, 0.0f}, g2 = {-0.3f, 0.05f, 0.4f};
        System.arraycopy(p0, 0, w.data(), 0, 3);
        System.arraycopy(g1, 0, w.grad(), 0, 3);
        AdamW opt = new AdamW(List.of(w), cfg());
        opt.update(0.01, 0, 0);
        assertEquals(1, opt.step());
        double[] p1 = new double[3];
        for (int i = 0; i < 3; i++) {
            p1[i] = firstStep(p0[i], g1[i], 0.01, 0.1);
            assertEquals(p1[i], w.data()[i], 1e-6);
            assertEquals(0.1 * g1[i], opt.expAvg(w.name).data()[i], 1e-7);
            assertEquals(0.05 * g1[i] * g1[i], opt.expAvgSq(w.name).data()[i], 1e-9);
        }
        System.arraycopy(g2, 0, w.grad(), 0, 3);
        opt.update(0.02, 0, 0);
        for (int i = 0; i < 3; i++) {
            double m = 0.9 * 0.1 * g1[i] + 0.1 * g2[i];
            double v = 0.95 * 0.05 * g1[i] * g1[i] + 0.05 * g2[i] * g2[i];
            double mh = m / (1 - 0.81), vh = v / (1 - 0.9025);
            double p2 = w.data()[i];
            double expect = p1[i] * (1 - 0.02 * 0.1) - 0.02 * mh / (Math.sqrt(vh) + 1e-8);
            assertEquals(expect, p2, 1e-6, "coordinate " + i);
        }
    }

    @Test
    void groupsGetTheirLearningRateAndDecay() {
        TrainConfig c = cfg();
        c.decayNormAndEmbeddings = false;
        Arena arena = Arena.ofAuto();
        Param dec = Param.of("a.ff_proj.weight", Param.Group.DECAY, 2);
        Param nod = Param.of("a.bias", Param.Group.NO_DECAY, 2);
        Param norm = Param.of("a.attn_norm.weight", Param.Group.DECAY, 2);
        Param wte = Param.of("transformer.wte.weight", Param.Group.DECAY, 2);
        Param val = Param.offHeap("m.values", Param.Group.VALUE, arena, 2);
        Param fix = Param.offHeap("m.values_fixed", Param.Group.VALUE_FIXED_LR, arena, 2);
        Param buf = Param.buffer("m.u", 2);
        Param untouched = Param.of("a.unused", Param.Group.DECAY, 2);
        List<Param> all = List.of(dec, nod, norm, wte, val, fix, buf, untouched);
        for (Param p : all) { p.set(0, 1.5f); p.set(1, -0.5f); }
        for (Param p : List.of(dec, nod, norm, wte, val, fix)) {
            p.gradSegment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, 0, 0.3f);
            p.gradSegment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, 1, -0.7f);
        }
        AdamW opt = new AdamW(all, c);
        assertEquals(7, opt.params().size());
        opt.update(0.01, 0.04, 0.001);
        check(dec, 0.01, 0.1);
        check(nod, 0.01, 0);
        check(norm, 0.01, 0);
        check(wte, 0.01, 0);
        check(val, 0.04, 0.1);
        check(fix, 0.001, 0.1);
        assertEquals(1.5f, buf.get(0));
        assertEquals(1.5f, untouched.get(0)); // never received a gradient: skipped, as torch does
        assertFalse(opt.expAvg("m.values").isHeap());
        assertEquals(0.1 * 0.3, opt.expAvg("m.values").get(0), 1e-7);
        assertEquals(14, opt.stateTensors().size());
    }

    static void check(Param p, double lr, double wd) {
        assertEquals(firstStep(1.5, 0.3, lr, wd), p.get(0), 1e-6, p.name);
        assertEquals(firstStep(-0.5, -0.7, lr, wd), p.get(1), 1e-6, p.name);
    }

    @Test
    void clippingUsesTheGlobalNormOverHeapAndOffHeapGradients() {
        TrainConfig c = cfg();
        c.gradClip = 1.0;
        Param a = Param.of("a", Param.Group.DECAY, 2);
        Param b = Param.offHeap("b", Param.Group.VALUE, Arena.ofAuto(), 1);
        a.grad()[0] = 3; a.grad()[1] = 0;
        b.gradSegment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, 0, 4f);
        AdamW opt = new AdamW(List.of(a, b), c);
        assertEquals(5.0, opt.clipGradients(), 1e-6);
        assertEquals(3 / 5.0, a.grad()[0], 1e-6);
        assertEquals(4 / 5.0, b.gradSegment().getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, 0), 1e-6);
        // below the threshold nothing changes
        assertEquals(1.0, opt.clipGradients(), 1e-5);
        assertEquals(3 / 5.0, a.grad()[0], 1e-6);
        c.gradClip = 0;
        a.grad()[0] = 30;
        assertEquals(Math.sqrt(900 + 0.64), opt.clipGradients(), 1e-4);
        assertEquals(30f, a.grad()[0]);
    }
}
