package dev.ultramem.memory;

/**
 * Singular value decomposition of a small square matrix by one-sided Jacobi rotations in double
 * precision (robust for any r, also for rank-deficient or nearly degenerate cores). Used for the
 * Tucker rank-1 vectors u, v and for the Tucker-core penalty.
 */
public final class TuckerSvd {
    /** Left singular vectors as columns: u[i·r + j] = U[i][j]. */
    public final double[] u;
    /** Singular values, descending. */
    public final double[] s;
    /** Right singular vectors as columns: v[i·r + j] = V[i][j]. */
    public final double[] v;
    public final int r;

    private TuckerSvd(int r, double[] u, double[] s, double[] v) { this.r = r; this.u = u; this.s = s; this.v = v; }

    /** SVD of the r×r row-major matrix a: a = U diag(s) Vᵀ. */
    public static TuckerSvd of(double[] a, int r) {
        double[] w = a.clone();
        double[] v = new double[r * r];
        for (int i = 0; i < r; i++) v[i * r + i] = 1;
        for (int sweep = 0; sweep < 60; sweep++) {
            boolean rotated = false;
            for (int p = 0; p < r; p++)
                for (int q = p + 1; q < r; q++) {
                    double alpha = 0, beta = 0, gamma = 0;
                    for (int i = 0; i < r; i++) {
                        alpha += w[i * r + p] * w[i * r + p];
                        beta += w[i * r + q] * w[i * r + q];
                        gamma += w[i * r + p] * w[i * r + q];
                    }
                    if (Math.abs(gamma) <= 1e-300 || Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) continue;
                    rotated = true;
                    double zeta = (beta - alpha) / (2 * gamma);
                    double t = Math.signum(zeta == 0 ? 1 : zeta) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
                    double c = 1 / Math.sqrt(1 + t * t), sn = c * t;
                    for (int i = 0; i < r; i++) {
                        double ap = w[i * r + p], aq = w[i * r + q];
                        w[i * r + p] = c * ap - sn * aq;
                        w[i * r + q] = sn * ap + c * aq;
                        double vp = v[i * r + p], vq = v[i * r + q];
                        v[i * r + p] = c * vp - sn * vq;
                        v[i * r + q] = sn * vp + c * vq;
                    }
                }
            if (!rotated) break;
        }
        double[] s = new double[r];
        for (int j = 0; j < r; j++) {
            double n2 = 0;
            for (int i = 0; i < r; i++) n2 += w[i * r + j] * w[i * r + j];
            s[j] = Math.sqrt(n2);
        }
        // sort columns by singular value, descending
        Integer[] ord = new Integer[r];
        for (int j = 0; j < r; j++) ord[j] = j;
        java.util.Arrays.sort(ord, (x, y) -> Double.compare(s[y], s[x]));
        double[] uo = new double[r * r], vo = new double[r * r], so = new double[r];
        for (int jj = 0; jj < r; jj++) {
            int j = ord[jj];
            so[jj] = s[j];
            for (int i = 0; i < r; i++) {
                uo[i * r + jj] = s[j] > 0 ? w[i * r + j] / s[j] : 0;
                vo[i * r + jj] = v[i * r + j];
            }
        }
        return new TuckerSvd(r, uo, so, vo);
    }
}
