package dev.ultramem.kernel;

import dev.ultramem.core.Bf16;

/**
 * Reference kernels: the plainest loops that compute the definition, single-threaded, accumulating
 * in double where a sum runs over a long axis. Tests compare the fast path against these.
 */
public class ScalarKernels implements Kernels {

    @Override public String name() { return "scalar"; }

    @Override
    public void gemmNT(int M, int N, int K, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff, boolean acc) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += (double) a[aOff + i * K + k] * b[bOff + j * K + k];
                int ci = cOff + i * N + j;
                c[ci] = acc ? (float) (c[ci] + s) : (float) s;
            }
    }

    @Override
    public void gemmNN(int M, int N, int K, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff, boolean acc) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += (double) a[aOff + i * K + k] * b[bOff + k * N + j];
                int ci = cOff + i * N + j;
                c[ci] = acc ? (float) (c[ci] + s) : (float) s;
            }
    }

    @Override
    public void gemmTN(int M, int N, int K, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff, boolean acc) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += (double) a[aOff + k * M + i] * b[bOff + k * N + j];
                int ci = cOff + i * N + j;
                c[ci] = acc ? (float) (c[ci] + s) : (float) s;
            }
    }

    @Override
    public float dot(int n, float[] a, int aOff, float[] b, int bOff) {
        double s = 0;
        for (int i = 0; i < n; i++) s += (double) a[aOff + i] * b[bOff + i];
        return (float) s;
    }

    @Override
    public void dotsBf16(int n, int K, float[] q, int qOff, short[] rows, int rOff, float[] out, int oOff) {
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double) q[qOff + k] * Bf16.toFloat(rows[rOff + j * K + k]);
            out[oOff + j] = (float) s;
        }
    }

    @Override
    public void weightedSumBf16(int n, int K, float[] w, int wOff, short[] rows, int rOff, float[] out, int oOff) {
        for (int k = 0; k < K; k++) {
            double s = 0;
            for (int j = 0; j < n; j++) s += (double) w[wOff + j] * Bf16.toFloat(rows[rOff + j * K + k]);
            out[oOff + k] = (float) s;
        }
    }

    @Override
    public void roundToBf16(int n, float[] x, int xOff, short[] dst, int dOff) {
        for (int i = 0; i < n; i++) dst[dOff + i] = Bf16.round(x[xOff + i]);
    }

    @Override
    public void widenBf16(int n, short[] src, int sOff, float[] dst, int dOff) {
        for (int i = 0; i < n; i++) dst[dOff + i] = Bf16.toFloat(src[sOff + i]);
    }

    @Override
    public void axpy(int n, float alpha, float[] x, int xOff, float[] y, int yOff) {
        for (int i = 0; i < n; i++) y[yOff + i] += alpha * x[xOff + i];
    }

    @Override
    public void rmsnormForward(int rows, int d, float[] x, int xOff, float[] w, float eps, float[] y, int yOff, float[] rstd, int rOff) {
        for (int r = 0; r < rows; r++) {
            int xo = xOff + r * d, yo = yOff + r * d;
            double ss = 0;
            for (int i = 0; i < d; i++) ss += (double) x[xo + i] * x[xo + i];
            float rs = (float) (1.0 / Math.sqrt(ss / d + eps));
            if (rstd != null) rstd[rOff + r] = rs;
            for (int i = 0; i < d; i++) y[yo + i] = (w == null ? 1f : w[i]) * (x[xo + i] * rs);
        }
    }

    @Override
    public void rmsnormBackward(int rows, int d, float[] x, int xOff, float[] w, float[] rstd, int rOff,
                                float[] dy, int dyOff, float[] dx, int dxOff, float[] dw, boolean accDx) {
        for (int r = 0; r < rows; r++) {
            int xo = xOff + r * d, go = dyOff + r * d, dxo = dxOff + r * d;
            double rs = rstd[rOff + r];
            // y_i = w_i x_i rs ; dx_i = rs (g_i w_i) - rs^3 x_i / d * Σ_j g_j w_j x_j
            double dotv = 0;
            for (int i = 0; i < d; i++) dotv += (double) dy[go + i] * (w == null ? 1 : w[i]) * x[xo + i];
            double coef = rs * rs * rs * dotv / d;
            for (int i = 0; i < d; i++) {
                double gi = dy[go + i] * (w == null ? 1.0 : w[i]);
                float v = (float) (rs * gi - coef * x[xo + i]);
                dx[dxo + i] = accDx ? dx[dxo + i] + v : v;
                if (dw != null) dw[i] += (float) (dy[go + i] * x[xo + i] * rs);
            }
        }
    }

    @Override
    public void softmaxRows(int rows, int n, float[] x, int off, int stride) {
        for (int r = 0; r < rows; r++) {
            int o = off + r * stride;
            float max = Float.NEGATIVE_INFINITY;
            for (int i = 0; i < n; i++) max = Math.max(max, x[o + i]);
            double sum = 0;
            for (int i = 0; i < n; i++) { float e = (float) Math.exp(x[o + i] - max); x[o + i] = e; sum += e; }
            float inv = (float) (1.0 / sum);
            for (int i = 0; i < n; i++) x[o + i] *= inv;
        }
    }

    @Override
    public float max(int n, float[] x, int off) {
        float m = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) m = Math.max(m, x[off + i]);
        return m;
    }

    @Override
    public float expScaled(int n, float[] x, int off, float scale, float shift) {
        double sum = 0;
        for (int i = 0; i < n; i++) {
            float e = (float) Math.exp((double) scale * x[off + i] - shift);
            x[off + i] = e;
            sum += e;
        }
        return (float) sum;
    }

    static float silu(float g) { return g / (1f + (float) Math.exp(-g)); }

    @Override
    public void swigluForward(int n, float[] a, int aOff, float[] g, int gOff, float[] out, int outOff) {
        for (int i = 0; i < n; i++) out[outOff + i] = silu(g[gOff + i]) * a[aOff + i];
    }

    @Override
    public void swigluBackward(int n, float[] a, int aOff, float[] g, int gOff, float[] dout, int dOff,
                               float[] da, int daOff, float[] dg, int dgOff) {
        for (int i = 0; i < n; i++) {
            float gv = g[gOff + i];
            float sig = 1f / (1f + (float) Math.exp(-gv));
            float s = gv * sig;
            float d = dout[dOff + i];
            float av = a[aOff + i];
            da[daOff + i] = d * s;
            dg[dgOff + i] = d * av * (sig * (1f + gv * (1f - sig)));
        }
    }
}
