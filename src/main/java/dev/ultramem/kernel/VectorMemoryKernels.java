package dev.ultramem.kernel;

import dev.ultramem.core.Bf16;
import dev.ultramem.core.Parallel;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * Vector API path of {@link MemoryKernels}. Top-k of short inputs counts over integer keys;
 * longer inputs skip whole vectors whose lanes are all below the current k-th value; gathers and scatters stream each value
 * row with full-width FMAs. Same results as the scalar reference up to float summation order.
 */
public class VectorMemoryKernels extends ScalarMemoryKernels {

    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final VectorSpecies<Integer> IS = S.withLanes(int.class);
    private static final ByteOrder NO = ByteOrder.nativeOrder();
    /** L bf16 values: half the float vector's bits, widened into one float vector. */
    private static final VectorSpecies<Short> HS = VectorSpecies.of(short.class, VectorShape.forBitSize(S.vectorBitSize() / 2));

    @Override public String name() { return "vector"; }

    /** Per-thread candidate buffer of the top-k (grown on demand, never per call). */
    private static final ThreadLocal<long[][]> TOPK_BUF = ThreadLocal.withInitial(() -> new long[][]{new long[128]});

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
     * Inputs of up to {@link #SHORT_N} values go to {@link #countTopK} (starting from the block-maximum
     * bound when k is at most an eighth of n). Longer inputs: threshold top-k, where candidates strictly
     * above the current k-th value (later indices lose ties) go into a buffer of 4k; a full buffer is cut
     * back to its best k by quickselect, which raises the threshold; the final k are sorted.
     * Whole vectors below the threshold are skipped with one compare.
     */
    @Override
    public void topK(float[] x, int off, int n, int k, int[] idx, int idxOff, float[] val, int valOff) {
        if (k <= 0 || k > n) throw new IllegalArgumentException("topK: need 0 < k <= n, got k=" + k + " n=" + n);
        if (n <= SHORT_N) { countTopK(x, off, n, k, idx, idxOff, val, valOff, 8 * k > n ? Float.NaN : blockMaxBound(x, off, n, k)); return; }
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
        if (n <= SHORT_N) { countTopK(x, off, n, k, idx, idxOff, val, valOff, lowerBound); return; }
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
        // the high word of a candidate is its sortKey, the low word its index
        CountScratch sc = COUNT.get();
        if (sc.okey.length < k) { sc.okey = new int[k]; sc.oidx = new int[k]; }
        for (int q = 0; q < k; q++) { sc.okey[q] = (int) (buf[q] >>> 32); sc.oidx[q] = (int) buf[q]; }
        rankSort(sc.okey, sc.oidx, k, x, off, idx, idxOff, val, valOff);
        return true;
    }

    /** Order-preserving signed key: ascending key = descending value (-0.0 folded into +0.0). */
    private static int sortKey(float v) {
        int bits = Float.floatToRawIntBits(v + 0.0f);
        return bits ^ (~(bits >> 31) | 0x80000000);
    }

    /**
     * For each 8-lane compare mask, the lane permutation that moves the selected lanes to the front
     * in lane order (a vector "compress" from one table lookup and one permute, without branches).
     */
    private static final int[] COMPRESS = compressTable();

    private static int[] compressTable() {
        if (L != 8) return null;
        int[] t = new int[256 * 8];
        for (int mask = 0; mask < 256; mask++) {
            int c = 0;
            for (int l = 0; l < 8; l++) if ((mask >>> l & 1) != 0) t[mask * 8 + c++] = l;
            for (int l = c; l < 8; l++) t[mask * 8 + l] = l; // unused lanes: any valid index
        }
        return t;
    }

