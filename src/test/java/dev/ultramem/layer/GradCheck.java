package dev.ultramem.layer;

import java.util.function.DoubleSupplier;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** Central finite differences in double precision against an analytic float32 gradient. */
public final class GradCheck {
    private GradCheck() {}

    /**
     * Checks {@code samples} coordinates (all if fewer) of {@code analytic} against (f(p+h) − f(p−h))/2h,
     * perturbing the double copy {@code p} that f reads. Error measure: |num − an| / max(|num|, |an|,
     * floor), floor = 1e-2 · max|analytic| so that near-zero coordinates are judged on the tensor's scale.
     */
    public static void check(String what, float[] analytic, double[] p, DoubleSupplier f, int samples, double tol) {
        double maxAbs = 0;
        for (float g : analytic) maxAbs = Math.max(maxAbs, Math.abs(g));
        assertTrue(maxAbs > 0, what + ": analytic gradient is identically zero");
        double floor = 1e-2 * maxAbs;
        int n = p.length;
        int step = Math.max(1, n / Math.max(1, samples));
        double worst = 0;
        int worstAt = -1;
        double worstNum = 0;
        for (int i = (n > samples ? 1 : 0) % n; i < n; i += step) {
            double v = p[i], h = 1e-5 * Math.max(1, Math.abs(v));
            p[i] = v + h;
            double fp = f.getAsDouble();
            p[i] = v - h;
            double fm = f.getAsDouble();
            p[i] = v;
            double num = (fp - fm) / (2 * h);
            double err = Math.abs(num - analytic[i]) / Math.max(Math.max(Math.abs(num), Math.abs(analytic[i])), floor);
            if (err > worst) { worst = err; worstAt = i; worstNum = num; }
        }
        final double w = worst;
        final int wi = worstAt;
        final double wn = worstNum;
        assertTrue(w < tol, () -> what + ": relative error " + w + " at " + wi + " (numeric " + wn + ", analytic " + analytic[wi] + ")");
    }

    /** max |a − b| / max(max|b|, 1e-30). */
    public static double relMaxDiff(float[] a, double[] b) {
        double m = 0, s = 0;
        for (int i = 0; i < b.length; i++) { m = Math.max(m, Math.abs(a[i] - b[i])); s = Math.max(s, Math.abs(b[i])); }
        return m / Math.max(s, 1e-30);
    }

    public static float[] gauss(dev.ultramem.core.Rng rng, int n, double std) {
        float[] a = new float[n];
        rng.fillNormal(a, std);
        return a;
    }

    public static void copyInto(double[] src, float[] dst) {
        for (int i = 0; i < src.length; i++) dst[i] = (float) src[i];
    }
}
