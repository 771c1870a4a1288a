package dev.ultramem.memory;

import dev.ultramem.core.Parallel;
import dev.ultramem.core.UserError;
import dev.ultramem.kernel.MemoryKernels;

import java.util.Arrays;

/**
 * The two-stage product-key retrieval of every memory layer (Lample et al. 2019; TDQKR in UltraMem):
 * <ol>
 *   <li>per head, a row score and a column score for every one of the {@code keyNum} keys of each side
 *       ({@link #sideScores}, filled by the subclass from its query and keys);</li>
 *   <li>stage 1: the best {@code knn1} keys of each side, best first (the candidates);</li>
 *   <li>the {@code knn1 × knn1} grid of candidate pairs, scored by the subclass ({@link #scoreGrid}):
 *       additive {@code s_row[i] + s_col[j]} for PKM and Memory+, the Tucker core for UltraMem;</li>
 *   <li>stage 2: the best {@code knn} grid cells (the winners), best first, each addressed by
 *       {@code z = row key · keyNum + column key}.</li>
 * </ol>
 * The winners then address value rows through {@link ValueLookup} and the fused gather/scatter kernels
 * of {@link MemoryKernels}, the same for every layer.
 *
 * <p>Layouts: side scores {@code [H][2][n][keyNum]}; candidates {@code [n][H][2][knn1]}; winners are
 * entries {@code e = t·H·knn + h·knn + q}, each head's list sorted by its grid score.
 */
abstract class ProductKeyRetrieval {

    public final int heads, keyNum, knn1, knn;
    protected final MemoryKernels MK = MemoryKernels.get();

    /** tokens of the last forward. */
    int n;
    private int cap = -1;
    /** row (side 0) and column (side 1) scores of every key, {@code [H][2][n][keyNum]}. */
    float[] sideScores;
    /** the stage-1 candidates: the best knn1 keys per side, best first, {@code [n][H][2][knn1]}. */
    int[] candidates;
    /** candidate-list positions (i, j) of each winner's grid cell, {@code [e]}. */
    int[] winnerRow, winnerCol;
    /** address of each winner, {@code z = row key · keyNum + column key}, {@code [e]}. */
    public int[] bestIndices;
    /** grid score of each winner, {@code [e]}, best first per head. */
    public float[] sumScores;
    /** the knn grid cells whose minimum bounds the stage-2 top-k from below. */
    private final int[] boundCells;
    private Scratch[] scratch = new Scratch[0];

    /** Per-chunk working memory of one token's retrieval; subclasses add their grid's own. */
    static class Scratch {
        /** candidate scores of side 0 at [0, knn1) and side 1 at [knn1, 2·knn1). */
        final float[] candidateScores;
        final float[] grid, winnerScores;
        final int[] winnerCells;

        Scratch(int knn1, int knn) {
            candidateScores = new float[2 * knn1];
            grid = new float[knn1 * knn1];
            winnerScores = new float[knn];
            winnerCells = new int[knn];
        }
    }

    ProductKeyRetrieval(int heads, int keyNum, int knn1, int knn) {
        if (knn1 > keyNum)
            throw new UserError("config: stage-1 top-k (mem_stage1_knn, or mem_knn when 0: " + knn1 + ") exceeds the keys per side (" + keyNum + ", from mem_knum)");
        if ((long) knn1 * knn1 < knn) throw new UserError("config: mem_knn (" + knn + ") exceeds the stage-1 grid size (" + (long) knn1 * knn1 + ")");
        if ((long) keyNum * keyNum > Integer.MAX_VALUE) throw new UserError("config: keys per side² must be below 2^31, got " + keyNum + " keys per side");
        this.heads = heads; this.keyNum = keyNum; this.knn1 = knn1; this.knn = knn;
        boundCells = boundCells(knn1, knn);
    }

    /** Winners per token (H·knn). */
    final int entriesPerToken() { return heads * knn; }

    /** New scratch of this retrieval's grid. */
    abstract Scratch newScratch();

    /** Fills {@code sc.grid[i·knn1 + j]} for the candidates of token t, head h (after stage 1). */
    abstract void scoreGrid(int t, int h, Scratch sc);

    /** Keeps what the backward needs of winner e in grid cell (i, j) (the per-core scores of UltraMem). */
    void keepWinner(Scratch sc, int e, int i, int j) {}

    /** Grows the subclass's per-token arrays to c tokens. */
    abstract void allocate(int c);

    /** Sets the token count of this forward and grows every per-token array (by half again, so growth is rare). */
    final void ensure(int n) {
        this.n = n;
        if (n <= cap) return;
        int c = Math.max(n, cap * 3 / 2);
        sideScores = new float[heads * 2 * c * keyNum];
        candidates = new int[c * heads * 2 * knn1];
        winnerRow = new int[c * heads * knn]; winnerCol = new int[c * heads * knn];
        bestIndices = new int[c * heads * knn]; sumScores = new float[c * heads * knn];
        allocate(c);
        cap = c;
    }

    /** side-score row of (head, side, token). */
    final int sideOffset(int h, int side, int t) { return ((h * 2 + side) * n + t) * keyNum; }

    /** first candidate of (token, head, side). */
    final int candidateOffset(int t, int h, int side) { return ((t * heads + h) * 2 + side) * knn1; }

    /** Stage 1, the grid and stage 2 for the n tokens of {@link #ensure}, after {@link #sideScores} are filled. */
    final void select() {
        // a few chunks per thread, claimed dynamically, so one slow thread does not hold up the rest
        int chunks = Math.max(1, Math.min(4 * Parallel.threads(), n));
        if (scratch.length < chunks) {
            Scratch[] s = Arrays.copyOf(scratch, chunks);
            for (int i = scratch.length; i < chunks; i++) s[i] = newScratch();
            scratch = s;
        }
        Parallel.forChunks(n, chunks, (ch, t0, t1) -> {
            Scratch sc = scratch[ch];
            for (int t = t0; t < t1; t++)
                for (int h = 0; h < heads; h++) selectHead(t, h, sc);
        });
    }

    private void selectHead(int t, int h, Scratch sc) {
        // stage 1: the best knn1 keys of each side
        for (int side = 0; side < 2; side++)
            MK.topK(sideScores, sideOffset(h, side, t), keyNum, knn1, candidates, candidateOffset(t, h, side), sc.candidateScores, side * knn1);
        scoreGrid(t, h, sc);
        // stage 2: the best knn cells of the grid
        MK.topK(sc.grid, 0, knn1 * knn1, knn, sc.winnerCells, 0, sc.winnerScores, 0, gridBound(sc.grid));
        int rowCand = candidateOffset(t, h, 0), colCand = rowCand + knn1;
        for (int q = 0; q < knn; q++) {
            int e = t * heads * knn + h * knn + q;
            int cell = sc.winnerCells[q], i = cell / knn1, j = cell % knn1;
            winnerRow[e] = i;
            winnerCol[e] = j;
            bestIndices[e] = candidates[rowCand + i] * keyNum + candidates[colCand + j];
            sumScores[e] = sc.winnerScores[q];
            keepWinner(sc, e, i, j);
        }
    }

    /**
     * Stage-2 bound (saves most of the grid scan): a value not above the knn-th largest grid entry, the
     * minimum over knn cells, so at least knn entries reach it. Both candidate lists are sorted best
     * first, so the cells with the smallest (i+1)(j+1) are usually the top of the grid.
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
}
