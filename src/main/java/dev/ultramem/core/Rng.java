package dev.ultramem.core;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Deterministic random numbers (xoshiro256** seeded by SplitMix64), independent of the JDK's
 * generator implementations so that a seed gives the same model on every JDK.
 */
public final class Rng {
    private long s0, s1, s2, s3;
    private double spare = Double.NaN;
    /** Gaussian draws {@link #skipGaussians skipped} but not yet made: made before the next draw of any kind. */
    private long pendingGaussians;

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
        if (pendingGaussians != 0) settle();
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
        if (pendingGaussians != 0) settle();
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

    /**
     * Draws {@code count} values N(0, std²) into the native-order floats of dst from element {@code from}
     * on, in order. The one routine a value table's initialisation runs, whether the table is filled in
     * memory in one call or written to a file a chunk at a time (consecutive calls continue the stream).
     */
    public void fillNormal(MemorySegment dst, long from, long count, double std) {
        for (long i = from, end = from + count; i < end; i++) dst.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (nextGaussian() * std));
    }

    /**
     * Moves past n Gaussian draws without keeping them. The draws are made lazily, before this
     * generator's next draw: a generator that is not drawn from again never makes them.
     */
    public void skipGaussians(long n) {
        if (n < 0) throw new IllegalArgumentException("negative skip " + n);
        pendingGaussians += n;
    }

    private void settle() {
        long n = pendingGaussians;
        pendingGaussians = 0;
        for (long i = 0; i < n; i++) nextGaussian();
    }

    /** An independent generator in this one's state (skipped draws included): it draws what this one would draw next. */
    public Rng copy() {
        Rng r = new Rng(0);
        r.s0 = s0; r.s1 = s1; r.s2 = s2; r.s3 = s3;
        r.spare = spare;
        r.pendingGaussians = pendingGaussians;
        return r;
    }

    /** Whether o is in exactly this generator's state, skipped draws included (so both draw the same from now on). */
    public boolean sameState(Rng o) {
        return s0 == o.s0 && s1 == o.s1 && s2 == o.s2 && s3 == o.s3 && pendingGaussians == o.pendingGaussians
                && Double.doubleToRawLongBits(spare) == Double.doubleToRawLongBits(o.spare);
    }

    public void fillNormal(float[] a, double std) { for (int i = 0; i < a.length; i++) a[i] = (float) (nextGaussian() * std); }

    public void fillTruncNormal(float[] a, double std, double cutoff) { for (int i = 0; i < a.length; i++) a[i] = (float) truncatedGaussian(std, cutoff); }

    public void fillUniform(float[] a, double lo, double hi) { for (int i = 0; i < a.length; i++) a[i] = (float) (lo + (hi - lo) * nextDouble()); }

    /** A uniformly random permutation of 0..n-1 (Fisher–Yates). */
    public int[] permutation(int n) {
        int[] p = new int[n];
        permute(p);
        return p;
    }

    /** Fills p with the permutation {@link #permutation}(p.length) would return, without a second array. */
    public void permute(int[] p) {
        int n = p.length;
        for (int i = 0; i < n; i++) p[i] = i;
        for (int i = n - 1; i > 0; i--) { int j = nextInt(i + 1); int t = p[i]; p[i] = p[j]; p[j] = t; }
    }

    /** The four state words, for checkpoints. */
    public long[] state() {
        if (pendingGaussians != 0) settle();
        return new long[]{s0, s1, s2, s3};
    }

    public void setState(long[] s) { s0 = s[0]; s1 = s[1]; s2 = s[2]; s3 = s[3]; spare = Double.NaN; pendingGaussians = 0; }
}
