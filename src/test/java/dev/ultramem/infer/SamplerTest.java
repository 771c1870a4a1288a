package dev.ultramem.infer;

import dev.ultramem.core.Rng;
import dev.ultramem.core.UserError;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class SamplerTest {

    /** Straightforward reference: boxed sort, explicit softmax, top-k cut, nucleus cut, renormalise. */
    static double[] naiveDistribution(float[] logits, double temp, int k, double p) {
        int n = logits.length;
        List<Integer> idx = new ArrayList<>();
        for (int i = 0; i < n; i++) idx.add(i);
        idx.sort(Comparator.<Integer>comparingDouble(i -> -logits[i]).thenComparingInt(i -> i));
        int keep = k == 0 ? n : Math.min(k, n);
        double[] e = new double[keep];
        double z = 0;
        for (int j = 0; j < keep; j++) { e[j] = Math.exp(logits[idx.get(j)] / temp); z += e[j]; }
        double c = 0;
        int nucleus = keep;
        for (int j = 0; j < keep; j++) {
            c += e[j] / z;
            if (c >= p) { nucleus = j + 1; break; }
        }
        double z2 = 0;
        for (int j = 0; j < nucleus; j++) z2 += e[j];
        double[] out = new double[n];
        for (int j = 0; j < nucleus; j++) out[idx.get(j)] = e[j] / z2;
        return out;
    }

    static float[] randomLogits(Rng r, int n) {
        float[] l = new float[n];
        for (int i = 0; i < n; i++) l[i] = (float) (r.nextGaussian() * 2);
        return l;
    }

    @Test
    void distributionMatchesNaiveReference() {
        Rng r = new Rng(1);
        double[][] settings = {{1, 0, 1}, {0.7, 0, 1}, {1.3, 5, 1}, {1, 0, 0.9}, {0.5, 20, 0.5}, {1, 1, 1}, {2, 0, 0.05}};
        for (double[] s : settings) {
            for (int rep = 0; rep < 5; rep++) {
                float[] logits = randomLogits(r, 50 + rep);
                Sampler sm = new Sampler(s[0], (int) s[1], s[2], 0);
                double[] got = new double[logits.length];
                sm.distribution(logits, got);
                double[] want = naiveDistribution(logits, s[0], (int) s[1], s[2]);
                for (int i = 0; i < logits.length; i++) assertEquals(want[i], got[i], 1e-9, "setting " + java.util.Arrays.toString(s) + " token " + i);
            }
        }
    }

    @Test
    void drawsFollowTheNaiveInverseCdfWithTheSameSeed() {
        Rng r = new Rng(2);
        float[] logits = randomLogits(r, 40);
        double temp = 0.9, p = 0.8;
        int k = 12;
        Sampler sm = new Sampler(temp, k, p, 99);
        Rng u = new Rng(99);
        double[] dist = naiveDistribution(logits, temp, k, p);
        List<Integer> order = new ArrayList<>();
        for (int i = 0; i < logits.length; i++) order.add(i);
        order.sort(Comparator.<Integer>comparingDouble(i -> -logits[i]).thenComparingInt(i -> i));
        for (int t = 0; t < 200; t++) {
            double x = u.nextDouble(), c = 0;
            int want = -1;
            for (int i : order) { if (dist[i] == 0) continue; c += dist[i]; want = i; if (x < c) break; }
            assertEquals(want, sm.sample(logits));
        }
    }

    /**
     * The selection-based draw against the sorted inverse-CDF walk of the naive reference, same seed, on vocabularies
     * large enough for several partition levels and with tied logits (ties go to the lower index).
     */
    @Test
    void drawsOnLargeVocabulariesFollowTheNaiveWalk() {
        Rng r = new Rng(7);
        double[][] settings = {{1, 0, 1}, {0.8, 0, 0.9}, {1.2, 50, 1}, {0.7, 200, 0.6}, {1, 3000, 0.95}, {2, 0, 0.02}};
        for (int n : new int[]{17, 300, 3000}) {
            float[] logits = randomLogits(r, n);
            for (int i = 0; i < n; i += 7) logits[i] = Math.round(logits[i]);  // ties
            List<Integer> order = new ArrayList<>();
            for (int i = 0; i < n; i++) order.add(i);
            order.sort(Comparator.<Integer>comparingDouble(i -> -logits[i]).thenComparingInt(i -> i));
            for (double[] s : settings) {
                double[] dist = naiveDistribution(logits, s[0], (int) s[1], s[2]);
                Sampler sm = new Sampler(s[0], (int) s[1], s[2], 11);
                Rng u = new Rng(11);
                for (int t = 0; t < 100; t++) {
                    double x = u.nextDouble(), c = 0;
                    int want = -1;
                    for (int i : order) { if (dist[i] == 0) continue; c += dist[i]; want = i; if (x < c) break; }
                    assertEquals(want, sm.sample(logits), "n " + n + " setting " + java.util.Arrays.toString(s) + " draw " + t);
                }
            }
        }
    }

    @Test
    void frequenciesApproachTheDistribution() {
        float[] logits = {1f, 2f, 0.5f, -1f, 3f};
        Sampler sm = new Sampler(1.0, 0, 1.0, 5);
        int[] counts = new int[5];
        int n = 40_000;
        for (int i = 0; i < n; i++) counts[sm.sample(logits)]++;
        double[] want = naiveDistribution(logits, 1, 0, 1);
        for (int i = 0; i < 5; i++) assertEquals(want[i], counts[i] / (double) n, 0.01);
    }

    @Test
    void greedyAtTemperatureZeroPicksTheFirstMaximum() {
        Sampler g = new Sampler(0, 3, 0.5, 1);
        assertEquals(2, g.sample(new float[]{1, 2, 5, 5, -3}));
        assertEquals(0, g.sample(new float[]{7}));
        Rng r = new Rng(4);
        for (int t = 0; t < 100; t++) {
            float[] l = randomLogits(r, 30);
            int best = 0;
            for (int i = 1; i < l.length; i++) if (l[i] > l[best]) best = i;
            assertEquals(best, g.sample(l));
        }
    }

    @Test
    void topKOneIsGreedyAndKeptTokensOnlyAreDrawn() {
        Rng r = new Rng(6);
        float[] l = randomLogits(r, 64);
        Sampler one = new Sampler(1.5, 1, 1.0, 3);
        int best = Sampler.argmax(l, 0, l.length);
        for (int t = 0; t < 50; t++) assertEquals(best, one.sample(l));
        Sampler k4 = new Sampler(1.0, 4, 1.0, 3);
        double[] d = naiveDistribution(l, 1, 4, 1);
        for (int t = 0; t < 500; t++) assertTrue(d[k4.sample(l)] > 0);
    }

    @Test
    void aTemperatureBelowFloatRangeIsTheGreedyLimit() {
        Rng r = new Rng(8);
        float[] l = randomLogits(r, 100);
        int best = Sampler.argmax(l, 0, l.length);
        for (double t : new double[]{1e-30, 1e-40, 1e-300}) {
            Sampler s = new Sampler(t, 0, 0.9, 1);
            for (int i = 0; i < 20; i++) assertEquals(best, s.sample(l), "temperature " + t);
        }
    }

    @Test
    void invalidSettingsAreUserErrors() {
        assertThrows(UserError.class, () -> new Sampler(-1, 0, 1, 0));
        assertThrows(UserError.class, () -> new Sampler(1, -2, 1, 0));
        assertThrows(UserError.class, () -> new Sampler(1, 0, 0, 0));
        assertThrows(UserError.class, () -> new Sampler(1, 0, 1.5, 0));
        assertThrows(UserError.class, () -> new Sampler(Double.NaN, 0, 1, 0));
    }
}
