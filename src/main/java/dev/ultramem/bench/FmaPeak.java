package dev.ultramem.bench;

import dev.ultramem.core.Parallel;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The machine's FP32 ceiling as the Vector API reaches it: a loop of nothing but independent fused multiply-adds
 * on registers (no loads, no stores). A GEMM cannot beat this figure, so dividing a GEMM's GFLOP/s by it gives
 * the kernel's efficiency on this machine, whatever its vector width.
 *
 * <p>The loop has the shape of a GEMM's inner step, {@code acc = x·y + acc}: with {@code acc = acc·x + y} (the
 * accumulator as the multiplicand) the compiled AVX2 code ran at about half the rate the GEMM micro-kernel itself
 * reached, so the ceiling was not one. Two accumulator counts are timed and the faster is the ceiling: 12 (enough
 * for 4-cycle latency × 2 FMA ports, and 14 registers with the operands, so nothing spills on AVX2's 16) and 20
 * (for cores that need more in flight; fits AVX-512's 32 registers).
 */
public final class FmaPeak {

    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    /** Iterations per call. */
    private static final int ITERS = 1 << 19;

    /** Keeps the accumulators observable so the loop is not removed. */
    private static volatile float sink;

    private FmaPeak() {}

    /** FLOPs of one loop call with the given accumulator count. */
    static long flopsPerLoop(int accumulators) { return 2L * accumulators * S.length() * ITERS; }

    static void loop12(float seed) {
        FloatVector x = FloatVector.broadcast(S, 1.0000001f), y = FloatVector.broadcast(S, seed);
        FloatVector c0 = y, c1 = y, c2 = y, c3 = y, c4 = y, c5 = y, c6 = y, c7 = y, c8 = y, c9 = y, c10 = y, c11 = y;
        for (int i = 0; i < ITERS; i++) {
            c0 = x.fma(y, c0); c1 = x.fma(y, c1); c2 = x.fma(y, c2); c3 = x.fma(y, c3);
            c4 = x.fma(y, c4); c5 = x.fma(y, c5); c6 = x.fma(y, c6); c7 = x.fma(y, c7);
            c8 = x.fma(y, c8); c9 = x.fma(y, c9); c10 = x.fma(y, c10); c11 = x.fma(y, c11);
        }
        sink = c0.add(c1).add(c2).add(c3).add(c4).add(c5).add(c6.add(c7).add(c8).add(c9).add(c10).add(c11)).lane(0);
    }

    static void loop20(float seed) {
        FloatVector x = FloatVector.broadcast(S, 1.0000001f), y = FloatVector.broadcast(S, seed);
        FloatVector c0 = y, c1 = y, c2 = y, c3 = y, c4 = y, c5 = y, c6 = y, c7 = y, c8 = y, c9 = y;
        FloatVector d0 = y, d1 = y, d2 = y, d3 = y, d4 = y, d5 = y, d6 = y, d7 = y, d8 = y, d9 = y;
        for (int i = 0; i < ITERS; i++) {
            c0 = x.fma(y, c0); c1 = x.fma(y, c1); c2 = x.fma(y, c2); c3 = x.fma(y, c3); c4 = x.fma(y, c4);
            c5 = x.fma(y, c5); c6 = x.fma(y, c6); c7 = x.fma(y, c7); c8 = x.fma(y, c8); c9 = x.fma(y, c9);
            d0 = x.fma(y, d0); d1 = x.fma(y, d1); d2 = x.fma(y, d2); d3 = x.fma(y, d3); d4 = x.fma(y, d4);
            d5 = x.fma(y, d5); d6 = x.fma(y, d6); d7 = x.fma(y, d7); d8 = x.fma(y, d8); d9 = x.fma(y, d9);
        }
        FloatVector c = c0.add(c1).add(c2).add(c3).add(c4).add(c5).add(c6).add(c7).add(c8).add(c9);
        sink = c.add(d0.add(d1).add(d2).add(d3).add(d4).add(d5).add(d6).add(d7).add(d8).add(d9)).lane(0);
    }

    /**
     * Best GFLOP/s over {@code samples} timed rounds of each loop, every thread of {@link Parallel} (set to
     * {@code threads}) running {@code loopsPerThread} loops per round. The thread count is restored afterwards.
     */
    public static double measure(int threads, int loopsPerThread, int samples) {
        int saved = Parallel.threads();
        try {
            Parallel.setThreads(threads);
            return Math.max(measure(threads, loopsPerThread, samples, 12), measure(threads, loopsPerThread, samples, 20));
        } finally {
            Parallel.setThreads(saved);
        }
    }

    private static double measure(int threads, int loopsPerThread, int samples, int accumulators) {
        Parallel.ChunkBody body = (chunk, s, e) -> {
            for (int i = s; i < e; i++) {
                if (accumulators == 12) loop12(1e-7f * chunk); else loop20(1e-7f * chunk);
            }
        };
        int loops = threads * loopsPerThread;
        for (int w = 0; w < 3; w++) Parallel.forChunks(loops, threads, body);
        double best = Double.MAX_VALUE;
        for (int r = 0; r < samples; r++) {
            long t0 = System.nanoTime();
            Parallel.forChunks(loops, threads, body);
            best = Math.min(best, (System.nanoTime() - t0) / 1e9);
        }
        return (double) flopsPerLoop(accumulators) * loops / best / 1e9;
    }
}
