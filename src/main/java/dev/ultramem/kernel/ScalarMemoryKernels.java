package dev.ultramem.kernel;

import dev.ultramem.core.Bf16;
import dev.ultramem.core.Parallel;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** Plain-loop reference of {@link MemoryKernels}. */
public class ScalarMemoryKernels implements MemoryKernels {

    static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;

    @Override public String name() { return "scalar"; }

    /** true when (va, ia) ranks below (vb, ib): smaller value, or equal value and larger index. */
    static boolean worse(float va, int ia, float vb, int ib) {
        return va < vb || (va == vb && ia > ib);
    }

    static void siftDown(int[] idx, float[] val, int io, int vo, int pos, int size) {
        float v = val[vo + pos];
        int id = idx[io + pos];
        while (true) {
            int c = 2 * pos + 1;
            if (c >= size) break;
            if (c + 1 < size && worse(val[vo + c + 1], idx[io + c + 1], val[vo + c], idx[io + c])) c++;
            if (!worse(val[vo + c], idx[io + c], v, id)) break;
            val[vo + pos] = val[vo + c];
            idx[io + pos] = idx[io + c];
            pos = c;
        }
        val[vo + pos] = v;
        idx[io + pos] = id;
    }

    static void siftUp(int[] idx, float[] val, int io, int vo, int pos) {
        float v = val[vo + pos];
        int id = idx[io + pos];
        while (pos > 0) {
            int p = (pos - 1) >> 1;
            if (!worse(v, id, val[vo + p], idx[io + p])) break;
            val[vo + pos] = val[vo + p];
            idx[io + pos] = idx[io + p];
            pos = p;
        }
        val[vo + pos] = v;
        idx[io + pos] = id;
    }

    /** Offers candidate (v, i) to a full min-heap whose root is the worst kept element. */
    static void offer(int[] idx, float[] val, int io, int vo, int k, float v, int i) {
        if (worse(val[vo], idx[io], v, i)) {
            val[vo] = v;
            idx[io] = i;
            siftDown(idx, val, io, vo, 0, k);
        }
    }

    /** Turns the heap into a list sorted best first (in place heap sort). */
    static void heapToSorted(int[] idx, float[] val, int io, int vo, int k) {
        for (int end = k - 1; end > 0; end--) {
            float tv = val[vo]; val[vo] = val[vo + end]; val[vo + end] = tv;
            int ti = idx[io]; idx[io] = idx[io + end]; idx[io + end] = ti;
            siftDown(idx, val, io, vo, 0, end);
        }
    }

    @Override
    public void topK(float[] x, int off, int n, int k, int[] idx, int idxOff, float[] val, int valOff) {
        if (k <= 0 || k > n) throw new IllegalArgumentException("topK: need 0 < k <= n, got k=" + k + " n=" + n);
        for (int i = 0; i < k; i++) {
            val[valOff + i] = x[off + i];
            idx[idxOff + i] = i;
            siftUp(idx, val, idxOff, valOff, i);
        }
        for (int i = k; i < n; i++) offer(idx, val, idxOff, valOff, k, x[off + i], i);
        heapToSorted(idx, val, idxOff, valOff, k);
    }

