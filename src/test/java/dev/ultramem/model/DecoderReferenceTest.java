package dev.ultramem.model;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.layer.GradCheck;
import dev.ultramem.layer.NaiveRef;
import dev.ultramem.memory.MemoryConfig;
import dev.ultramem.memory.NaiveMemory;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The whole decoder ({@link Model#logits}, {@link Model#loss}, {@link Model#lastAuxLoss}) with real memory
 * layers (UltraMemV2 in every block with paper-mode queries, UltraMem v1 with skip placement) and with MoE
 * FFNs, against a double-precision reference written here: embedding, pre-norm blocks
 * ({@code h = x + Attn(attn_norm(x))}, {@code u = ff_norm(h)}, {@code x' = h + FFN(u)}), memory layers read
 * block a's u and add after block b (spec "The rest of the model", §5.1–5.2), ln_f, tied logits. The
 * memory layers are {@link NaiveMemory}'s, the MoE FFN is written below from the OLMoE/megablocks
 * definition (softmax over all experts, top-k not renormalised, SwiGLU experts, load balancing
 * {@code w_lb·E/(L·n·k)·Σ_e count_e·P_e} per layer and z-loss {@code w_z·mean lse²}).
 *
 * <p>Tolerance: the float32 forward runs ≈ 2 blocks × (attention: qkv over d = 12, QK-norm, scores over
 * hd = 6, softmax over ≤ 8, out over 12; FFN over 12 and 9 or 6; memory ≈ 120 terms, see
 * TuckerForwardReferenceTest) plus ln_f and logits over 12: Σ K ≈ 400 terms, so |fl − exact| ≤ 400·2⁻²⁴
 * ≈ 2.4e-5 of the magnitudes involved (worst case, all errors of one sign). Logits must agree within 2e-5
 * of their largest |value| (observed ≤ 1e-6) and the loss and aux loss within 1e-5 relative. Skipping one
 * memory layer, wiring it to the wrong block or routing a token to a wrong expert moves logits by far
 * more (each case asserts that the memory / expert contribution is ≥ 1e-2 of the logits). Each case
 * asserts first that every top-k (memory stage 1 and 2, expert routing) of the reference is 1e-4
 * (relative) away from a tie.
 */
class DecoderReferenceTest {

    static final double TOL = 2e-5, TIE = 1e-4;
    static final int B = 2, T = 5;

    static ModelConfig tiny() {
        ModelConfig c = ModelTest.tiny();
        c.nLayers = 2;
        return c;
    }

    static void memory(ModelConfig c, String type, String way) {
        c.memType = type; c.memInsertWay = way;
        c.memKnum = 4; c.memKdim = 8; c.memVdim = 8; c.memPreVdim = 4; c.memKnn = 3; c.memHead = 1;
        c.memShareRatio = 0.5;
    }

    static void moe(ModelConfig c) {
        c.ffnType = "moe"; c.moeNumExperts = 4; c.moeTopK = 2; c.moeExpertHidden = 6;
        c.moeLbWeight = 0.3; c.moeZWeight = 0.2;
    }

    /** Reference logits [n, V] and aux loss; gap[0] receives the smallest relative top-k gap. */
    static double[] reference(ModelConfig c, Map<String, double[]> p, Map<String, int[]> ib, int[] in, double[] aux, double[] gap,
                              double[] memShare, boolean refreshRankOne) {
        int d = c.dModel, n = B * T, V = c.vocabSize;
        double[] wte = p.get("transformer.wte.weight");
        double[] x = new double[n * d];
        for (int i = 0; i < n; i++) System.arraycopy(wte, in[i] * d, x, i * d, d);
        List<MemoryPlacement> pl = c.hasMemory() ? MemoryPlacement.parse(c.memInsertWay, c.nLayers) : List.of();
        MemoryConfig mc = LayerConfigs.memory(c);
        double[][] memOut = new double[pl.size()][];
        double memAbs = 0, resAbs = 0;
        for (int l = 0; l < c.nLayers; l++) {
            String b = "transformer.blocks." + l + ".";
            double[] an = NaiveRef.rmsnorm(x, p.get(b + "attn_norm.weight"), c.normEps, n, d);
            double[] a = NaiveRef.attention(an, p.get(b + "att_proj.weight"), p.get(b + "q_norm.weight"), p.get(b + "k_norm.weight"),
                    p.get(b + "attn_out.weight"), B, T, d, c.nHeads, c.ropeTheta, c.normEps);
            double[] h = new double[n * d];
            for (int i = 0; i < n * d; i++) h[i] = x[i] + a[i];
            double[] u = NaiveRef.rmsnorm(h, p.get(b + "ff_norm.weight"), c.normEps, n, d);
            double[] f = c.ffnType.equals("moe") ? moeFfn(c, p, b, u, n, aux, gap)
                    : NaiveRef.ffn(u, p.get(b + "ff_proj.weight"), p.get(b + "ff_out.weight"), n, d, c.mlpHiddenSize / 2);
            for (int i = 0; i < n * d; i++) x[i] = h[i] + f[i];
            for (int k = 0; k < pl.size(); k++) {
                if (pl.get(k).from() != l) continue;
                String mp = "transformer.mem_blocks." + k + ".";
                NaiveMemory.Tucker s = c.memType.equals("ultramem_v1") ? NaiveMemory.v1(mc) : NaiveMemory.v2(mc, k, pl.size());
                if (refreshRankOne)
                    assertTrue(NaiveMemory.refreshRankOne(s, p, mp) < 1e-6, mp + ": u, v differ from the summed core's singular pair");
                String tp = c.memType.equals("ultramem_v1") ? mp : "transformer.full_memory_layer.";
                NaiveMemory.Out o = NaiveMemory.tucker(s, p, mp, tp, ib.get(mp + "shuffle_index"), u, n);
                memOut[k] = o.y();
                aux[0] += o.aux();
                gap[0] = Math.min(gap[0], o.minGap());
            }
            for (int k = 0; k < pl.size(); k++) {
                if (pl.get(k).to() != l) continue;
                for (int i = 0; i < n * d; i++) { x[i] += memOut[k][i]; memAbs += Math.abs(memOut[k][i]); resAbs += Math.abs(x[i]); }
            }
        }
        memShare[0] = resAbs == 0 ? 0 : memAbs / resAbs;
        double[] xf = NaiveRef.rmsnorm(x, p.get("transformer.ln_f.weight"), c.normEps, n, d);
        return NaiveRef.linear(xf, wte, 0, n, d, V);
    }

    /** OLMoE FFN slot of one block; adds its aux losses into aux[0]. */
    static double[] moeFfn(ModelConfig c, Map<String, double[]> p, String b, double[] u, int n, double[] aux, double[] gap) {
        int d = c.dModel, E = c.moeNumExperts, k = c.moeTopK, hd = c.moeExpertHidden;
        double[] router = p.get(b + "ffn.router.weight"), y = new double[n * d], pMean = new double[E];
        int[] count = new int[E];
        double z = 0;
        for (int t = 0; t < n; t++) {
            double[] lg = new double[E];
            double mx = Double.NEGATIVE_INFINITY, sum = 0;
            for (int e = 0; e < E; e++) {
                for (int i = 0; i < d; i++) lg[e] += router[e * d + i] * u[t * d + i];
                mx = Math.max(mx, lg[e]);
            }
            for (int e = 0; e < E; e++) sum += Math.exp(lg[e] - mx);
            double lse = mx + Math.log(sum);
            z += lse * lse;
            double[] pr = new double[E];
            Integer[] ord = new Integer[E];
            for (int e = 0; e < E; e++) { pr[e] = Math.exp(lg[e] - lse); pMean[e] += pr[e] / n; ord[e] = e; }
            Arrays.sort(ord, (a1, a2) -> Double.compare(pr[a2], pr[a1]));
            if (k < E) gap[0] = Math.min(gap[0], (pr[ord[k - 1]] - pr[ord[k]]) / pr[ord[0]]);
            for (int j = 0; j < k; j++) {
                int e = ord[j];
                count[e]++;
                double[] w1 = p.get(b + "ffn.experts." + e + ".ff_proj.weight"), w2 = p.get(b + "ffn.experts." + e + ".ff_out.weight");
                double[] one = NaiveRef.ffn(Arrays.copyOfRange(u, t * d, (t + 1) * d), w1, w2, 1, d, hd);
                for (int o = 0; o < d; o++) y[t * d + o] += pr[e] * one[o];
            }
        }
        double dot = 0;
        for (int e = 0; e < E; e++) dot += count[e] * pMean[e];
        aux[0] += c.moeLbWeight * E / ((double) c.nLayers * n * k) * dot + c.moeZWeight * z / n;
        return y;
    }

    record Setup(Model m, int[] in, int[] tg) {}

    /**
     * The model at its init, with value tables larger than the (tiny) init so the memory output is a
     * visible part of the logits, and MoE weights large enough that the router probabilities are well
     * separated; training mode; random inputs and targets.
     */
    static Setup setup(ModelConfig c, long seed) {
        Model m = new Model(c);
        m.initialize(seed);
        Rng rng = new Rng(seed + 1);
        for (Param p : m.params()) {
            double std = p.name.endsWith("values_for_look_up") ? 0.5 : c.ffnType.equals("moe") && p.name.contains(".ffn.") ? 0.4 : 0;
            if (std > 0) for (long i = 0; i < p.numel(); i++) p.set(i, (float) (std * rng.nextGaussian()));
        }
        m.afterWeightsChanged();
        m.setTraining(true);
        int n = B * T;
        return new Setup(m, ModelTest.randomTokens(rng, n, c.vocabSize), ModelTest.randomTokens(rng, n, c.vocabSize));
    }

    static void check(ModelConfig c, long seed) {
        Setup su = setup(c, seed);
        Model m = su.m();
        int[] in = su.in(), tg = su.tg();
        int n = B * T;
        float[] logits = m.logits(in, B, T).clone();
        double aux = m.lastAuxLoss();
        float loss = m.loss(in, tg, B, T);

        Map<String, double[]> p = NaiveMemory.weights(m.params());
        Map<String, int[]> ib = NaiveMemory.indexBuffers(m.indexBuffers());
        double[] refAux = new double[1], gap = {Double.POSITIVE_INFINITY}, memShare = new double[1];
        double[] ref = reference(c, p, ib, in, refAux, gap, memShare, true);
        assertTrue(gap[0] > TIE, "test setup: a reference top-k is within " + gap[0] + " of a tie; pick another seed");
        if (c.hasMemory()) assertTrue(memShare[0] > 1e-2, "test setup: memory output is only " + memShare[0] + " of the residual stream");

        double scale = 0, worst = 0;
        for (double v : ref) scale = Math.max(scale, Math.abs(v));
        for (int i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(logits[i] - ref[i]));
        System.out.printf("decoder %s/%s: logits worst %.3g of scale, memory share %.3g, aux %.4g, gap %.3g%n", c.memType, c.ffnType, worst / scale, memShare[0], refAux[0], gap[0]);
        assertTrue(worst <= TOL * scale, "logits: |engine − reference| = " + worst + " exceeds " + TOL + "·" + scale);
        double refLoss = meanCrossEntropy(ref, tg, n, c.vocabSize);
        assertEquals(refLoss, loss, 1e-5 * refLoss, "mean cross-entropy");
        assertEquals(refAux[0], aux, 1e-5 * Math.abs(refAux[0]) + 1e-12, "aux loss");
    }

    static double meanCrossEntropy(double[] logits, int[] tg, int n, int V) {
        double loss = 0;
        for (int i = 0; i < n; i++) {
            double mx = Double.NEGATIVE_INFINITY, zs = 0;
            for (int j = 0; j < V; j++) mx = Math.max(mx, logits[i * V + j]);
            for (int j = 0; j < V; j++) zs += Math.exp(logits[i * V + j] - mx);
            loss += (mx + Math.log(zs) - logits[i * V + tg[i]]) / n;
        }
        return loss;
    }

    /**
     * Every parameter's gradient from {@link Model#forwardBackward} (mean CE + aux losses) against central
     * differences of the reference objective ({@link GradCheck#check}, h = 1e-5, double: error ~1e-10), u, v
     * held at the engine's values as the engine does. The float32 backward through ≈ 2 blocks, memory and
     * the tied output is accurate to ~400·2⁻²⁴ ≈ 2.4e-5 of the magnitudes summed; the check allows a
     * relative error of 2e-4 of max(|num|, |an|, 1e-2·max|an| over the tensor). The selections are 1e-4
     * (relative) from a tie and a probe moves scores by ~1e-5, so no probe changes them (if one did, its
     * difference quotient would jump and the check fail, never pass wrongly).
     */
    static void checkGradients(ModelConfig c, long seed) {
        Setup su = setup(c, seed);
        Model m = su.m();
        int[] in = su.in(), tg = su.tg();
        int n = B * T;
        for (Param p : m.params()) if (p.trainable) p.zeroGrad();
        m.forwardBackward(in, tg, B, T);
        Map<String, double[]> p = NaiveMemory.weights(m.params());
        Map<String, int[]> ib = NaiveMemory.indexBuffers(m.indexBuffers());
        double[] gap0 = {Double.POSITIVE_INFINITY};
        reference(c, p, ib, in, new double[1], gap0, new double[1], false);
        assertTrue(gap0[0] > TIE, "test setup: a reference top-k is within " + gap0[0] + " of a tie; pick another seed");
        java.util.function.DoubleSupplier obj = () -> {
            double[] aux = new double[1];
            double[] lg = reference(c, p, ib, in, aux, new double[]{Double.POSITIVE_INFINITY}, new double[1], false);
            return meanCrossEntropy(lg, tg, n, c.vocabSize) + aux[0];
        };
        for (Param q : m.params()) {
            if (!q.trainable) continue;
            float[] an = dev.ultramem.memory.GoldenFiles.gradOf(q);
            boolean any = false;
            for (float v : an) any |= v != 0;
            if (!any && q.name.endsWith("values_for_look_up")) continue;
            GradCheck.check(q.name, an, p.get(q.name), obj, 5, 2e-4);
        }
    }

    /** UltraMemV2 in every block (mem_insert_way full), paper-mode rank queries, paper init, key balance loss. */
    static ModelConfig v2EveryBlock(ModelConfig c) {
        memory(c, "ultramem_v2", "full");
        c.memQueryMode = "paper"; c.memKeyBalanceCoef = 0.1;
        return c;
    }

    /** UltraMem v1 reading block 0's u and added after block 1 (skip placement), r = 3, Tucker penalty on. */
    static ModelConfig v1Skip() {
        ModelConfig c = tiny();
        c.nLayers = 3;
        memory(c, "ultramem_v1", "0:1/2:2");
        c.memTuckerRank = 3; c.memTuckerPenalty = 0.01; c.memTuckerTau = 0.05;
        return c;
    }

    @Test void gradientsWithUltraMemV2AndMoe() {
        ModelConfig c = tiny();
        moe(c);
        checkGradients(v2EveryBlock(c), 6);
    }

    @Test void gradientsWithUltraMemV1Skip() { checkGradients(v1Skip(), 4); }

    @Test void ultraMemV2EveryBlock() { check(v2EveryBlock(tiny()), 3); }

    @Test void ultraMemV1SkipPlacement() { check(v1Skip(), 4); }

    @Test void moeEveryBlock() {
        ModelConfig c = tiny();
        moe(c);
        check(c, 5);
    }

    /** MoE FFN slot with an UltraMemV2 layer beside it (same normalised input u). */
    @Test void moeWithUltraMemV2() {
        ModelConfig c = tiny();
        moe(c);
        memory(c, "ultramem_v2", "full");
        c.memQueryMode = "paper"; c.memKeyExpandTime = 2; c.memTuckerCores = 1;
        check(c, 6);
    }
}
