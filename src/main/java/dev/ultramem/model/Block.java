package dev.ultramem.model;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.core.StepProfile;
import dev.ultramem.kernel.Kernels;
import dev.ultramem.layer.Attention;
import dev.ultramem.layer.RmsNorm;
import dev.ultramem.layer.TokenLayer;

import java.util.ArrayList;
import java.util.List;

/**
 * One pre-norm OLMo block: {@code h = x + attn_out(Attn(attn_norm(x)))}, {@code u = ff_norm(h)},
 * {@code x' = h + FFN(u)}. The memory layers beside the FFN are wired by {@link Model}, which reads
 * {@link #u()} and adds their outputs to the residual stream.
 */
public final class Block {
    final RmsNorm attnNorm, ffNorm;
    final Attention attention;
    final TokenLayer ffn;
    private final int d;

    // forward state [B·T, d] (rstd per row), sized for the largest B·T
    private float[] an = new float[0], attY, h, u, ffY, dAn, du;
    private float[] rstdA, rstdF;

    Block(ModelConfig cfg, int l, Kernels k) {
        String prefix = "transformer.blocks." + l + ".";
        this.d = cfg.dModel;
        this.attnNorm = new RmsNorm(prefix + "attn_norm.weight", d, cfg.normEps, k);
        this.attention = new Attention(LayerConfigs.attention(cfg), prefix, k);
        this.ffNorm = new RmsNorm(prefix + "ff_norm.weight", d, cfg.normEps, k);
        this.ffn = FeedForwards.create(cfg, prefix);
    }

    List<Param> params() {
        List<Param> out = new ArrayList<>();
        out.add(attnNorm.weight);
        out.addAll(attention.params());
        out.add(ffNorm.weight);
        out.addAll(ffn.params());
        return out;
    }

    void initialize(Rng rng) {
        attnNorm.initialize();
        attention.initialize(rng);
        ffNorm.initialize();
        ffn.initialize(rng);
    }

    private void ensure(int n) {
        if (an.length < n * d) {
            an = new float[n * d]; attY = new float[n * d]; h = new float[n * d]; u = new float[n * d];
            ffY = new float[n * d]; dAn = new float[n * d]; du = new float[n * d];
            rstdA = new float[n]; rstdF = new float[n];
        }
    }

    /** The FFN input of the last forward (ff_norm output), read by memory layers. */
    float[] u() { return u; }

    /** The gradient buffer of u during backward (memory layers' input gradients are added to it). */
    float[] du() { return du; }

    /** xOut = h + FFN(u); xIn is kept by the caller for the backward. */
    void forward(float[] xIn, float[] xOut, int B, int T) {
        int n = B * T;
        ensure(n);
        long t0 = StepProfile.start();
        attnNorm.forward(n, xIn, 0, an, 0, rstdA, 0);
        StepProfile.stop(StepProfile.Kind.NORMS, t0);
        t0 = StepProfile.start();
        attention.forward(an, attY, B, T);
        StepProfile.stop(StepProfile.Kind.ATTENTION, t0);
        t0 = StepProfile.start();
        for (int i = 0; i < n * d; i++) h[i] = xIn[i] + attY[i];
        ffNorm.forward(n, h, 0, u, 0, rstdF, 0);
        StepProfile.stop(StepProfile.Kind.NORMS, t0);
        t0 = StepProfile.start();
        ffn.forward(u, ffY, n);
        for (int i = 0; i < n * d; i++) xOut[i] = h[i] + ffY[i];
        StepProfile.stop(StepProfile.Kind.FFN, t0);
    }

    /** Zeroes du and adds the FFN's input gradient into it; dX (∂L/∂x') is left unchanged. */
    void backwardFfn(float[] dX, int n) {
        long t0 = StepProfile.start();
        java.util.Arrays.fill(du, 0, n * d, 0f);
        ffn.backward(u, dX, du, n);
        StepProfile.stop(StepProfile.Kind.FFN, t0);
    }

    /** With du complete (FFN plus memory), turns dX = ∂L/∂x' into ∂L/∂x in place. */
    void backwardRest(float[] xIn, float[] dX, int B, int T) {
        int n = B * T;
        long t0 = StepProfile.start();
        ffNorm.backward(n, h, 0, rstdF, 0, du, 0, dX, 0, true);
        StepProfile.stop(StepProfile.Kind.NORMS, t0);
        t0 = StepProfile.start();
        java.util.Arrays.fill(dAn, 0, n * d, 0f);
        attention.backward(an, dX, dAn, B, T);
        StepProfile.stop(StepProfile.Kind.ATTENTION, t0);
        t0 = StepProfile.start();
        attnNorm.backward(n, xIn, 0, rstdA, 0, dAn, 0, dX, 0, true);
        StepProfile.stop(StepProfile.Kind.NORMS, t0);
    }

    /** Decoding state of this block for a batch decoder: the KV rings of its slots and row buffers grown on demand. */
    final class Cached {
        final Attention.KvPool pool;
        private float[] an = new float[0], att, h, y, r;
        float[] u = new float[0];
        /** Cached key and value elements read by the last call. */
        long kvFloatsRead;

        Cached(int slots, int window, boolean bf16Kv) { pool = attention.newPool(slots, window, bf16Kv); }

        /** x[n, d] ← x + attention over the cached sequences + FFN; u holds the FFN input afterwards. */
        void run(float[] x, int n, int nSeq, int[] slot, long[] pos0, int[] start, int[] len) {
            if (an.length < n * d) {
                an = new float[n * d]; att = new float[n * d]; h = new float[n * d]; u = new float[n * d];
                y = new float[n * d]; r = new float[n];
            }
            attnNorm.forward(n, x, 0, an, 0, r, 0);
            kvFloatsRead = attention.forwardCached(pool, an, att, n, nSeq, slot, pos0, start, len);
            for (int i = 0; i < n * d; i++) h[i] = x[i] + att[i];
            ffNorm.forward(n, h, 0, u, 0, r, 0);
            ffn.forward(u, y, n);
            for (int i = 0; i < n * d; i++) x[i] = h[i] + y[i];
        }

        /** Parameter bytes of the block's own weights read by one call (norms, attention, and the FFN as it counts). */
        long paramBytes() {
            return (attention.paramCount() + 2L * d) * Float.BYTES + ffn.lastForwardParamBytes();
        }
    }
}
