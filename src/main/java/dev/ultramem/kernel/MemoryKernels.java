package dev.ultramem.kernel;

import java.lang.foreign.MemorySegment;

/**
 * Hot loops of the memory layers: top-k selection, the fused gather-weighted-sum over value rows,
 * the gathered inner products (pre-value scores and score gradients) and the row-grouped
 * scatter-add of the value-table gradient.
 *
 * <p>Addressing convention shared by the gather/scatter methods: a batch has {@code nTok} tokens with
 * {@code R} selected entries each; entry {@code e = t·R + j} reads table row {@code row[e]} (a
 * float32 table of row width {@code width}, addressed with long offsets so tables may exceed 2^31
 * elements). The row is split into {@code C} equal chunks of {@code cw = width / C}; chunk c of the
 * entry is weighted by {@code w[e·C + c]}. On the dense side the entry touches
 * {@code vec[t·stride + col[e] + c·cw + j]} ({@code col == null} means column offset 0).
 *
 * <p>Two implementations as for {@link Kernels}: {@link ScalarMemoryKernels} (reference) and
 * {@link VectorMemoryKernels} (default), chosen by the system property {@code ultramem.kernels}.
 */
public interface MemoryKernels {

    /**
     * The k largest of x[off, off+n): indices (relative to off) into idx[idxOff..], values into
     * val[valOff..], sorted descending; equal values are ordered by lower index first (and a lower
     * index wins the last slot). A bounded heap, not a sort. Requires 0 < k ≤ n.
     */
    void topK(float[] x, int off, int n, int k, int[] idx, int idxOff, float[] val, int valOff);

    /**
     * As {@link #topK(float[], int, int, int, int[], int, float[], int)} with a hint: {@code lowerBound}
     * should not exceed the k-th largest value (e.g. the minimum of any k of the values), so values
     * below it can be skipped at once. The result is the same for any hint; a hint that is too
     * high only costs a second pass.
     */
    default void topK(float[] x, int off, int n, int k, int[] idx, int idxOff, float[] val, int valOff, float lowerBound) {
        topK(x, off, n, k, idx, idxOff, val, valOff);
    }

    /**
     * out[i·n + j] = Σ_s a[i·r + s] · bt[s·n + j] for i &lt; m, j &lt; n, s ascending (the stage-2 grid of
     * a rank-r Tucker product). Single-threaded: called once per token from token-parallel code.
     */
    void lowRankProduct(int m, int n, int r, float[] a, float[] bt, float[] out);

    /**
     * Rows of {@code parts} consecutive parts of {@code dim}: out[outOff + i·parts + p] = ⟨q[qOff + p·dim, +dim),
     * rows[rowsOff + (idx[idxOff+i]·parts + p)·dim, +dim)⟩ for i &lt; m, p &lt; parts (the per-rank scores of
     * the stage-1 winners). Single-threaded like {@link #lowRankProduct}.
     */
    void rowDots(int m, int parts, int dim, float[] q, int qOff, float[] rows, int rowsOff, int[] idx, int idxOff,
                 float[] out, int outOff);

    /**
     * out[outOff + j] += Σ_i w[wOff + i·wStride] · rows[rowsOff + idx[idxOff+i]·dim + j] for j &lt; dim, the
     * terms added in i order with one fused multiply-add each (as that many {@link Kernels#axpy} calls):
     * the query gradient from the stage-1 winners. Single-threaded like {@link #rowDots}.
     */
    void rowsWeightedSum(int m, int dim, float[] w, int wOff, int wStride, float[] rows, int rowsOff, int[] idx, int idxOff,
                         float[] out, int outOff);

    /**
     * rows[rowsOff + idx[idxOff+i]·dim + j] += w[wOff + i·wStride] · src[srcOff + j] for i &lt; m in order, one
     * fused multiply-add each (as that many {@link Kernels#axpy} calls): the key gradient of the stage-1
     * winners of one token. Single-threaded like {@link #rowDots}.
     */
    void scatterRows(int m, int dim, float[] w, int wOff, int wStride, float[] src, int srcOff, int[] idx, int idxOff,
                     float[] rows, int rowsOff);

    /** out[t·stride + col[e] + c·cw + j] += w[e·C + c] · table[row[e]·width + c·cw + j]. Token-parallel. */
    void gatherWeightedSum(int nTok, int R, int C, int width, MemorySegment table, int[] row, int[] col,
                           float[] w, float[] out, int stride);

    /**
     * As {@link #gatherWeightedSum}, but each token adds its entries in the order of {@code order}
     * (all nTok·R entries sorted by row, as built for {@link #scatterAddRows}): every thread owns a
     * token range and walks the whole list, skipping other tokens' entries, so it reads the table in
     * ascending row order. The summation order per token depends only on {@code order}, not on the
     * number of threads.
     */
    void gatherWeightedSumRows(int nTok, int R, int C, int width, MemorySegment table, int[] order, int[] row, int[] col,
                               float[] w, float[] out, int stride);

    /** out[e·C + c] = Σ_j table[row[e]·width + c·cw + j] · vec[t·stride + col[e] + c·cw + j]. Token-parallel. */
    void gatherDot(int nTok, int R, int C, int width, MemorySegment table, int[] row, int[] col,
                   float[] vec, int stride, float[] out);

    /**
     * As {@link #gatherDot} (same values, bit for bit), but the entries are visited in the row-grouped
     * order of {@link #scatterAddRows} ({@code row[e] = segRow[s]} for the entries of segment s): the
     * table is then read in ascending row order, once per distinct row, instead of at random.
     * Segment-parallel; each output is still one dot product in a fixed order.
     */
    void gatherDotRows(int nSeg, int[] segStart, int[] segRow, int[] order, int R, int C, int width,
                       MemorySegment table, int[] col, float[] vec, int stride, float[] out);

    /**
     * As {@link #gatherWeightedSumRows} for a bfloat16 table (2 bytes per element, native order), each
     * element widened exactly to float32 as it is read: the same sums, in the same order, as the float32
     * kernel gives on the widened table, from half the bytes.
     */
    void gatherWeightedSumRowsBf16(int nTok, int R, int C, int width, MemorySegment table, int[] order, int[] row, int[] col,
                                   float[] w, float[] out, int stride);

    /** As {@link #gatherDotRows} for a bfloat16 table, widened as read (the same results as on the widened table). */
    void gatherDotRowsBf16(int nSeg, int[] segStart, int[] segRow, int[] order, int R, int C, int width,
                           MemorySegment table, int[] col, float[] vec, int stride, float[] out);

    /**
     * grad[row·width + c·cw + j] += Σ_{e in segment} w[e·C + c] · vec[(e / R)·stride + col[e] + c·cw + j]
     * for each of the {@code nSeg} segments of the row-grouped (CSR) entry list: segment s holds the
     * entries order[segStart[s] .. segStart[s+1]) which all address row segRow[s]. Threads own
     * disjoint segments (distinct rows), so no atomics; untouched rows are not read or written.
     */
    void scatterAddRows(int nSeg, int[] segStart, int[] segRow, int[] order, int R, int C, int width,
                        float[] w, float[] vec, int stride, int[] col, MemorySegment grad);

    String name();

    static MemoryKernels get() { return Holder.INSTANCE; }

    /** A specific implementation, for tests. */
    static MemoryKernels of(String name) { return Holder.select(name); }

    final class Holder {
        static final MemoryKernels INSTANCE = select(KernelsHolder.configured());

        private Holder() {}

        static MemoryKernels select(String name) { return KernelsHolder.byName(name, ScalarMemoryKernels::new, VectorMemoryKernels::new); }
    }
}
