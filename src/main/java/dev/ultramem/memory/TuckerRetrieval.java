package dev.ultramem.memory;

import dev.ultramem.core.Parallel;
import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.core.UserError;
import dev.ultramem.kernel.Kernels;
import dev.ultramem.kernel.MemoryKernels;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * TDQKR, the Tucker-decomposed query-key retrieval shared by UltraMem v1 and UltraMemV2:
 * query projection + query_norm, keys + keys_norm, per-rank row/column scores, stage-1 rank-1
 * top-k with the Tucker vectors u, v, the knn×knn grid per core, stage-2 top-k, and the per-core
 * scores of the winners. Also owns the two auxiliary losses that live on these tensors: the
 * Tucker-core penalty and the key balance loss.
 *
 * <p>Layouts. The projection has {@code nSlots} query slots of {@code kdim}; head h, rank ρ reads its
 * row query from slot {@code rowSlot[h][ρ]} and its column query from {@code colSlot[h][ρ]}.
 * {@code keys [H, 2, keyNum, kdim, r]} as in the official state dict. Internally the keys are
 * normalised into {@code khat [H][2][r][keyNum][kdim]}. The per-rank scores S_row, S_col enter the
 * stage-1 top-k only through Σ_ρ u_ρ·S_ρ, so that sum is one matrix product per (head, side) over
 * the concatenated rank queries and u-scaled keys; S itself is computed at the knn1 stage-1 winners
 * only (the grid and the backward need nothing else).
 * Selected entries are indexed {@code e = t·R + h·knn + q} (R = H·knn), each head's list sorted by
 * the summed score; per-core scores at {@code scores[e·C + c]}.
 */
public final class TuckerRetrieval {

    public final int d, kdim, heads, keyNum, rank, cores, knn1, knn, nSlots;
    final int[][] rowSlot, colSlot;
    static final float EPS = 1e-5f;

    public final Param queryProj, queryNorm, keys, keysNorm, u, v;
    public final Param[] tuckerCore;

    double tuckerPenalty, tuckerTau, balanceCoef;

    private final Kernels K = Kernels.get();
    private final MemoryKernels MK = MemoryKernels.get();

    // forward state (grown with n)
    private int cap = -1, n;
    float[] qraw, qn, qrstd;
    private float[] qs;      // query slots as [slot][n][kdim], filled only for the balance loss's dense products
    final float[] kt, khat, krstd;
    float[] qcat;            // rank queries side by side [H][2][n][r·kdim]
    private final float[] kcat; // u- (row) or v- (column) scaled keys side by side [H][2][keyNum][r·kdim]
    private final float[] khcat; // the same without the scaling, for the per-rank scores of the winners
    float[] A;               // stage-1 scores [H][2][n][keyNum]
    int[] I1;                // stage-1 winners [n][H][2][knn1]
    float[] R1;              // per-rank scores of the stage-1 winners [n][H][2][knn1][r]
    private float[] dR1;     // their gradient (the only non-zero entries of dS without the balance loss)
    int[] selRow, selCol;    // stage-1 list positions (i, j) of each entry's grid cell
    public int[] bestIndices; // z = iRow·keyNum + iCol per entry
    public float[] scores;    // per-core scores [e·C + c]
    public float[] sumScores; // summed score per entry
    private float[] dS = new float[0], dqs, dqn, dqraw;
    private final float[] dkhat, dkt;
    private Scratch[] scratch = new Scratch[0];
    /** token blocks of the core gradient (fixed, so the summation order does not depend on the threads). */
    private static final int CORE_GRAD_BLOCKS = 64;
    private double[] coreAcc = new double[0];
    /** Eval mode keeps the normalised keys between calls until the weights change (decode at batch 1). */
    private boolean cacheKeys, keysValid;
    /** the knn grid cells whose minimum bounds the stage-2 top-k from below. */
    private final int[] boundCells;
    /** singular values of the summed core per head, from the last Tucker update [h·r + i]. */
    public final double[] singular;

    private static final class Scratch {
        final float[] val, grid, rr, rc, rct, tc, tsum, gval;
        final int[] gidx;

        Scratch(int keyNum, int knn1, int knn, int r, int C) {
            val = new float[Math.max(knn1, knn)];
            grid = new float[knn1 * knn1];
            rr = new float[knn1 * r];
            rc = new float[knn1 * r];
            rct = new float[knn1 * r];
            tsum = new float[knn1 * r];
            tc = new float[C * knn1 * r];
            gval = new float[knn];
            gidx = new int[knn];
        }
    }

