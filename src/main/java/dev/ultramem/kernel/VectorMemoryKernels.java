package dev.ultramem.kernel;

import dev.ultramem.core.Parallel;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * Vector API path of {@link MemoryKernels}. Top-k of short inputs is a radix select on integer keys;
 * longer inputs skip whole vectors whose lanes are all below the current k-th value; gathers and scatters stream each value
 * row with full-width FMAs. Same results as the scalar reference up to float summation order.
 */
public class VectorMemoryKernels extends ScalarMemoryKernels {

    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final VectorSpecies<Integer> IS = S.withLanes(int.class);
    private static final VectorSpecies<Long> LS = LongVector.SPECIES_PREFERRED;
    private static final ByteOrder NO = ByteOrder.nativeOrder();

    @Override public String name() { return "vector"; }

    /** Per-thread candidate buffer of the top-k (grown on demand, never per call). */
    private static final ThreadLocal<long[][]> TOPK_BUF = ThreadLocal.withInitial(() -> new long[][]{new long[128], new long[64]});

    /**
     * A candidate as one sortable long: ascending long order = descending value, then ascending index.
     * The high word is the float's order-preserving bit pattern, complemented (descending) and with the
     * sign bit flipped so signed comparison of longs matches; -0.0 is folded into +0.0 first.
     */
    private static long key(float v, int i) {
        int bits = Float.floatToRawIntBits(v + 0.0f);
        int ordered = bits ^ ((bits >> 31) | 0x80000000);
        return ((long) (~ordered ^ 0x80000000) << 32) | (i & 0xffffffffL);
    }

    private static float valueOfKey(long key) {
        int ordered = ~((int) (key >>> 32) ^ 0x80000000);
        int bits = ordered < 0 ? ordered ^ 0x80000000 : ~ordered;
        return Float.intBitsToFloat(bits);
    }

    /** Rearranges a[0, m) so that a[0, k) holds the k smallest keys and a[k-1] is the largest of them. */
    private static void select(long[] a, int m, int k) {
        int lo = 0, hi = m - 1, target = k - 1;
        while (hi > lo) {
            int mid = (lo + hi) >>> 1;
            // median of three as pivot
            if (a[mid] < a[lo]) swap(a, mid, lo);
            if (a[hi] < a[lo]) swap(a, hi, lo);
            if (a[hi] < a[mid]) swap(a, hi, mid);
            long pivot = a[mid];
            int i = lo, j = hi;
            while (i <= j) {
                while (a[i] < pivot) i++;
                while (a[j] > pivot) j--;
                if (i <= j) { swap(a, i, j); i++; j--; }
            }
            if (target <= j) hi = j;
            else if (target >= i) lo = i;
            else break;
        }
        // a[0, k) now holds the k smallest; put their maximum at k-1
        int mx = 0;
        for (int q = 1; q < k; q++) if (a[q] > a[mx]) mx = q;
        swap(a, mx, k - 1);
    }

    private static void swap(long[] a, int i, int j) { long t = a[i]; a[i] = a[j]; a[j] = t; }

    /**
     * Threshold top-k: candidates strictly above the current k-th value (later indices lose ties) go
     * into a buffer of 4k; a full buffer is cut back to its best k by quickselect, which raises the
     * threshold; the final k are sorted by insertion.
     * Whole vectors below the threshold are skipped with one compare.
     */
    @Override
    public void topK(float[] x, int off, int n, int k, int[] idx, int idxOff, float[] val, int valOff) {
        if (k <= 0 || k > n) throw new IllegalArgumentException("topK: need 0 < k <= n, got k=" + k + " n=" + n);
        if (n <= RADIX_MAX_N) { radixTopK(x, off, n, k, idx, idxOff, val, valOff); return; }
        if (4 * k > n) { super.topK(x, off, n, k, idx, idxOff, val, valOff); return; }
        float bound = blockMaxBound(x, off, n, k);
        if (!(bound > Float.NEGATIVE_INFINITY) || !threshold(x, off, n, k, idx, idxOff, val, valOff, bound))
            threshold(x, off, n, k, idx, idxOff, val, valOff, Float.NaN);
    }