    /**
     * Top-k of a short input by counting. The candidates (the values ≥ bound, all of them when the
     * bound is NaN or infinite or admits fewer than k) become signed keys, ascending = descending value, kept in
     * index order. A bisection over the key range finds the smallest T with at least k keys ≤ T,
     * each step one vector count over the candidates; it stops as soon as a step counts exactly k.
     * The result is every key below T plus the first (lowest index) of those equal to it, sorted.
     * Only integer compares and counts: the result does not depend on thread count or JIT state.
     */
    private static void countTopK(float[] x, int off, int n, int k, int[] idx, int idxOff, float[] val, int valOff, float bound) {
        CountScratch sc = COUNT.get();
        if (sc.key.length < n + L) { sc.key = new int[n + L]; sc.cand = new int[n + L]; }
        if (sc.okey.length < n + L) { sc.okey = new int[n + L]; sc.oidx = new int[n + L]; }
        int[] key = sc.key, cand = sc.cand;
        int nb = S.loopBound(n), c = 0, i = 0;
        boolean all = !(bound > Float.NEGATIVE_INFINITY && bound < Float.POSITIVE_INFINITY);
        if (!all) {
            if (COMPRESS != null) {
                IntVector iota = IntVector.zero(IS).addIndex(1);
                for (; i < nb; i += L) {
                    FloatVector xv = FloatVector.fromArray(S, x, off + i);
                    VectorMask<Float> ge = xv.compare(VectorOperators.GE, bound);
                    int bits = (int) ge.toLong();
                    if (bits == 0) continue;
                    VectorShuffle<Integer> sh = IntVector.fromArray(IS, COMPRESS, bits * 8).toShuffle();
                    keys(xv).rearrange(sh).intoArray(key, c);
                    iota.add(i).rearrange(sh).intoArray(cand, c);
                    c += Integer.bitCount(bits);
                }
            }
            for (; i < n; i++) if (x[off + i] >= bound) { key[c] = sortKey(x[off + i]); cand[c++] = i; }
            all = c < k; // the bound was above the k-th value
        }
        if (all) {
            for (i = 0; i < nb; i += L) keys(FloatVector.fromArray(S, x, off + i)).intoArray(key, i);
            for (; i < n; i++) key[i] = sortKey(x[off + i]);
            for (i = 0; i < n; i++) cand[i] = i;
            c = n;
        }
        int cb = IS.loopBound(c);
        IntVector vmin = IntVector.broadcast(IS, Integer.MAX_VALUE), vmax = IntVector.broadcast(IS, Integer.MIN_VALUE);
        for (i = 0; i < cb; i += L) {
            IntVector kv = IntVector.fromArray(IS, key, i);
            vmin = vmin.min(kv);
            vmax = vmax.max(kv);
        }
        int lo = vmin.reduceLanes(VectorOperators.MIN), hi = vmax.reduceLanes(VectorOperators.MAX);
        for (; i < c; i++) { lo = Math.min(lo, key[i]); hi = Math.max(hi, key[i]); }
        // invariant: at least k keys ≤ b, fewer than k keys ≤ a − 1
        long a = lo, b = hi;
        boolean exact = c == k;
        while (a < b && !exact) {
            long mid = (a + b) >> 1;
            int t = (int) mid, cnt = 0;
            IntVector tv = IntVector.broadcast(IS, t);
            for (i = 0; i < cb; i += L) cnt += IntVector.fromArray(IS, key, i).compare(VectorOperators.LE, tv).trueCount();
            for (; i < c; i++) cnt += key[i] <= t ? 1 : 0;
            if (cnt >= k) { b = mid; exact = cnt == k; } else a = mid + 1;
        }
        // exactly k keys ≤ T, or fewer than k below T and the rest from the ties at T in index order
        int[] okey = sc.okey, oidx = sc.oidx;
        int m = compressBelow(key, cand, c, exact && b < Integer.MAX_VALUE ? (int) b + 1 : (int) b, okey, oidx);
        for (int q = 0; q < c && m < k; q++) if (key[q] == (int) b) { okey[m] = key[q]; oidx[m++] = cand[q]; }
        rankSort(okey, oidx, k, x, off, idx, idxOff, val, valOff);
    }

