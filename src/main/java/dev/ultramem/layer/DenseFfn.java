package dev.ultramem.layer;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.kernel.Kernels;

import java.util.List;

/**
 * The OLMo SwiGLU FFN: {@code [a, g] = ff_proj(x)} (first half of the output the linear part a,
 * second half the gate g), {@code y = ff_out(silu(g) ⊙ a)}.
 */
public final class DenseFfn implements TokenLayer {

    /**
     * Width, SwiGLU inner width f ({@code ff_proj} has 2f outputs), the block count (scales the output
     * init) and the truncated-normal init (std, cutoff in stds).
     */
    public record Config(int dModel, int inner, int nLayers, double initStd, double initCutoff) {}

    public final Param ffProj;   // [2f, d]
    public final Param ffOut;    // [d, f]
    private final int d, f, nLayers;
    private final double std;
    private final double cutoff;
    private final Kernels k;

    // saved for backward, sized for the largest n seen
    private float[] a = new float[0], g = new float[0], act = new float[0];
    private float[] da = new float[0], dg = new float[0], dact = new float[0];
    private int lastN;

    public DenseFfn(Config cfg, String prefix) { this(cfg, prefix, Kernels.get()); }

    public DenseFfn(Config cfg, String prefix, Kernels kernels) {
        this.d = cfg.dModel();
        this.f = cfg.inner();
        this.nLayers = cfg.nLayers();
        this.std = cfg.initStd();
        this.cutoff = cfg.initCutoff();
        this.k = kernels;
        this.ffProj = Param.of(prefix + "ff_proj.weight", Param.Group.DECAY, 2 * f, d);
        this.ffOut = Param.of(prefix + "ff_out.weight", Param.Group.DECAY, d, f);
    }

    private void ensure(int n) {
        if (a.length < n * f) {
            a = new float[n * f]; g = new float[n * f]; act = new float[n * f];
            da = new float[n * f]; dg = new float[n * f]; dact = new float[n * f];
        }
    }

    @Override
    public void forward(float[] x, float[] y, int n) {
        ensure(n);
        lastN = n;
        float[] w1 = ffProj.data();
        // the two halves of ff_proj as two GEMMs, so a and g are contiguous [n, f]
        k.gemmNT(n, f, d, x, 0, w1, 0, a, 0, false);
        k.gemmNT(n, f, d, x, 0, w1, f * d, g, 0, false);
        k.swigluForward(n * f, a, 0, g, 0, act, 0);
        k.gemmNT(n, d, f, act, 0, ffOut.data(), 0, y, 0, false);
    }

    @Override
    public void backward(float[] x, float[] dy, float[] dx, int n) {
        float[] w1 = ffProj.data(), w2 = ffOut.data();
        k.gemmTN(d, f, n, dy, 0, act, 0, ffOut.grad(), 0, true);
        k.gemmNN(n, f, d, dy, 0, w2, 0, dact, 0, false);
        k.swigluBackward(n * f, a, 0, g, 0, dact, 0, da, 0, dg, 0);
        float[] gw1 = ffProj.grad();
        k.gemmTN(f, d, n, da, 0, x, 0, gw1, 0, true);
        k.gemmTN(f, d, n, dg, 0, x, 0, gw1, f * d, true);
        k.gemmNN(n, d, f, da, 0, w1, 0, dx, 0, true);
        k.gemmNN(n, d, f, dg, 0, w1, f * d, dx, 0, true);
    }

    @Override public List<Param> params() { return List.of(ffProj, ffOut); }

    @Override
    public void initialize(Rng rng) {
        rng.fillTruncNormal(ffProj.data(), std, cutoff);
        double outStd = std / Math.sqrt(2.0 * nLayers);
        rng.fillTruncNormal(ffOut.data(), outStd, cutoff);
    }

    @Override public long activatedParamsPerToken() { return 3L * f * d; }

    @Override public long forwardMacsPerToken() { return 3L * f * d; }

    @Override public long lastForwardParamBytes() { return lastN == 0 ? 0 : 3L * f * d * Float.BYTES; }
}
