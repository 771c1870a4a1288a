package dev.ultramem.bench;

import dev.ultramem.core.Parallel;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The machine's FP32 ceiling as the Vector API reaches it: a loop of nothing but independent fused multiply-adds
 * on registers (no loads, no stores). A GEMM cannot beat this figure, so dividing a GEMM's GFLOP/s by it gives
 * the kernel's efficiency on this machine, whatever its vector width.
 */
final class FmaPeak {

    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    /** Iterations per call; 12 FMAs each. */
    private static final int ITERS = 1 << 20;

    /** Keeps the accumulators observable so the loop is not removed. */
    private static volatile float sink;

    private FmaPeak() {}

    /** FLOPs of one {@link #loop} call. */
    static long flopsPerLoop() { return 2L * 12 * S.length() * ITERS; }

    /**
     * Twelve independent accumulators: more than FMA latency × FMA ports (4 × 2 on current x86 cores), and with
     * the two operands 14 of AVX2's 16 vector registers, so nothing spills.
     */
    static void loop(float seed) {
        FloatVector x = FloatVector.broadcast(S, 1.0000001f), y = FloatVector.broadcast(S, seed);
        FloatVector c0 = y, c1 = y, c2 = y, c3 = y, c4 = y, c5 = y, c6 = y, c7 = y, c8 = y, c9 = y, c10 = y, c11 = y;
        for (int i = 0; i < ITERS; i++) {
            c0 = c0.fma(x, y); c1 = c1.fma(x, y); c2 = c2.fma(x, y); c3 = c3.fma(x, y);
            c4 = c4.fma(x, y); c5 = c5.fma(x, y); c6 = c6.fma(x, y); c7 = c7.fma(x, y);
            c8 = c8.fma(x, y); c9 = c9.fma(x, y); c10 = c10.fma(x, y); c11 = c11.fma(x, y);
        }
        FloatVector s = c0.add(c1).add(c2).add(c3).add(c4).add(c5).add(c6).add(c7).add(c8).add(c9).add(c10).add(c11);
        sink = s.lane(0);
    }

    /**
     * Best GFLOP/s over {@code samples} timed rounds, every thread of {@link Parallel} (set to {@code threads})
     * running {@code loopsPerThread} loops per round. The caller restores the thread count.
     */
    static double measure(int threads, int loopsPerThread, int samples) {
        Parallel.setThreads(threads);
        Parallel.ChunkBody body = (chunk, s, e) -> {
            for (int i = s; i < e; i++) loop(1e-7f * chunk);
        };
        int loops = threads * loopsPerThread;
        for (int w = 0; w < 3; w++) Parallel.forChunks(loops, threads, body);
        double best = Double.MAX_VALUE;
        for (int r = 0; r < samples; r++) {
            long t0 = System.nanoTime();
            Parallel.forChunks(loops, threads, body);
            best = Math.min(best, (System.nanoTime() - t0) / 1e9);
        }
        return (double) flopsPerLoop() * loops / best / 1e9;
    }
}