    /** Copies the (key, index) pairs with key &lt; t, in order, to okey/oidx; returns their number. */
    private static int compressBelow(int[] key, int[] cand, int c, int t, int[] okey, int[] oidx) {
        int m = 0, q = 0;
        if (COMPRESS != null) {
            IntVector tv = IntVector.broadcast(IS, t);
            for (int cb = IS.loopBound(c); q < cb; q += L) {
                IntVector kv = IntVector.fromArray(IS, key, q);
                int bits = (int) kv.compare(VectorOperators.LT, tv).toLong();
                if (bits == 0) continue;
                VectorShuffle<Integer> sh = IntVector.fromArray(IS, COMPRESS, bits * 8).toShuffle();
                kv.rearrange(sh).intoArray(okey, m);
                IntVector.fromArray(IS, cand, q).rearrange(sh).intoArray(oidx, m);
                m += Integer.bitCount(bits);
            }
        }
        for (; q < c; q++) {
            okey[m] = key[q];
            oidx[m] = cand[q];
            m += key[q] < t ? 1 : 0;
        }
        return m;
    }

    private static IntVector keys(FloatVector v) {
        IntVector bits = v.add(0.0f).reinterpretAsInts();
        return bits.lanewise(VectorOperators.XOR, bits.lanewise(VectorOperators.ASHR, 31).not().or(0x80000000));
    }

    /**
     * Writes the k selected (key, index) pairs, in any order, in ascending key order, equal keys by
     * ascending index. Each pair's rank is a vector count of smaller keys, so there is no
     * mispredicting sort. Distinct keys give distinct ranks; when two ranks collide (equal keys,
     * rare) the ranks are recounted with each key's equals of lower index added.
     */
    private static void rankSort(int[] okey, int[] oidx, int k, float[] x, int off, int[] idx, int idxOff, float[] val, int valOff) {
        if (k > 64) { // quadratic counting no longer pays: sort (key, index) pairs
            CountScratch sc = COUNT.get();
            if (sc.pairs.length < k) sc.pairs = new long[k];
            long[] pairs = sc.pairs;
            for (int a = 0; a < k; a++) pairs[a] = ((long) okey[a] << 32) | oidx[a];
            java.util.Arrays.sort(pairs, 0, k);
            for (int a = 0; a < k; a++) { idx[idxOff + a] = (int) pairs[a]; val[valOff + a] = x[off + (int) pairs[a]]; }
            return;
        }
        int kb = IS.loopBound(k);
        long used = 0;
        boolean collision = false;
        for (int a = 0; a < k; a++) {
            int ka = okey[a], r = 0, j = 0;
            IntVector kv = IntVector.broadcast(IS, ka);
            for (; j < kb; j += L) r += IntVector.fromArray(IS, okey, j).compare(VectorOperators.LT, kv).trueCount();
            for (; j < k; j++) r += okey[j] < ka ? 1 : 0;
            collision |= (used & (1L << r)) != 0;
            used |= 1L << r;
            idx[idxOff + r] = oidx[a];
            val[valOff + r] = x[off + oidx[a]];
        }
        if (!collision) return;
        for (int a = 0; a < k; a++) {
            int ka = okey[a], r = 0;
            for (int j = 0; j < k; j++) r += okey[j] < ka || (okey[j] == ka && oidx[j] < oidx[a]) ? 1 : 0;
            idx[idxOff + r] = oidx[a];
            val[valOff + r] = x[off + oidx[a]];
        }
    }

    /** Up to this length the top-k counts (countTopK); longer inputs use the threshold scan. */
    static final int SHORT_N = 4096;

    /** Per-thread buffers of the counting top-k (grown on demand, never per call). */
    private static final class CountScratch {
        int[] key = new int[0], cand = new int[0], okey = new int[0], oidx = new int[0];
        long[] pairs = new long[0];
    }

    private static final ThreadLocal<CountScratch> COUNT = ThreadLocal.withInitial(CountScratch::new);

