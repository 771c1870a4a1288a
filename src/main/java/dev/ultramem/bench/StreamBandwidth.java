package dev.ultramem.bench;

import dev.ultramem.core.Parallel;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Streaming memory bandwidth: GB/s of reading a 256 MB array (far larger than any cache here) once per round, split
 * in contiguous chunks over the threads, each summing its chunk with four independent vector accumulators (one would
 * be latency-bound at a fraction of the bandwidth). The read-only figure is the bound for what a layer that streams
 * its weights or a value table once (batch-1 decode, memory lookups) can reach.
 */
public final class StreamBandwidth {

    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int FLOATS = 64 << 20;

    private static volatile float sink;

    private StreamBandwidth() {}

    /** Best GB/s of {@code samples} rounds on {@code threads} threads; the thread count is restored afterwards. */
    public static double readGBs(int threads, int samples) {
        float[] x = new float[FLOATS];
        int saved = Parallel.threads();
        try {
            Parallel.setThreads(threads);
            // touch every page first so the first round does not time page faults
            Parallel.forChunks(FLOATS, threads, (c, s, e) -> java.util.Arrays.fill(x, s, e, 1e-3f));
            float[] part = new float[threads];
            Parallel.ChunkBody body = (c, s, e) -> part[c] = sum(x, s, e);
            double best = Double.MAX_VALUE;
            for (int r = 0; r < samples + 1; r++) {
                long t0 = System.nanoTime();
                Parallel.forChunks(FLOATS, threads, body);
                double t = (System.nanoTime() - t0) / 1e9;
                if (r > 0) best = Math.min(best, t);
            }
            float s = 0;
            for (float p : part) s += p;
            sink = s;
            return 4.0 * FLOATS / best / 1e9;
        } finally {
            Parallel.setThreads(saved);
        }
    }

    private static float sum(float[] x, int s, int e) {
        int L = S.length();
        FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0;
        int i = s;
        for (; i + 4 * L <= e; i += 4 * L) {
            a0 = a0.add(FloatVector.fromArray(S, x, i));
            a1 = a1.add(FloatVector.fromArray(S, x, i + L));
            a2 = a2.add(FloatVector.fromArray(S, x, i + 2 * L));
            a3 = a3.add(FloatVector.fromArray(S, x, i + 3 * L));
        }
        float t = a0.add(a1).add(a2.add(a3)).reduceLanes(jdk.incubator.vector.VectorOperators.ADD);
        for (; i < e; i++) t += x[i];
        return t;
    }
}
