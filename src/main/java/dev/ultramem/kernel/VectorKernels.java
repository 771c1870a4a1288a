package dev.ultramem.kernel;

import dev.ultramem.core.Parallel;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API fast path (the default). Every method of {@link Kernels} is overridden here.
 *
 * <p><b>GEMM.</b> All three layouts share one register-tiled micro-kernel: a tile of {@link #MR} = 3 rows ×
 * {@link #NR} = 3 vectors of C lives in 9 vector registers while k runs over a packed panel of A (MR values
 * per k, broadcast) and a packed panel of B (NR values per k). With 3 B vectors and 3 broadcasts that is 15
 * registers, which fits AVX2's 16 even when the JIT hoists every load of an iteration (a 5×2 or 4×3 tile
 * spilled an accumulator to the stack and ran at less than half speed). Loop order as in BLIS: N block
 * {@link #NC}, K block {@link #KC} (pack B), M block {@link #MC} (pack A, stays in L2), B micro-panel
 * (KC × NR, stays in L1 while the row tiles of the M block pass over it), row tile. Partial tiles are computed
 * on zero-padded panels and copied out, so edges use the same arithmetic as full tiles.
 *
 * <p>Threads: output row tiles (or column panels when M is small) are split in contiguous chunks over
 * {@link Parallel}, one region per call; each C element is computed by one thread, summing k in increasing
 * order within a KC block (one fused multiply-add per step) and adding the KC blocks to C in increasing
 * order, so the result is bit-identical for every thread count.
 *
 * <p>Precision: each element carries the float32 recursive-summation error, at most
 * {@code (K + 1)·2⁻²⁴·(Σ|aₖbₖ| + |C₀|)} (C₀ = the prior C when accumulating), typically ≈ √K·2⁻²⁴·Σ|aₖbₖ|.
 * Small M (decode: M = 1; up to {@link #gemvMaxRows} rows) takes a streaming GEMV path: each row of A
 * streams B once with several independent accumulators, no packing, no K blocking; same bound.
 *
 * <p>Packing buffers are per thread and allocated once (fixed sizes); steady-state calls allocate nothing.
 * Shapes with M·N·K below {@link #PARALLEL_WORK} run on the caller thread.
 */
public class VectorKernels extends ScalarKernels {

    static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    static final int L = S.length();

    /** Register tile: MR rows × NR columns (3 vectors; 24 floats with AVX2, 48 with AVX-512). */
    static final int MR = 3, NR = 3 * L;
    /**
     * K block (B micro-panel KC·NR floats in L1), M block (A block MC·KC floats in L2), N block (B block KC·NC
     * floats). KC keeps the B micro-panel at 24 KB, three quarters of L1 (256 with AVX2), so that a product over
     * K = 256 (the width of the reference model) is one K block: C is then written once instead of written, read
     * back and written again. In the ref-256 training step this was as fast or faster than KC 168 despite the
     * larger panel's L1 pressure (docs/BENCHMARKS.md). K is split into even blocks of at most KC. KC and MC/MR can be
     * overridden for tuning with -Dultramem.gemm.kc / -Dultramem.gemm.mc.
     */
    static final int KC = Math.max(8, Integer.getInteger("ultramem.gemm.kc", Math.max(64, 24576 / (4 * NR) / 8 * 8))),
            NC = (2048 + NR - 1) / NR * NR,
            MC = Math.max(1, Integer.getInteger("ultramem.gemm.mc", 48)) * MR;
    /** Below this many multiply-adds a GEMM runs on the caller thread. */
    static final long PARALLEL_WORK = 1L << 19;

    static final int NT = 0, NN = 1, TN = 2;

    @Override public String name() { return "vector"; }

    // ------------------------------------------------------------------------------------------------ GEMM

    /** Per-thread packing buffers and the caller's reusable task, allocated once per thread. */
    static final class Scratch {
        final float[] bp = new float[KC * NC];
        final float[] ap = new float[KC * MC];
        final float[] tile = new float[MR * NR];
        final GemmTask task = new GemmTask();
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    /** The parallel body of one GEMM call; reused so that a call allocates nothing. */
    static final class GemmTask implements Parallel.ChunkBody {
        int layout, M, N, K, aOff, bOff, cOff;
        float[] a, b, c;
        boolean acc, splitRows;

        @Override public void run(int chunk, int s, int e) {
            if (splitRows) block(layout, M, N, K, a, aOff, b, bOff, c, cOff, acc, s * MR, Math.min(M, e * MR), 0, N);
            else block(layout, M, N, K, a, aOff, b, bOff, c, cOff, acc, 0, M, s * NR, Math.min(N, e * NR));
        }

        void clear() { a = b = c = null; }
    }

    /** Error ≤ (K + 1)·2⁻²⁴·(Σₖ|aₖbₖ| + |C₀|) per element; bit-identical for every thread count. */
    @Override
    public void gemmNT(int M, int N, int K, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff, boolean acc) {
        gemm(NT, M, N, K, a, aOff, b, bOff, c, cOff, acc);
    }

    /** Error ≤ (K + 1)·2⁻²⁴·(Σₖ|aₖbₖ| + |C₀|) per element; bit-identical for every thread count. */
    @Override
    public void gemmNN(int M, int N, int K, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff, boolean acc) {
        gemm(NN, M, N, K, a, aOff, b, bOff, c, cOff, acc);
    }

    /** Error ≤ (K + 1)·2⁻²⁴·(Σₖ|aₖbₖ| + |C₀|) per element; bit-identical for every thread count. */
    @Override
    public void gemmTN(int M, int N, int K, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff, boolean acc) {
        gemm(TN, M, N, K, a, aOff, b, bOff, c, cOff, acc);
    }

    private static void check(int M, int N, int K, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff) {
        if (M < 0 || N < 0 || K < 0) throw new IllegalArgumentException("gemm: negative shape " + M + "x" + N + "x" + K);
        if (aOff < 0 || (long) aOff + (long) M * K > a.length) throw new IndexOutOfBoundsException("gemm: A too small");
        if (bOff < 0 || (long) bOff + (long) N * K > b.length) throw new IndexOutOfBoundsException("gemm: B too small");
        if (cOff < 0 || (long) cOff + (long) M * N > c.length) throw new IndexOutOfBoundsException("gemm: C too small");
    }

    private static void gemm(int layout, int M, int N, int K, float[] a, int aOff, float[] b, int bOff,
                             float[] c, int cOff, boolean acc) {
        check(M, N, K, a, aOff, b, bOff, c, cOff);
        if (M == 0 || N == 0) return;
        if (K == 0) {
            if (!acc) for (int i = 0; i < M; i++) java.util.Arrays.fill(c, cOff + i * N, cOff + i * N + N, 0f);
            return;
        }
        if (M <= gemvMaxRows(layout)) {
            gemv(layout, M, N, K, a, aOff, b, bOff, c, cOff, acc);
            return;
        }
        int threads = Parallel.threads();
        long work = (long) M * N * K;
        int rowTiles = (M + MR - 1) / MR, colPanels = (N + NR - 1) / NR;
        if (threads == 1 || work < PARALLEL_WORK) {
            block(layout, M, N, K, a, aOff, b, bOff, c, cOff, acc, 0, M, 0, N);
            return;
        }
        GemmTask t = SCRATCH.get().task;
        t.layout = layout; t.M = M; t.N = N; t.K = K; t.a = a; t.aOff = aOff; t.b = b; t.bOff = bOff;
        t.c = c; t.cOff = cOff; t.acc = acc;
        t.splitRows = splitRows(M, N, K, threads, rowTiles, colPanels);
        int units = t.splitRows ? rowTiles : colPanels;
        try {
            Parallel.forChunks(units, Math.min(threads, units), t);
        } finally {
            t.clear();
        }
    }

    /**
     * Split rows or columns over threads: whichever packs fewer elements per thread, among the splits that
     * give every thread at least 4 units (tiles or panels) for balance. A row split packs all of B per thread
     * plus its rows of A once per N block; a column split packs its part of B plus all of A per N block.
     */
    static boolean splitRows(int M, int N, int K, int threads, int rowTiles, int colPanels) {
        boolean rowsOk = rowTiles >= 4 * threads, colsOk = colPanels >= 4 * threads;
        if (rowsOk != colsOk) return rowsOk;
        if (!rowsOk) return rowTiles >= colPanels;
        double rowCost = (double) N * K + (double) M / threads * K * blocks(N, NC);
        double colCost = (double) N / threads * K + (double) M * K * blocks((N + threads - 1) / threads, NC);
        return rowCost <= colCost;
    }

    private static int blocks(int n, int block) { return (n + block - 1) / block; }

    /** Block length ≤ max, a multiple of unit, splitting n into the fewest, most even blocks. */
    private static int evenBlock(int n, int max, int unit) {
        int per = (n + blocks(n, max) - 1) / blocks(n, max);
        return Math.min(max, (per + unit - 1) / unit * unit);
    }

    /**
     * Computes C[m0:m1, n0:n1] on the current thread. Loop order (outer to inner): N block, K block (pack B),
     * M block (pack A), B micro-panel (stays in L1 while the row tiles of the M block pass over it), row tile.
     */
    static void block(int layout, int M, int N, int K, float[] a, int aOff, float[] b, int bOff,
                      float[] c, int cOff, boolean acc, int m0, int m1, int n0, int n1) {
        Scratch sc = SCRATCH.get();
        float[] bp = sc.bp, ap = sc.ap, tile = sc.tile;
        int ncMax = evenBlock(n1 - n0, NC, NR), mcMax = evenBlock(m1 - m0, MC, MR), kcMax = evenBlock(K, KC, 1);
        for (int jc = n0; jc < n1; jc += ncMax) {
            int nc = Math.min(ncMax, n1 - jc);
            for (int pc = 0; pc < K; pc += kcMax) {
                int kc = Math.min(kcMax, K - pc);
                if (layout == NT) packBT(b, bOff, K, pc, kc, jc, nc, bp);
                else packBN(b, bOff, N, pc, kc, jc, nc, bp);
                boolean first = pc == 0 && !acc;
                for (int ic = m0; ic < m1; ic += mcMax) {
                    int mc = Math.min(mcMax, m1 - ic);
                    for (int p = 0; p < mc; p += MR) {
                        int mr = Math.min(MR, mc - p);
                        if (layout == TN) packAT(a, aOff, M, ic + p, mr, pc, kc, ap, p * kc);
                        else packAN(a, aOff, K, ic + p, mr, pc, kc, ap, p * kc);
                    }
                    for (int jr = 0; jr < nc; jr += NR) {
                        int nr = Math.min(NR, nc - jr);
                        int ci = cOff + ic * N + jc + jr;
                        for (int ir = 0; ir < mc; ir += MR)
                            micro(kc, ap, ir * kc, bp, jr * kc, c, ci + ir * N, N, Math.min(MR, mc - ir), nr, first, tile);
                    }
                }
            }
        }
    }

    /** B stored [K, N] (NN, TN): panel p holds rows pc..pc+kc, columns jc+p·NR.., NR per k, zero-padded. */
    private static void packBN(float[] b, int bOff, int N, int pc, int kc, int jc, int nc, float[] bp) {
        for (int jr = 0; jr < nc; jr += NR) {
            int nr = Math.min(NR, nc - jr);
            int dst = jr * kc;
            int src = bOff + pc * N + jc + jr;
            if (nr == NR) {
                for (int k = 0; k < kc; k++, src += N, dst += NR) {
                    for (int v = 0; v < NR; v += L) FloatVector.fromArray(S, b, src + v).intoArray(bp, dst + v);
                }
            } else {
                for (int k = 0; k < kc; k++, src += N, dst += NR) {
                    System.arraycopy(b, src, bp, dst, nr);
                    java.util.Arrays.fill(bp, dst + nr, dst + NR, 0f);
                }
            }
        }
    }

    /** B stored [N, K] (NT): transposed into the same panel layout as {@link #packBN}. */
    private static void packBT(float[] b, int bOff, int K, int pc, int kc, int jc, int nc, float[] bp) {
        for (int jr = 0; jr < nc; jr += NR) {
            int nr = Math.min(NR, nc - jr);
            int base = jr * kc;
            for (int j = 0; j < NR; j++) {
                int dst = base + j;
                if (j < nr) {
                    int src = bOff + (jc + jr + j) * K + pc;
                    for (int k = 0; k < kc; k++, dst += NR) bp[dst] = b[src + k];
                } else {
                    for (int k = 0; k < kc; k++, dst += NR) bp[dst] = 0f;
                }
            }
        }
    }

    /** A stored [M, K] (NT, NN): rows i..i+mr, MR values per k, zero-padded. */
    private static void packAN(float[] a, int aOff, int K, int i, int mr, int pc, int kc, float[] ap, int ao) {
        for (int r = 0; r < MR; r++) {
            if (r < mr) {
                int src = aOff + (i + r) * K + pc;
                for (int k = 0, dst = ao + r; k < kc; k++, dst += MR) ap[dst] = a[src + k];
            } else {
                for (int k = 0, dst = ao + r; k < kc; k++, dst += MR) ap[dst] = 0f;
            }
        }
    }

    /** A stored [K, M] (TN). */
    private static void packAT(float[] a, int aOff, int M, int i, int mr, int pc, int kc, float[] ap, int ao) {
        int src = aOff + pc * M + i;
        if (mr == MR) {
            for (int k = 0, dst = ao; k < kc; k++, dst += MR, src += M) {
                ap[dst] = a[src]; ap[dst + 1] = a[src + 1]; ap[dst + 2] = a[src + 2];
            }
        } else {
            for (int k = 0, dst = ao; k < kc; k++, dst += MR, src += M)
                for (int r = 0; r < MR; r++) ap[dst + r] = r < mr ? a[src + r] : 0f;
        }
    }

    /**
     * C tile (MR × NR at c[co], row stride ldc) = or += packed A panel · packed B panel.
     * Edge tiles (mr < MR or nr < NR) are computed in full on zero-padded panels and copied out.
     */
    private static void micro(int kc, float[] ap, int ao, float[] bp, int bo, float[] c, int co, int ldc,
                              int mr, int nr, boolean first, float[] tile) {
        // 9 accumulators + 3 B vectors + 3 broadcasts = 15 registers: fits the 16 of AVX2 even when the
        // compiler hoists all loads of an iteration (a 5×2 tile spilled an accumulator here).
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c02 = c00;
        FloatVector c10 = c00, c11 = c00, c12 = c00;
        FloatVector c20 = c00, c21 = c00, c22 = c00;
        for (int k = 0; k < kc; k++) {
            int ai = ao + k * MR, bi = bo + k * NR;
            FloatVector b0 = FloatVector.fromArray(S, bp, bi);
            FloatVector b1 = FloatVector.fromArray(S, bp, bi + L);
            FloatVector b2 = FloatVector.fromArray(S, bp, bi + 2 * L);
            FloatVector av = FloatVector.broadcast(S, ap[ai]);
            c00 = av.fma(b0, c00); c01 = av.fma(b1, c01); c02 = av.fma(b2, c02);
            av = FloatVector.broadcast(S, ap[ai + 1]);
            c10 = av.fma(b0, c10); c11 = av.fma(b1, c11); c12 = av.fma(b2, c12);
            av = FloatVector.broadcast(S, ap[ai + 2]);
            c20 = av.fma(b0, c20); c21 = av.fma(b1, c21); c22 = av.fma(b2, c22);
        }
        if (mr == MR && nr == NR) {
            store(c00, c01, c02, c, co, first);
            store(c10, c11, c12, c, co + ldc, first);
            store(c20, c21, c22, c, co + 2 * ldc, first);
            return;
        }
        c00.intoArray(tile, 0); c01.intoArray(tile, L); c02.intoArray(tile, 2 * L);
        c10.intoArray(tile, NR); c11.intoArray(tile, NR + L); c12.intoArray(tile, NR + 2 * L);
        c20.intoArray(tile, 2 * NR); c21.intoArray(tile, 2 * NR + L); c22.intoArray(tile, 2 * NR + 2 * L);
        for (int r = 0; r < mr; r++) {
            int cr = co + r * ldc, tr = r * NR;
            if (first) System.arraycopy(tile, tr, c, cr, nr);
            else for (int j = 0; j < nr; j++) c[cr + j] += tile[tr + j];
        }
    }

    private static void store(FloatVector x0, FloatVector x1, FloatVector x2, float[] c, int o, boolean first) {
        if (!first) {
            x0 = x0.add(FloatVector.fromArray(S, c, o));
            x1 = x1.add(FloatVector.fromArray(S, c, o + L));
            x2 = x2.add(FloatVector.fromArray(S, c, o + 2 * L));
        }
        x0.intoArray(c, o);
        x1.intoArray(c, o + L);
        x2.intoArray(c, o + 2 * L);
    }

    // ------------------------------------------------------------------------------------------------ GEMV (small M)

    /**
     * Up to this many rows of A take the GEMV path (each row streams B once) instead of packing. Measured
     * cross-over: about 8 rows for NT (packing B transposed is slow); for NN/TN packing wins from 2 rows.
     */
    static int gemvMaxRows(int layout) { return layout == NT ? 8 : 1; }

    static final class GemvTask implements Parallel.ChunkBody {
        int layout, M, N, K, aOff, bOff, cOff;
        boolean acc;
        float[] a, b, c;

        @Override public void run(int chunk, int s, int e) {
            if (layout == NT) gemvRows(layout, M, N, K, a, aOff, b, bOff, c, cOff, acc, s, e);
            else gemvRows(layout, M, N, K, a, aOff, b, bOff, c, cOff, acc, s * L, Math.min(N, e * L));
        }
    }

    private static final ThreadLocal<GemvTask> GEMV_TASK = ThreadLocal.withInitial(GemvTask::new);

    /** C[M, N] for small M: columns split over threads (units of one column for NT, one vector for NN/TN). */
    private static void gemv(int layout, int M, int N, int K, float[] a, int aOff, float[] b, int bOff,
                             float[] c, int cOff, boolean acc) {
        int units = layout == NT ? N : (N + L - 1) / L;
        int threads = Parallel.threads();
        if (threads == 1 || (long) M * N * K < PARALLEL_WORK / 4 || units < 8) {
            gemvRows(layout, M, N, K, a, aOff, b, bOff, c, cOff, acc, 0, N);
            return;
        }
        GemvTask t = GEMV_TASK.get();
        t.layout = layout; t.M = M; t.N = N; t.K = K; t.a = a; t.aOff = aOff; t.b = b; t.bOff = bOff;
        t.c = c; t.cOff = cOff; t.acc = acc;
        try {
            Parallel.forChunks(units, Math.min(threads, units), t);
        } finally {
            t.a = t.b = t.c = null;
        }
    }

    /** Columns per block of the small-M GEMV: the block of B is read from memory once and from cache by the other rows. */
    static final int GEMV_BLOCK = 64;

    /** Columns j0..j1 of every row of C; each element's arithmetic depends only on (layout, K), not on j0, j1. */
    private static void gemvRows(int layout, int M, int N, int K, float[] a, int aOff, float[] b, int bOff,
                                 float[] c, int cOff, boolean acc, int j0, int j1) {
        for (int jb = j0; jb < j1; jb += GEMV_BLOCK) {
            int je = M == 1 ? j1 : Math.min(j1, jb + GEMV_BLOCK);
            for (int i = 0; i < M; i++) {
                if (layout == NT) gemvNTRange(K, a, aOff + i * K, b, bOff, c, cOff + i * N, acc, jb, je);
                else if (layout == NN) gemvNNRange(N, K, a, aOff + i * K, 1, b, bOff, c, cOff + i * N, acc, jb, je);
                else gemvNNRange(N, K, a, aOff + i, M, b, bOff, c, cOff + i * N, acc, jb, je);
            }
            if (M == 1) break;
        }
    }

    /** Four rows of B at a time, one accumulator each, sharing the loads of a; same per-row order as one row alone. */
    private static void gemvNTRange(int K, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff, boolean acc,
                                    int j0, int j1) {
        int kv = K - K % L;
        float[] tmp = SCRATCH.get().tile;
        int j = j0;
        for (; j + 4 <= j1; j += 4) {
            int r0 = bOff + j * K, r1 = r0 + K, r2 = r1 + K, r3 = r2 + K;
            FloatVector s0 = FloatVector.zero(S), s1 = s0, s2 = s0, s3 = s0;
            for (int k = 0; k < kv; k += L) {
                FloatVector av = FloatVector.fromArray(S, a, aOff + k);
                s0 = av.fma(FloatVector.fromArray(S, b, r0 + k), s0);
                s1 = av.fma(FloatVector.fromArray(S, b, r1 + k), s1);
                s2 = av.fma(FloatVector.fromArray(S, b, r2 + k), s2);
                s3 = av.fma(FloatVector.fromArray(S, b, r3 + k), s3);
            }
            float d0 = sumLanes(s0, tmp), d1 = sumLanes(s1, tmp), d2 = sumLanes(s2, tmp), d3 = sumLanes(s3, tmp);
            for (int k = kv; k < K; k++) {
                float ak = a[aOff + k];
                d0 = Math.fma(ak, b[r0 + k], d0); d1 = Math.fma(ak, b[r1 + k], d1);
                d2 = Math.fma(ak, b[r2 + k], d2); d3 = Math.fma(ak, b[r3 + k], d3);
            }
            int ci = cOff + j;
            if (acc) { c[ci] += d0; c[ci + 1] += d1; c[ci + 2] += d2; c[ci + 3] += d3; }
            else { c[ci] = d0; c[ci + 1] = d1; c[ci + 2] = d2; c[ci + 3] = d3; }
        }
        for (; j < j1; j++) {
            int r0 = bOff + j * K;
            FloatVector s0 = FloatVector.zero(S);
            for (int k = 0; k < kv; k += L) s0 = FloatVector.fromArray(S, a, aOff + k).fma(FloatVector.fromArray(S, b, r0 + k), s0);
            float d0 = sumLanes(s0, tmp);
            for (int k = kv; k < K; k++) d0 = Math.fma(a[aOff + k], b[r0 + k], d0);
            if (acc) c[cOff + j] += d0; else c[cOff + j] = d0;
        }
    }

    /** Columns j0..j1: four vectors of columns at a time stream down the rows of B; each column sums k in order. */
    private static void gemvNNRange(int N, int K, float[] a, int aOff, int aStride, float[] b, int bOff, float[] c, int cOff,
                                    boolean acc, int j0, int j1) {
        int j = j0;
        for (; j + 4 * L <= j1; j += 4 * L) {
            FloatVector s0 = FloatVector.zero(S), s1 = s0, s2 = s0, s3 = s0;
            for (int k = 0, bi = bOff + j; k < K; k++, bi += N) {
                FloatVector av = FloatVector.broadcast(S, a[aOff + k * aStride]);
                s0 = av.fma(FloatVector.fromArray(S, b, bi), s0);
                s1 = av.fma(FloatVector.fromArray(S, b, bi + L), s1);
                s2 = av.fma(FloatVector.fromArray(S, b, bi + 2 * L), s2);
                s3 = av.fma(FloatVector.fromArray(S, b, bi + 3 * L), s3);
            }
            int ci = cOff + j;
            if (acc) {
                s0 = s0.add(FloatVector.fromArray(S, c, ci)); s1 = s1.add(FloatVector.fromArray(S, c, ci + L));
                s2 = s2.add(FloatVector.fromArray(S, c, ci + 2 * L)); s3 = s3.add(FloatVector.fromArray(S, c, ci + 3 * L));
            }
            s0.intoArray(c, ci); s1.intoArray(c, ci + L); s2.intoArray(c, ci + 2 * L); s3.intoArray(c, ci + 3 * L);
        }
        for (; j + L <= j1; j += L) {
            FloatVector s0 = FloatVector.zero(S);
            for (int k = 0, bi = bOff + j; k < K; k++, bi += N)
                s0 = FloatVector.broadcast(S, a[aOff + k * aStride]).fma(FloatVector.fromArray(S, b, bi), s0);
            int ci = cOff + j;
            if (acc) s0 = s0.add(FloatVector.fromArray(S, c, ci));
            s0.intoArray(c, ci);
        }
        for (; j < j1; j++) {
            float s = 0f;
            for (int k = 0, bi = bOff + j; k < K; k++, bi += N) s = Math.fma(a[aOff + k * aStride], b[bi], s);
            if (acc) c[cOff + j] += s; else c[cOff + j] = s;
        }
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

    static FloatVector exp(FloatVector x) {
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
        return y.blend(Float.POSITIVE_INFINITY, x.compare(VectorOperators.GT, EXP_HI));
    }

    /** The same computation as {@link #exp(FloatVector)} on one float, bit for bit (for tails). */
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

    /** y[i] = exp(x[i]) for i < n with the vector exp used by softmax and SwiGLU (tests measure its ulp error). */
    static void expArray(int n, float[] x, int xOff, float[] y, int yOff) {
        int i = 0;
        for (int ub = S.loopBound(n); i < ub; i += L)
            exp(FloatVector.fromArray(S, x, xOff + i)).intoArray(y, yOff + i);
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
        float[] tmp = REDUCE.get();
        for (int r = 0; r < rows; r++) {
            int o = off + r * stride;
            FloatVector mv = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
            int i = 0;
            for (; i < ub; i += L) mv = mv.max(FloatVector.fromArray(S, x, o + i));
            float max = mv.reduceLanes(VectorOperators.MAX);
            for (; i < n; i++) max = Math.max(max, x[o + i]);
            FloatVector maxv = FloatVector.broadcast(S, max), sv = FloatVector.zero(S);
            for (i = 0; i < ub; i += L) {
                FloatVector e = exp(FloatVector.fromArray(S, x, o + i).sub(maxv));
                e.intoArray(x, o + i);
                sv = sv.add(e);
            }
            float sum = sumLanes(sv, tmp);
            for (; i < n; i++) { float e = exp(x[o + i] - max); x[o + i] = e; sum += e; }
            float inv = 1f / sum;
            FloatVector iv = FloatVector.broadcast(S, inv);
            for (i = 0; i < ub; i += L) FloatVector.fromArray(S, x, o + i).mul(iv).intoArray(x, o + i);
            for (; i < n; i++) x[o + i] *= inv;
        }
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
            FloatVector gv = FloatVector.fromArray(S, g, gOff + i);
            FloatVector den = exp(gv.neg()).add(one);
            gv.div(den).mul(FloatVector.fromArray(S, a, aOff + i)).intoArray(out, outOff + i);
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
            FloatVector sig = one.div(exp(gv.neg()).add(one));
            FloatVector d = FloatVector.fromArray(S, dout, dOff + i);
            FloatVector av = FloatVector.fromArray(S, a, aOff + i);
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
