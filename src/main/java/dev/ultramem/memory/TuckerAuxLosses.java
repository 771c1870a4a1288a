package dev.ultramem.memory;

import dev.ultramem.core.Param;

import java.util.Arrays;

/**
 * The two auxiliary losses of TDQKR, on the retrieval's own tensors:
 * <ul>
 *   <li>the Tucker-core penalty (UltraMem): {@code α · mean over heads and i ≥ 2 of relu(λ_i − τ)²}, λ the
 *       singular values of the summed core {@code Σ_c C_c[h]}, pushing the core towards rank 1 so the
 *       rank-1 stage 1 ranks keys as the full grid would;</li>
 *   <li>the key balance loss (UltraMemV2): {@code β · keyNum · Σ_k p_k f_k} per side, p the mean softmax of
 *       the rank-1 stage-1 scores over tokens and heads, f the fraction of candidates that are key k
 *       (a constant), so keys that win often are pushed down.</li>
 * </ul>
 */
final class TuckerAuxLosses {

    private final TuckerRetrieval ret;
    double tuckerPenalty, tuckerTau, balanceCoef;

    TuckerAuxLosses(TuckerRetrieval ret) { this.ret = ret; }

    /** Sum of the auxiliary losses of the last forward, already multiplied by their coefficients. */
    double value() {
        double l = 0;
        if (tuckerPenalty > 0) l += tuckerPenalty * penaltyValue();
        if (balanceCoef > 0) l += balanceCoef * balanceValue();
        return l;
    }

    // ------------------------------------------------------------------ Tucker-core penalty

    /** mean over heads and i ≥ 2 of relu(λ_i − τ)² of the summed core (not scaled by α). */
    double penaltyValue() {
        int r = ret.rank, heads = ret.heads;
        if (r < 2) return 0;
        double s = 0;
        for (int h = 0; h < heads; h++) {
            TuckerSvd svd = TuckerSvd.of(ret.coreSum(h), r);
            for (int i = 1; i < r; i++) { double m = Math.max(0, svd.s[i] - tuckerTau); s += m * m; }
        }
        return s / (heads * (r - 1));
    }

    /** dλ_i/dC = u_i v_iᵀ; every core gets the gradient of the sum (added into the cores' gradients). */
    void penaltyBackward() {
        int r = ret.rank, heads = ret.heads;
        if (tuckerPenalty <= 0 || r < 2) return;
        double scale = tuckerPenalty / (heads * (r - 1));
        for (int h = 0; h < heads; h++) {
            TuckerSvd svd = TuckerSvd.of(ret.coreSum(h), r);
            for (int i = 1; i < r; i++) {
                double m = svd.s[i] - tuckerTau;
                if (m <= 0) continue;
                double f = scale * 2 * m;
                for (Param c : ret.tuckerCore) {
                    float[] g = c.grad();
                    for (int p = 0; p < r; p++)
                        for (int s = 0; s < r; s++) g[(h * r + p) * r + s] += (float) (f * svd.u[p * r + i] * svd.v[s * r + i]);
                }
            }
        }
    }

    // ------------------------------------------------------------------ key balance

    /** L = Σ_side keyNum · Σ_k p_k f_k (not scaled by β). */
    double balanceValue() {
        int n = ret.n, heads = ret.heads, keyNum = ret.keyNum;
        double l = 0;
        double[] f = new double[keyNum], p = new double[keyNum], sm = new double[keyNum];
        for (int side = 0; side < 2; side++) {
            candidateFrequency(side, f);
            Arrays.fill(p, 0);
            for (int t = 0; t < n; t++)
                for (int h = 0; h < heads; h++) {
                    softmax(ret.sideOffset(h, side, t), sm);
                    for (int k = 0; k < keyNum; k++) p[k] += sm[k];
                }
            double s = 0;
            for (int k = 0; k < keyNum; k++) s += p[k] / ((double) n * heads) * f[k];
            l += keyNum * s;
        }
        return l;
    }

    /**
     * Gradient of β·L through softmax(a) (f constant) into the dense per-rank scores: a = Σ_ρ u_ρ·S_ρ, so
     * ∂L/∂S_row,ρ = u_ρ·∂L/∂a (v for the column side), added into {@code dRankScores} at
     * {@link TuckerRetrieval#rankScoreOffset}.
     */
    void balanceBackward(float[] dRankScores) {
        int n = ret.n, heads = ret.heads, keyNum = ret.keyNum, rank = ret.rank;
        double[] f = new double[keyNum], sm = new double[keyNum];
        double scale = balanceCoef * keyNum / ((double) n * heads);
        for (int side = 0; side < 2; side++) {
            candidateFrequency(side, f);
            float[] uv = (side == 0 ? ret.u : ret.v).data();
            for (int t = 0; t < n; t++)
                for (int h = 0; h < heads; h++) {
                    softmax(ret.sideOffset(h, side, t), sm);
                    double fs = 0;
                    for (int k = 0; k < keyNum; k++) fs += f[k] * sm[k];
                    for (int k = 0; k < keyNum; k++) {
                        double da = scale * sm[k] * (f[k] - fs);
                        for (int p = 0; p < rank; p++) dRankScores[ret.rankScoreOffset(h, side, p) + t * keyNum + k] += (float) (da * uv[h * rank + p]);
                    }
                }
        }
    }

    /** f_k: the fraction of the side's candidates (over tokens and heads) that are key k. */
    private void candidateFrequency(int side, double[] f) {
        int n = ret.n, heads = ret.heads, knn1 = ret.knn1, keyNum = ret.keyNum;
        Arrays.fill(f, 0);
        for (int t = 0; t < n; t++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < knn1; i++) f[ret.candidates[ret.candidateOffset(t, h, side) + i]] += 1;
        double tot = (double) n * heads * knn1;
        for (int k = 0; k < keyNum; k++) f[k] /= tot;
    }

    /** softmax over the keys of one stage-1 score row, in double. */
    private void softmax(int off, double[] out) {
        int keyNum = ret.keyNum;
        float[] a = ret.sideScores;
        double mx = Double.NEGATIVE_INFINITY;
        for (int k = 0; k < keyNum; k++) mx = Math.max(mx, a[off + k]);
        double z = 0;
        for (int k = 0; k < keyNum; k++) { out[k] = Math.exp(a[off + k] - mx); z += out[k]; }
        for (int k = 0; k < keyNum; k++) out[k] /= z;
    }
}
