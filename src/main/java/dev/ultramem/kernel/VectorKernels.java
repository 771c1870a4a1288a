package dev.ultramem.kernel;

import dev.ultramem.core.Bf16;
import dev.ultramem.core.Parallel;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API fast path (the default). Every method of {@link Kernels} is overridden here.
 *
 * <p><b>GEMM</b> (all three layouts) lives in {@link VectorGemm}: a register-tiled micro-kernel on packed panels,
 * tile and cache blocks chosen per machine by {@link GemmPlan}, bit-identical results at any thread count.
 */
public class VectorKernels extends ScalarKernels {

    static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    static final int L = S.length();

    @Override public String name() { return "vector"; }

    /** The vector width, GEMM register tile and cache blocks chosen for this machine, for benchmark logs. */
    public static String gemmDescription() {
        return String.format("vector %d lanes, GEMM tile %dx%d (%d x %d floats), blocks KC %d MC %d NC %d", L,
                VectorGemm.MR, VectorGemm.NV, VectorGemm.MR, VectorGemm.NR, VectorGemm.KC, VectorGemm.MC, VectorGemm.NC);
    }

    // ------------------------------------------------------------------------------------------------ GEMM

    /** Error ≤ (K + 1)·2⁻²⁴·(Σₖ|aₖbₖ| + |C₀|) per element; bit-identical for every thread count ({@link VectorGemm}). */
    @Override
    public void gemmNT(int M, int N, int K, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff, boolean acc) {
        VectorGemm.gemm(VectorGemm.NT, M, N, K, a, aOff, b, bOff, c, cOff, acc);
    }

    /** Frozen NT weights are packed once into the micro-kernel's panels ({@link FrozenWeights}). */
    @Override public void freezeWeights(java.util.Collection<float[]> weights) { FrozenWeights.freeze(weights); }

    @Override public void thawWeights(java.util.Collection<float[]> weights) { FrozenWeights.thaw(weights); }

    /** Error ≤ (K + 1)·2⁻²⁴·(Σₖ|aₖbₖ| + |C₀|) per element; bit-identical for every thread count ({@link VectorGemm}). */
    @Override
    public void gemmNN(int M, int N, int K, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff, boolean acc) {
        VectorGemm.gemm(VectorGemm.NN, M, N, K, a, aOff, b, bOff, c, cOff, acc);
    }

    /** Error ≤ (K + 1)·2⁻²⁴·(Σₖ|aₖbₖ| + |C₀|) per element; bit-identical for every thread count ({@link VectorGemm}). */
    @Override
    public void gemmTN(int M, int N, int K, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff, boolean acc) {
        VectorGemm.gemm(VectorGemm.TN, M, N, K, a, aOff, b, bOff, c, cOff, acc);
    }

    // ------------------------------------------------------------------------------------------------ element-wise

    /*
     * exp. The Vector API's lanewise(EXP) is not used: its compiled form (a vector math library) and its
     * interpreted fallback (Math.exp per lane) can differ in the last bit, so a run's results would depend
     * on when the JIT compiled the kernel. This exp uses only exactly rounded operations (add, multiply,
     * fma, integer conversion and shifts), so compiled and interpreted code, vector lanes and the scalar
     * tail all give the same bits:
     *   n = round(x·log₂e),  r = x − n·ln2 (two-part constant),  exp(x) = 2ⁿ · (1 + r + r²·P(r)),
     * P a degree-5 minimax polynomial on |r| ≤ ln2/2; 2ⁿ is applied as 2^⌊n/2⌋ · 2^(n−⌊n/2⌋) so both factors
     * stay normal and a subnormal result is rounded once. x < −103.97 gives 0 (also −∞), x > 88.72 gives +∞,
     * NaN propagates. Error ≤ 1 ulp against Math.exp (KernelsTest measures it).
     */
    private static final float EXP_HI = 88.72283f, EXP_LO = -103.97208f, LOG2E = 1.44269504f,
            LN2_HI = 0.693145751953125f, LN2_LO = 1.42860677e-6f, ROUND = 12582912f,
            P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f, P3 = 4.1665795894e-2f,
            P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;

