package dev.ultramem.experiment;

/**
 * Mean, sample standard deviation and the verdict rule of a claim "A is better than B".
 *
 * <p>The rule: with m the difference of the means in the claimed direction (positive when A is
 * better) and s = sqrt(s_A² + s_B²), the standard deviation of the difference between one run of A
 * and one run of B (from the sample standard deviations over seeds), the claim
 * <ul>
 *   <li>reproduces when m > 2s,</li>
 *   <li>does not reproduce when m < -2s,</li>
 *   <li>is inconclusive when |m| ≤ 2s (or when a side has fewer than two seeds: no std).</li>
 * </ul>
 */
public final class Stats {
    private Stats() {}

    public static double mean(double[] x) {
        if (x.length == 0) return Double.NaN;
        double s = 0;
        for (double v : x) s += v;
        return s / x.length;
    }

    /** Standard deviation with the n−1 denominator; NaN below two values. */
    public static double sampleStd(double[] x) {
        if (x.length < 2) return Double.NaN;
        double m = mean(x), s = 0;
        for (double v : x) s += (v - m) * (v - m);
        return Math.sqrt(s / (x.length - 1));
    }

    public enum Verdict {
        REPRODUCES("reproduces"),
        DOES_NOT_REPRODUCE("does not reproduce"),
        INCONCLUSIVE("inconclusive (difference within 2 std)"),
        ONE_SEED("inconclusive (fewer than 2 seeds: no std)"),
        MISSING("inconclusive (runs missing)");

        public final String text;

        Verdict(String text) { this.text = text; }
    }

    /** The difference of means in the claimed direction: positive when {@code better} is better. */
    public static double claimedDifference(double[] better, double[] worse, boolean lowerIsBetter) {
        double d = mean(worse) - mean(better);
        return lowerIsBetter ? d : -d;
    }

    /** sqrt(s_A² + s_B²): the std of the difference of one run of each. */
    public static double differenceStd(double[] a, double[] b) {
        double sa = sampleStd(a), sb = sampleStd(b);
        return Math.sqrt(sa * sa + sb * sb);
    }

    public static Verdict verdict(double[] better, double[] worse, boolean lowerIsBetter) {
        if (better.length == 0 || worse.length == 0) return Verdict.MISSING;
        if (better.length < 2 || worse.length < 2) return Verdict.ONE_SEED;
        double m = claimedDifference(better, worse, lowerIsBetter), s = differenceStd(better, worse);
        if (Math.abs(m) <= 2 * s) return Verdict.INCONCLUSIVE;
        return m > 0 ? Verdict.REPRODUCES : Verdict.DOES_NOT_REPRODUCE;
    }
}