    /**
     * @param qSlots number of kdim query slots of the projection
     * @param rowSlot row query slot per head and rank; colSlot likewise
     */
    public TuckerRetrieval(String prefix, int d, int kdim, int heads, int keyNum, int rank, int cores,
                           int knn1, int knn, int qSlots, int[][] rowSlot, int[][] colSlot) {
        if (knn1 > keyNum) throw new UserError("config: stage-1 top-k (" + knn1 + ") exceeds the number of keys per side (" + keyNum + ")");
        if (knn > knn1 * knn1) throw new UserError("config: mem_knn (" + knn + ") exceeds the stage-1 grid size (" + knn1 * knn1 + ")");
        this.d = d; this.kdim = kdim; this.heads = heads; this.keyNum = keyNum; this.rank = rank; this.cores = cores;
        this.knn1 = knn1; this.knn = knn; this.nSlots = qSlots; this.rowSlot = rowSlot; this.colSlot = colSlot;
        queryProj = Param.of(prefix + "query_proj.weight", Param.Group.DECAY, qSlots * kdim, d);
        queryNorm = Param.of(prefix + "query_norm.weight", Param.Group.DECAY, kdim);
        keys = Param.of(prefix + "keys", Param.Group.DECAY, heads, 2, keyNum, kdim, rank);
        keysNorm = Param.of(prefix + "keys_norm.weight", Param.Group.DECAY, kdim);
        tuckerCore = new Param[cores];
        for (int c = 0; c < cores; c++) tuckerCore[c] = Param.of(prefix + "tucker_core." + c, Param.Group.DECAY, heads, rank, rank);
        u = Param.buffer(prefix + "tucker_core_u", 1, heads, 1, rank);
        v = Param.buffer(prefix + "tucker_core_v", 1, heads, 1, rank);
        int nk = heads * 2 * rank * keyNum * kdim;
        kt = new float[nk]; khat = new float[nk]; dkhat = new float[nk]; dkt = new float[nk]; kcat = new float[nk]; khcat = new float[nk];
        krstd = new float[heads * 2 * rank * keyNum];
        singular = new double[heads * rank];
        boundCells = boundCells(knn1, knn);
        Arrays.fill(queryNorm.data(), 1f);
        Arrays.fill(keysNorm.data(), 1f);
    }

    /** Shared query as in the official v1 (and v2 released): head h uses slots 2·(h div 2) (row) and +1 (column) for every rank. */
    public static int[][][] sharedQuerySlots(int heads, int rank) {
        int[][] row = new int[heads][rank], col = new int[heads][rank];
        for (int h = 0; h < heads; h++)
            for (int p = 0; p < rank; p++) { row[h][p] = 2 * (h / 2); col[h][p] = 2 * (h / 2) + 1; }
        return new int[][][]{row, col};
    }

    /** A query per side and rank: slots laid out [h div 2][side][rank][kdim]. */
    public static int[][][] perRankQuerySlots(int heads, int rank) {
        int[][] row = new int[heads][rank], col = new int[heads][rank];
        for (int h = 0; h < heads; h++)
            for (int p = 0; p < rank; p++) { row[h][p] = (h / 2) * 2 * rank + p; col[h][p] = (h / 2) * 2 * rank + rank + p; }
        return new int[][][]{row, col};
    }

    public List<Param> params() {
        List<Param> l = new ArrayList<>(List.of(queryProj, queryNorm, keys, keysNorm));
        l.addAll(List.of(tuckerCore));
        l.add(u);
        l.add(v);
        return l;
    }

    public void setAuxLosses(double tuckerPenalty, double tuckerTau, double balanceCoef) {
        this.tuckerPenalty = tuckerPenalty; this.tuckerTau = tuckerTau; this.balanceCoef = balanceCoef;
    }

    /** Dense weights read per forward call (every key is scored). */
    public long denseParams() {
        return queryProj.numel() + queryNorm.numel() + keys.numel() + keysNorm.numel() + (long) cores * heads * rank * rank;
    }

    public long forwardMacsPerToken() {
        long m = (long) nSlots * kdim * d;                       // query projection
        m += (long) heads * 2 * rank * keyNum * kdim;            // stage-1 rank-1 scores
        m += (long) heads * 2 * knn1 * rank * kdim;              // per-rank scores of the stage-1 winners
        m += (long) heads * cores * ((long) knn1 * rank * rank + (long) knn1 * knn1 * rank); // grids
        return m;
    }