    /**
     * x[i, i + L) = exp(x[i, i + L)) in place. The vector exp takes and returns its lanes through the array, not as
     * a FloatVector: where C2 does not inline a helper (it judged a call site cold from an early profile, e.g.
     * a decode step's softmax over a few cached positions), a vector argument is boxed and the callee's
     * vector operations run the Vector API's Java fallback, many times slower, for the rest of the run.
     */
    static void expAt(float[] a, int i) {
        FloatVector x = FloatVector.fromArray(S, a, i);
        FloatVector xc = x.max(EXP_LO).min(EXP_HI);
        FloatVector n = xc.fma(FloatVector.broadcast(S, LOG2E), FloatVector.broadcast(S, ROUND)).sub(ROUND);
        FloatVector r = n.fma(FloatVector.broadcast(S, -LN2_HI), xc);
        r = n.fma(FloatVector.broadcast(S, -LN2_LO), r);
        FloatVector p = r.fma(FloatVector.broadcast(S, P0), FloatVector.broadcast(S, P1));
        p = p.fma(r, FloatVector.broadcast(S, P2));
        p = p.fma(r, FloatVector.broadcast(S, P3));
        p = p.fma(r, FloatVector.broadcast(S, P4));
        p = p.fma(r, FloatVector.broadcast(S, P5));
        p = p.fma(r.mul(r), r).add(1f);
        IntVector ni = (IntVector) n.convert(VectorOperators.F2I, 0);
        IntVector h = ni.lanewise(VectorOperators.ASHR, 1);
        FloatVector s1 = h.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        FloatVector s2 = ni.sub(h).add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        FloatVector y = p.mul(s1).mul(s2);
        y = y.blend(0f, x.lt(EXP_LO));
        y.blend(Float.POSITIVE_INFINITY, x.compare(VectorOperators.GT, EXP_HI)).intoArray(a, i);
    }

    /** The same computation as {@link #expAt} on one float, bit for bit (for tails). */
    static float exp(float x) {
        if (Float.isNaN(x)) return x;
        if (x < EXP_LO) return 0f;
        if (x > EXP_HI) return Float.POSITIVE_INFINITY;
        float n = Math.fma(x, LOG2E, ROUND) - ROUND;
        float r = Math.fma(n, -LN2_HI, x);
        r = Math.fma(n, -LN2_LO, r);
        float p = Math.fma(r, P0, P1);
        p = Math.fma(p, r, P2);
        p = Math.fma(p, r, P3);
        p = Math.fma(p, r, P4);
        p = Math.fma(p, r, P5);
        p = Math.fma(p, r * r, r) + 1f;
        int ni = (int) n, h = ni >> 1;
        return p * Float.intBitsToFloat((h + 127) << 23) * Float.intBitsToFloat((ni - h + 127) << 23);
    }

    static final ThreadLocal<float[]> REDUCE = ThreadLocal.withInitial(() -> new float[L]);

    /**
     * Sum of the lanes in lane order. Used instead of reduceLanes(ADD), whose order differs between compiled
     * and interpreted code, so a result never depends on JIT state (nor on the thread that computed it).
     */
    static float sumLanes(FloatVector v, float[] tmp) {
        v.intoArray(tmp, 0);
        float s = tmp[0];
        for (int i = 1; i < L; i++) s += tmp[i];
        return s;
    }

    // rotations by L/2, L/4, …, 1 lanes for treeSum
    private static final jdk.incubator.vector.VectorShuffle<Float>[] HALVES = halves();

    @SuppressWarnings("unchecked")
    private static jdk.incubator.vector.VectorShuffle<Float>[] halves() {
        int steps = Integer.numberOfTrailingZeros(L);
        jdk.incubator.vector.VectorShuffle<Float>[] r = new jdk.incubator.vector.VectorShuffle[steps];
        for (int i = 0, h = L / 2; i < steps; i++, h /= 2) r[i] = jdk.incubator.vector.VectorShuffle.iota(S, h, 1, true);
        return r;
    }

    /**
     * Sum of the lanes by a fixed tree (lane i adds lane i + L/2, then + L/4, …): log₂L vector rotations and
     * adds instead of the L − 1 dependent scalar adds of {@link #sumLanes}, for reductions that run once per
     * output element (the GEMV of decoding). Exactly rounded lane moves and adds, so compiled and interpreted
     * code give the same bits.
     */
    static float treeSum(FloatVector v) {
        for (jdk.incubator.vector.VectorShuffle<Float> h : HALVES) v = v.add(v.rearrange(h));
        return v.lane(0);
    }

