package dev.ultramem.experiment;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Mean, sample std and the verdict rule against values worked out by hand. */
class StatsTest {

    @Test
    void meanAndSampleStdByHand() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations sum 32, sample variance 32/7
        double[] x = {2, 4, 4, 4, 5, 5, 7, 9};
        assertEquals(5.0, Stats.mean(x), 1e-12);
        assertEquals(Math.sqrt(32.0 / 7.0), Stats.sampleStd(x), 1e-12);
        // 1, 2, 3: mean 2, deviations 1, 0, 1 → variance 2/2 = 1
        assertEquals(1.0, Stats.sampleStd(new double[]{1, 2, 3}), 1e-12);
        assertTrue(Double.isNaN(Stats.sampleStd(new double[]{3})));
        assertTrue(Double.isNaN(Stats.mean(new double[0])));
    }

    @Test
    void verdictRuleByHand() {
        // A = {2.0, 2.1, 2.2}: mean 2.1, std 0.1; B = {2.5, 2.6, 2.7}: mean 2.6, std 0.1
        double[] a = {2.0, 2.1, 2.2}, b = {2.5, 2.6, 2.7};
        // m = 0.5, s = sqrt(0.01 + 0.01) = 0.1414, 2s = 0.283 < 0.5
        assertEquals(0.5, Stats.claimedDifference(a, b, true), 1e-12);
        assertEquals(Math.sqrt(0.02), Stats.differenceStd(a, b), 1e-12);
        assertEquals(Stats.Verdict.REPRODUCES, Stats.verdict(a, b, true));
        assertEquals(Stats.Verdict.DOES_NOT_REPRODUCE, Stats.verdict(b, a, true));
        // higher is better (accuracies): B is better than A
        assertEquals(Stats.Verdict.REPRODUCES, Stats.verdict(b, a, false));
        // C = {2.2, 2.3, 2.4}: m = 0.2 vs A, s = 0.1414, 2s = 0.283 ≥ 0.2 → inconclusive
        double[] c = {2.2, 2.3, 2.4};
        assertEquals(Stats.Verdict.INCONCLUSIVE, Stats.verdict(a, c, true));
        assertEquals(Stats.Verdict.INCONCLUSIVE, Stats.verdict(c, a, true));
        // exactly equal rows: m = 0, s = 0 → within 2 std
        assertEquals(Stats.Verdict.INCONCLUSIVE, Stats.verdict(a, a.clone(), true));
        assertEquals(Stats.Verdict.ONE_SEED, Stats.verdict(new double[]{1}, new double[]{2}, true));
        assertEquals(Stats.Verdict.MISSING, Stats.verdict(new double[0], b, true));
        assertEquals("inconclusive (difference within 2 std)", Stats.Verdict.INCONCLUSIVE.text);
    }

    @Test
    void boundaryIsInconclusive() {
        // m exactly 2s: A = {0, 2} (mean 1, std sqrt 2), B = {5, 5}: s = sqrt 2, m = 4 > 2·sqrt 2 = 2.83 → reproduces;
        // B' = {3.8, 3.8}: m = 2.8 < 2.83 → inconclusive
        assertEquals(Stats.Verdict.REPRODUCES, Stats.verdict(new double[]{0, 2}, new double[]{5, 5}, true));
        assertEquals(Stats.Verdict.INCONCLUSIVE, Stats.verdict(new double[]{0, 2}, new double[]{3.8, 3.8}, true));
    }
}
