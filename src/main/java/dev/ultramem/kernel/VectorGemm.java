package dev.ultramem.kernel;

import dev.ultramem.core.Parallel;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import java.util.Arrays;

/**
 * The GEMM of {@link VectorKernels} in the three layouts training uses (NT: y = x·Wᵀ, NN: dx = dy·W, TN: dW += dyᵀ·x).
 *
 * <p>All layouts share one register-tiled micro-kernel: a tile of {@link #MR} rows × {@link #NR} columns of C
 * ({@code NV} vectors per row) lives in vector registers while k runs over a packed panel of A (MR rows at the
 * constant stride KC, one value per row and k broadcast) and a packed panel of B (NR values per k). The tile and the
 * cache blocks come from {@link GemmPlan} (vector width, cache sizes). Loop order as in BLIS: N block NC, K block KC
 * (pack B), M block MC (pack A, stays in L2), B micro-panel (KC × NR), row tile. Partial tiles are computed in full
 * (B zero-padded, A rows past the edge ignored) and only their valid corner is copied out, so edges use the same
 * arithmetic as full tiles.
 *
 * <p>Threads: output row tiles (or column panels when M is small) are split in contiguous chunks over
 * {@link Parallel}, one region per call; each C element is computed by one thread, summing k in increasing order
 * within a K block (one fused multiply-add per step) and adding the K blocks to C in increasing order. The K blocks
 * depend only on K, so the result is bit-identical for every thread count.
 *
 * <p>Precision: each element carries the float32 recursive-summation error, at most
 * {@code (K + 1)·2⁻²⁴·(Σ|aₖbₖ| + |C₀|)} (C₀ = the prior C when accumulating), typically ≈ √K·2⁻²⁴·Σ|aₖbₖ|.
 * Small M (decode: M = 1; up to {@link #gemvMaxRows} rows) takes a streaming GEMV path: each row of A streams B once
 * with several independent accumulators, no packing, no K blocking; same bound.
 *
 * <p>Packing buffers are per thread and allocated once (fixed sizes); steady-state calls allocate nothing.
 * Shapes with M·N·K below {@link #PARALLEL_WORK} run on the caller thread.
 */
final class VectorGemm {

    private VectorGemm() {}

    static final VectorSpecies<Float> S = VectorKernels.S;
    static final int L = S.length();

    static final GemmPlan PLAN = GemmPlan.forMachine(L);
    /** Register tile MR × NR (NR = NV vectors), K block, M block, N block. */
    static final int MR = PLAN.mr(), NV = PLAN.nv(), NR = NV * L, KC = PLAN.kc(), MC = PLAN.mc(), NC = PLAN.nc();
    /** The micro-kernel, as an index into {@link GemmPlan#TILES} (a constant, so the dispatch folds away). */
    private static final int TILE = Arrays.asList(GemmPlan.TILES).indexOf(MR + "x" + NV);

    /** Below this many multiply-adds a GEMM runs on the caller thread. */
    static final long PARALLEL_WORK = 1L << 19;

    static final int NT = 0, NN = 1, TN = 2;

    /** Per-thread packing buffers and the caller's reusable tasks, allocated once per thread. */
    static final class Scratch {
        final float[] bp = new float[KC * NC];
        final float[] ap = new float[KC * MC];
        final float[] tile = new float[MR * NR];
        final GemmTask task = new GemmTask();
        final GemvTask gemv = new GemvTask();
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    /** The parallel body of one GEMM call; reused so that a call allocates nothing. */
    static final class GemmTask implements Parallel.ChunkBody {
        int layout, M, N, K, aOff, bOff, cOff;
        float[] a, b, c, packedB;
        boolean acc, splitRows;

        @Override public void run(int chunk, int s, int e) {
            if (splitRows) block(layout, M, N, K, a, aOff, b, bOff, packedB, c, cOff, acc, s * MR, Math.min(M, e * MR), 0, N);
            else block(layout, M, N, K, a, aOff, b, bOff, packedB, c, cOff, acc, 0, M, s * NR, Math.min(N, e * NR));
        }

        void clear() { a = b = c = packedB = null; }
    }

    private static void check(int M, int N, int K, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff) {
        if (M < 0 || N < 0 || K < 0) throw new IllegalArgumentException("gemm: negative shape " + M + "x" + N + "x" + K);
        if (aOff < 0 || (long) aOff + (long) M * K > a.length) throw new IndexOutOfBoundsException("gemm: A too small");
        if (bOff < 0 || (long) bOff + (long) N * K > b.length) throw new IndexOutOfBoundsException("gemm: B too small");
        if (cOff < 0 || (long) cOff + (long) M * N > c.length) throw new IndexOutOfBoundsException("gemm: C too small");
    }

