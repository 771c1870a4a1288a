package dev.ultramem.kernel;

import dev.ultramem.core.Parallel;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * Vector API path of {@link MemoryKernels}. Top-k skips whole vectors whose lanes are all below the
 * current k-th value (the common case once the heap is full); gathers and scatters stream each value
 * row with full-width FMAs. Same results as the scalar reference up to float summation order.
 */
public class VectorMemoryKernels extends ScalarMemoryKernels {

    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final ByteOrder NO = ByteOrder.nativeOrder();

    @Override public String name() { return "vector"; }

    @Override
    public void topK(float[] x, int off, int n, int k, int[] idx, int idxOff, float[] val, int valOff) {
        if (k <= 0 || k > n) throw new IllegalArgumentException("topK: need 0 < k <= n, got k=" + k + " n=" + n);
        for (int i = 0; i < k; i++) {
            val[valOff + i] = x[off + i];
            idx[idxOff + i] = i;
            siftUp(idx, val, idxOff, valOff, i);
        }
        int i = k;
        // candidates arrive in increasing index order, so only a strictly larger value can enter
        for (; i + L <= n; i += L) {
            FloatVector xv = FloatVector.fromArray(S, x, off + i);
            if (!xv.compare(VectorOperators.GT, val[valOff]).anyTrue()) continue;
            for (int l = 0; l < L; l++) offer(idx, val, idxOff, valOff, k, x[off + i + l], i + l);
        }
        for (; i < n; i++) offer(idx, val, idxOff, valOff, k, x[off + i], i);
        heapToSorted(idx, val, idxOff, valOff, k);
    }

    @Override
    public void gatherWeightedSum(int nTok, int R, int C, int width, MemorySegment table, int[] row, int[] col,
                                  float[] w, float[] out, int stride) {
        int cw = width / C;
        if (cw < L) { super.gatherWeightedSum(nTok, R, C, width, table, row, col, w, out, stride); return; }
        int bound = S.loopBound(cw);
        Parallel.forRange(nTok, 8, (t0, t1) -> {
            for (int t = t0; t < t1; t++)
                for (int jj = 0; jj < R; jj++) {
                    int e = t * R + jj;
                    long base = (long) row[e] * width * Float.BYTES;
                    int o = t * stride + (col == null ? 0 : col[e]);
                    for (int c = 0; c < C; c++) {
                        float wc = w[e * C + c];
                        FloatVector wv = FloatVector.broadcast(S, wc);
                        int c0 = c * cw, j = 0;
                        for (; j < bound; j += L) {
                            FloatVector tv = FloatVector.fromMemorySegment(S, table, base + (long) (c0 + j) * Float.BYTES, NO);
                            tv.fma(wv, FloatVector.fromArray(S, out, o + c0 + j)).intoArray(out, o + c0 + j);
                        }
                        for (; j < cw; j++) out[o + c0 + j] += wc * table.getAtIndex(F, base / Float.BYTES + c0 + j);
                    }
                }
        });
    }

    @Override
    public void gatherDot(int nTok, int R, int C, int width, MemorySegment table, int[] row, int[] col,
                          float[] vec, int stride, float[] out) {
        int cw = width / C;
        if (cw < L) { super.gatherDot(nTok, R, C, width, table, row, col, vec, stride, out); return; }
        int bound = S.loopBound(cw);
        Parallel.forRange(nTok, 8, (t0, t1) -> {
            for (int t = t0; t < t1; t++)
                for (int jj = 0; jj < R; jj++) {
                    int e = t * R + jj;
                    long base = (long) row[e] * width * Float.BYTES;
                    int o = t * stride + (col == null ? 0 : col[e]);
                    for (int c = 0; c < C; c++) {
                        int c0 = c * cw, j = 0;
                        FloatVector acc = FloatVector.zero(S);
                        for (; j < bound; j += L) {
                            FloatVector tv = FloatVector.fromMemorySegment(S, table, base + (long) (c0 + j) * Float.BYTES, NO);
                            acc = tv.fma(FloatVector.fromArray(S, vec, o + c0 + j), acc);
                        }
                        float s = acc.reduceLanes(VectorOperators.ADD);
                        for (; j < cw; j++) s += table.getAtIndex(F, base / Float.BYTES + c0 + j) * vec[o + c0 + j];
                        out[e * C + c] = s;
                    }
                }
        });
    }

    @Override
    public void scatterAddRows(int nSeg, int[] segStart, int[] segRow, int[] order, int R, int C, int width,
                               float[] w, float[] vec, int stride, int[] col, MemorySegment grad) {
        int cw = width / C;
        if (cw < L) { super.scatterAddRows(nSeg, segStart, segRow, order, R, C, width, w, vec, stride, col, grad); return; }
        int bound = S.loopBound(cw);
        Parallel.forRange(nSeg, 16, (s0, s1) -> {
            for (int s = s0; s < s1; s++) {
                long base = (long) segRow[s] * width * Float.BYTES;
                for (int c = 0; c < C; c++) {
                    int c0 = c * cw, j = 0;
                    // the row chunk stays in registers while all entries of the segment are added
                    for (; j < bound; j += L) {
                        long bo = base + (long) (c0 + j) * Float.BYTES;
                        FloatVector acc = FloatVector.fromMemorySegment(S, grad, bo, NO);
                        for (int q = segStart[s]; q < segStart[s + 1]; q++) {
                            int e = order[q];
                            int o = (e / R) * stride + (col == null ? 0 : col[e]);
                            acc = FloatVector.fromArray(S, vec, o + c0 + j).fma(FloatVector.broadcast(S, w[e * C + c]), acc);
                        }
                        acc.intoMemorySegment(grad, bo, NO);
                    }
                    for (; j < cw; j++) {
                        long gi = base / Float.BYTES + c0 + j;
                        float g = grad.getAtIndex(F, gi);
                        for (int q = segStart[s]; q < segStart[s + 1]; q++) {
                            int e = order[q];
                            int o = (e / R) * stride + (col == null ? 0 : col[e]);
                            g += w[e * C + c] * vec[o + c0 + j];
                        }
                        grad.setAtIndex(F, gi, g);
                    }
                }
            }
        });
    }
}