    /** Released init (official constants): norms normWeight, query/keys N(0, 1/kdim), cores U[0,1]. */
    public void initialize(Rng rng, double normWeight, double queryStd) {
        rng.fillNormal(queryProj.data(), queryStd);
        rng.fillNormal(keys.data(), 1.0 / Math.sqrt(kdim));
        for (Param c : tuckerCore) rng.fillUniform(c.data(), 0, 1);
        Arrays.fill(queryNorm.data(), (float) normWeight);
        Arrays.fill(keysNorm.data(), (float) normWeight);
        Arrays.fill(u.data(), 0f);
        Arrays.fill(v.data(), 0f);
        updateTucker();
    }

    /**
     * Paper init of the norm weights: with both norm weights equal to c, every grid score scales as
     * c⁴ (score = query·key per side, bilinear in the row and column scores) and the selection does
     * not change, so one forward on unit-variance input at c = 1 gives c = mean^(−1/4) exactly.
     * Returns the relative std σ_s of the selected summed scores (for the value std of eq. 26).
     */
    public double calibrateNorms(Rng rng, int tokens) {
        Arrays.fill(queryNorm.data(), 1f);
        Arrays.fill(keysNorm.data(), 1f);
        keysValid = false;
        float[] x = new float[tokens * d];
        rng.fillNormal(x, 1.0);
        forward(x, tokens);
        int m = tokens * heads * knn;
        double s1 = 0, s2 = 0;
        for (int e = 0; e < m; e++) { s1 += sumScores[e]; s2 += (double) sumScores[e] * sumScores[e]; }
        double mean = s1 / m, sd = Math.sqrt(Math.max(0, s2 / m - mean * mean));
        if (!(mean > 0)) return 0; // keep c = 1 when the calibration input gives no positive scores
        float c = (float) Math.pow(mean, -0.25);
        Arrays.fill(queryNorm.data(), c);
        Arrays.fill(keysNorm.data(), c);
        keysValid = false;
        return sd / mean;
    }

    // ------------------------------------------------------------------ Tucker rank-1 update

    /**
     * In eval mode (on = true) the normalised keys are computed once and reused until
     * {@link #updateTucker()} (called from the layers' afterWeightsChanged) or {@link #invalidateKeys()}.
     */
    public void setCacheKeys(boolean on) { cacheKeys = on; keysValid = false; }

    public void invalidateKeys() { keysValid = false; }

    /** u, v = leading singular vectors of Σ_c core_c[h], sign smoothed against the previous u, v. */
    public void updateTucker() {
        keysValid = false;
        float[] ud = u.data(), vd = v.data();
        for (int h = 0; h < heads; h++) {
            TuckerSvd svd = TuckerSvd.of(coreSum(h), rank);
            double pos = 0, neg = 0;
            for (int i = 0; i < rank; i++) {
                double un = svd.u[i * rank], vn = svd.v[i * rank];
                pos += Math.abs(un - ud[h * rank + i]) + Math.abs(vn - vd[h * rank + i]);
                neg += Math.abs(-un - ud[h * rank + i]) + Math.abs(-vn - vd[h * rank + i]);
            }
            double sgn = neg - pos >= 0 ? 1 : -1;
            for (int i = 0; i < rank; i++) {
                ud[h * rank + i] = (float) (sgn * svd.u[i * rank]);
                vd[h * rank + i] = (float) (sgn * svd.v[i * rank]);
            }
            for (int i = 0; i < rank; i++) singular[h * rank + i] = svd.s[i];
        }
    }

    double[] coreSum(int h) {
        double[] m = new double[rank * rank];
        for (Param c : tuckerCore) {
            float[] cd = c.data();
            for (int i = 0; i < rank * rank; i++) m[i] += cd[h * rank * rank + i];
        }
        return m;
    }

    // ------------------------------------------------------------------ forward

    private void ensure(int n) {
        this.n = n;
        if (n <= cap) return;
        int c = Math.max(n, cap * 3 / 2);
        qraw = new float[c * nSlots * kdim]; qn = new float[c * nSlots * kdim]; qrstd = new float[c * nSlots];
        qs = new float[c * nSlots * kdim]; dqs = new float[c * nSlots * kdim]; dqn = new float[c * nSlots * kdim];
        dqraw = new float[c * nSlots * kdim];
        qcat = new float[heads * 2 * c * rank * kdim];
        A = new float[heads * 2 * c * keyNum];
        I1 = new int[c * heads * 2 * knn1];
        R1 = new float[c * heads * 2 * knn1 * rank]; dR1 = new float[R1.length];
        selRow = new int[c * heads * knn]; selCol = new int[c * heads * knn]; bestIndices = new int[c * heads * knn];
        scores = new float[c * heads * knn * cores]; sumScores = new float[c * heads * knn];
        cap = c;
    }