    /**
     * A value not above the k-th largest: the minimum of at least k block maxima, the blocks being
     * disjoint (lane l of every A-th vector), so at least k values reach it. Min and max are exact,
     * so the bound does not depend on the evaluation order. NaN when n is too short for k blocks.
     */
    private static float blockMaxBound(float[] x, int off, int n, int k) {
        int a = (k + L - 1) / L, nv = n / L;
        if (nv < a) return Float.NaN;
        float bound = Float.POSITIVE_INFINITY;
        for (int b = 0; b < a; b++) {
            FloatVector mx = FloatVector.fromArray(S, x, off + b * L);
            for (int v = b + a; v < nv; v += a) mx = mx.max(FloatVector.fromArray(S, x, off + v * L));
            bound = Math.min(bound, mx.reduceLanes(VectorOperators.MIN));
        }
        return bound;
    }

    @Override
    public void topK(float[] x, int off, int n, int k, int[] idx, int idxOff, float[] val, int valOff, float lowerBound) {
        if (k <= 0 || k > n) throw new IllegalArgumentException("topK: need 0 < k <= n, got k=" + k + " n=" + n);
        if (n <= RADIX_MAX_N) { radixTopK(x, off, n, k, idx, idxOff, val, valOff); return; }
        if (4 * k > n || !(lowerBound > Float.NEGATIVE_INFINITY)) { topK(x, off, n, k, idx, idxOff, val, valOff); return; }
        if (!threshold(x, off, n, k, idx, idxOff, val, valOff, lowerBound))
            threshold(x, off, n, k, idx, idxOff, val, valOff, Float.NaN); // the hint was above the k-th value
    }

    /**
     * The threshold scan. Without a bound (NaN) the first k values seed the buffer and the threshold
     * is strict (a later index loses a tie). With a bound, every value ≥ bound is a candidate until
     * the first cut; returns false when fewer than k values reach the bound.
     */
    private boolean threshold(float[] x, int off, int n, int k, int[] idx, int idxOff, float[] val, int valOff, float bound) {
        long[][] holder = TOPK_BUF.get();
        if (holder[0].length < 4 * k) holder[0] = new long[4 * k];
        long[] buf = holder[0];
        int cap = 4 * k, m = 0, i = 0;
        float thr;
        if (Float.isNaN(bound)) {
            thr = Float.POSITIVE_INFINITY;
            for (; i < k; i++) {
                buf[m++] = key(x[off + i], i);
                thr = Math.min(thr, x[off + i]);
            }
        } else {
            // inclusive phase: values equal to the bound may belong to the top k
            thr = bound;
            for (; i + L <= n && m + L <= cap; i += L) {
                long bits = FloatVector.fromArray(S, x, off + i).compare(VectorOperators.GE, thr).toLong();
                while (bits != 0) {
                    int l = Long.numberOfTrailingZeros(bits);
                    bits &= bits - 1;
                    buf[m++] = key(x[off + i + l], i + l);
                }
                if (m >= k) { i += L; break; }
            }
            if (m < k) {
                for (; i < n && m < cap; i++) if (x[off + i] >= thr) buf[m++] = key(x[off + i], i);
                if (m < k) return false;
            }
            // keep the best k; buf[k-1] is then the k-th best so far and only strictly larger values enter
            select(buf, m, k);
            m = k;
            thr = valueOfKey(buf[k - 1]);
        }
        for (; i + L <= n; i += L) {
            FloatVector xv = FloatVector.fromArray(S, x, off + i);
            long bits = xv.compare(VectorOperators.GT, thr).toLong();
            while (bits != 0) {
                int l = Long.numberOfTrailingZeros(bits);
                bits &= bits - 1;
                float v = x[off + i + l];
                if (!(v > thr)) continue; // the threshold may have risen within this vector
                buf[m++] = key(v, i + l);
                if (m == cap) { select(buf, m, k); m = k; thr = valueOfKey(buf[k - 1]); }
            }
        }
        for (; i < n; i++) {
            float v = x[off + i];
            if (v > thr) {
                buf[m++] = key(v, i);
                if (m == cap) { select(buf, m, k); m = k; thr = valueOfKey(buf[k - 1]); }
            }
        }
        if (m > k) select(buf, m, k);
        if (m < k) return false;
        if (k <= 64) { rankSort(buf, k, holder[1], x, off, idx, idxOff, val, valOff); return true; }
        java.util.Arrays.sort(buf, 0, k);
        for (int q = 0; q < k; q++) {
            int id = (int) buf[q];
            idx[idxOff + q] = id;
            val[valOff + q] = x[off + id];
        }
        return true;
    }

    /** Up to this length the top-k is a radix select; longer inputs use the threshold scan. */
    static final int RADIX_MAX_N = 4096;

    /** Per-thread buffers of the radix select (grown on demand, never per call). */
    private static final class RadixScratch {
        int[] key = new int[0], cand = new int[0];
        final int[] hist = new int[4 * 256];
        long[] out = new long[0];
        final long[] rankL = new long[64];
    }

