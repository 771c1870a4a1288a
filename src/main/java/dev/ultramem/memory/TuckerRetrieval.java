package dev.ultramem.memory;

import dev.ultramem.core.Parallel;
import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.kernel.Kernels;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * TDQKR, the Tucker-decomposed query-key retrieval of UltraMem v1 and UltraMemV2, on the shared
 * {@link ProductKeyRetrieval} core. In the paper's terms, per head h and Tucker rank ρ:
 * <pre>
 *   q        = query_norm(query_proj(x))           a row query q_row,ρ and a column query q_col,ρ per rank
 *   K̂        = keys_norm(keys)                      row keys K̂_row,ρ and column keys K̂_col,ρ per rank
 *   S_row,ρ  = q_row,ρ·K̂_row,ρᵀ,  S_col,ρ = q_col,ρ·K̂_col,ρᵀ   (row and column scores)
 *   stage 1  the best knn1 keys of each side by the rank-1 scores u·S_row and v·S_col (the candidates)
 *   grid     G_c[i, j] = S_row[i]·C_c·S_col[j]ᵀ over the candidates, one per Tucker core C_c
 *   stage 2  the best knn cells of Σ_c G_c (the winners), each keeping its per-core scores G_c
 * </pre>
 * with u, v the rank-1 refresh of the summed core ({@link TuckerRefresh}) and the auxiliary losses in
 * {@link TuckerAuxLosses}.
 *
 * <p>Layouts. The projection has {@code nSlots} query slots of {@code kdim}; head h, rank ρ reads its
 * row query from slot {@code rowSlot[h][ρ]} and its column query from {@code colSlot[h][ρ]}.
 * {@code keys [H, 2, keyNum, kdim, r]} as in the official state dict; internally the normalised keys
 * are {@code [H][2][r][keyNum][kdim]}. Winners {@code e = t·H·knn + h·knn + q}; per-core scores at
 * {@code scores[e·C + c]}.
 */
public final class TuckerRetrieval extends ProductKeyRetrieval {

    public final int d, kdim, rank, cores, nSlots;
    final int[][] rowSlot, colSlot;
    static final float EPS = 1e-5f;

    public final Param queryProj, queryNorm, keys, keysNorm, u, v;
    /** the Tucker cores C_c, {@code [H][r][r]} each. */
    public final Param[] tuckerCore;
    /** singular values of the summed core per head, from the last refresh {@code [h·r + i]}. */
    public final double[] singular;

    private final TuckerRefresh refresh;
    private final TuckerAuxLosses aux;
    private final Kernels K = Kernels.get();

    // ---- forward state, per token (grown with n)
    private float[] queryRaw, query, queryRstd;
    /** the rank queries of each (head, side) side by side, {@code [H][2][n][r·kdim]}. */
    private float[] rankQueries;
    /** the per-rank scores S_ρ of the stage-1 candidates, {@code [n][H][2][knn1][r]}. */
    private float[] candidateRankScores;
    /** per-core grid scores G_c of the winners, {@code [e·C + c]}. */
    public float[] scores;
    // ---- backward state, per token
    private float[] dCandidateRankScores, dQuerySlots, dQuery, dQueryRaw;
    /** query slots as {@code [slot][n][kdim]}, and the dense ∂L/∂S_ρ {@code [H][2][r][n][keyNum]}: key balance only. */
    private float[] querySlots, dRankScores = new float[0];

    // ---- per weight update
    /** the keys with the rank axis outermost, {@code [H][2][r][keyNum][kdim]}, and their normalised copy. */
    private final float[] keysByRank, keysNormed, keysRstd;
    /** normalised keys of each (head, side) with the ranks side by side, {@code [H][2][keyNum][r·kdim]}. */
    private final float[] rankKeys;
    /** the same scaled by u (row side) or v (column side): the stage-1 product's right operand. */
    private final float[] scaledRankKeys;
    private final float[] dKeysNormed, dKeysByRank;
    /** Eval mode keeps the normalised keys between calls until the weights change (decode at batch 1). */
    private boolean cacheKeys, keysValid;

    /** token blocks of the core gradient (fixed, so the summation order does not depend on the threads). */
    private static final int CORE_GRAD_BLOCKS = 64;
    private double[] coreGradPartials = new double[0];