    /** dS block of (head, side, rank) for the current n (only with the balance loss). */
    private int sOff(int h, int side, int p) { return ((h * 2 + side) * rank + p) * n * keyNum; }

    /** stage-1 score row of (head, side, token). */
    private int aOff(int h, int side, int t) { return ((h * 2 + side) * n + t) * keyNum; }

    /** rank-ρ query of (head, side, token) inside qcat. */
    private int qOff(int h, int side, int t, int p) { return (((h * 2 + side) * n + t) * rank + p) * kdim; }

    private int kOff(int h, int side, int p) { return ((h * 2 + side) * rank + p) * keyNum * kdim; }

    public void forward(float[] x, int n) {
        ensure(n);
        int Q = nSlots * kdim;
        // 1. query = query_norm(query_proj(x)), each kdim slot normalised on its own
        K.gemmNT(n, Q, d, x, 0, queryProj.data(), 0, qraw, 0, false);
        K.rmsnormForward(n * nSlots, kdim, qraw, 0, queryNorm.data(), EPS, qn, 0, qrstd, 0);
        // 2. keys_norm over kdim for every key vector (transposed so the rank axis is outermost)
        if (!(cacheKeys && keysValid)) {
            float[] kd = keys.data();
            for (int h = 0; h < heads; h++)
                for (int side = 0; side < 2; side++)
                    for (int k = 0; k < keyNum; k++)
                        for (int j = 0; j < kdim; j++)
                            for (int p = 0; p < rank; p++)
                                kt[kOff(h, side, p) + k * kdim + j] = kd[(((h * 2 + side) * keyNum + k) * kdim + j) * rank + p];
            K.rmsnormForward(heads * 2 * rank * keyNum, kdim, kt, 0, keysNorm.data(), EPS, khat, 0, krstd, 0);
            // u- and v-scaled keys side by side for the stage-1 product
            float[] ud = u.data(), vd = v.data();
            int rk = rank * kdim;
            for (int h = 0; h < heads; h++)
                for (int side = 0; side < 2; side++)
                    for (int p = 0; p < rank; p++) {
                        float w = (side == 0 ? ud : vd)[h * rank + p];
                        int ko = kOff(h, side, p), co = (h * 2 + side) * keyNum * rk + p * kdim;
                        for (int k = 0; k < keyNum; k++)
                            for (int j = 0; j < kdim; j++) {
                                khcat[co + k * rk + j] = khat[ko + k * kdim + j];
                                kcat[co + k * rk + j] = w * khat[ko + k * kdim + j];
                            }
                    }
            keysValid = cacheKeys;
        }
        // 3. stage-1 scores a = Σ_ρ u_ρ·S_row,ρ (b likewise with v): [q_0 … q_r-1]·[u_0·k̂_0 … u_r-1·k̂_r-1]ᵀ
        int rk = rank * kdim;
        for (int h = 0; h < heads; h++)
            for (int side = 0; side < 2; side++) {
                for (int p = 0; p < rank; p++) {
                    int slot = side == 0 ? rowSlot[h][p] : colSlot[h][p];
                    for (int t = 0; t < n; t++) System.arraycopy(qn, (t * nSlots + slot) * kdim, qcat, qOff(h, side, t, p), kdim);
                }
                K.gemmNT(n, keyNum, rk, qcat, qOff(h, side, 0, 0), kcat, (h * 2 + side) * keyNum * rk, A, aOff(h, side, 0), false);
            }
        // 4–7. stage-1 rank-1 top-k, grid per core, stage-2 top-k (token-parallel)
        // a few chunks per thread, claimed dynamically, so one slow thread does not hold up the rest
        int chunks = Math.max(1, Math.min(4 * Parallel.threads(), n));
        if (scratch.length < chunks) {
            Scratch[] s = Arrays.copyOf(scratch, chunks);
            for (int i = scratch.length; i < chunks; i++) s[i] = new Scratch(keyNum, knn1, knn, rank, cores);
            scratch = s;
        }
        Parallel.forChunks(n, chunks, (ch, t0, t1) -> {
            Scratch sc = scratch[ch];
            for (int t = t0; t < t1; t++) retrieveToken(t, sc);
        });
    }