    /** Same arithmetic as the scalar reference (a product, then one FMA per further rank): bit-identical. */
    @Override
    public void lowRankProduct(int m, int n, int r, float[] a, float[] bt, float[] out) {
        if (n == 4 * L) { // one grid row is four vectors: straight line, the same arithmetic
            for (int i = 0; i < m; i++) {
                FloatVector a0 = FloatVector.broadcast(S, a[i * r]);
                FloatVector g0 = FloatVector.fromArray(S, bt, 0).mul(a0), g1 = FloatVector.fromArray(S, bt, L).mul(a0),
                        g2 = FloatVector.fromArray(S, bt, 2 * L).mul(a0), g3 = FloatVector.fromArray(S, bt, 3 * L).mul(a0);
                for (int s = 1; s < r; s++) {
                    FloatVector as = FloatVector.broadcast(S, a[i * r + s]);
                    int so = s * n;
                    g0 = FloatVector.fromArray(S, bt, so).fma(as, g0);
                    g1 = FloatVector.fromArray(S, bt, so + L).fma(as, g1);
                    g2 = FloatVector.fromArray(S, bt, so + 2 * L).fma(as, g2);
                    g3 = FloatVector.fromArray(S, bt, so + 3 * L).fma(as, g3);
                }
                int o = i * n;
                g0.intoArray(out, o);
                g1.intoArray(out, o + L);
                g2.intoArray(out, o + 2 * L);
                g3.intoArray(out, o + 3 * L);
            }
            return;
        }
        int nb = S.loopBound(n);
        for (int i = 0; i < m; i++) {
            int j = 0;
            for (; j < nb; j += L) {
                FloatVector g = FloatVector.fromArray(S, bt, j).mul(a[i * r]);
                for (int s = 1; s < r; s++) g = FloatVector.fromArray(S, bt, s * n + j).fma(FloatVector.broadcast(S, a[i * r + s]), g);
                g.intoArray(out, i * n + j);
            }
            for (; j < n; j++) {
                float g = a[i * r] * bt[j];
                for (int s = 1; s < r; s++) g = Math.fma(a[i * r + s], bt[s * n + j], g);
                out[i * n + j] = g;
            }
        }
    }

    // lane permutations i -> i xor 2^s for the pairwise lane sum (constants, so each is one permute)
    /** Whether {@link #pairwiseSum} has its permute tree for this lane count (4, 8 or 16 lanes). */
    private static final boolean PAIRWISE = L == 4 || L == 8 || L == 16;
    private static final VectorShuffle<Float> X1 = PAIRWISE ? VectorShuffle.fromOp(S, i -> i ^ 1) : null,
            X2 = PAIRWISE ? VectorShuffle.fromOp(S, i -> i ^ 2) : null,
            X4 = PAIRWISE && L >= 8 ? VectorShuffle.fromOp(S, i -> i ^ 4) : null,
            X8 = PAIRWISE && L >= 16 ? VectorShuffle.fromOp(S, i -> i ^ 8) : null;

    /**
     * Sum of the lanes as a fixed pairwise tree of exact lanewise adds: unlike reduceLanes(ADD) the
     * order is the same in compiled and interpreted code, and it needs no round trip through memory.
     * Other lane counts (2, or more than 16) sum the lanes in lane order.
     */
    static float pairwiseSum(FloatVector v) {
        if (!PAIRWISE) return VectorKernels.sumLanes(v, VectorKernels.REDUCE.get());
        if (L >= 16) v = v.add(v.rearrange(X8));
        if (L >= 8) v = v.add(v.rearrange(X4));
        v = v.add(v.rearrange(X2));
        return v.add(v.rearrange(X1)).lane(0);
    }

    /** Each vector of out stays in a register while all m rows are added to it. */
    @Override
    public void rowsWeightedSum(int m, int dim, float[] w, int wOff, int wStride, float[] rows, int rowsOff, int[] idx, int idxOff,
                                float[] out, int outOff) {
        int j = 0;
        for (int db = S.loopBound(dim); j < db; j += L) {
            FloatVector acc = FloatVector.fromArray(S, out, outOff + j);
            for (int i = 0; i < m; i++)
                acc = FloatVector.fromArray(S, rows, rowsOff + idx[idxOff + i] * dim + j).fma(FloatVector.broadcast(S, w[wOff + i * wStride]), acc);
            acc.intoArray(out, outOff + j);
        }
        for (; j < dim; j++) {
            float acc = out[outOff + j];
            for (int i = 0; i < m; i++) acc = Math.fma(w[wOff + i * wStride], rows[rowsOff + idx[idxOff + i] * dim + j], acc);
            out[outOff + j] = acc;
        }
    }