    private static final ThreadLocal<RadixScratch> RADIX = ThreadLocal.withInitial(RadixScratch::new);

    /**
     * Writes the k distinct keys of out in ascending order as (index, value). Each key's rank is the
     * count of smaller keys, found with branch-free vector compares instead of a mispredicting sort.
     */
    private static void rankSort(long[] out, int k, long[] rank, float[] x, int off, int[] idx, int idxOff, float[] val, int valOff) {
        java.util.Arrays.fill(rank, 0, k, 0);
        int kb = LS.loopBound(k);
        for (int j = 0; j < k; j++) {
            long kj = out[j];
            int a = 0;
            for (; a < kb; a += LS.length()) {
                LongVector r = LongVector.fromArray(LS, rank, a);
                r.add(1L, LongVector.fromArray(LS, out, a).compare(VectorOperators.GT, kj)).intoArray(rank, a);
            }
            for (; a < k; a++) rank[a] += out[a] > kj ? 1 : 0;
        }
        for (int a = 0; a < k; a++) {
            int r = (int) rank[a], id = (int) out[a];
            idx[idxOff + r] = id;
            val[valOff + r] = x[off + id];
        }
    }

    /**
     * Radix-select top-k. Each value becomes an unsigned int key whose ascending order is descending
     * value (-0.0 folded into +0.0); four 8-bit digit passes, most significant first, narrow the
     * candidates down to the bucket holding the k-th key, keeping candidates in index order. The
     * result is every key below the k-th plus the first (lowest index) of those equal to it, sorted.
     * Only integer counts and compares: the result does not depend on thread count or JIT state.
     */
    private static void radixTopK(float[] x, int off, int n, int k, int[] idx, int idxOff, float[] val, int valOff) {
        RadixScratch sc = RADIX.get();
        if (sc.key.length < n) { sc.key = new int[n]; sc.cand = new int[n]; }
        if (sc.out.length < k + 1) sc.out = new long[k + 1];
        int[] u = sc.key, cand = sc.cand, hist = sc.hist;
        long[] out = sc.out;
        int nb = S.loopBound(n), i0 = 0;
        for (; i0 < nb; i0 += L) {
            IntVector bits = FloatVector.fromArray(S, x, off + i0).add(0.0f).reinterpretAsInts();
            IntVector flip = bits.lanewise(VectorOperators.ASHR, 31).or(0x80000000);
            bits.lanewise(VectorOperators.XOR, flip).not().intoArray(u, i0);
        }
        for (; i0 < n; i0++) {
            int bits = Float.floatToRawIntBits(x[off + i0] + 0.0f);
            u[i0] = ~(bits ^ ((bits >> 31) | 0x80000000));
        }
        // first digit over all n: four interleaved histograms break the increment dependency chains
        java.util.Arrays.fill(hist, 0);
        int i4 = n & ~3;
        for (int i = 0; i < i4; i += 4) {
            hist[u[i] >>> 24]++;
            hist[256 + (u[i + 1] >>> 24)]++;
            hist[512 + (u[i + 2] >>> 24)]++;
            hist[768 + (u[i + 3] >>> 24)]++;
        }
        for (int i = i4; i < n; i++) hist[u[i] >>> 24]++;
        int need = k, b = 0;
        while (true) {
            int h = hist[b] + hist[256 + b] + hist[512 + b] + hist[768 + b];
            if (h >= need) break;
            need -= h;
            b++;
        }
        int c = 0;
        for (int i = 0; i < n; i++) { cand[c] = i; c += (u[i] >>> 24) == b ? 1 : 0; }
        int shift = 24;
        // later digits over the candidates only, until every remaining candidate is taken
        while (c > need && shift > 0) {
            shift -= 8;
            java.util.Arrays.fill(hist, 0, 256, 0);
            for (int q = 0; q < c; q++) hist[(u[cand[q]] >>> shift) & 255]++;
            b = 0;
            while (hist[b] < need) need -= hist[b++];
            int c2 = 0;
            for (int q = 0; q < c; q++) { int i = cand[q]; cand[c2] = i; c2 += ((u[i] >>> shift) & 255) == b ? 1 : 0; }
            c = c2;
        }
        // candidates share the key bits above `shift` with the k-th key; all smaller prefixes are in
        int lim = (u[cand[0]] >>> shift) << shift, m = 0, i = 0;
        for (; i < nb; i += L) {
            if (!IntVector.fromArray(IS, u, i).compare(VectorOperators.ULT, lim).anyTrue()) continue;
            for (int l = i; l < i + L; l++) {
                out[m] = ((long) (u[l] ^ 0x80000000) << 32) | l;
                m += Integer.compareUnsigned(u[l], lim) < 0 ? 1 : 0;
            }
        }
        for (; i < n; i++) {
            out[m] = ((long) (u[i] ^ 0x80000000) << 32) | i;
            m += Integer.compareUnsigned(u[i], lim) < 0 ? 1 : 0;
        }
        for (int q = 0; q < need; q++) { i = cand[q]; out[m++] = ((long) (u[i] ^ 0x80000000) << 32) | i; }
        if (k <= 64) { rankSort(out, k, sc.rankL, x, off, idx, idxOff, val, valOff); return; }
        java.util.Arrays.sort(out, 0, k);
        for (int q = 0; q < k; q++) {
            int id = (int) out[q];
            idx[idxOff + q] = id;
            val[valOff + q] = x[off + id];
        }
    }