    private void retrieveToken(int t, Scratch sc) {
        int r = rank;
        for (int h = 0; h < heads; h++) {
            // 4. stage 1: top-knn1 rows by a and columns by b
            for (int side = 0; side < 2; side++)
                MK.topK(A, aOff(h, side, t), keyNum, knn1, I1, ((t * heads + h) * 2 + side) * knn1, sc.val, 0);
            // 5. the per-rank scores S_ρ = ⟨q_ρ, k̂_ρ⟩ of the winners
            int i1r = ((t * heads + h) * 2) * knn1, i1c = i1r + knn1;
            int rk = r * kdim;
            MK.rowDots(knn1, r, kdim, qcat, qOff(h, 0, t, 0), khcat, (h * 2) * keyNum * rk, I1, i1r, sc.rr, 0);
            MK.rowDots(knn1, r, kdim, qcat, qOff(h, 1, t, 0), khcat, (h * 2 + 1) * keyNum * rk, I1, i1c, sc.rc, 0);
            System.arraycopy(sc.rr, 0, R1, i1r * r, knn1 * r);
            System.arraycopy(sc.rc, 0, R1, i1c * r, knn1 * r);
            // 6. grid per core G_c = R_row · core_c · R_colᵀ; the sum over cores is one bilinear form
            //    with Σ_c core_c, per-core values are only needed at the winners
            for (int c = 0; c < cores; c++) {
                float[] cd = tuckerCore[c].data();
                for (int i = 0; i < knn1; i++)
                    for (int s = 0; s < r; s++) {
                        float acc = 0;
                        for (int p = 0; p < r; p++) acc += sc.rr[i * r + p] * cd[(h * r + p) * r + s];
                        sc.tc[(c * knn1 + i) * r + s] = acc;
                    }
            }
            for (int i = 0; i < knn1; i++)
                for (int s = 0; s < r; s++) {
                    float acc = 0;
                    for (int c = 0; c < cores; c++) acc += sc.tc[(c * knn1 + i) * r + s];
                    sc.tsum[i * r + s] = acc;
                }
            for (int s = 0; s < r; s++)
                for (int j = 0; j < knn1; j++) sc.rct[s * knn1 + j] = sc.rc[j * r + s];
            MK.lowRankProduct(knn1, knn1, r, sc.tsum, sc.rct, sc.grid);
            // 7. stage 2: top-knn of the summed grid; keep the per-core scores of the winners
            MK.topK(sc.grid, 0, knn1 * knn1, knn, sc.gidx, 0, sc.gval, 0, gridBound(sc.grid));
            for (int q = 0; q < knn; q++) {
                int e = t * heads * knn + h * knn + q;
                int pos = sc.gidx[q], i = pos / knn1, j = pos % knn1;
                selRow[e] = i;
                selCol[e] = j;
                bestIndices[e] = I1[i1r + i] * keyNum + I1[i1c + j];
                sumScores[e] = sc.gval[q];
                for (int c = 0; c < cores; c++) scores[e * cores + c] = coreGrid(sc, c, i, j);
            }
        }
    }

    /**
     * A value not above the knn-th largest grid entry: the minimum over knn cells, so at least knn
     * entries reach it. Both stage-1 lists are sorted best first, so the cells with the smallest
     * (i+1)(j+1) are usually the top of the grid; {@link #boundCells} lists the first knn of them.
     */
    private float gridBound(float[] grid) {
        if (boundCells.length < knn) return Float.NEGATIVE_INFINITY;
        float mn = Float.POSITIVE_INFINITY;
        for (int q = 0; q < knn; q++) mn = Math.min(mn, grid[boundCells[q]]);
        return mn;
    }

    /** The first knn grid cells i·knn1 + j in order of (i+1)(j+1), then i, then j. */
    private static int[] boundCells(int knn1, int knn) {
        int total = knn1 * knn1;
        if (knn > total) return new int[0];
        Integer[] cells = new Integer[total];
        for (int c = 0; c < total; c++) cells[c] = c;
        Arrays.sort(cells, (x, y) -> {
            long px = (long) (x / knn1 + 1) * (x % knn1 + 1), py = (long) (y / knn1 + 1) * (y % knn1 + 1);
            return px != py ? Long.compare(px, py) : Integer.compare(x, y);
        });
        int[] out = new int[knn];
        for (int q = 0; q < knn; q++) out[q] = cells[q];
        return out;
    }

    private float coreGrid(Scratch sc, int c, int i, int j) {
        float g = 0;
        for (int s = 0; s < rank; s++) g += sc.tc[(c * knn1 + i) * rank + s] * sc.rc[j * rank + s];
        return g;
    }