    /** Per-chunk scratch of the Tucker grid of one (token, head). */
    private static final class TuckerScratch extends Scratch {
        /** S_row and S_col of the candidates, {@code [knn1][r]}; S_col transposed {@code [r][knn1]}. */
        final float[] rowRankScores, colRankScores, colRankScoresT;
        /** S_row·C_c per core {@code [C][knn1][r]}, and S_row·Σ_c C_c {@code [knn1][r]}. */
        final float[] rowTimesCore, rowTimesCoreSum;

        TuckerScratch(int knn1, int knn, int r, int C) {
            super(knn1, knn);
            rowRankScores = new float[knn1 * r];
            colRankScores = new float[knn1 * r];
            colRankScoresT = new float[knn1 * r];
            rowTimesCoreSum = new float[knn1 * r];
            rowTimesCore = new float[C * knn1 * r];
        }
    }

    /**
     * @param qSlots number of kdim query slots of the projection
     * @param rowSlot row query slot per head and rank; colSlot likewise
     */
    public TuckerRetrieval(String prefix, int d, int kdim, int heads, int keyNum, int rank, int cores,
                           int knn1, int knn, int qSlots, int[][] rowSlot, int[][] colSlot) {
        super(heads, keyNum, knn1, knn);
        this.d = d; this.kdim = kdim; this.rank = rank; this.cores = cores;
        this.nSlots = qSlots; this.rowSlot = rowSlot; this.colSlot = colSlot;
        queryProj = Param.of(prefix + "query_proj.weight", Param.Group.DECAY, qSlots * kdim, d);
        queryNorm = Param.of(prefix + "query_norm.weight", Param.Group.DECAY, kdim);
        keys = Param.of(prefix + "keys", Param.Group.DECAY, heads, 2, keyNum, kdim, rank);
        keysNorm = Param.of(prefix + "keys_norm.weight", Param.Group.DECAY, kdim);
        tuckerCore = new Param[cores];
        for (int c = 0; c < cores; c++) tuckerCore[c] = Param.of(prefix + "tucker_core." + c, Param.Group.DECAY, heads, rank, rank);
        u = Param.buffer(prefix + "tucker_core_u", 1, heads, 1, rank);
        v = Param.buffer(prefix + "tucker_core_v", 1, heads, 1, rank);
        int nk = heads * 2 * rank * keyNum * kdim;
        keysByRank = new float[nk]; keysNormed = new float[nk]; dKeysNormed = new float[nk]; dKeysByRank = new float[nk];
        rankKeys = new float[nk]; scaledRankKeys = new float[nk];
        keysRstd = new float[heads * 2 * rank * keyNum];
        refresh = new TuckerRefresh(tuckerCore, u, v, heads, rank);
        singular = refresh.singular;
        aux = new TuckerAuxLosses(this);
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
        aux.tuckerPenalty = tuckerPenalty; aux.tuckerTau = tuckerTau; aux.balanceCoef = balanceCoef;
    }

    /** Dense weights read per forward call (every key is scored). */
    public long denseParams() {
        return queryProj.numel() + queryNorm.numel() + keys.numel() + keysNorm.numel() + (long) cores * heads * rank * rank;
    }