    /** out[o + c·cw + j] += w[e·C + c] · table row at byte offset base, chunk c (core c weights the c-th chunk). */
    private static void addWeightedRow(MemorySegment table, long base, int C, int cw, int bound, float[] w, int e,
                                       float[] out, int o) {
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

    /** out[e·C + c] = ⟨table row at byte offset base, chunk c; vec[o + c·cw ...]⟩, lanes summed in lane order. */
    private static void dotRow(MemorySegment table, long base, int C, int cw, int bound, float[] vec, int o,
                               float[] out, int e, float[] tmp) {
        for (int c = 0; c < C; c++) {
            int c0 = c * cw, j = 0;
            FloatVector acc = FloatVector.zero(S);
            for (; j < bound; j += L) {
                FloatVector tv = FloatVector.fromMemorySegment(S, table, base + (long) (c0 + j) * Float.BYTES, NO);
                acc = tv.fma(FloatVector.fromArray(S, vec, o + c0 + j), acc);
            }
            float sum = VectorKernels.sumLanes(acc, tmp); // lane order: independent of JIT state
            for (; j < cw; j++) sum += table.getAtIndex(F, base / Float.BYTES + c0 + j) * vec[o + c0 + j];
            out[e * C + c] = sum;
        }
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
                    addWeightedRow(table, (long) row[e] * width * Float.BYTES, C, cw, bound, w, e,
                            out, t * stride + (col == null ? 0 : col[e]));
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
            float[] tmp = VectorKernels.REDUCE.get();
            for (int t = t0; t < t1; t++)
                for (int jj = 0; jj < R; jj++) {
                    int e = t * R + jj;
                    dotRow(table, (long) row[e] * width * Float.BYTES, C, cw, bound, vec,
                            t * stride + (col == null ? 0 : col[e]), out, e, tmp);
                }
        });
    }

    @Override
    public void gatherWeightedSumRows(int nTok, int R, int C, int width, MemorySegment table, int[] order, int[] row, int[] col,
                                      float[] w, float[] out, int stride) {
        int cw = width / C, m = nTok * R;
        if (cw < L) { super.gatherWeightedSumRows(nTok, R, C, width, table, order, row, col, w, out, stride); return; }
        int bound = S.loopBound(cw);
        Parallel.forRange(nTok, 8, (t0, t1) -> {
            int e0 = t0 * R, e1 = t1 * R;
            for (int q = 0; q < m; q++) {
                int e = order[q];
                if (e < e0 || e >= e1) continue;
                addWeightedRow(table, (long) row[e] * width * Float.BYTES, C, cw, bound, w, e,
                        out, (e / R) * stride + (col == null ? 0 : col[e]));
            }
        });
    }

    @Override
    public void gatherDotRows(int nSeg, int[] segStart, int[] segRow, int[] order, int R, int C, int width,
                              MemorySegment table, int[] col, float[] vec, int stride, float[] out) {
        int cw = width / C;
        if (cw < L) { super.gatherDotRows(nSeg, segStart, segRow, order, R, C, width, table, col, vec, stride, out); return; }
        int bound = S.loopBound(cw);
        Parallel.forRange(nSeg, 16, (s0, s1) -> {
            float[] tmp = VectorKernels.REDUCE.get();
            for (int s = s0; s < s1; s++) {
                long base = (long) segRow[s] * width * Float.BYTES;
                for (int q = segStart[s]; q < segStart[s + 1]; q++) {
                    int e = order[q];
                    dotRow(table, base, C, cw, bound, vec, (e / R) * stride + (col == null ? 0 : col[e]), out, e, tmp);
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