    // ------------------------------------------------------------------ backward

    /**
     * Backward from the gradient of the per-core scores ({@code dScores[e·C + c]}), plus the aux losses.
     * Adds into dx and into the gradients of the query projection, norms, keys and cores.
     */
    public void backward(float[] x, float[] dScores, float[] dx, int n) {
        if (n != this.n) throw new IllegalStateException("backward n differs from forward n");
        int r = rank, Q = nSlots * kdim;
       
        // 7'–5'. grid → per-rank scores of the stage-1 winners (each token owns its rows: no races), and
        //     ∂G_c/∂core_c = R_row ⊗ R_col summed over tokens in double: one partial sum per fixed token
        //     block, added in block order, so the result does not depend on the threads.
        int blocks = Math.min(n, CORE_GRAD_BLOCKS), cg = cores * heads * r * r;
        if (coreAcc.length < blocks * cg) coreAcc = new double[blocks * cg];
        Arrays.fill(coreAcc, 0, blocks * cg, 0);
        Parallel.forChunks(n, blocks, (b, t0, t1) -> {
            // ∂L/∂core_c[h][p][s] = Σ_e ds_e,c · R_row[p] · R_col[s]: one register sum per element over the
            // block's entries (a running sum in memory would chain every entry's update to the last one's)
            for (int c = 0; c < cores; c++)
                for (int h = 0; h < heads; h++)
                    for (int p = 0; p < r; p++)
                        for (int s = 0; s < r; s++) {
                            double sum = 0;
                            for (int t = t0; t < t1; t++) {
                                int i1r = ((t * heads + h) * 2) * knn1, i1c = i1r + knn1, e0 = (t * heads + h) * knn;
                                for (int e = e0; e < e0 + knn; e++)
                                    sum += (double) dScores[e * cores + c] * R1[(i1r + selRow[e]) * r + p] * R1[(i1c + selCol[e]) * r + s];
                            }
                            coreAcc[b * cg + ((c * heads + h) * r + p) * r + s] = sum;
                        }
            // M = Σ_c ∂L/∂G_c · core_c, so ∂L/∂R_row = M·R_col and ∂L/∂R_col = Mᵀ·R_row
            float[] mm = new float[r * r];
            Arrays.fill(dR1, t0 * heads * 2 * knn1 * r, t1 * heads * 2 * knn1 * r, 0f);
            for (int t = t0; t < t1; t++)
                for (int h = 0; h < heads; h++) {
                    int i1r = ((t * heads + h) * 2) * knn1, i1c = i1r + knn1;
                    for (int q = 0; q < knn; q++) {
                        int e = t * heads * knn + h * knn + q;
                        int ro = (i1r + selRow[e]) * r, co = (i1c + selCol[e]) * r;
                        Arrays.fill(mm, 0f);
                        for (int c = 0; c < cores; c++) {
                            float ds = dScores[e * cores + c];
                            float[] cd = tuckerCore[c].data();
                            int co0 = h * r * r;
                            for (int k = 0; k < r * r; k++) mm[k] += ds * cd[co0 + k];
                        }
                        for (int p = 0; p < r; p++) {
                            float gr = 0, gc = 0;
                            for (int s = 0; s < r; s++) {
                                gr += mm[p * r + s] * R1[co + s];
                                gc += mm[s * r + p] * R1[ro + s];
                            }
                            dR1[ro + p] += gr;
                            dR1[co + p] += gc;
                        }
                    }
                }
        });
        for (int c = 0; c < cores; c++) {
            float[] g = tuckerCore[c].grad();
            for (int i = 0; i < heads * r * r; i++) {
                double acc = 0;
                for (int b = 0; b < blocks; b++) acc += coreAcc[b * cg + c * heads * r * r + i];
                g[i] += (float) acc;
            }
        }
        if (balanceCoef > 0) {
            // the balance loss reaches every key: scatter the winners' gradient into the dense dS
            if (dS.length < heads * 2 * r * n * keyNum) dS = new float[heads * 2 * r * n * keyNum];
            Arrays.fill(dS, 0, heads * 2 * r * n * keyNum, 0f);
            for (int t = 0; t < n; t++)
                for (int h = 0; h < heads; h++)
                    for (int side = 0; side < 2; side++) {
                        int io = ((t * heads + h) * 2 + side) * knn1;
                        for (int i = 0; i < knn1; i++)
                            for (int p = 0; p < r; p++) dS[sOff(h, side, p) + t * keyNum + I1[io + i]] += dR1[(io + i) * r + p];
                    }
            balanceBackward(n);
        }
        if (tuckerPenalty > 0) penaltyBackward();
        // 3'. scores → query slots and normalised keys. Without the balance loss only the stage-1
        //     winners carry a gradient, so the products run over those keys only.
        Arrays.fill(dqs, 0, n * Q, 0f);
        if (balanceCoef > 0) {
            // dense products over every key: each query slot as one [n][kdim] matrix
            for (int t = 0; t < n; t++)
                for (int s = 0; s < nSlots; s++)
                    System.arraycopy(qn, (t * nSlots + s) * kdim, qs, (s * n + t) * kdim, kdim);
            for (int h = 0; h < heads; h++)
                for (int side = 0; side < 2; side++)
                    for (int p = 0; p < r; p++) {
                        int slot = side == 0 ? rowSlot[h][p] : colSlot[h][p];
                        K.gemmNN(n, kdim, keyNum, dS, sOff(h, side, p), khat, kOff(h, side, p), dqs, slot * n * kdim, true);
                        K.gemmTN(keyNum, kdim, n, dS, sOff(h, side, p), qs, slot * n * kdim, dkhat, kOff(h, side, p), false);
                    }
        } else {
            Parallel.forRange(n, 16, (t0, t1) -> {
                for (int t = t0; t < t1; t++)
                    for (int h = 0; h < heads; h++)
                        for (int side = 0; side < 2; side++) {
                            int io = ((t * heads + h) * 2 + side) * knn1;
                            for (int p = 0; p < r; p++) {
                                int slot = side == 0 ? rowSlot[h][p] : colSlot[h][p];
                                MK.rowsWeightedSum(knn1, kdim, dR1, io * r + p, r, khat, kOff(h, side, p), I1, io, dqs, (slot * n + t) * kdim);
                            }
                        }
            });
            // each (head, side, rank) block of dkhat is owned by one thread; tokens in a fixed order
            Arrays.fill(dkhat, 0f);
            Parallel.forRange(heads * 2 * r, 1, (b0, b1) -> {
                for (int b = b0; b < b1; b++) {
                    int h = b / (2 * r), side = (b / r) % 2, p = b % r;
                    int ko = kOff(h, side, p);
                    for (int t = 0; t < n; t++) {
                        int io = ((t * heads + h) * 2 + side) * knn1;
                        MK.scatterRows(knn1, kdim, dR1, io * r + p, r, qcat, qOff(h, side, t, p), I1, io, dkhat, ko);
                    }
                }
            });
        }
        // 2'. keys_norm backward, transposed back into the official keys layout
        K.rmsnormBackward(heads * 2 * r * keyNum, kdim, kt, 0, keysNorm.data(), krstd, 0, dkhat, 0, dkt, 0, keysNorm.grad(), false);
        float[] kg = keys.grad();
        for (int h = 0; h < heads; h++)
            for (int side = 0; side < 2; side++)
                for (int k = 0; k < keyNum; k++)
                    for (int j = 0; j < kdim; j++)
                        for (int p = 0; p < r; p++)
                            kg[(((h * 2 + side) * keyNum + k) * kdim + j) * r + p] += dkt[kOff(h, side, p) + k * kdim + j];
        // 1'. query_norm and query_proj backward
        for (int t = 0; t < n; t++)
            for (int s = 0; s < nSlots; s++)
                System.arraycopy(dqs, (s * n + t) * kdim, dqn, (t * nSlots + s) * kdim, kdim);
        K.rmsnormBackward(n * nSlots, kdim, qraw, 0, queryNorm.data(), qrstd, 0, dqn, 0, dqraw, 0, queryNorm.grad(), false);
        K.gemmNN(n, d, Q, dqraw, 0, queryProj.data(), 0, dx, 0, true);
        K.gemmTN(Q, d, n, dqraw, 0, x, 0, queryProj.grad(), 0, true);
    }

