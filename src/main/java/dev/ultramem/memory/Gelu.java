package dev.ultramem.memory;

/** Exact (erf-based) GELU, as torch's default {@code F.gelu}, and its derivative. */
final class Gelu {
    private Gelu() {}

    static double f(double x) { return 0.5 * x * (1 + erf(x / Math.sqrt(2))); }

    static double df(double x) {
        return 0.5 * (1 + erf(x / Math.sqrt(2))) + x * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
    }

    /** erf with absolute error below 1.2e-7 (Numerical Recipes erfc Chebyshev fit). */
    static double erf(double x) {
        double z = Math.abs(x);
        double t = 1 / (1 + 0.5 * z);
        double r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
                + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
                + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? 1 - r : r - 1;
    }
}