    public long forwardMacsPerToken() {
        long m = (long) nSlots * kdim * d;                       // query projection
        m += (long) heads * 2 * rank * keyNum * kdim;            // stage-1 rank-1 scores
        m += (long) heads * 2 * knn1 * rank * kdim;              // per-rank scores of the stage-1 candidates
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
     * Returns the relative std σ_s of the winners' summed scores (for the value std of eq. 26).
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

    // ------------------------------------------------------------------ rank-1 refresh

    /**
     * In eval mode (on = true) the normalised keys are computed once and reused until
     * {@link #updateTucker()} (called from the layers' afterWeightsChanged) or {@link #invalidateKeys()}.
     */
    public void setCacheKeys(boolean on) {
        cacheKeys = on;
        keysValid = false;
        if (!on) K.thawWeights(List.of(scaledRankKeys));
    }

    public void invalidateKeys() { keysValid = false; }

    /** The rank-1 refresh: u, v from the SVD of the summed core ({@link TuckerRefresh}). */
    public void updateTucker() {
        keysValid = false;
        refresh.refresh();
    }

    double[] coreSum(int h) { return refresh.coreSum(h); }

    // ------------------------------------------------------------------ forward

    @Override Scratch newScratch() { return new TuckerScratch(knn1, knn, rank, cores); }

    @Override void allocate(int c) {
        int q = c * nSlots * kdim;
        queryRaw = new float[q]; query = new float[q]; queryRstd = new float[c * nSlots];
        querySlots = new float[q]; dQuerySlots = new float[q]; dQuery = new float[q]; dQueryRaw = new float[q];
        rankQueries = new float[heads * 2 * c * rank * kdim];
        candidateRankScores = new float[c * heads * 2 * knn1 * rank]; dCandidateRankScores = new float[candidateRankScores.length];
        scores = new float[c * heads * knn * cores];
    }

    /** dense ∂L/∂S_ρ block of (head, side, rank) for the current n (key balance only). */
    int rankScoreOffset(int h, int side, int p) { return ((h * 2 + side) * rank + p) * n * keyNum; }

    /** rank-ρ query of (head, side, token) inside rankQueries. */
    private int rankQueryOffset(int h, int side, int t, int p) { return (((h * 2 + side) * n + t) * rank + p) * kdim; }

    /** normalised keys of (head, side, rank). */
    private int keyOffset(int h, int side, int p) { return ((h * 2 + side) * rank + p) * keyNum * kdim; }

    /** rank-concatenated keys of (head, side). */
    private int rankKeyOffset(int h, int side) { return (h * 2 + side) * keyNum * rank * kdim; }

    public void forward(float[] x, int n) {
        ensure(n);
        // query = query_norm(query_proj(x)), each kdim slot normalised on its own
        K.gemmNT(n, nSlots * kdim, d, x, 0, queryProj.data(), 0, queryRaw, 0, false);
        K.rmsnormForward(n * nSlots, kdim, queryRaw, 0, queryNorm.data(), EPS, query, 0, queryRstd, 0);
        if (!(cacheKeys && keysValid)) normaliseKeys();
        stage1Scores();
        select(); // stage 1, the Tucker grid, stage 2
    }

    /** K̂ = keys_norm(keys) over kdim for every key vector, then the rank-concatenated (and u-, v-scaled) copies. */
    private void normaliseKeys() {
        // cached keys (evaluation, decoding) are frozen for the kernels, which then pack them once for the
        // stage-1 products instead of in every call; they thaw before they are rewritten
        K.thawWeights(List.of(scaledRankKeys));
        float[] kd = keys.data();
        for (int h = 0; h < heads; h++)
            for (int side = 0; side < 2; side++)
                for (int k = 0; k < keyNum; k++)
                    for (int j = 0; j < kdim; j++)
                        for (int p = 0; p < rank; p++)
                            keysByRank[keyOffset(h, side, p) + k * kdim + j] = kd[(((h * 2 + side) * keyNum + k) * kdim + j) * rank + p];
        K.rmsnormForward(heads * 2 * rank * keyNum, kdim, keysByRank, 0, keysNorm.data(), EPS, keysNormed, 0, keysRstd, 0);
        float[] ud = u.data(), vd = v.data();
        int rk = rank * kdim;
        for (int h = 0; h < heads; h++)
            for (int side = 0; side < 2; side++)
                for (int p = 0; p < rank; p++) {
                    float w = (side == 0 ? ud : vd)[h * rank + p];
                    int ko = keyOffset(h, side, p), co = rankKeyOffset(h, side) + p * kdim;
                    for (int k = 0; k < keyNum; k++)
                        for (int j = 0; j < kdim; j++) {
                            rankKeys[co + k * rk + j] = keysNormed[ko + k * kdim + j];
                            scaledRankKeys[co + k * rk + j] = w * keysNormed[ko + k * kdim + j];
                        }
                }
        keysValid = cacheKeys;
        if (cacheKeys) K.freezeWeights(List.of(scaledRankKeys));
    }

    /**
     * The rank-1 stage-1 scores a = Σ_ρ u_ρ·S_row,ρ (b likewise with v) of every key. Concatenated keys
     * (saves the r per-rank score matrices and their weighted sum): a is one matrix product
     * [q_0 … q_r-1]·[u_0·k̂_0 … u_r-1·k̂_r-1]ᵀ per (head, side); S_ρ itself is needed at the candidates only.
     */
    private void stage1Scores() {
        // A decode step's few queries make each product too small for the kernels to split (a GEMM below 2^19
        // multiply-adds, a GEMV below 2^17, runs on one thread), so the (head, side) products run side by side.
        if ((long) n * keyNum * rank * kdim < (n <= 8 ? SMALL_WORK / 4 : SMALL_WORK)) Parallel.forRange(heads * 2, 1, (b0, b1) -> { for (int b = b0; b < b1; b++) stage1Side(b / 2, b % 2); });
        else for (int b = 0; b < heads * 2; b++) stage1Side(b / 2, b % 2);
    }

    /** Below this many multiply-adds per product (a quarter of it up to 8 tokens, the GEMV's own cut), the (head, side) products run in parallel. */
    static final long SMALL_WORK = 1L << 19;

    private void stage1Side(int h, int side) {
        for (int p = 0; p < rank; p++) {
            int slot = side == 0 ? rowSlot[h][p] : colSlot[h][p];
            for (int t = 0; t < n; t++) System.arraycopy(query, (t * nSlots + slot) * kdim, rankQueries, rankQueryOffset(h, side, t, p), kdim);
        }
        K.gemmNT(n, keyNum, rank * kdim, rankQueries, rankQueryOffset(h, side, 0, 0), scaledRankKeys, rankKeyOffset(h, side),
                sideScores, sideOffset(h, side, 0), false);
    }

    /**
     * The grid over the candidates: S_ρ of the candidates, then Σ_c G_c = S_row·(Σ_c C_c)·S_colᵀ.
     * Summed core (saves C − 1 grids of knn1² per head): the sum over cores is one bilinear form,
     * and the per-core G_c are computed at the winners only ({@link #keepWinner}).
     */
    @Override void scoreGrid(int t, int h, Scratch base) {
        TuckerScratch sc = (TuckerScratch) base;
        int r = rank, rk = r * kdim;
        int rowCand = candidateOffset(t, h, 0), colCand = rowCand + knn1;
        // S_ρ = ⟨q_ρ, k̂_ρ⟩ at the candidates only (saves r·keyNum dot products per side)
        MK.rowDots(knn1, r, kdim, rankQueries, rankQueryOffset(h, 0, t, 0), rankKeys, rankKeyOffset(h, 0), candidates, rowCand, sc.rowRankScores, 0);
        MK.rowDots(knn1, r, kdim, rankQueries, rankQueryOffset(h, 1, t, 0), rankKeys, rankKeyOffset(h, 1), candidates, colCand, sc.colRankScores, 0);
        System.arraycopy(sc.rowRankScores, 0, candidateRankScores, rowCand * r, knn1 * r);
        System.arraycopy(sc.colRankScores, 0, candidateRankScores, colCand * r, knn1 * r);
        for (int c = 0; c < cores; c++) {
            float[] cd = tuckerCore[c].data();
            for (int i = 0; i < knn1; i++)
                for (int s = 0; s < r; s++) {
                    float acc = 0;
                    for (int p = 0; p < r; p++) acc += sc.rowRankScores[i * r + p] * cd[(h * r + p) * r + s];
                    sc.rowTimesCore[(c * knn1 + i) * r + s] = acc;
                }
        }
        for (int i = 0; i < knn1; i++)
            for (int s = 0; s < r; s++) {
                float acc = 0;
                for (int c = 0; c < cores; c++) acc += sc.rowTimesCore[(c * knn1 + i) * r + s];
                sc.rowTimesCoreSum[i * r + s] = acc;
            }
        for (int s = 0; s < r; s++)
            for (int j = 0; j < knn1; j++) sc.colRankScoresT[s * knn1 + j] = sc.colRankScores[j * r + s];
        MK.lowRankProduct(knn1, knn1, r, sc.rowTimesCoreSum, sc.colRankScoresT, sc.grid);
    }

    /** The per-core scores G_c[i, j] = (S_row[i]·C_c)·S_col[j] of a winner. */
    @Override void keepWinner(Scratch base, int e, int i, int j) {
        TuckerScratch sc = (TuckerScratch) base;
        int r = rank;
        for (int c = 0; c < cores; c++) {
            float g = 0;
            for (int p = 0; p < r; p++) g += sc.rowTimesCore[(c * knn1 + i) * r + p] * sc.colRankScores[j * r + p];
            scores[e * cores + c] = g;
        }
    }

    // ------------------------------------------------------------------ backward

    /**
     * Backward from the gradient of the per-core scores ({@code dScores[e·C + c]}), plus the aux losses.
     * Adds into dx and into the gradients of the query projection, norms, keys and cores.
     */
    public void backward(float[] x, float[] dScores, float[] dx, int n) {
        if (n != this.n) throw new IllegalStateException("backward n differs from forward n");
        gridBackward(dScores);
        if (aux.balanceCoef > 0) {
            // the balance loss reaches every key: scatter the candidates' gradient into the dense ∂L/∂S
            int dense = heads * 2 * rank * n * keyNum;
            if (dRankScores.length < dense) dRankScores = new float[dense];
            Arrays.fill(dRankScores, 0, dense, 0f);
            for (int t = 0; t < n; t++)
                for (int h = 0; h < heads; h++)
                    for (int side = 0; side < 2; side++) {
                        int io = candidateOffset(t, h, side);
                        for (int i = 0; i < knn1; i++)
                            for (int p = 0; p < rank; p++)
                                dRankScores[rankScoreOffset(h, side, p) + t * keyNum + candidates[io + i]] += dCandidateRankScores[(io + i) * rank + p];
                    }
            aux.balanceBackward(dRankScores);
        }
        aux.penaltyBackward();
        scoresBackward();
        keysBackward();
        queryBackward(x, dx);
    }

    /**
     * Grid → per-rank candidate scores (each token owns its rows: no races), and ∂G_c/∂C_c = S_row ⊗ S_col
     * summed over tokens in double: one partial sum per fixed token block, added in block order, so the
     * result does not depend on the threads.
     */
    private void gridBackward(float[] dScores) {
        int r = rank;
        int blocks = Math.min(n, CORE_GRAD_BLOCKS), cg = cores * heads * r * r;
        if (coreGradPartials.length < blocks * cg) coreGradPartials = new double[blocks * cg];
        Arrays.fill(coreGradPartials, 0, blocks * cg, 0);
        float[] S = candidateRankScores, dS = dCandidateRankScores;
        Parallel.forChunks(n, blocks, (b, t0, t1) -> {
            // ∂L/∂C_c[h][p][s] = Σ_e dG_e,c · S_row[p] · S_col[s]: one register sum per element over the
            // block's winners (a running sum in memory would chain every winner's update to the last one's)
            for (int c = 0; c < cores; c++)
                for (int h = 0; h < heads; h++)
                    for (int p = 0; p < r; p++)
                        for (int s = 0; s < r; s++) {
                            double sum = 0;
                            for (int t = t0; t < t1; t++) {
                                int rowCand = candidateOffset(t, h, 0), colCand = rowCand + knn1, e0 = (t * heads + h) * knn;
                                for (int e = e0; e < e0 + knn; e++)
                                    sum += (double) dScores[e * cores + c] * S[(rowCand + winnerRow[e]) * r + p] * S[(colCand + winnerCol[e]) * r + s];
                            }
                            coreGradPartials[b * cg + ((c * heads + h) * r + p) * r + s] = sum;
                        }
            // M = Σ_c ∂L/∂G_c · C_c, so ∂L/∂S_row = M·S_col and ∂L/∂S_col = Mᵀ·S_row
            float[] mm = new float[r * r];
            Arrays.fill(dS, t0 * heads * 2 * knn1 * r, t1 * heads * 2 * knn1 * r, 0f);
            for (int t = t0; t < t1; t++)
                for (int h = 0; h < heads; h++) {
                    int rowCand = candidateOffset(t, h, 0), colCand = rowCand + knn1;
                    for (int q = 0; q < knn; q++) {
                        int e = t * heads * knn + h * knn + q;
                        int ro = (rowCand + winnerRow[e]) * r, co = (colCand + winnerCol[e]) * r;
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
                                gr += mm[p * r + s] * S[co + s];
                                gc += mm[s * r + p] * S[ro + s];
                            }
                            dS[ro + p] += gr;
                            dS[co + p] += gc;
                        }
                    }
                }
        });
        for (int c = 0; c < cores; c++) {
            float[] g = tuckerCore[c].grad();
            for (int i = 0; i < heads * r * r; i++) {
                double acc = 0;
                for (int b = 0; b < blocks; b++) acc += coreGradPartials[b * cg + c * heads * r * r + i];
                g[i] += (float) acc;
            }
        }
    }

    /**
     * Scores → query slots and normalised keys. Sparse backward (saves the dense products over every key):
     * without the balance loss only the candidates carry a gradient, so the products run over those keys.
     */
    private void scoresBackward() {
        int r = rank;
        Arrays.fill(dQuerySlots, 0, n * nSlots * kdim, 0f);
        if (aux.balanceCoef > 0) {
            // dense products over every key: each query slot as one [n][kdim] matrix
            for (int t = 0; t < n; t++)
                for (int s = 0; s < nSlots; s++)
                    System.arraycopy(query, (t * nSlots + s) * kdim, querySlots, (s * n + t) * kdim, kdim);
            for (int h = 0; h < heads; h++)
                for (int side = 0; side < 2; side++)
                    for (int p = 0; p < r; p++) {
                        int slot = side == 0 ? rowSlot[h][p] : colSlot[h][p];
                        K.gemmNN(n, kdim, keyNum, dRankScores, rankScoreOffset(h, side, p), keysNormed, keyOffset(h, side, p), dQuerySlots, slot * n * kdim, true);
                        K.gemmTN(keyNum, kdim, n, dRankScores, rankScoreOffset(h, side, p), querySlots, slot * n * kdim, dKeysNormed, keyOffset(h, side, p), false);
                    }
            return;
        }
        Parallel.forRange(n, 16, (t0, t1) -> {
            for (int t = t0; t < t1; t++)
                for (int h = 0; h < heads; h++)
                    for (int side = 0; side < 2; side++) {
                        int io = candidateOffset(t, h, side);
                        for (int p = 0; p < r; p++) {
                            int slot = side == 0 ? rowSlot[h][p] : colSlot[h][p];
                            MK.rowsWeightedSum(knn1, kdim, dCandidateRankScores, io * r + p, r, keysNormed, keyOffset(h, side, p),
                                    candidates, io, dQuerySlots, (slot * n + t) * kdim);
                        }
                    }
        });
        // each (head, side, rank) block of the key gradient is owned by one thread; tokens in a fixed order
        Arrays.fill(dKeysNormed, 0f);
        Parallel.forRange(heads * 2 * r, 1, (b0, b1) -> {
            for (int b = b0; b < b1; b++) {
                int h = b / (2 * r), side = (b / r) % 2, p = b % r;
                int ko = keyOffset(h, side, p);
                for (int t = 0; t < n; t++) {
                    int io = candidateOffset(t, h, side);
                    MK.scatterRows(knn1, kdim, dCandidateRankScores, io * r + p, r, rankQueries, rankQueryOffset(h, side, t, p), candidates, io, dKeysNormed, ko);
                }
            }
        });
    }

    /** keys_norm backward, transposed back into the official keys layout. */
    private void keysBackward() {
        int r = rank;
        K.rmsnormBackward(heads * 2 * r * keyNum, kdim, keysByRank, 0, keysNorm.data(), keysRstd, 0, dKeysNormed, 0, dKeysByRank, 0, keysNorm.grad(), false);
        float[] kg = keys.grad();
        for (int h = 0; h < heads; h++)
            for (int side = 0; side < 2; side++)
                for (int k = 0; k < keyNum; k++)
                    for (int j = 0; j < kdim; j++)
                        for (int p = 0; p < r; p++)
                            kg[(((h * 2 + side) * keyNum + k) * kdim + j) * r + p] += dKeysByRank[keyOffset(h, side, p) + k * kdim + j];
    }

    /** query_norm and query_proj backward (adds into dx). */
    private void queryBackward(float[] x, float[] dx) {
        int Q = nSlots * kdim;
        for (int t = 0; t < n; t++)
            for (int s = 0; s < nSlots; s++)
                System.arraycopy(dQuerySlots, (s * n + t) * kdim, dQuery, (t * nSlots + s) * kdim, kdim);
        K.rmsnormBackward(n * nSlots, kdim, queryRaw, 0, queryNorm.data(), queryRstd, 0, dQuery, 0, dQueryRaw, 0, queryNorm.grad(), false);
        K.gemmNN(n, d, Q, dQueryRaw, 0, queryProj.data(), 0, dx, 0, true);
        K.gemmTN(Q, d, n, dQueryRaw, 0, x, 0, queryProj.grad(), 0, true);
    }

    // ------------------------------------------------------------------ auxiliary losses

    /** Sum of the auxiliary losses of the last forward, already multiplied by their coefficients. */
    public double auxLoss() { return aux.value(); }

    /** The Tucker-core penalty of the current cores, not scaled by its coefficient. */
    public double tuckerPenaltyValue() { return aux.penaltyValue(); }

    // ------------------------------------------------------------------ debug views

    /** query after query_norm, [t][slot][kdim]. */
    public float[] queryNormed() { return query; }

    /** S_row (side 0) or S_col (side 1) at [t, h, k, ρ] (recomputed from the normalised query and key). */
    public float score(int side, int t, int h, int k, int p) {
        return K.dot(kdim, rankQueries, rankQueryOffset(h, side, t, p), keysNormed, keyOffset(h, side, p) + k * kdim);
    }

    /** normalised key at the official layout [h, side, k, j, ρ]. */
    public float keyNormed(int h, int side, int k, int j, int p) { return keysNormed[keyOffset(h, side, p) + k * kdim + j]; }
}
