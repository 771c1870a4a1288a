package dev.ultramem.memory;

import java.util.Arrays;

/**
 * Diagnostics of one memory layer since the last {@link #reset()}: value-row coverage, usage skew,
 * mean top-1 and top-k scores, memory output std, and the singular values of the summed Tucker cores.
 */
public final class MemoryStats {
    /** Tables up to this many rows keep one usage count per row; larger ones count the touched rows only. */
    public static final long DENSE_ROWS = 1L << 24;
    private final long rows;
    /** usage count per row (tables up to {@link #DENSE_ROWS} rows), else null. */
    private final int[] counts;
    /** larger tables: open-addressing table of (row + 1, count) over the rows touched since reset (0 = empty slot). */
    private long[] touchedRows = new long[0];
    private int[] touchedCounts = new int[0];
    private long hits, distinct, scoredTokens, scoredEntries, outCount;
    private double top1Sum, topkSum, outSum, outSq;
    private double[] singular = new double[0];
    /**
     * Diagnostics describe training batches only (the trainer also resets them after an evaluation), so forwards
     * outside training, a decoder's steps among them, record nothing: their per-row counting is pure overhead there.
     */
    private volatile boolean recording = true;

    public MemoryStats(long rows) {
        this.rows = rows;
        counts = rows <= DENSE_ROWS ? new int[(int) rows] : null;
        if (counts == null) clearTouched();
    }

    private void clearTouched() { touchedRows = new long[1024]; touchedCounts = new int[1024]; }

    public synchronized void reset() {
        if (counts != null) Arrays.fill(counts, 0); else clearTouched();
        hits = distinct = scoredTokens = scoredEntries = outCount = 0;
        top1Sum = topkSum = outSum = outSq = 0;
    }

    /** Whether {@link #record} counts (set from the layer's training mode). */
    void setRecording(boolean on) { recording = on; }

    /** One memory layer's forward over n tokens: rows selected, the winners' scores and the output y [n][d]. */
    void record(ValueLookup lk, ProductKeyRetrieval r, float[] y, int n, int d) {
        if (!recording) return;
        recordRows(lk);
        recordScores(r.sumScores, n, r.heads, r.knn);
        recordOutput(y, n * d);
    }

    /** Counts per distinct row from the lookup's row-grouped segments (built by {@link ValueLookup#address}). */
    void recordRows(ValueLookup lk) {
        for (int s = 0; s < lk.nSeg; s++) {
            long l = lk.localRow(lk.segRow[s]);
            int c = lk.segStart[s + 1] - lk.segStart[s];
            if (counts != null) {
                if (counts[(int) l] == 0) distinct++;
                counts[(int) l] += c;
            } else {
                addTouched(l, c);
            }
        }
        hits += lk.segStart[lk.nSeg];
    }

    /** Adds c uses of row l to the touched-row table (linear probing, grown at half load). */
    private void addTouched(long l, int c) {
        if (2 * (distinct + 1) > touchedRows.length) {
            long[] oldRows = touchedRows;
            int[] oldCounts = touchedCounts;
            touchedRows = new long[2 * oldRows.length];
            touchedCounts = new int[2 * oldRows.length];
            for (int i = 0; i < oldRows.length; i++)
                if (oldRows[i] != 0) { int j = slot(oldRows[i] - 1); touchedRows[j] = oldRows[i]; touchedCounts[j] = oldCounts[i]; }
        }
        int i = slot(l);
        if (touchedRows[i] == 0) { touchedRows[i] = l + 1; distinct++; }
        touchedCounts[i] += c;
    }

    /** The slot holding row l, or the empty slot where it belongs. */
    private int slot(long l) {
        int mask = touchedRows.length - 1, i = (int) ((l * 0x9E3779B97F4A7C15L) >>> 40) & mask;
        while (touchedRows[i] != 0 && touchedRows[i] != l + 1) i = (i + 1) & mask;
        return i;
    }

    /** sumScores [t][h][knn], each head's list sorted descending. */
    private void recordScores(float[] sumScores, int n, int heads, int knn) {
        for (int t = 0; t < n; t++)
            for (int h = 0; h < heads; h++) {
                int o = (t * heads + h) * knn;
                top1Sum += sumScores[o];
                for (int q = 0; q < knn; q++) topkSum += sumScores[o + q];
                scoredTokens++;
                scoredEntries += knn;
            }
    }

    private void recordOutput(float[] y, int len) {
        // four interleaved partial sums (a fixed order) so the adds do not wait on each other
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0, q0 = 0, q1 = 0, q2 = 0, q3 = 0;
        int i = 0;
        for (; i + 4 <= len; i += 4) {
            double a = y[i], b = y[i + 1], c = y[i + 2], d = y[i + 3];
            s0 += a; s1 += b; s2 += c; s3 += d;
            q0 += a * a; q1 += b * b; q2 += c * c; q3 += d * d;
        }
        for (; i < len; i++) { s0 += y[i]; q0 += (double) y[i] * y[i]; }
        outSum += (s0 + s1) + (s2 + s3);
        outSq += (q0 + q1) + (q2 + q3);
        outCount += len;
    }

    private int rank;

    void setSingular(double[] s, int r) { singular = s.clone(); rank = r; }

    /** Fraction of the layer's value rows selected at least once since reset. */
    public double coverage() { return rows == 0 ? 0 : (double) distinct / rows; }

    /** KL(usage ‖ uniform) over the layer's rows, in nats (0 = perfectly even usage). */
    public double usageKl() {
        if (hits == 0) return 0;
        double kl = 0, m = rows;
        for (int c : counts != null ? counts : touchedCounts) if (c > 0) { double p = (double) c / hits; kl += p * Math.log(p * m); }
        return kl;
    }

    public double meanTop1Score() { return scoredTokens == 0 ? 0 : top1Sum / scoredTokens; }

    public double meanTopKScore() { return scoredEntries == 0 ? 0 : topkSum / scoredEntries; }

    public double outputStd() {
        if (outCount == 0) return 0;
        double mean = outSum / outCount;
        return Math.sqrt(Math.max(0, outSq / outCount - mean * mean));
    }

    /** Singular values of Σ_c core_c[h] per head, [h·r + i], from the last Tucker update. */
    public double[] tuckerSingularValues() { return singular.clone(); }

    public long rows() { return rows; }

    /**
     * The diagnostics by name, as the official code logs them: coverage, usage_kl, top1_score,
     * topk_score, output_std, and sv1/sv2 (largest two singular values of the summed Tucker core,
     * averaged over heads; their ratio shows how close the core is to rank 1).
     */
    public synchronized java.util.Map<String, Double> toMap() {
        java.util.Map<String, Double> m = new java.util.LinkedHashMap<>();
        m.put("coverage", coverage());
        m.put("usage_kl", usageKl());
        m.put("top1_score", meanTop1Score());
        m.put("topk_score", meanTopKScore());
        m.put("output_std", outputStd());
        if (singular.length > 0) {
            // singular is [h·r + i]; r is at least 1, and sv2 exists when r > 1
            int r = rank > 0 ? rank : 1, heads = singular.length / r;
            double s1 = 0, s2 = 0;
            for (int h = 0; h < heads; h++) { s1 += singular[h * r]; if (r > 1) s2 += singular[h * r + 1]; }
            m.put("sv1", s1 / heads);
            if (r > 1) m.put("sv2", s2 / heads);
        }
        return m;
    }
}
