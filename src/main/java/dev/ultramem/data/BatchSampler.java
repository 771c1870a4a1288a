package dev.ultramem.data;

import dev.ultramem.core.Rng;

/**
 * Draws training batches: B windows of T+1 tokens at uniformly random offsets from a seeded
 * {@link Rng}. The generator state is saved in checkpoints, so a resumed run draws exactly the
 * batches an uninterrupted run would have drawn.
 */
public final class BatchSampler {
    private final Tokens data;
    private final Rng rng;

    public BatchSampler(byte[] data, long seed) { this(Tokens.of(data), seed); }

    public BatchSampler(Tokens data, long seed) {
        this.data = data;
        this.rng = new Rng(seed);
    }

    /** Fills inputs and targets [B, T]: targets[b, t] = inputs[b, t + 1] in the text. */
    public void next(int[] inputs, int[] targets, int B, int T) {
        int maxStart = data.length() - T;  // start + T must be a valid index
        if (maxStart < 1) throw new IllegalStateException("data shorter than T+1");
        for (int b = 0; b < B; b++) {
            int start = rng.nextInt(maxStart);
            fill(data, start, inputs, targets, b * T, T);
        }
    }

    static void fill(Tokens data, int start, int[] inputs, int[] targets, int off, int T) {
        for (int t = 0; t < T; t++) {
            inputs[off + t] = data.get(start + t);
            targets[off + t] = data.get(start + t + 1);
        }
    }

    /**
     * The fixed validation batches: batch i covers non-overlapping windows spread evenly over the
     * data, the same at every evaluation, so validation losses of one run are comparable.
     */
    public static void evalBatch(byte[] data, int index, int count, int[] inputs, int[] targets, int B, int T) {
        evalBatch(Tokens.of(data), index, count, inputs, targets, B, T);
    }

    public static void evalBatch(Tokens data, int index, int count, int[] inputs, int[] targets, int B, int T) {
        long windows = Math.max(1, (data.length() - 1) / T);
        long total = (long) count * B;
        for (int b = 0; b < B; b++) {
            long k = (long) index * B + b;
            long w = windows >= total ? k * windows / total : k % windows;
            int start = (int) Math.min(w * T, data.length() - 1 - T);
            fill(data, start, inputs, targets, b * T, T);
        }
    }

    public long[] state() { return rng.state(); }

    public void setState(long[] s) { rng.setState(s); }
}
