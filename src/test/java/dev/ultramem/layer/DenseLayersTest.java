package dev.ultramem.layer;

import dev.ultramem.core.Rng;
import dev.ultramem.kernel.Kernels;
import dev.ultramem.kernel.ScalarKernels;
import dev.ultramem.model.LayerConfigs;
import dev.ultramem.model.ModelConfig;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.stream.Stream;

import static dev.ultramem.layer.GradCheck.check;
import static dev.ultramem.layer.GradCheck.gauss;
import static dev.ultramem.layer.GradCheck.relMaxDiff;
import static dev.ultramem.layer.NaiveRef.toDouble;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * RMSNorm, attention (QK-norm + RoPE, head dims that leave vector tails) and the SwiGLU FFN against
 * the double-precision definitions in {@link NaiveRef}: forward values, and every gradient against
 * central differences of the reference. Run with the scalar and the default (fast) kernels.
 */
class DenseLayersTest {

    static Stream<Kernels> kernels() { return Stream.of(new ScalarKernels(), Kernels.get()); }

    /** Float32 engine vs double reference: a few hundred accumulated terms at most. */
    static final double TOL = 2e-3;

    @ParameterizedTest
    @MethodSource("kernels")
    void rmsNorm(Kernels k) {
        Rng rng = new Rng(1);
        int rows = 3, d = 11;
        RmsNorm norm = new RmsNorm("n.weight", d, 1e-5, k);
        float[] w = norm.weight.data();
        for (int i = 0; i < d; i++) w[i] = (float) (1 + 0.3 * rng.nextGaussian());
        float[] x = gauss(rng, rows * d, 1.5), r = gauss(rng, rows * d, 1);
        float[] y = new float[rows * d], rstd = new float[rows], dx = new float[rows * d];
        norm.forward(rows, x, 0, y, 0, rstd, 0);
        norm.backward(rows, x, 0, rstd, 0, r, 0, dx, 0, false);
        double[] xd = toDouble(x), wd = toDouble(w);
        assertTrue(relMaxDiff(y, NaiveRef.rmsnorm(xd, wd, 1e-5, rows, d)) < 1e-5);
        check("rmsnorm dx", dx, xd, () -> NaiveRef.probe(NaiveRef.rmsnorm(xd, wd, 1e-5, rows, d), r), 1000, TOL);
        check("rmsnorm dw", norm.weight.grad(), wd, () -> NaiveRef.probe(NaiveRef.rmsnorm(xd, wd, 1e-5, rows, d), r), 1000, TOL);
    }

    static Stream<int[]> attentionShapes() {
        // {d, heads, B, T}: hd 6 and 10 leave tails for any vector width; T = 70 spans two query blocks. With hd 6,
        // T = 300 is past 26·hd: flash-style, two key blocks (Attention.KB = 256), so the online softmax rescales the
        // rows past position 255; with hd 12 the same T keeps its probabilities, one block of 300 keys per query block
        return Stream.of(new int[]{12, 2, 2, 5}, new int[]{20, 2, 1, 7}, new int[]{24, 4, 2, 3}, new int[]{12, 2, 1, 70},
                new int[]{12, 2, 1, 300}, new int[]{24, 2, 1, 300});
    }

    @ParameterizedTest
    @MethodSource("attentionShapes")
    void attentionScalarKernels(int[] shape) { attention(new ScalarKernels(), shape); }

    @ParameterizedTest
    @MethodSource("attentionShapes")
    void attentionDefaultKernels(int[] shape) { attention(Kernels.get(), shape); }