    // ------------------------------------------------------------------ auxiliary losses

    /** Sum of the auxiliary losses of the last forward, already multiplied by their coefficients. */
    public double auxLoss() {
        double l = 0;
        if (tuckerPenalty > 0) l += tuckerPenalty * tuckerPenaltyValue();
        if (balanceCoef > 0) l += balanceCoef * balanceValue();
        return l;
    }

    /** mean over heads and i ≥ 2 of relu(λ_i − τ)² of the summed core (not scaled by α). */
    public double tuckerPenaltyValue() {
        if (rank < 2) return 0;
        double s = 0;
        for (int h = 0; h < heads; h++) {
            TuckerSvd svd = TuckerSvd.of(coreSum(h), rank);
            for (int i = 1; i < rank; i++) { double m = Math.max(0, svd.s[i] - tuckerTau); s += m * m; }
        }
        return s / (heads * (rank - 1));
    }

    /** dλ_i/dC = u_i v_iᵀ; every core gets the gradient of the sum. */
    private void penaltyBackward() {
        if (rank < 2) return;
        int r = rank;
        double scale = tuckerPenalty / (heads * (r - 1));
        for (int h = 0; h < heads; h++) {
            TuckerSvd svd = TuckerSvd.of(coreSum(h), r);
            for (int i = 1; i < r; i++) {
                double m = svd.s[i] - tuckerTau;
                if (m <= 0) continue;
                double f = scale * 2 * m;
                for (Param c : tuckerCore) {
                    float[] g = c.grad();
                    for (int p = 0; p < r; p++)
                        for (int s = 0; s < r; s++) g[(h * r + p) * r + s] += (float) (f * svd.u[p * r + i] * svd.v[s * r + i]);
                }
            }
        }
    }