    /** C (+)= op(A)·op(B) in the given layout; error ≤ (K + 1)·2⁻²⁴·(Σₖ|aₖbₖ| + |C₀|) per element. */
    static void gemm(int layout, int M, int N, int K, float[] a, int aOff, float[] b, int bOff,
                     float[] c, int cOff, boolean acc) {
        check(M, N, K, a, aOff, b, bOff, c, cOff);
        if (M == 0 || N == 0) return;
        if (K == 0) {
            if (!acc) for (int i = 0; i < M; i++) Arrays.fill(c, cOff + i * N, cOff + i * N + N, 0f);
            return;
        }
        if (M <= gemvMaxRows(layout)) {
            gemv(layout, M, N, K, a, aOff, b, bOff, c, cOff, acc);
            return;
        }
        float[] packedB = layout == NT ? FrozenWeights.packed(b, bOff, N, K) : null;
        int threads = Parallel.threads();
        long work = (long) M * N * K;
        int rowTiles = (M + MR - 1) / MR, colPanels = (N + NR - 1) / NR;
        if (threads == 1 || work < PARALLEL_WORK) {
            block(layout, M, N, K, a, aOff, b, bOff, packedB, c, cOff, acc, 0, M, 0, N);
            return;
        }
        GemmTask t = SCRATCH.get().task;
        t.layout = layout; t.M = M; t.N = N; t.K = K; t.a = a; t.aOff = aOff; t.b = b; t.bOff = bOff;
        t.packedB = packedB; t.c = c; t.cOff = cOff; t.acc = acc;
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
        return Math.min(Math.max(max, unit), (per + unit - 1) / unit * unit);
    }