    void attention(Kernels k, int[] shape) {
        int d = shape[0], H = shape[1], B = shape[2], T = shape[3], hd = d / H;
        if (T == 300) assertEquals(hd == 12, Attention.keepsProbabilities(B, T, d, H), "the case covers the path it names");
        ModelConfig cfg = new ModelConfig();
        cfg.dModel = d; cfg.nHeads = H; cfg.nLayers = 2; cfg.maxSeqLen = 16; cfg.ropeTheta = 10000;
        Rng rng = new Rng(7 + d);
        Attention att = new Attention(LayerConfigs.attention(cfg), "blk.", k);
        // larger weights than the init so that softmax and the norms are far from linear
        rng.fillNormal(att.attProj.data(), 0.4);
        rng.fillNormal(att.attnOut.data(), 0.3);
        for (int i = 0; i < hd; i++) {
            att.qNorm.weight.data()[i] = (float) (1 + 0.5 * rng.nextGaussian());
            att.kNorm.weight.data()[i] = (float) (1 + 0.5 * rng.nextGaussian());
        }
        int n = B * T;
        float[] x = gauss(rng, n * d, 1), r = gauss(rng, n * d, 1);
        float[] y = new float[n * d], dx = new float[n * d];
        att.forward(x, y, B, T);
        att.backward(x, r, dx, B, T);
        double[] xd = toDouble(x), wqkv = toDouble(att.attProj.data()), qn = toDouble(att.qNorm.weight.data()),
                kn = toDouble(att.kNorm.weight.data()), wo = toDouble(att.attnOut.data());
        java.util.function.DoubleSupplier f = () -> NaiveRef.probe(NaiveRef.attention(xd, wqkv, qn, kn, wo, B, T, d, H, 10000, 1e-5), r);
        double fwdErr = relMaxDiff(y, NaiveRef.attention(xd, wqkv, qn, kn, wo, B, T, d, H, 10000, 1e-5));
        assertTrue(fwdErr < 1e-4, "attention forward error " + fwdErr);
        check("attention dx", dx, xd, f, 60, TOL);
        check("att_proj grad", att.attProj.grad(), wqkv, f, 60, TOL);
        check("q_norm grad", att.qNorm.weight.grad(), qn, f, 60, TOL);
        check("k_norm grad", att.kNorm.weight.grad(), kn, f, 60, TOL);
        check("attn_out grad", att.attnOut.grad(), wo, f, 60, TOL);
        // a second forward with a shorter sequence reuses the buffers and stays exact
        att.forward(x, y, 1, 2);
        double e2 = relMaxDiff(java.util.Arrays.copyOf(y, 2 * d), NaiveRef.attention(xd, wqkv, qn, kn, wo, 1, 2, d, H, 10000, 1e-5));
        assertTrue(e2 < 1e-4, "attention forward after shrink " + e2);
    }

    @ParameterizedTest
    @MethodSource("kernels")
    void denseFfn(Kernels k) {
        int d = 7, f = 9, n = 5;
        ModelConfig cfg = new ModelConfig();
        cfg.dModel = d; cfg.nHeads = 1; cfg.mlpHiddenSize = 2 * f;
        Rng rng = new Rng(3);
        DenseFfn ffn = new DenseFfn(LayerConfigs.denseFfn(cfg), "blk.", k);
        rng.fillNormal(ffn.ffProj.data(), 0.6);
        rng.fillNormal(ffn.ffOut.data(), 0.4);
        float[] x = gauss(rng, n * d, 1), r = gauss(rng, n * d, 1);
        float[] y = new float[n * d], dx = new float[n * d];
        ffn.forward(x, y, n);
        ffn.backward(x, r, dx, n);
        double[] xd = toDouble(x), w1 = toDouble(ffn.ffProj.data()), w2 = toDouble(ffn.ffOut.data());
        java.util.function.DoubleSupplier fn = () -> NaiveRef.probe(NaiveRef.ffn(xd, w1, w2, n, d, f), r);
        assertTrue(relMaxDiff(y, NaiveRef.ffn(xd, w1, w2, n, d, f)) < 1e-5);
        check("ffn dx", dx, xd, fn, 1000, TOL);
        check("ff_proj grad", ffn.ffProj.grad(), w1, fn, 1000, TOL);
        check("ff_out grad", ffn.ffOut.grad(), w2, fn, 1000, TOL);
    }
}
