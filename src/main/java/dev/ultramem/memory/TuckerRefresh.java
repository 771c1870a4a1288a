package dev.ultramem.memory;

import dev.ultramem.core.Param;

/**
 * The rank-1 refresh of TDQKR (UltraMem, section on Tucker decomposition): after each weight update,
 * {@code u} and {@code v} become the leading left and right singular vectors of the summed Tucker core
 * {@code Σ_c C_c[h]} of every head; stage 1 ranks keys by the rank-1 scores {@code u·S_row} and
 * {@code v·S_col}. The sign of (u, v) is chosen nearest to the previous pair, so the vectors do not
 * flip between steps.
 */
final class TuckerRefresh {

    private final int heads, rank;
    private final Param[] core;
    final Param u, v;
    /** singular values of the summed core per head, from the last refresh {@code [h·r + i]}. */
    final double[] singular;

    TuckerRefresh(Param[] core, Param u, Param v, int heads, int rank) {
        this.core = core; this.u = u; this.v = v; this.heads = heads; this.rank = rank;
        singular = new double[heads * rank];
    }

    /** u, v = leading singular vectors of Σ_c C_c[h], sign smoothed against the previous u, v. */
    void refresh() {
        float[] ud = u.data(), vd = v.data();
        for (int h = 0; h < heads; h++) {
            TuckerSvd svd = TuckerSvd.of(coreSum(h), rank);
            double keep = 0, flip = 0;
            for (int i = 0; i < rank; i++) {
                double un = svd.u[i * rank], vn = svd.v[i * rank];
                keep += Math.abs(un - ud[h * rank + i]) + Math.abs(vn - vd[h * rank + i]);
                flip += Math.abs(-un - ud[h * rank + i]) + Math.abs(-vn - vd[h * rank + i]);
            }
            double sign = flip - keep >= 0 ? 1 : -1;
            for (int i = 0; i < rank; i++) {
                ud[h * rank + i] = (float) (sign * svd.u[i * rank]);
                vd[h * rank + i] = (float) (sign * svd.v[i * rank]);
            }
            for (int i = 0; i < rank; i++) singular[h * rank + i] = svd.s[i];
        }
    }

    /** Σ_c C_c[h] in double, r×r row-major. */
    double[] coreSum(int h) {
        double[] m = new double[rank * rank];
        for (Param c : core) {
            float[] cd = c.data();
            for (int i = 0; i < rank * rank; i++) m[i] += cd[h * rank * rank + i];
        }
        return m;
    }
}
