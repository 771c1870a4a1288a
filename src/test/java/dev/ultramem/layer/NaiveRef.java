package dev.ultramem.layer;

/**
 * Straightforward double-precision definitions of the dense OLMo pieces, written independently of
 * the engine, used as the reference for gradient checks (central differences on these functions).
 */
public final class NaiveRef {
    private NaiveRef() {}

    public static double[] toDouble(float[] a) {
        double[] r = new double[a.length];
        for (int i = 0; i < a.length; i++) r[i] = a[i];
        return r;
    }

    public static double[] rmsnorm(double[] x, double[] w, double eps, int rows, int d) {
        double[] y = new double[rows * d];
        for (int r = 0; r < rows; r++) {
            double ss = 0;
            for (int i = 0; i < d; i++) ss += x[r * d + i] * x[r * d + i];
            double inv = 1 / Math.sqrt(ss / d + eps);
            for (int i = 0; i < d; i++) y[r * d + i] = w[i] * x[r * d + i] * inv;
        }
        return y;
    }

    /** y[n, out] = x[n, in] · W[out, in]ᵀ (W read from offset wOff). */
    public static double[] linear(double[] x, double[] w, int wOff, int n, int in, int out) {
        double[] y = new double[n * out];
        for (int t = 0; t < n; t++)
            for (int o = 0; o < out; o++) {
                double s = 0;
                for (int i = 0; i < in; i++) s += x[t * in + i] * w[wOff + o * in + i];
                y[t * out + o] = s;
            }
        return y;
    }

    /** Multi-head causal attention with per-head QK RMSNorm and rotate-half RoPE (after the norm). */
    public static double[] attention(double[] x, double[] wqkv, double[] qn, double[] kn, double[] wo,
                                     int B, int T, int d, int H, double theta, double eps) {
        int hd = d / H, half = hd / 2;
        double[] qkv = linear(x, wqkv, 0, B * T, d, 3 * d);
        double[] att = new double[B * T * d];
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                double[][] q = new double[T][], k = new double[T][], v = new double[T][];
                for (int t = 0; t < T; t++) {
                    int row = (b * T + t) * 3 * d;
                    q[t] = rope(rmsnorm(slice(qkv, row + h * hd, hd), qn, eps, 1, hd), t, theta);
                    k[t] = rope(rmsnorm(slice(qkv, row + d + h * hd, hd), kn, eps, 1, hd), t, theta);
                    v[t] = slice(qkv, row + 2 * d + h * hd, hd);
                }
                for (int t = 0; t < T; t++) {
                    double[] s = new double[t + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= t; j++) {
                        double dot = 0;
                        for (int i = 0; i < hd; i++) dot += q[t][i] * k[j][i];
                        s[j] = dot / Math.sqrt(hd);
                        max = Math.max(max, s[j]);
                    }
                    double z = 0;
                    for (int j = 0; j <= t; j++) { s[j] = Math.exp(s[j] - max); z += s[j]; }
                    for (int j = 0; j <= t; j++)
                        for (int i = 0; i < hd; i++) att[(b * T + t) * d + h * hd + i] += s[j] / z * v[j][i];
                }
                if (half == 0) throw new IllegalStateException();
            }
        return linear(att, wo, 0, B * T, d, d);
    }

    static double[] slice(double[] a, int off, int n) {
        double[] r = new double[n];
        System.arraycopy(a, off, r, 0, n);
        return r;
    }

    /** x·cos + rotate_half(x)·sin with angles t·θ^(−2i/hd) duplicated over the two halves. */
    public static double[] rope(double[] x, int t, double theta) {
        int hd = x.length, half = hd / 2;
        double[] y = new double[hd];
        for (int i = 0; i < hd; i++) {
            int fi = i % half;
            double ang = t * Math.pow(theta, -2.0 * fi / hd);
            double rot = i < half ? -x[i + half] : x[i - half];
            y[i] = x[i] * Math.cos(ang) + rot * Math.sin(ang);
        }
        return y;
    }

    /** SwiGLU FFN: [a, g] = x·W1ᵀ, y = (silu(g) ⊙ a)·W2ᵀ. */
    public static double[] ffn(double[] x, double[] w1, double[] w2, int n, int d, int f) {
        double[] a = linear(x, w1, 0, n, d, f), g = linear(x, w1, f * d, n, d, f);
        double[] act = new double[n * f];
        for (int i = 0; i < n * f; i++) act[i] = g[i] / (1 + Math.exp(-g[i])) * a[i];
        return linear(act, w2, 0, n, f, d);
    }

    /** Σ y ⊙ r: a scalar probe whose gradient with respect to y is r. */
    public static double probe(double[] y, float[] r) {
        double s = 0;
        for (int i = 0; i < y.length; i++) s += y[i] * r[i];
        return s;
    }

    /**
     * One pre-norm OLMo block in double: returns {u, x'} with u = ff_norm(h) the FFN input (where a
     * memory layer reads) and x' = h + FFN(u), h = x + Attention(attn_norm(x)). Weights by official name.
     */
    public static double[][] block(double[] x, java.util.Map<String, double[]> p, int l, dev.ultramem.model.ModelConfig c,
                                   int B, int T, int f) {
        int n = B * T, d = c.dModel;
        String b = "transformer.blocks." + l + ".";
        double[] an = rmsnorm(x, p.get(b + "attn_norm.weight"), c.normEps, n, d);
        double[] a = attention(an, p.get(b + "att_proj.weight"), p.get(b + "q_norm.weight"), p.get(b + "k_norm.weight"),
                p.get(b + "attn_out.weight"), B, T, d, c.nHeads, c.ropeTheta, c.normEps);
        double[] h = new double[n * d];
        for (int i = 0; i < n * d; i++) h[i] = x[i] + a[i];
        double[] u = rmsnorm(h, p.get(b + "ff_norm.weight"), c.normEps, n, d);
        double[] y = ffn(u, p.get(b + "ff_proj.weight"), p.get(b + "ff_out.weight"), n, d, f);
        double[] out = new double[n * d];
        for (int i = 0; i < n * d; i++) out[i] = h[i] + y[i];
        return new double[][]{u, out};
    }
}