    @Override
    public void scatterRows(int m, int dim, float[] w, int wOff, int wStride, float[] src, int srcOff, int[] idx, int idxOff,
                            float[] rows, int rowsOff) {
        if (dim == 4 * L) { // the source row stays in registers; each target row is four straight-line updates
            FloatVector s0 = FloatVector.fromArray(S, src, srcOff), s1 = FloatVector.fromArray(S, src, srcOff + L),
                    s2 = FloatVector.fromArray(S, src, srcOff + 2 * L), s3 = FloatVector.fromArray(S, src, srcOff + 3 * L);
            for (int i = 0; i < m; i++) {
                FloatVector gv = FloatVector.broadcast(S, w[wOff + i * wStride]);
                int ro = rowsOff + idx[idxOff + i] * dim;
                s0.fma(gv, FloatVector.fromArray(S, rows, ro)).intoArray(rows, ro);
                s1.fma(gv, FloatVector.fromArray(S, rows, ro + L)).intoArray(rows, ro + L);
                s2.fma(gv, FloatVector.fromArray(S, rows, ro + 2 * L)).intoArray(rows, ro + 2 * L);
                s3.fma(gv, FloatVector.fromArray(S, rows, ro + 3 * L)).intoArray(rows, ro + 3 * L);
            }
            return;
        }
        int db = S.loopBound(dim);
        for (int i = 0; i < m; i++) {
            float g = w[wOff + i * wStride];
            FloatVector gv = FloatVector.broadcast(S, g);
            int ro = rowsOff + idx[idxOff + i] * dim, j = 0;
            for (; j < db; j += L)
                FloatVector.fromArray(S, src, srcOff + j).fma(gv, FloatVector.fromArray(S, rows, ro + j)).intoArray(rows, ro + j);
            for (; j < dim; j++) rows[ro + j] = Math.fma(g, src[srcOff + j], rows[ro + j]);
        }
    }

    /** One vector accumulator per row, its lanes summed pairwise. */
    @Override
    public void rowDots(int m, int parts, int dim, float[] q, int qOff, float[] rows, int rowsOff, int[] idx, int idxOff,
                        float[] out, int outOff) {
        if (dim < L) { super.rowDots(m, parts, dim, q, qOff, rows, rowsOff, idx, idxOff, out, outOff); return; }
        if (dim == 4 * L) { // the query part stays in registers; the same FMA chain as the loop below, then pairwise
            for (int p = 0; p < parts; p++) {
                int qo = qOff + p * dim;
                FloatVector q0 = FloatVector.fromArray(S, q, qo), q1 = FloatVector.fromArray(S, q, qo + L),
                        q2 = FloatVector.fromArray(S, q, qo + 2 * L), q3 = FloatVector.fromArray(S, q, qo + 3 * L);
                for (int i = 0; i < m; i++) {
                    int ro = rowsOff + (idx[idxOff + i] * parts + p) * dim;
                    FloatVector acc = q0.mul(FloatVector.fromArray(S, rows, ro));
                    acc = q1.fma(FloatVector.fromArray(S, rows, ro + L), acc);
                    acc = q2.fma(FloatVector.fromArray(S, rows, ro + 2 * L), acc);
                    acc = q3.fma(FloatVector.fromArray(S, rows, ro + 3 * L), acc);
                    out[outOff + i * parts + p] = pairwiseSum(acc);
                }
            }
            return;
        }
        int db = S.loopBound(dim);
        for (int i = 0; i < m; i++)
            for (int p = 0; p < parts; p++) {
                int ro = rowsOff + (idx[idxOff + i] * parts + p) * dim, qo = qOff + p * dim, j = 0;
                FloatVector acc = FloatVector.zero(S);
                for (; j < db; j += L) acc = FloatVector.fromArray(S, q, qo + j).fma(FloatVector.fromArray(S, rows, ro + j), acc);
                float s = pairwiseSum(acc);
                for (; j < dim; j++) s = Math.fma(q[qo + j], rows[ro + j], s);
                out[outOff + i * parts + p] = s;
            }
    }

