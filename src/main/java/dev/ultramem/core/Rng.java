package dev.ultramem.core;

/**
 * Deterministic random numbers (xoshiro256** seeded by SplitMix64), independent of the JDK's
 * generator implementations so that a seed gives the same model on every JDK.
 */
public final class Rng {
    private long s0, s1, s2, s3;
    private double spare = Double.NaN;

    public Rng(long seed) {
        long z = seed;
        z += 0x9E3779B97F4A7C15L; s0 = mix(z);
        z += 0x9E3779B97F4A7C15L; s1 = mix(z);
        z += 0x9E3779B97F4A7C15L; s2 = mix(z);
        z += 0x9E3779B97F4A7C15L; s3 = mix(z);
    }

    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    public long nextLong() {
        long result = Long.rotateLeft(s1 * 5, 7) * 9;
        long t = s1 << 17;
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t;
        s3 = Long.rotateLeft(s3, 45);
        return result;
    }

    /** Uniform in [0, 1). */
    public double nextDouble() { return (nextLong() >>> 11) * 0x1.0p-53; }

    /** Uniform in [0, bound). */
    public int nextInt(int bound) {
        if (bound <= 0) throw new IllegalArgumentException("bound must be positive");
        return (int) ((nextLong() >>> 33) % bound);
    }

    /** Standard normal (Box–Muller, polar form). */
    public double nextGaussian() {
        if (!Double.isNaN(spare)) { double s = spare; spare = Double.NaN; return s; }
        double u, v, s;
        do {
            u = 2 * nextDouble() - 1;
            v = 2 * nextDouble() - 1;
            s = u * u + v * v;
        } while (s >= 1 || s == 0);
        double m = Math.sqrt(-2 * Math.log(s) / s);
        spare = v * m;
        return u * m;
    }

    /** Normal(0, std²) truncated to ±cutoff·std by rejection (the {@code full_megatron} init). */
    public double truncatedGaussian(double std, double cutoff) {
        double g;
        do { g = nextGaussian(); } while (Math.abs(g) > cutoff);
        return g * std;
    }

    public void fillNormal(float[] a, double std) { for (int i = 0; i < a.length; i++) a[i] = (float) (nextGaussian() * std); }

    public void fillTruncNormal(float[] a, double std, double cutoff) { for (int i = 0; i < a.length; i++) a[i] = (float) truncatedGaussian(std, cutoff); }

    public void fillUniform(float[] a, double lo, double hi) { for (int i = 0; i < a.length; i++) a[i] = (float) (lo + (hi - lo) * nextDouble()); }

    /** A uniformly random permutation of 0..n-1 (Fisher–Yates). */
    public int[] permutation(int n) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        for (int i = n - 1; i > 0; i--) { int j = nextInt(i + 1); int t = p[i]; p[i] = p[j]; p[j] = t; }
        return p;
    }

    /** The four state words, for checkpoints. */
    public long[] state() { return new long[]{s0, s1, s2, s3}; }

    public void setState(long[] s) { s0 = s[0]; s1 = s[1]; s2 = s[2]; s3 = s[3]; spare = Double.NaN; }
}
