package dev.ultramem.memory;

import dev.ultramem.core.Parallel;
import dev.ultramem.kernel.Kernels;

import java.util.Arrays;

/**
 * The additive product-key retrieval of PKM and Memory+ (Lample et al. 2019), on the shared
 * {@link ProductKeyRetrieval} core: per head a row query and a column query are scored against
 * {@code knum} row keys and {@code knum} column keys, the best {@code k1} of each side form the
 * additive grid {@code s_row[i] + s_col[j]}, the best {@code knn} cells are kept with value index
 * {@code i·knum + j} (i, j = key ids), and a softmax over those {@code knn} scores per head gives the
 * lookup weights.
 *
 * <p>Layouts: query {@code [n][H][2][kdim]} (side 0 = row, 1 = column), keys {@code [H][2][knum][kdim]},
 * winners {@code [n][H·knn]} with heads concatenated.
 *
 * <p>Top-k selections carry no gradient: only keys that scored a winning grid cell receive one.
 */
final class ProductKeys extends ProductKeyRetrieval {

    final int kdim;
    private final Kernels K = Kernels.get();

    /** the query side-major, {@code [H][2][n][kdim]}, so each (head, side) scoring is one matrix product. */
    private float[] querySides = new float[0];
    /** softmax of the winners' grid scores per head, {@code [n][H·knn]} (the lookup weights). */
    private float[] weight = new float[0];
    private float[] dScore = new float[0];

    ProductKeys(int heads, int knum, int kdim, int stage1Knn, int knn) {
        super(heads, knum, stage1Knn, knn);
        this.kdim = kdim;
    }

    float[] weights() { return weight; }

    @Override Scratch newScratch() { return new Scratch(knn1, knn); }

    @Override void allocate(int c) {
        querySides = new float[heads * 2 * c * kdim];
        weight = new float[c * heads * knn];
        dScore = new float[c * heads * knn];
    }

    /** The additive grid: row candidate score plus column candidate score. */
    @Override void scoreGrid(int t, int h, Scratch sc) {
        float[] g = sc.grid, s = sc.candidateScores;
        for (int i = 0; i < knn1; i++) {
            float r = s[i];
            for (int j = 0; j < knn1; j++) g[i * knn1 + j] = r + s[knn1 + j];
        }
    }

    /** Side scores, stage 1, grid, stage 2 and the softmax weights for n tokens. */
    void forward(int n, float[] query, float[] keys) {
        ensure(n);
        int hs = heads * 2, qStride = hs * kdim;
        Parallel.forRange(n, 64, (s, e) -> {
            for (int t = s; t < e; t++)
                for (int p = 0; p < hs; p++)
                    System.arraycopy(query, t * qStride + p * kdim, querySides, (p * n + t) * kdim, kdim);
        });
        for (int p = 0; p < hs; p++)
            K.gemmNT(n, keyNum, kdim, querySides, p * n * kdim, keys, p * keyNum * kdim, sideScores, p * n * keyNum, false);
        select();
        System.arraycopy(sumScores, 0, weight, 0, n * heads * knn);
        K.softmaxRows(n * heads, knn, weight, 0, knn);
    }

    /**
     * Backward of {@link #forward}: dWeights {@code [n][H·knn]} is ∂L/∂(softmax weights). Writes
     * ∂L/∂query into dQuery (overwrite, layout of the query) and adds ∂L/∂keys into dKeys.
     * Only the keys of winning grid cells take part, so the cost is O(n·H·knn·kdim), not O(knum).
     */
    void backward(int n, float[] dWeights, float[] query, float[] keys, float[] dQuery, float[] dKeys) {
        if (n != this.n) throw new IllegalStateException("backward called with n=" + n + " after a forward with n=" + this.n);
        int hs = heads * 2, qStride = hs * kdim, slots = heads * knn;
        // softmax backward per head: ds_k = w_k (dw_k − Σ_j w_j dw_j)
        Parallel.forRange(n * heads, 256, (s, e) -> {
            for (int r = s; r < e; r++) {
                int o = r * knn;
                double dot = 0;
                for (int k = 0; k < knn; k++) dot += (double) weight[o + k] * dWeights[o + k];
                for (int k = 0; k < knn; k++) dScore[o + k] = (float) (weight[o + k] * (dWeights[o + k] - dot));
            }
        });
        Arrays.fill(dQuery, 0, n * qStride, 0f);
        // the grid score s_row[i] + s_col[j] passes its gradient to both key scores it was built from;
        // one (head, side) per task, so each task owns its keys' gradient and its query slots
        Parallel.forRange(hs, 1, (ps, pe) -> {
            for (int p = ps; p < pe; p++) {
                int h = p >> 1, side = p & 1;
                int keyBase = p * keyNum * kdim;
                for (int t = 0; t < n; t++) {
                    int o = t * slots + h * knn, qOff = t * qStride + p * kdim;
                    for (int k = 0; k < knn; k++) {
                        int z = bestIndices[o + k];
                        int key = side == 0 ? z / keyNum : z % keyNum;
                        float gs = dScore[o + k];
                        K.axpy(kdim, gs, keys, keyBase + key * kdim, dQuery, qOff);
                        K.axpy(kdim, gs, query, qOff, dKeys, keyBase + key * kdim);
                    }
                }
            }
        });
    }
}