    /** y[i] = exp(x[i]) for i < n with the vector exp used by softmax and SwiGLU (tests measure its ulp error). */
    static void expArray(int n, float[] x, int xOff, float[] y, int yOff) {
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L) {
            FloatVector.fromArray(S, x, xOff + i).intoArray(y, yOff + i);
            expAt(y, yOff + i);
        }
        for (; i < n; i++) y[yOff + i] = exp(x[xOff + i]);
    }

    /**
     * Four independent accumulators of L lanes, reduced at the end, then the scalar tail.
     * Precision: float32 pairwise-like summation, error ≤ (n/(4L) + log₂(4L) + 1)·2⁻²⁴·Σ|aᵢbᵢ| roughly.
     */
    @Override
    public float dot(int n, float[] a, int aOff, float[] b, int bOff) {
        FloatVector s0 = FloatVector.zero(S), s1 = s0, s2 = s0, s3 = s0;
        int i = 0;
        for (; i + 4 * L <= n; i += 4 * L) {
            s0 = FloatVector.fromArray(S, a, aOff + i).fma(FloatVector.fromArray(S, b, bOff + i), s0);
            s1 = FloatVector.fromArray(S, a, aOff + i + L).fma(FloatVector.fromArray(S, b, bOff + i + L), s1);
            s2 = FloatVector.fromArray(S, a, aOff + i + 2 * L).fma(FloatVector.fromArray(S, b, bOff + i + 2 * L), s2);
            s3 = FloatVector.fromArray(S, a, aOff + i + 3 * L).fma(FloatVector.fromArray(S, b, bOff + i + 3 * L), s3);
        }
        for (; i + L <= n; i += L) s0 = FloatVector.fromArray(S, a, aOff + i).fma(FloatVector.fromArray(S, b, bOff + i), s0);
        float s = sumLanes(s0.add(s1).add(s2.add(s3)), REDUCE.get());
        for (; i < n; i++) s = Math.fma(a[aOff + i], b[bOff + i], s);
        return s;
    }

    private static final VectorSpecies<Integer> IS = S.withLanes(int.class);
    /** L bf16 values: half the float vector's bits. */
    private static final VectorSpecies<Short> HS = VectorSpecies.of(short.class, VectorShape.forBitSize(S.vectorBitSize() / 2));

    // The bf16 widening (sign-extend to 32 bits, shift into the upper half) is written out inside each loop, not in a
    // helper returning a vector, so that its speed does not hang on C2 inlining that helper (a vector returned from a
    // call that was not inlined is boxed).

    /** The bits {@link Bf16#round} gives, lane by lane: add 0x7fff plus the kept bit's parity, keep the upper half. */
    @Override
    public void roundToBf16(int n, float[] x, int xOff, short[] dst, int dOff) {
        int i = 0;
        for (; i + L <= n; i += L) {
            IntVector b = FloatVector.fromArray(S, x, xOff + i).reinterpretAsInts();
            IntVector hi = b.lanewise(VectorOperators.LSHR, 16);
            IntVector r = b.add(0x7fff).add(hi.and(1)).lanewise(VectorOperators.LSHR, 16);
            r = r.blend(hi.or(0x0040), b.and(0x7fffffff).compare(VectorOperators.GT, 0x7f800000));
            ((ShortVector) r.convertShape(VectorOperators.I2S, HS, 0)).intoArray(dst, dOff + i);
        }
        for (; i < n; i++) dst[dOff + i] = Bf16.round(x[xOff + i]);
    }

    @Override
    public void widenBf16(int n, short[] src, int sOff, float[] dst, int dOff) {
        int i = 0;
        for (; i + L <= n; i += L)
            ((IntVector) ShortVector.fromArray(HS, src, sOff + i).convertShape(VectorOperators.S2I, IS, 0))
                    .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(dst, dOff + i);
        for (; i < n; i++) dst[dOff + i] = Bf16.toFloat(src[sOff + i]);
    }

    /** One accumulator per row, summed by {@link #treeSum}; error ≤ (K + 1)·2⁻²⁴·Σₖ|qₖ·rowₖ| per output. */
    @Override
    public void dotsBf16(int n, int K, float[] q, int qOff, short[] rows, int rOff, float[] out, int oOff) {
        int kv = K - K % L;
        for (int j = 0; j < n; j++) {
            int r = rOff + j * K;
            FloatVector acc = FloatVector.zero(S);
            for (int k = 0; k < kv; k += L) {
                FloatVector kf = ((IntVector) ShortVector.fromArray(HS, rows, r + k).convertShape(VectorOperators.S2I, IS, 0))
                        .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
                acc = FloatVector.fromArray(S, q, qOff + k).fma(kf, acc);
            }
            float s = treeSum(acc);
            for (int k = kv; k < K; k++) s = Math.fma(q[qOff + k], Bf16.toFloat(rows[r + k]), s);
            out[oOff + j] = s;
        }
    }

    /** Each output sums its rows in order with one fused multiply-add per row; error ≤ (n + 1)·2⁻²⁴·Σⱼ|wⱼ·rowⱼ|. */
    @Override
    public void weightedSumBf16(int n, int K, float[] w, int wOff, short[] rows, int rOff, float[] out, int oOff) {
        int k = 0;
        for (; k + L <= K; k += L) {
            FloatVector acc = FloatVector.zero(S);
            for (int j = 0, r = rOff + k; j < n; j++, r += K) {
                FloatVector vf = ((IntVector) ShortVector.fromArray(HS, rows, r).convertShape(VectorOperators.S2I, IS, 0))
                        .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
                acc = FloatVector.broadcast(S, w[wOff + j]).fma(vf, acc);
            }
            acc.intoArray(out, oOff + k);
        }
        for (; k < K; k++) {
            float s = 0f;
            for (int j = 0; j < n; j++) s = Math.fma(w[wOff + j], Bf16.toFloat(rows[rOff + j * K + k]), s);
            out[oOff + k] = s;
        }
    }

    /** y += alpha·x with one fused multiply-add per element (error ≤ 0.5 ulp of the result, vs 1 ulp scalar). */
    @Override
    public void axpy(int n, float alpha, float[] x, int xOff, float[] y, int yOff) {
        FloatVector av = FloatVector.broadcast(S, alpha);
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L)
            FloatVector.fromArray(S, x, xOff + i).fma(av, FloatVector.fromArray(S, y, yOff + i)).intoArray(y, yOff + i);
        for (; i < n; i++) y[yOff + i] = Math.fma(alpha, x[xOff + i], y[yOff + i]);
    }

    /** Σ x[o+i]², two vector accumulators then the tail. */
    private static float sumSquares(int d, float[] x, int o) {
        FloatVector s0 = FloatVector.zero(S), s1 = s0;
        int i = 0;
        for (; i + 2 * L <= d; i += 2 * L) {
            FloatVector v0 = FloatVector.fromArray(S, x, o + i), v1 = FloatVector.fromArray(S, x, o + i + L);
            s0 = v0.fma(v0, s0);
            s1 = v1.fma(v1, s1);
        }
        for (; i + L <= d; i += L) { FloatVector v = FloatVector.fromArray(S, x, o + i); s0 = v.fma(v, s0); }
        float s = sumLanes(s0.add(s1), REDUCE.get());
        for (; i < d; i++) s = Math.fma(x[o + i], x[o + i], s);
        return s;
    }

    /**
     * Row-wise RMSNorm. The mean of squares is summed in float32 vector lanes (relative error ≲ d/(2L)·2⁻²⁴,
     * so rstd is within a few ulp of the double reference for d ≤ 4096); each output is then within ≈ 3 ulp.
     */
    @Override
    public void rmsnormForward(int rows, int d, float[] x, int xOff, float[] w, float eps, float[] y, int yOff, float[] rstd, int rOff) {
        if ((long) rows * d < PARALLEL_ELEMENTS) rmsnormForward(0, rows, d, x, xOff, w, eps, y, yOff, rstd, rOff);
        else Parallel.forRange(rows, Math.max(1, PARALLEL_ELEMENTS / (2 * d)),
                (s, e) -> rmsnormForward(s, e, d, x, xOff, w, eps, y, yOff, rstd, rOff));
    }

    private static void rmsnormForward(int r0, int r1, int d, float[] x, int xOff, float[] w, float eps, float[] y, int yOff,
                                       float[] rstd, int rOff) {
        for (int r = r0; r < r1; r++) {
            int xo = xOff + r * d, yo = yOff + r * d;
            float rs = (float) (1.0 / Math.sqrt((double) sumSquares(d, x, xo) / d + eps));
            if (rstd != null) rstd[rOff + r] = rs;
            FloatVector rv = FloatVector.broadcast(S, rs);
            int i = 0;
            int ub = S.loopBound(d);
            if (w == null) {
                for (; i < ub; i += L) FloatVector.fromArray(S, x, xo + i).mul(rv).intoArray(y, yo + i);
                for (; i < d; i++) y[yo + i] = x[xo + i] * rs;
            } else {
                for (; i < ub; i += L)
                    FloatVector.fromArray(S, x, xo + i).mul(rv).mul(FloatVector.fromArray(S, w, i)).intoArray(y, yo + i);
                for (; i < d; i++) y[yo + i] = w[i] * (x[xo + i] * rs);
            }
        }
    }

    /**
     * Backward of RMSNorm: dx = rs·(dy⊙w) − rs³/d·(Σ dy⊙w⊙x)·x, dw += dy⊙x·rs. The row sum is float32 vector
     * lanes; each dx element has error ≲ (d/L)·2⁻²⁴ relative to rs·|dy w| + rs³/d·Σ|dy w x|·|x|.
     */
    @Override
    public void rmsnormBackward(int rows, int d, float[] x, int xOff, float[] w, float[] rstd, int rOff,
                                float[] dy, int dyOff, float[] dx, int dxOff, float[] dw, boolean accDx) {
        if ((long) rows * d < PARALLEL_ELEMENTS || rows < NORM_CHUNKS) {
            rmsnormBackward(0, rows, d, x, xOff, w, rstd, rOff, dy, dyOff, dx, dxOff, dw, 0, accDx);
            return;
        }
        if (dw == null) {
            Parallel.forChunks(rows, NORM_CHUNKS, (c, s, e) -> rmsnormBackward(s, e, d, x, xOff, w, rstd, rOff, dy, dyOff, dx, dxOff, null, 0, accDx));
            return;
        }
        float[] part = NORM_PARTIALS.get();
        if (part.length < NORM_CHUNKS * d) NORM_PARTIALS.set(part = new float[NORM_CHUNKS * d]);
        java.util.Arrays.fill(part, 0, NORM_CHUNKS * d, 0f);
        final float[] p = part;
        Parallel.forChunks(rows, NORM_CHUNKS, (c, s, e) -> rmsnormBackward(s, e, d, x, xOff, w, rstd, rOff, dy, dyOff, dx, dxOff, p, c * d, accDx));
        for (int c = 0; c < NORM_CHUNKS; c++) {
            int i = 0;
            for (int ub = S.loopBound(d); i < ub; i += L)
                FloatVector.fromArray(S, dw, i).add(FloatVector.fromArray(S, p, c * d + i)).intoArray(dw, i);
            for (; i < d; i++) dw[i] += p[c * d + i];
        }
    }

    /**
     * A large backward is split into this many fixed row chunks; each sums its own weight-gradient partial and the
     * partials are added in chunk order, so the result does not depend on the thread count.
     */
    static final int NORM_CHUNKS = 16;
    private static final ThreadLocal<float[]> NORM_PARTIALS = ThreadLocal.withInitial(() -> new float[0]);

    /** Rows [r0, r1); the weight gradient is accumulated into dw[dwOff ..] (dw may be null). */
    private static void rmsnormBackward(int r0, int r1, int d, float[] x, int xOff, float[] w, float[] rstd, int rOff,
                                        float[] dy, int dyOff, float[] dx, int dxOff, float[] dw, int dwOff, boolean accDx) {
        int ub = S.loopBound(d);
        float[] tmp = REDUCE.get();
        for (int r = r0; r < r1; r++) {
            int xo = xOff + r * d, go = dyOff + r * d, dxo = dxOff + r * d;
            float rs = rstd[rOff + r];
            FloatVector s0 = FloatVector.zero(S);
            int i = 0;
            if (w == null) for (; i < ub; i += L) s0 = FloatVector.fromArray(S, dy, go + i).fma(FloatVector.fromArray(S, x, xo + i), s0);
            else for (; i < ub; i += L)
                s0 = FloatVector.fromArray(S, dy, go + i).mul(FloatVector.fromArray(S, w, i)).fma(FloatVector.fromArray(S, x, xo + i), s0);
            float dotv = sumLanes(s0, tmp);
            for (; i < d; i++) dotv += dy[go + i] * (w == null ? 1f : w[i]) * x[xo + i];
            float coef = (float) ((double) rs * rs * rs * dotv / d);
            FloatVector rv = FloatVector.broadcast(S, rs), cv = FloatVector.broadcast(S, -coef);
            for (i = 0; i < ub; i += L) {
                FloatVector g = FloatVector.fromArray(S, dy, go + i);
                FloatVector xv = FloatVector.fromArray(S, x, xo + i);
                FloatVector gw = w == null ? g : g.mul(FloatVector.fromArray(S, w, i));
                FloatVector v = xv.fma(cv, gw.mul(rv));
                if (accDx) v = v.add(FloatVector.fromArray(S, dx, dxo + i));
                v.intoArray(dx, dxo + i);
                if (dw != null) g.mul(xv).fma(rv, FloatVector.fromArray(S, dw, dwOff + i)).intoArray(dw, dwOff + i);
            }
            for (; i < d; i++) {
                float g = dy[go + i], xv = x[xo + i];
                float v = Math.fma(xv, -coef, (w == null ? g : g * w[i]) * rs);
                dx[dxo + i] = accDx ? dx[dxo + i] + v : v;
                if (dw != null) dw[dwOff + i] = Math.fma(g * xv, rs, dw[dwOff + i]);
            }
        }
    }

    /**
     * Stable softmax per row: max, exp(x − max) with the vector exp (≤ 1 ulp), float32 vector sum, then one
     * multiply by 1/sum. Each output is within ≈ (n/L + 4) ulp relative of the exact softmax. Rows containing
     * −∞ (masked positions) give 0 there.
     */
    @Override
    public void softmaxRows(int rows, int n, float[] x, int off, int stride) {
        int ub = S.loopBound(n);
        for (int r = 0; r < rows; r++) {
            int o = off + r * stride;
            // through the max and exp kernels (fma(x, 1, −max) is x − max exactly): a decode step's rows are a few
            // vectors long, and a loop inlined here was compiled from a profile where it hardly ran, which left
            // its vector operations on the Java fallback for the rest of the run
            float max = max(n, x, o);
            float inv = 1f / expScaled(n, x, o, 1f, max);
            FloatVector iv = FloatVector.broadcast(S, inv);
            int i = 0;
            for (; i < ub; i += L) FloatVector.fromArray(S, x, o + i).mul(iv).intoArray(x, o + i);
            for (; i < n; i++) x[o + i] *= inv;
        }
    }

    @Override
    public float max(int n, float[] x, int off) {
        int i = 0, ub = S.loopBound(n);
        float m = Float.NEGATIVE_INFINITY;
        if (ub > 0) {
            FloatVector mv = FloatVector.fromArray(S, x, off);
            for (i = L; i < ub; i += L) mv = mv.max(FloatVector.fromArray(S, x, off + i));
            m = mv.reduceLanes(VectorOperators.MAX);  // a max does not depend on the order
        }
        for (; i < n; i++) m = Math.max(m, x[off + i]);
        return m;
    }

    /** exp(fma(scale, x, −shift)) in the vector lanes and the tail alike; the sum in lane order. */
    @Override
    public float expScaled(int n, float[] x, int off, float scale, float shift) {
        int i = 0, ub = S.loopBound(n);
        FloatVector sc = FloatVector.broadcast(S, scale), sh = FloatVector.broadcast(S, -shift), sv = FloatVector.zero(S);
        for (; i < ub; i += L) {
            FloatVector.fromArray(S, x, off + i).fma(sc, sh).intoArray(x, off + i);
            expAt(x, off + i);
            sv = sv.add(FloatVector.fromArray(S, x, off + i));
        }
        float sum = sumLanes(sv, REDUCE.get());
        for (; i < n; i++) { float e = exp(Math.fma(x[off + i], scale, -shift)); x[off + i] = e; sum += e; }
        return sum;
    }

    /**
     * Element-wise kernels with at least this many elements are split over the threads, on whole vectors (the
     * scalar tail stays with the last chunk), so every element takes the same path at any thread count.
     */
    static final int PARALLEL_ELEMENTS = 1 << 15;

    private static boolean splitElementwise(int n) { return n >= PARALLEL_ELEMENTS && Parallel.threads() > 1; }

    /**
     * Runs body over [0, n) in vector-aligned chunks over the threads. Callers test {@link #splitElementwise} first
     * and call their range directly otherwise, so small calls (decoding) build no lambda.
     */
    private static void elementwise(int n, Parallel.RangeBody body) {
        int vectors = n / L;
        Parallel.forRange(vectors, PARALLEL_ELEMENTS / (2 * L), (s, e) -> body.run(s * L, e == vectors ? n : e * L));
    }

    /** out = silu(g)·a with silu(g) = g/(1+exp(−g)); ≈ 3 ulp per element (vector exp ≤ 1 ulp, one divide). */
    @Override
    public void swigluForward(int n, float[] a, int aOff, float[] g, int gOff, float[] out, int outOff) {
        if (!splitElementwise(n)) swigluForward(0, n, a, aOff, g, gOff, out, outOff);
        else elementwise(n, (s, e) -> swigluForward(s, e, a, aOff, g, gOff, out, outOff));
    }

    private static void swigluForward(int s, int e, float[] a, int aOff, float[] g, int gOff, float[] out, int outOff) {
        FloatVector one = FloatVector.broadcast(S, 1f);
        int i = s;
        for (int ub = s + S.loopBound(e - s); i < ub; i += L) {
            FloatVector gv = FloatVector.fromArray(S, g, gOff + i), av = FloatVector.fromArray(S, a, aOff + i);
            gv.neg().intoArray(out, outOff + i);  // exp(−g) computed in the output's place (inputs already read)
            expAt(out, outOff + i);
            FloatVector den = FloatVector.fromArray(S, out, outOff + i).add(one);
            gv.div(den).mul(av).intoArray(out, outOff + i);
        }
        for (; i < e; i++) { float gv = g[gOff + i]; out[outOff + i] = gv / (exp(-gv) + 1f) * a[aOff + i]; }
    }

    /** da = dout·silu(g), dg = dout·a·σ(g)(1 + g(1 − σ(g))); ≈ 4 ulp per element relative to its terms. */
    @Override
    public void swigluBackward(int n, float[] a, int aOff, float[] g, int gOff, float[] dout, int dOff,
                               float[] da, int daOff, float[] dg, int dgOff) {
        if (!splitElementwise(n)) swigluBackward(0, n, a, aOff, g, gOff, dout, dOff, da, daOff, dg, dgOff);
        else elementwise(n, (s, e) -> swigluBackward(s, e, a, aOff, g, gOff, dout, dOff, da, daOff, dg, dgOff));
    }

    private static void swigluBackward(int s, int e, float[] a, int aOff, float[] g, int gOff, float[] dout, int dOff,
                                       float[] da, int daOff, float[] dg, int dgOff) {
        FloatVector one = FloatVector.broadcast(S, 1f);
        int i = s;
        for (int ub = s + S.loopBound(e - s); i < ub; i += L) {
            FloatVector gv = FloatVector.fromArray(S, g, gOff + i);
            FloatVector d = FloatVector.fromArray(S, dout, dOff + i);
            FloatVector av = FloatVector.fromArray(S, a, aOff + i);
            gv.neg().intoArray(dg, dgOff + i);  // exp(−g) computed in dg's place (inputs already read), overwritten below
            expAt(dg, dgOff + i);
            FloatVector sig = one.div(FloatVector.fromArray(S, dg, dgOff + i).add(one));
            d.mul(gv.mul(sig)).intoArray(da, daOff + i);
            FloatVector dsilu = sig.mul(gv.mul(one.sub(sig)).add(one));
            d.mul(av).mul(dsilu).intoArray(dg, dgOff + i);
        }
        for (; i < e; i++) {
            float gv = g[gOff + i];
            float sig = 1f / (exp(-gv) + 1f);
            float d = dout[dOff + i];
            da[daOff + i] = d * (gv * sig);
            dg[dgOff + i] = d * a[aOff + i] * (sig * (1f + gv * (1f - sig)));
        }
    }
}