    // Row chunks of exactly 4 or 8 vectors (value and pre-value rows as the presets size them) take
    // straight-line bodies in the gather and the scatter: with per-chunk loops of a few iterations the
    // loop control costs about as much as the arithmetic. The gathered dot keeps its loop: one FMA chain
    // per chunk was faster than a blocked body when tried.

    /** Whether a chunk of cw floats is one of the straight-line shapes (4 or 8 whole vectors). */
    private static boolean blocked(int cw) { return cw == 4 * L || cw == 8 * L; }

    /** out[o, o+4L) += w·table[tb, ...) (tb in bytes). */
    private static void fma4(MemorySegment table, long tb, FloatVector wv, float[] out, int o) {
        FloatVector.fromMemorySegment(S, table, tb, NO).fma(wv, FloatVector.fromArray(S, out, o)).intoArray(out, o);
        FloatVector.fromMemorySegment(S, table, tb + 4L * L, NO).fma(wv, FloatVector.fromArray(S, out, o + L)).intoArray(out, o + L);
        FloatVector.fromMemorySegment(S, table, tb + 8L * L, NO).fma(wv, FloatVector.fromArray(S, out, o + 2 * L)).intoArray(out, o + 2 * L);
        FloatVector.fromMemorySegment(S, table, tb + 12L * L, NO).fma(wv, FloatVector.fromArray(S, out, o + 3 * L)).intoArray(out, o + 3 * L);
    }

    /** grad[gb, ...) += w·vec[o, o+4L) (gb in bytes). */
    private static void fma4Into(float[] vec, int o, FloatVector wv, MemorySegment grad, long gb) {
        FloatVector.fromArray(S, vec, o).fma(wv, FloatVector.fromMemorySegment(S, grad, gb, NO)).intoMemorySegment(grad, gb, NO);
        FloatVector.fromArray(S, vec, o + L).fma(wv, FloatVector.fromMemorySegment(S, grad, gb + 4L * L, NO)).intoMemorySegment(grad, gb + 4L * L, NO);
        FloatVector.fromArray(S, vec, o + 2 * L).fma(wv, FloatVector.fromMemorySegment(S, grad, gb + 8L * L, NO)).intoMemorySegment(grad, gb + 8L * L, NO);
        FloatVector.fromArray(S, vec, o + 3 * L).fma(wv, FloatVector.fromMemorySegment(S, grad, gb + 12L * L, NO)).intoMemorySegment(grad, gb + 12L * L, NO);
    }

    /** The weighted chunk c of a blocked row into out (see {@link #blocked}). */
    private static void addChunk(MemorySegment table, long base, int cw, int c, float wc, float[] out, int o) {
        FloatVector wv = FloatVector.broadcast(S, wc);
        long tb = base + (long) c * cw * Float.BYTES;
        fma4(table, tb, wv, out, o + c * cw);
        if (cw == 8 * L) fma4(table, tb + 16L * L, wv, out, o + c * cw + 4 * L);
    }