    @Override
    public void lowRankProduct(int m, int n, int r, float[] a, float[] bt, float[] out) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                float g = a[i * r] * bt[j];
                for (int s = 1; s < r; s++) g = Math.fma(a[i * r + s], bt[s * n + j], g);
                out[i * n + j] = g;
            }
    }

    @Override
    public void rowDots(int m, int parts, int dim, float[] q, int qOff, float[] rows, int rowsOff, int[] idx, int idxOff,
                        float[] out, int outOff) {
        for (int i = 0; i < m; i++)
            for (int p = 0; p < parts; p++) {
                int ro = rowsOff + (idx[idxOff + i] * parts + p) * dim, qo = qOff + p * dim;
                float s = 0;
                for (int j = 0; j < dim; j++) s += q[qo + j] * rows[ro + j];
                out[outOff + i * parts + p] = s;
            }
    }

    @Override
    public void rowsWeightedSum(int m, int dim, float[] w, int wOff, int wStride, float[] rows, int rowsOff, int[] idx, int idxOff,
                                float[] out, int outOff) {
        for (int i = 0; i < m; i++) {
            float g = w[wOff + i * wStride];
            int ro = rowsOff + idx[idxOff + i] * dim;
            for (int j = 0; j < dim; j++) out[outOff + j] = Math.fma(g, rows[ro + j], out[outOff + j]);
        }
    }

    @Override
    public void scatterRows(int m, int dim, float[] w, int wOff, int wStride, float[] src, int srcOff, int[] idx, int idxOff,
                            float[] rows, int rowsOff) {
        for (int i = 0; i < m; i++) {
            float g = w[wOff + i * wStride];
            int ro = rowsOff + idx[idxOff + i] * dim;
            for (int j = 0; j < dim; j++) rows[ro + j] = Math.fma(g, src[srcOff + j], rows[ro + j]);
        }
    }

    /** out[o + j] += w[e·C + c] · table[base + j] over chunk c of every core c (element index base). */
    private static void addWeightedRow(MemorySegment table, long base, int C, int cw, float[] w, int e, float[] out, int o) {
        addWeightedRow(table, false, base, C, cw, w, e, out, o);
    }

    /** Element i of a float32 table, or of a bf16 table widened (exactly) to float32. */
    private static float elem(MemorySegment table, boolean bf16, long i) {
        return bf16 ? Bf16.toFloat(table.getAtIndex(ValueLayout.JAVA_SHORT, i)) : table.getAtIndex(F, i);
    }

    private static void addWeightedRow(MemorySegment table, boolean bf16, long base, int C, int cw, float[] w, int e, float[] out, int o) {
        for (int c = 0; c < C; c++) {
            float wc = w[e * C + c];
            for (int j = c * cw; j < (c + 1) * cw; j++) out[o + j] += wc * elem(table, bf16, base + j);
        }
    }

    /** out[e·C + c] = Σ over chunk c of table[base + j] · vec[o + j], in index order. */
    private static void dotRow(MemorySegment table, long base, int C, int cw, float[] vec, int o, float[] out, int e) {
        dotRow(table, false, base, C, cw, vec, o, out, e);
    }

    private static void dotRow(MemorySegment table, boolean bf16, long base, int C, int cw, float[] vec, int o, float[] out, int e) {
        for (int c = 0; c < C; c++) {
            float s = 0;
            for (int j = c * cw; j < (c + 1) * cw; j++) s += elem(table, bf16, base + j) * vec[o + j];
            out[e * C + c] = s;
        }
    }

    @Override
    public void gatherWeightedSum(int nTok, int R, int C, int width, MemorySegment table, int[] row, int[] col,
                                  float[] w, float[] out, int stride) {
        int cw = width / C;
        Parallel.forRange(nTok, 8, (t0, t1) -> {
            for (int t = t0; t < t1; t++)
                for (int jj = 0; jj < R; jj++) {
                    int e = t * R + jj;
                    addWeightedRow(table, (long) row[e] * width, C, cw, w, e, out, t * stride + (col == null ? 0 : col[e]));
                }
        });
    }

    @Override
    public void gatherDot(int nTok, int R, int C, int width, MemorySegment table, int[] row, int[] col,
                          float[] vec, int stride, float[] out) {
        int cw = width / C;
        Parallel.forRange(nTok, 8, (t0, t1) -> {
            for (int t = t0; t < t1; t++)
                for (int jj = 0; jj < R; jj++) {
                    int e = t * R + jj;
                    dotRow(table, (long) row[e] * width, C, cw, vec, t * stride + (col == null ? 0 : col[e]), out, e);
                }
        });
    }

    @Override
    public void gatherWeightedSumRows(int nTok, int R, int C, int width, MemorySegment table, int[] order, int[] row, int[] col,
                                      float[] w, float[] out, int stride) {
        gatherRows(false, nTok, R, C, width, table, order, row, col, w, out, stride);
    }

    @Override
    public void gatherWeightedSumRowsBf16(int nTok, int R, int C, int width, MemorySegment table, int[] order, int[] row, int[] col,
                                          float[] w, float[] out, int stride) {
        gatherRows(true, nTok, R, C, width, table, order, row, col, w, out, stride);
    }

    private static void gatherRows(boolean bf16, int nTok, int R, int C, int width, MemorySegment table, int[] order, int[] row,
                                   int[] col, float[] w, float[] out, int stride) {
        int cw = width / C, m = nTok * R;
        Parallel.forRange(nTok, 8, (t0, t1) -> {
            int e0 = t0 * R, e1 = t1 * R;
            for (int q = 0; q < m; q++) {
                int e = order[q];
                if (e < e0 || e >= e1) continue;
                addWeightedRow(table, bf16, (long) row[e] * width, C, cw, w, e, out, (e / R) * stride + (col == null ? 0 : col[e]));
            }
        });
    }

    @Override
    public void gatherDotRows(int nSeg, int[] segStart, int[] segRow, int[] order, int R, int C, int width,
                              MemorySegment table, int[] col, float[] vec, int stride, float[] out) {
        dotRows(false, nSeg, segStart, segRow, order, R, C, width, table, col, vec, stride, out);
    }

    @Override
    public void gatherDotRowsBf16(int nSeg, int[] segStart, int[] segRow, int[] order, int R, int C, int width,
                                  MemorySegment table, int[] col, float[] vec, int stride, float[] out) {
        dotRows(true, nSeg, segStart, segRow, order, R, C, width, table, col, vec, stride, out);
    }

    private static void dotRows(boolean bf16, int nSeg, int[] segStart, int[] segRow, int[] order, int R, int C, int width,
                                MemorySegment table, int[] col, float[] vec, int stride, float[] out) {
        int cw = width / C;
        Parallel.forRange(nSeg, 16, (s0, s1) -> {
            for (int s = s0; s < s1; s++) {
                long base = (long) segRow[s] * width;
                for (int q = segStart[s]; q < segStart[s + 1]; q++) {
                    int e = order[q];
                    dotRow(table, bf16, base, C, cw, vec, (e / R) * stride + (col == null ? 0 : col[e]), out, e);
                }
            }
        });
    }

    @Override
    public void scatterAddRows(int nSeg, int[] segStart, int[] segRow, int[] order, int R, int C, int width,
                               float[] w, float[] vec, int stride, int[] col, MemorySegment grad) {
        int cw = width / C;
        Parallel.forRange(nSeg, 16, (s0, s1) -> {
            for (int s = s0; s < s1; s++) {
                long base = (long) segRow[s] * width;
                for (int q = segStart[s]; q < segStart[s + 1]; q++) {
                    int e = order[q];
                    int o = (e / R) * stride + (col == null ? 0 : col[e]);
                    for (int c = 0; c < C; c++) {
                        float wc = w[e * C + c];
                        for (int j = c * cw; j < (c + 1) * cw; j++)
                            grad.setAtIndex(F, base + j, grad.getAtIndex(F, base + j) + wc * vec[o + j]);
                    }
                }
            }
        });
    }
}