    /** L = Σ_side keyNum · Σ_k p_k f_k with p the mean softmax of the stage-1 scores and f the selection frequency. */
    public double balanceValue() {
        double l = 0;
        double[] f = new double[keyNum], p = new double[keyNum], sm = new double[keyNum];
        for (int side = 0; side < 2; side++) {
            balanceFreq(side, f);
            Arrays.fill(p, 0);
            for (int t = 0; t < n; t++)
                for (int h = 0; h < heads; h++) {
                    softmax(aOff(h, side, t), sm);
                    for (int k = 0; k < keyNum; k++) p[k] += sm[k];
                }
            double s = 0;
            for (int k = 0; k < keyNum; k++) s += p[k] / ((double) n * heads) * f[k];
            l += keyNum * s;
        }
        return l;
    }

    private void balanceFreq(int side, double[] f) {
        Arrays.fill(f, 0);
        for (int t = 0; t < n; t++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < knn1; i++) f[I1[((t * heads + h) * 2 + side) * knn1 + i]] += 1;
        double tot = (double) n * heads * knn1;
        for (int k = 0; k < keyNum; k++) f[k] /= tot;
    }

    private void softmax(int off, double[] out) {
        double mx = Double.NEGATIVE_INFINITY;
        for (int k = 0; k < keyNum; k++) mx = Math.max(mx, A[off + k]);
        double z = 0;
        for (int k = 0; k < keyNum; k++) { out[k] = Math.exp(A[off + k] - mx); z += out[k]; }
        for (int k = 0; k < keyNum; k++) out[k] /= z;
    }

    /** Gradient through softmax(a) (f constant) into the per-rank scores: da = u·…, db = v·…. */
    private void balanceBackward(int n) {
        double[] f = new double[keyNum], sm = new double[keyNum];
        float[] ud = u.data(), vd = v.data();
        double scale = balanceCoef * keyNum / ((double) n * heads);
        for (int side = 0; side < 2; side++) {
            balanceFreq(side, f);
            float[] uv = side == 0 ? ud : vd;
            for (int t = 0; t < n; t++)
                for (int h = 0; h < heads; h++) {
                    softmax(aOff(h, side, t), sm);
                    double fs = 0;
                    for (int k = 0; k < keyNum; k++) fs += f[k] * sm[k];
                    for (int k = 0; k < keyNum; k++) {
                        double da = scale * sm[k] * (f[k] - fs);
                        for (int p = 0; p < rank; p++) dS[sOff(h, side, p) + t * keyNum + k] += (float) (da * uv[h * rank + p]);
                    }
                }
        }
    }

    // ------------------------------------------------------------------ debug views

    /** query after query_norm, [t][slot][kdim]. */
    public float[] queryNormed() { return qn; }

    /** S_row (side 0) or S_col (side 1) at [t, h, k, ρ] (recomputed from the normalised query and key). */
    public float score(int side, int t, int h, int k, int p) {
        return K.dot(kdim, qcat, qOff(h, side, t, p), khat, kOff(h, side, p) + k * kdim);
    }

    /** normalised key at the official layout [h, side, k, j, ρ]. */
    public float keyNormed(int h, int side, int k, int j, int p) { return khat[kOff(h, side, p) + k * kdim + j]; }
}