    /** out[o + c·cw + j] += w[e·C + c] · table row at byte offset base, chunk c (core c weights the c-th chunk). */
    private static void addWeightedRow(MemorySegment table, long base, int C, int cw, int bound, float[] w, int e,
                                       float[] out, int o) {
        if (blocked(cw) && C <= 2) {
            addChunk(table, base, cw, 0, w[e * C], out, o);
            if (C == 2) addChunk(table, base, cw, 1, w[e * C + 1], out, o);
            return;
        }
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

    /** The transpose of {@link #addWeightedRow}: chunk c of the row at byte offset base += w[e·C + c] · vec[o + c·cw ...]. */
    private static void addToRow(float[] vec, int o, int C, int cw, int bound, float[] w, int e, MemorySegment row, long base) {
        if (blocked(cw)) {
            for (int c = 0; c < C; c++) {
                FloatVector wv = FloatVector.broadcast(S, w[e * C + c]);
                long gb = base + (long) c * cw * Float.BYTES;
                fma4Into(vec, o + c * cw, wv, row, gb);
                if (cw == 8 * L) fma4Into(vec, o + c * cw + 4 * L, wv, row, gb + 16L * L);
            }
            return;
        }
        for (int c = 0; c < C; c++) {
            int c0 = c * cw, j = 0;
            FloatVector wv = FloatVector.broadcast(S, w[e * C + c]);
            for (; j < bound; j += L) {
                long bo = base + (long) (c0 + j) * Float.BYTES;
                FloatVector.fromArray(S, vec, o + c0 + j).fma(wv, FloatVector.fromMemorySegment(S, row, bo, NO)).intoMemorySegment(row, bo, NO);
            }
            for (; j < cw; j++) {
                long gi = base / Float.BYTES + c0 + j;
                row.setAtIndex(F, gi, row.getAtIndex(F, gi) + w[e * C + c] * vec[o + c0 + j]);
            }
        }
    }

    /** out[e·C + c] = ⟨table row at byte offset base, chunk c; vec[o + c·cw ...]⟩, lanes summed pairwise. */
    private static void dotRow(MemorySegment table, long base, int C, int cw, int bound, float[] vec, int o,
                               float[] out, int e) {
        for (int c = 0; c < C; c++) {
            int c0 = c * cw, j = 0;
            FloatVector acc = FloatVector.zero(S);
            for (; j < bound; j += L) {
                FloatVector tv = FloatVector.fromMemorySegment(S, table, base + (long) (c0 + j) * Float.BYTES, NO);
                acc = tv.fma(FloatVector.fromArray(S, vec, o + c0 + j), acc);
            }
            float sum = pairwiseSum(acc); // a fixed order: independent of JIT state
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
            for (int t = t0; t < t1; t++)
                for (int jj = 0; jj < R; jj++) {
                    int e = t * R + jj;
                    dotRow(table, (long) row[e] * width * Float.BYTES, C, cw, bound, vec,
                            t * stride + (col == null ? 0 : col[e]), out, e);
                }
        });
    }

    @Override
    public void gatherWeightedSumRows(int nTok, int R, int C, int width, MemorySegment table, int[] order, int[] row, int[] col,
                                      float[] w, float[] out, int stride) {
        if (width / C < L) { super.gatherWeightedSumRows(nTok, R, C, width, table, order, row, col, w, out, stride); return; }
        gatherRows(false, nTok, R, C, width, table, order, row, col, w, out, stride);
    }

    /** The row-ordered gather of a float32 or bf16 table (the storage branch is the same for every entry). */
    private static void gatherRows(boolean bf16, int nTok, int R, int C, int width, MemorySegment table, int[] order, int[] row,
                                   int[] col, float[] w, float[] out, int stride) {
        int cw = width / C, m = nTok * R, bound = S.loopBound(cw);
        Parallel.forRange(nTok, 8, (t0, t1) -> {
            int e0 = t0 * R, e1 = t1 * R;
            for (int q = 0; q < m; q++) {
                int e = order[q];
                if (e < e0 || e >= e1) continue;
                int o = (e / R) * stride + (col == null ? 0 : col[e]);
                if (bf16) addWeightedRowBf16(table, (long) row[e] * width, C, cw, bound, w, e, out, o);
                else addWeightedRow(table, (long) row[e] * width * Float.BYTES, C, cw, bound, w, e, out, o);
            }
        });
    }

    @Override
    public void gatherDotRows(int nSeg, int[] segStart, int[] segRow, int[] order, int R, int C, int width,
                              MemorySegment table, int[] col, float[] vec, int stride, float[] out) {
        if (width / C < L) { super.gatherDotRows(nSeg, segStart, segRow, order, R, C, width, table, col, vec, stride, out); return; }
        dotRows(false, nSeg, segStart, segRow, order, R, C, width, table, col, vec, stride, out);
    }