    /**
     * Computes C[m0:m1, n0:n1] on the current thread. Loop order (outer to inner): N block, K block (pack B),
     * M block (pack A), B micro-panel (reused by every row tile of the M block), row tile. With packedB (an NT
     * weight packed once, {@link #packB}) the B panels are read from it instead of packed here.
     */
    static void block(int layout, int M, int N, int K, float[] a, int aOff, float[] b, int bOff, float[] packedB,
                      float[] c, int cOff, boolean acc, int m0, int m1, int n0, int n1) {
        Scratch sc = SCRATCH.get();
        float[] bp = sc.bp, ap = sc.ap, tile = sc.tile;
        int ncMax = evenBlock(n1 - n0, NC, NR), mcMax = evenBlock(m1 - m0, MC, MR), kcMax = evenBlock(K, KC, 1);
        for (int jc = n0; jc < n1; jc += ncMax) {
            int nc = Math.min(ncMax, n1 - jc);
            for (int pc = 0; pc < K; pc += kcMax) {
                int kc = Math.min(kcMax, K - pc);
                float[] bs = bp;
                int bo = 0;
                if (packedB != null) { bs = packedB; bo = packedOffset(N, pc, jc, kc); }
                else if (layout == NT) packBT(b, bOff, K, pc, kc, jc, nc, bp, 0);
                else packBN(b, bOff, N, pc, kc, jc, nc, bp);
                boolean first = pc == 0 && !acc;
                for (int ic = m0; ic < m1; ic += mcMax) {
                    int mc = Math.min(mcMax, m1 - ic);
                    for (int p = 0; p < mc; p += MR) {
                        int mr = Math.min(MR, mc - p);
                        if (layout == TN) packAT(a, aOff, M, ic + p, mr, pc, kc, ap, p * KC);
                        else packAN(a, aOff, K, ic + p, mr, pc, kc, ap, p * KC);
                    }
                    for (int jr = 0; jr < nc; jr += NR) {
                        int nr = Math.min(NR, nc - jr);
                        int ci = cOff + ic * N + jc + jr;
                        for (int ir = 0; ir < mc; ir += MR)
                            micro(kc, ap, ir * KC, bs, bo + jr * kc, c, ci + ir * N, N, Math.min(MR, mc - ir), nr, first, tile);
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
                    Arrays.fill(bp, dst + nr, dst + NR, 0f);
                }
            }
        }
    }

    /** B stored [N, K] (NT): transposed into the same panel layout as {@link #packBN}. */
    private static void packBT(float[] b, int bOff, int K, int pc, int kc, int jc, int nc, float[] bp, int bpOff) {
        for (int jr = 0; jr < nc; jr += NR) {
            int nr = Math.min(NR, nc - jr);
            int base = bpOff + jr * kc;
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

    /**
     * B [N, K] of an NT product in the panels {@link #block} reads, packed once: for each K block (the same blocks
     * as an unpacked call, {@code evenBlock(K, KC, 1)}) its ⌈N / NR⌉ panels of kc × NR, so the call computes the
     * same sums in the same order as without packing.
     */
    static float[] packB(float[] b, int bOff, int N, int K) {
        int panels = blocks(N, NR), kcMax = evenBlock(K, KC, 1);
        float[] out = new float[(int) packedFloats(N, K)];
        for (int pc = 0; pc < K; pc += kcMax)
            packBT(b, bOff, K, pc, Math.min(kcMax, K - pc), 0, N, out, packedOffset(N, pc, 0, 0));
        return out;
    }

    /** Floats of {@link #packB}'s result (may exceed an array's size: the caller checks). */
    static long packedFloats(int N, int K) { return (long) K * blocks(N, NR) * NR; }

    /** Where the panel of columns jc.. (a multiple of NR) of the K block starting at pc begins in {@link #packB}. */
    private static int packedOffset(int N, int pc, int jc, int kc) { return pc * blocks(N, NR) * NR + jc * kc; }

    /**
     * A stored [M, K] (NT, NN): rows i..i+mr, k in pc..pc+kc, row r at ap[ao + r·KC]. Rows at the constant stride KC
     * let the micro-kernel address all MR rows from one index. Rows past mr are zeroed (their results are never
     * written out; zeros keep stale values, denormals or NaN out of the FMAs).
     */
    private static void packAN(float[] a, int aOff, int K, int i, int mr, int pc, int kc, float[] ap, int ao) {
        for (int r = 0; r < mr; r++) System.arraycopy(a, aOff + (i + r) * K + pc, ap, ao + r * KC, kc);
        for (int r = mr; r < MR; r++) Arrays.fill(ap, ao + r * KC, ao + r * KC + kc, 0f);
    }

    /** A stored [K, M] (TN): the same panel layout as {@link #packAN}. */
    private static void packAT(float[] a, int aOff, int M, int i, int mr, int pc, int kc, float[] ap, int ao) {
        int src = aOff + pc * M + i;
        for (int k = 0; k < kc; k++, src += M) {
            for (int r = 0, dst = ao + k; r < mr; r++, dst += KC) ap[dst] = a[src + r];
        }
        for (int r = mr; r < MR; r++) Arrays.fill(ap, ao + r * KC, ao + r * KC + kc, 0f);
    }

    /**
     * C tile (MR × NR at c[co], row stride ldc) = or += packed A panel · packed B panel.
     * Edge tiles (mr < MR or nr < NR) are computed in full; {@link #writeTile} copies out their mr × nr corner.
     */
    private static void micro(int kc, float[] ap, int ao, float[] bp, int bo, float[] c, int co, int ldc,
                              int mr, int nr, boolean first, float[] tile) {
        switch (TILE) {
            case 0 -> micro4x2(kc, ap, ao, bp, bo, c, co, ldc, mr, nr, first, tile);
            case 1 -> micro3x3(kc, ap, ao, bp, bo, c, co, ldc, mr, nr, first, tile);
            default -> micro6x4(kc, ap, ao, bp, bo, c, co, ldc, mr, nr, first, tile);
        }
    }

    /**
     * The tile's mr × nr corner into C: c = tile in the first K block, c += tile after. The micro-kernels store their
     * accumulators to the per-thread tile and leave the C update to this loop: written out per vector inside a
     * micro-kernel, the update made the 6 × 4 kernel too large for C2 to inline every Vector API call (its node-count
     * inlining cut-off), and the accumulators that were not inlined were boxed on the heap at every call.
     */
    private static void writeTile(float[] tile, float[] c, int co, int ldc, int mr, int nr, boolean first) {
        for (int r = 0; r < mr; r++) {
            int cr = co + r * ldc, tr = r * NR;
            if (nr == NR) {
                for (int v = 0; v < NR; v += L) {
                    FloatVector t = FloatVector.fromArray(S, tile, tr + v);
                    (first ? t : t.add(FloatVector.fromArray(S, c, cr + v))).intoArray(c, cr + v);
                }
            } else if (first) {
                System.arraycopy(tile, tr, c, cr, nr);
            } else {
                for (int j = 0; j < nr; j++) c[cr + j] += tile[tr + j];
            }
        }
    }

    /** The 4 × 2-vector tile: 8 accumulators, 2 B vectors and one broadcast of A live in registers. */
    private static void micro4x2(int kc, float[] ap, int ao, float[] bp, int bo, float[] c, int co, int ldc,
                                  int mr, int nr, boolean first, float[] tile) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z, c01 = z;
        FloatVector c10 = z, c11 = z;
        FloatVector c20 = z, c21 = z;
        FloatVector c30 = z, c31 = z;
        for (int k = 0; k < kc; k++) {
            int ai = ao + k, bi = bo + k * 2 * L;
            FloatVector b0 = FloatVector.fromArray(S, bp, bi);
            FloatVector b1 = FloatVector.fromArray(S, bp, bi + L);
            FloatVector av;
            av = FloatVector.broadcast(S, ap[ai]); c00 = av.fma(b0, c00); c01 = av.fma(b1, c01);
            av = FloatVector.broadcast(S, ap[ai + KC]); c10 = av.fma(b0, c10); c11 = av.fma(b1, c11);
            av = FloatVector.broadcast(S, ap[ai + 2 * KC]); c20 = av.fma(b0, c20); c21 = av.fma(b1, c21);
            av = FloatVector.broadcast(S, ap[ai + 3 * KC]); c30 = av.fma(b0, c30); c31 = av.fma(b1, c31);
        }
        c00.intoArray(tile, 0); c01.intoArray(tile, L);
        c10.intoArray(tile, NR); c11.intoArray(tile, NR + L);
        c20.intoArray(tile, 2 * NR); c21.intoArray(tile, 2 * NR + L);
        c30.intoArray(tile, 3 * NR); c31.intoArray(tile, 3 * NR + L);
        writeTile(tile, c, co, ldc, mr, nr, first);
    }

    /** The 3 × 3-vector tile: 9 accumulators, 3 B vectors and one broadcast of A live in registers. */
    private static void micro3x3(int kc, float[] ap, int ao, float[] bp, int bo, float[] c, int co, int ldc,
                                  int mr, int nr, boolean first, float[] tile) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z, c01 = z, c02 = z;
        FloatVector c10 = z, c11 = z, c12 = z;
        FloatVector c20 = z, c21 = z, c22 = z;
        for (int k = 0; k < kc; k++) {
            int ai = ao + k, bi = bo + k * 3 * L;
            FloatVector b0 = FloatVector.fromArray(S, bp, bi);
            FloatVector b1 = FloatVector.fromArray(S, bp, bi + L);
            FloatVector b2 = FloatVector.fromArray(S, bp, bi + 2 * L);
            FloatVector av;
            av = FloatVector.broadcast(S, ap[ai]); c00 = av.fma(b0, c00); c01 = av.fma(b1, c01); c02 = av.fma(b2, c02);
            av = FloatVector.broadcast(S, ap[ai + KC]); c10 = av.fma(b0, c10); c11 = av.fma(b1, c11); c12 = av.fma(b2, c12);
            av = FloatVector.broadcast(S, ap[ai + 2 * KC]); c20 = av.fma(b0, c20); c21 = av.fma(b1, c21); c22 = av.fma(b2, c22);
        }
        c00.intoArray(tile, 0); c01.intoArray(tile, L); c02.intoArray(tile, 2 * L);
        c10.intoArray(tile, NR); c11.intoArray(tile, NR + L); c12.intoArray(tile, NR + 2 * L);
        c20.intoArray(tile, 2 * NR); c21.intoArray(tile, 2 * NR + L); c22.intoArray(tile, 2 * NR + 2 * L);
        writeTile(tile, c, co, ldc, mr, nr, first);
    }

    /** The 6 × 4-vector tile: 24 accumulators, 4 B vectors and one broadcast of A live in registers. */
    private static void micro6x4(int kc, float[] ap, int ao, float[] bp, int bo, float[] c, int co, int ldc,
                                  int mr, int nr, boolean first, float[] tile) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z, c01 = z, c02 = z, c03 = z;
        FloatVector c10 = z, c11 = z, c12 = z, c13 = z;
        FloatVector c20 = z, c21 = z, c22 = z, c23 = z;
        FloatVector c30 = z, c31 = z, c32 = z, c33 = z;
        FloatVector c40 = z, c41 = z, c42 = z, c43 = z;
        FloatVector c50 = z, c51 = z, c52 = z, c53 = z;
        for (int k = 0; k < kc; k++) {
            int ai = ao + k, bi = bo + k * 4 * L;
            FloatVector b0 = FloatVector.fromArray(S, bp, bi);
            FloatVector b1 = FloatVector.fromArray(S, bp, bi + L);
            FloatVector b2 = FloatVector.fromArray(S, bp, bi + 2 * L);
            FloatVector b3 = FloatVector.fromArray(S, bp, bi + 3 * L);
            FloatVector av;
            av = FloatVector.broadcast(S, ap[ai]); c00 = av.fma(b0, c00); c01 = av.fma(b1, c01); c02 = av.fma(b2, c02); c03 = av.fma(b3, c03);
            av = FloatVector.broadcast(S, ap[ai + KC]); c10 = av.fma(b0, c10); c11 = av.fma(b1, c11); c12 = av.fma(b2, c12); c13 = av.fma(b3, c13);
            av = FloatVector.broadcast(S, ap[ai + 2 * KC]); c20 = av.fma(b0, c20); c21 = av.fma(b1, c21); c22 = av.fma(b2, c22); c23 = av.fma(b3, c23);
            av = FloatVector.broadcast(S, ap[ai + 3 * KC]); c30 = av.fma(b0, c30); c31 = av.fma(b1, c31); c32 = av.fma(b2, c32); c33 = av.fma(b3, c33);
            av = FloatVector.broadcast(S, ap[ai + 4 * KC]); c40 = av.fma(b0, c40); c41 = av.fma(b1, c41); c42 = av.fma(b2, c42); c43 = av.fma(b3, c43);
            av = FloatVector.broadcast(S, ap[ai + 5 * KC]); c50 = av.fma(b0, c50); c51 = av.fma(b1, c51); c52 = av.fma(b2, c52); c53 = av.fma(b3, c53);
        }
        c00.intoArray(tile, 0); c01.intoArray(tile, L); c02.intoArray(tile, 2 * L); c03.intoArray(tile, 3 * L);
        c10.intoArray(tile, NR); c11.intoArray(tile, NR + L); c12.intoArray(tile, NR + 2 * L); c13.intoArray(tile, NR + 3 * L);
        c20.intoArray(tile, 2 * NR); c21.intoArray(tile, 2 * NR + L); c22.intoArray(tile, 2 * NR + 2 * L); c23.intoArray(tile, 2 * NR + 3 * L);
        c30.intoArray(tile, 3 * NR); c31.intoArray(tile, 3 * NR + L); c32.intoArray(tile, 3 * NR + 2 * L); c33.intoArray(tile, 3 * NR + 3 * L);
        c40.intoArray(tile, 4 * NR); c41.intoArray(tile, 4 * NR + L); c42.intoArray(tile, 4 * NR + 2 * L); c43.intoArray(tile, 4 * NR + 3 * L);
        c50.intoArray(tile, 5 * NR); c51.intoArray(tile, 5 * NR + L); c52.intoArray(tile, 5 * NR + 2 * L); c53.intoArray(tile, 5 * NR + 3 * L);
        writeTile(tile, c, co, ldc, mr, nr, first);
    }

