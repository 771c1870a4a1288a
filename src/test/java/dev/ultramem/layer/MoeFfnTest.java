package dev.ultramem.layer;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.model.FeedForwards;
import dev.ultramem.model.LayerConfigs;
import dev.ultramem.model.ModelConfig;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

/** MoE FFN: naive dense mixture, naive aux losses, finite-difference gradients (with aux losses). */
class MoeFfnTest {

    static final int N = 10, D = 12;

    static ModelConfig config(int experts, int topK) {
        ModelConfig cfg = new ModelConfig();
        cfg.dModel = D; cfg.nHeads = 2; cfg.nLayers = 2; cfg.ffnType = "moe";
        cfg.moeNumExperts = experts; cfg.moeTopK = topK; cfg.moeExpertHidden = 6;
        cfg.moeLbWeight = 0.5; cfg.moeZWeight = 0.3;
        return cfg.validate();
    }

    static MoeFfn build(ModelConfig cfg, Rng rng) {
        MoeFfn m = (MoeFfn) FeedForwards.create(cfg, "transformer.blocks.1.");
        m.initialize(rng);
        // larger weights than the tiny init so that router probabilities are well separated
        rng.fillNormal(m.router.data(), 0.5);
        for (Param p : m.params()) if (p != m.router) rng.fillNormal(p.data(), 0.4);
        return m;
    }

    static double silu(double v) { return v / (1 + Math.exp(-v)); }

    /** Naive evaluation: softmax, top-k by full sort, Σ p·expert(x), and both aux losses. Returns aux. */
    static double naive(MoeFfn m, ModelConfig cfg, float[] x, double[] y) {
        int E = cfg.moeNumExperts, k = cfg.moeTopK, h = cfg.moeExpertHidden;
        double[] pMean = new double[E];
        int[] cnt = new int[E];
        double z = 0;
        for (int t = 0; t < N; t++) {
            double[] lg = new double[E];
            double mx = -1e300;
            for (int e = 0; e < E; e++) {
                for (int j = 0; j < D; j++) lg[e] += (double) m.router.data()[e * D + j] * x[t * D + j];
                mx = Math.max(mx, lg[e]);
            }
            double s = 0;
            for (int e = 0; e < E; e++) s += Math.exp(lg[e] - mx);
            double lse = mx + Math.log(s);
            z += lse * lse;
            double[] p = new double[E];
            Integer[] order = new Integer[E];
            for (int e = 0; e < E; e++) { p[e] = Math.exp(lg[e] - lse); pMean[e] += p[e] / N; order[e] = e; }
            Arrays.sort(order, (a, b) -> Double.compare(p[b], p[a]));
            for (int j = 0; j < k; j++) {
                int e = order[j];
                cnt[e]++;
                float[] w1 = m.ffProj[e].data(), w2 = m.ffOut[e].data();
                double[] act = new double[h];
                for (int i = 0; i < h; i++) {
                    double a = 0, g = 0;
                    for (int c = 0; c < D; c++) {
                        a += (double) w1[i * D + c] * x[t * D + c];
                        g += (double) w1[(h + i) * D + c] * x[t * D + c];
                    }
                    act[i] = silu(g) * a;
                }
                for (int o = 0; o < D; o++) {
                    double v = 0;
                    for (int i = 0; i < h; i++) v += w2[o * h + i] * act[i];
                    y[t * D + o] += p[e] * v;
                }
            }
        }
        // megablocks batched_load_balancing_loss, one layer's share:
        // loss_weight · num_experts / (num_layers · tokens · top_k) · dot(tokens_per_expert, mean_t scores)
        double dot = 0;
        for (int e = 0; e < E; e++) dot += cnt[e] * pMean[e];
        double lb = cfg.moeLbWeight * E / ((double) cfg.nLayers * N * k) * dot;
        return lb + cfg.moeZWeight * z / N;
    }

    record Checked(MoeFfn m, ModelConfig cfg, float[] x) {}

    /** A layer with E experts and top-k routing whose forward on random input is checked against the naive routing. */
    static Checked forwardMatchesNaive(long seed, int E, int k) {
        Rng rng = new Rng(seed);
        ModelConfig cfg = config(E, k);
        MoeFfn m = build(cfg, rng);
        float[] x = TokenLayerGradCheck.randn(rng, N * D, 1);
        float[] y = new float[N * D];
        m.forward(x, y, N);
        double[] ref = new double[N * D];
        double aux = naive(m, cfg, x, ref);
        for (int i = 0; i < N * D; i++) assertEquals(ref[i], y[i], 1e-5 * (1 + Math.abs(ref[i])), "y[" + i + "]");
        assertEquals(aux, m.auxLoss(), 1e-6 * Math.abs(aux));
        return new Checked(m, cfg, x);
    }