    private static void dotRows(boolean bf16, int nSeg, int[] segStart, int[] segRow, int[] order, int R, int C, int width,
                                MemorySegment table, int[] col, float[] vec, int stride, float[] out) {
        int cw = width / C, bound = S.loopBound(cw);
        Parallel.forRange(nSeg, 16, (s0, s1) -> {
            for (int s = s0; s < s1; s++) {
                long row = segRow[s];
                for (int q = segStart[s]; q < segStart[s + 1]; q++) {
                    int e = order[q], o = (e / R) * stride + (col == null ? 0 : col[e]);
                    if (bf16) dotRowBf16(table, row * width, C, cw, bound, vec, o, out, e);
                    else dotRow(table, row * width * Float.BYTES, C, cw, bound, vec, o, out, e);
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
                // entries outermost (segments are short, so a loop over them per vector would mispredict
                // its exit every time); the row stays in L1 between entries. Per element the sum is still
                // grad + Σ over the segment's entries in order.
                for (int q = segStart[s]; q < segStart[s + 1]; q++) {
                    int e = order[q];
                    addToRow(vec, (e / R) * stride + (col == null ? 0 : col[e]), C, cw, bound, w, e, grad, base);
                }
            }
        });
    }

    // ---------------------------------------------------------------- bf16 tables

    /** L bf16 values at byte offset off, widened exactly: sign-extend to 32 bits, shift into the upper half. */
    private static FloatVector bf16(MemorySegment t, long off) {
        ShortVector h = ShortVector.fromMemorySegment(HS, t, off, NO);
        return ((IntVector) h.convertShape(VectorOperators.S2I, IS, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static float bf16At(MemorySegment t, long i) {
        return Bf16.toFloat(t.getAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT, i));
    }

    /** {@link #addWeightedRow} on a bf16 row at element offset base: one FMA per element, as the float32 kernel. */
    private static void addWeightedRowBf16(MemorySegment table, long base, int C, int cw, int bound, float[] w, int e,
                                           float[] out, int o) {
        for (int c = 0; c < C; c++) {
            float wc = w[e * C + c];
            FloatVector wv = FloatVector.broadcast(S, wc);
            int c0 = c * cw, j = 0;
            for (; j < bound; j += L) {
                FloatVector tv = bf16(table, (base + c0 + j) * 2);
                tv.fma(wv, FloatVector.fromArray(S, out, o + c0 + j)).intoArray(out, o + c0 + j);
            }
            for (; j < cw; j++) out[o + c0 + j] += wc * bf16At(table, base + c0 + j);
        }
    }

    /** {@link #dotRow} on a bf16 row: the same lane accumulators and the same fixed reduction. */
    private static void dotRowBf16(MemorySegment table, long base, int C, int cw, int bound, float[] vec, int o,
                                   float[] out, int e) {
        for (int c = 0; c < C; c++) {
            int c0 = c * cw, j = 0;
            FloatVector acc = FloatVector.zero(S);
            for (; j < bound; j += L) acc = bf16(table, (base + c0 + j) * 2).fma(FloatVector.fromArray(S, vec, o + c0 + j), acc);
            float sum = pairwiseSum(acc);
            for (; j < cw; j++) sum += bf16At(table, base + c0 + j) * vec[o + c0 + j];
            out[e * C + c] = sum;
        }
    }

    @Override
    public void gatherWeightedSumRowsBf16(int nTok, int R, int C, int width, MemorySegment table, int[] order, int[] row, int[] col,
                                          float[] w, float[] out, int stride) {
        if (width / C < L) { super.gatherWeightedSumRowsBf16(nTok, R, C, width, table, order, row, col, w, out, stride); return; }
        gatherRows(true, nTok, R, C, width, table, order, row, col, w, out, stride);
    }

    @Override
    public void gatherDotRowsBf16(int nSeg, int[] segStart, int[] segRow, int[] order, int R, int C, int width,
                                  MemorySegment table, int[] col, float[] vec, int stride, float[] out) {
        if (width / C < L) { super.gatherDotRowsBf16(nSeg, segStart, segRow, order, R, C, width, table, col, vec, stride, out); return; }
        dotRows(true, nSeg, segStart, segRow, order, R, C, width, table, col, vec, stride, out);
    }
}