    // ------------------------------------------------------------------------------------------------ GEMV (small M)

    /**
     * Up to this many rows of A take the GEMV path (each row streams B once) instead of packing. Measured
     * cross-over: about 8 rows for NT (packing B transposed is slow); for NN/TN packing wins from 2 rows.
     */
    static final int GEMV_NT_ROWS = Integer.getInteger("ultramem.gemv.rows", 8);
    static int gemvMaxRows(int layout) { return layout == NT ? GEMV_NT_ROWS : 1; }

    static final class GemvTask implements Parallel.ChunkBody {
        int layout, M, N, K, aOff, bOff, cOff;
        boolean acc;
        float[] a, b, c;

        @Override public void run(int chunk, int s, int e) {
            if (layout == NT) gemvRows(layout, M, N, K, a, aOff, b, bOff, c, cOff, acc, s, e);
            else gemvRows(layout, M, N, K, a, aOff, b, bOff, c, cOff, acc, s * L, Math.min(N, e * L));
        }
    }

    /** C[M, N] for small M: columns split over threads (units of one column for NT, one vector for NN/TN). */
    private static void gemv(int layout, int M, int N, int K, float[] a, int aOff, float[] b, int bOff,
                             float[] c, int cOff, boolean acc) {
        int units = layout == NT ? N : (N + L - 1) / L;
        int threads = Parallel.threads();
        if (threads == 1 || (long) M * N * K < PARALLEL_WORK / 4 || units < 8) {
            gemvRows(layout, M, N, K, a, aOff, b, bOff, c, cOff, acc, 0, N);
            return;
        }
        GemvTask t = SCRATCH.get().gemv;
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
            float d0 = VectorKernels.treeSum(s0), d1 = VectorKernels.treeSum(s1), d2 = VectorKernels.treeSum(s2), d3 = VectorKernels.treeSum(s3);
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
            float d0 = VectorKernels.treeSum(s0);
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
}