    @Test
    void topKEqualsAllIsTheDenseWeightedMixture() {
        Checked c = forwardMatchesNaive(1, 4, 4);
        MoeFfn m = c.m();
        ModelConfig cfg = c.cfg();
        // with every expert chosen f_e = 1/E, so each layer's load-balancing term is exactly w_lb / n_layers
        assertEquals(cfg.moeLbWeight / cfg.nLayers, m.lastLoadBalancingLoss(), 1e-6);
    }

    @Test
    void topKMatchesNaiveRouting() {
        Checked c = forwardMatchesNaive(2, 6, 2);
        MoeFfn m = c.m();
        ModelConfig cfg = c.cfg();
        float[] x = c.x(), y = new float[N * D];
        // one token routes to exactly k experts: router + k experts are read
        m.forward(x, y, 1);
        long expert = 3L * cfg.moeExpertHidden * D;
        assertEquals((6L * D + 2 * expert) * 4, m.lastForwardParamBytes());
        assertEquals(6L * D + 2 * expert, m.activatedParamsPerToken());
        assertEquals("transformer.blocks.1.ffn.router.weight", m.router.name);
        assertEquals("transformer.blocks.1.ffn.experts.5.ff_out.weight", m.ffOut[5].name);
        assertArrayEquals(new long[]{2L * cfg.moeExpertHidden, D}, m.ffProj[0].shape);
    }

    @Test
    void gradientsIncludingAuxLosses() {
        Rng rng = new Rng(3);
        ModelConfig cfg = config(5, 2);
        MoeFfn m = build(cfg, rng);
        float[] x = TokenLayerGradCheck.randn(rng, N * D, 1);
        float[] g = TokenLayerGradCheck.randn(rng, N * D, 1);
        TokenLayerGradCheck gc = new TokenLayerGradCheck(m, x, g, N, D, () -> m.lastChoice().clone(), true);
        float[] dx = gc.analytic();
        gc.checkInput(dx, 60, 1e-3, 1e-2, 1e-3, rng);
        for (Param p : m.params()) gc.checkParam(p, p == m.router ? 60 : 15, 1e-3, 1e-2, 1e-3, rng);
        System.out.printf("moe: %d probes, %d skipped (expert choice changed), worst err/tol %.3f%n", gc.probes, gc.skipped, gc.worst);
        assertTrue(gc.skipped < gc.probes / 4, "too many probes changed the routing: " + gc.skipped);
    }

    @Test
    void auxLossGradientAlone() {
        Rng rng = new Rng(4);
        ModelConfig cfg = config(5, 2);
        MoeFfn m = build(cfg, rng);
        float[] x = TokenLayerGradCheck.randn(rng, N * D, 1);
        float[] g = new float[N * D]; // objective = auxLoss only
        TokenLayerGradCheck gc = new TokenLayerGradCheck(m, x, g, N, D, () -> m.lastChoice().clone(), true);
        float[] dx = gc.analytic();
        assertTrue(m.auxLoss() > 0);
        for (Param p : m.params())
            if (p != m.router) for (float v : p.grad()) assertEquals(0f, v, 0f, p.name + " gets no aux gradient");
        gc.checkParam(m.router, 1000, 1e-3, 1e-2, 1e-3, rng);
        gc.checkInput(dx, 1000, 1e-3, 1e-2, 1e-3, rng);
        System.out.printf("moe aux only: %d probes, %d skipped, worst err/tol %.3f%n", gc.probes, gc.skipped, gc.worst);
        assertTrue(gc.skipped < gc.probes / 4);
    }

    static double[] stats(float[] a) {
        double ss = 0, mx = 0;
        for (float v : a) { ss += (double) v * v; mx = Math.max(mx, Math.abs(v)); }
        return new double[]{Math.sqrt(ss / a.length), mx};
    }

    @Test
    void fullMegatronInit() {
        ModelConfig cfg = config(3, 1);
        cfg.dModel = 64; cfg.moeExpertHidden = 128; cfg.nLayers = 8;
        MoeFfn m = new MoeFfn(LayerConfigs.moeFfn(cfg), "");
        m.initialize(new Rng(6));
        double std = Math.sqrt(2.0 / (5 * 64)), outStd = std / 4; // 1/sqrt(2·8)
        // a normal truncated at ±3σ has std 0.9866σ
        double[] r = stats(m.router.data()), p = stats(m.ffProj[2].data()), o = stats(m.ffOut[1].data());
        assertEquals(0.9866 * std, r[0], 0.1 * std);
        assertEquals(0.9866 * std, p[0], 0.03 * std);
        assertEquals(0.9866 * outStd, o[0], 0.03 * outStd);
        assertTrue(r[1] <= 3 * std && p[1] <= 3 * std && o[1] <= 3 * outStd);
    }
}
