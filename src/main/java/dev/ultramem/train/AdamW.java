package dev.ultramem.train;

import dev.ultramem.core.Param;
import dev.ultramem.core.Parallel;
import dev.ultramem.core.StepProfile;
import dev.ultramem.core.UserError;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdamW with torch semantics: decoupled decay {@code p ← p·(1 − lr·wd)}, then the Adam update with
 * bias correction, {@code p ← p − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps)}.
 *
 * <p>Weight decay per group: DECAY, VALUE and VALUE_FIXED_LR use {@code weight_decay}, NO_DECAY 0;
 * with {@code decay_norm_and_embeddings: false} norm weights and the embedding get 0 as well.
 * Off-heap tensors (value tables) keep their moments off-heap and are walked with long indices.
 */
public final class AdamW {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;

    private final TrainConfig cfg;
    private final List<Param> params = new ArrayList<>();
    private final Map<String, Param> expAvg = new LinkedHashMap<>();
    private final Map<String, Param> expAvgSq = new LinkedHashMap<>();
    private final double[] wd;
    private long step;

    public AdamW(List<Param> all, TrainConfig cfg) {
        this.cfg = cfg;
        Arena arena = Arena.ofAuto();
        for (Param p : all) {
            if (!optimizes(p)) continue;
            if (p.isBf16())
                throw new UserError(p.name + " is stored as bf16, which is for inference only; train from a float32 checkpoint "
                        + "(bin/ultramem convert RUN --dtype f32 --out DIR)");
            params.add(p);
            Param m, v;
            if (p.isHeap()) {
                m = Param.of(p.name + ".exp_avg", Param.Group.NO_DECAY, toInt(p.shape));
                v = Param.of(p.name + ".exp_avg_sq", Param.Group.NO_DECAY, toInt(p.shape));
            } else {
                m = Param.offHeap(p.name + ".exp_avg", Param.Group.NO_DECAY, arena, p.shape);
                v = Param.offHeap(p.name + ".exp_avg_sq", Param.Group.NO_DECAY, arena, p.shape);
            }
            expAvg.put(p.name, m);
            expAvgSq.put(p.name, v);
        }
        wd = new double[params.size()];
        for (int i = 0; i < wd.length; i++) wd[i] = weightDecay(params.get(i));
    }

    /** Whether AdamW keeps state for a param: the trainable ones (not derived buffers such as Tucker u, v). */
    public static boolean optimizes(Param p) { return p.trainable; }

    private static int[] toInt(long[] s) {
        int[] r = new int[s.length];
        for (int i = 0; i < s.length; i++) r[i] = (int) s[i];
        return r;
    }

    /** The weight decay this optimizer applies to p. */
    public double weightDecay(Param p) {
        if (p.group == Param.Group.NO_DECAY) return 0;
        if (!cfg.decayNormAndEmbeddings && (isNormWeight(p.name) || p.name.equals("transformer.wte.weight"))) return 0;
        return cfg.weightDecay;
    }

    /** RMSNorm weights: the block, QK, memory query/key norms (*norm.weight) and the final ln_f. */
    static boolean isNormWeight(String name) {
        return name.endsWith("norm.weight") || name.equals("transformer.ln_f.weight");
    }

    /** Number of optimizer steps taken (the bias-correction exponent of the next step is step()+1). */
    public long step() { return step; }

    public void setStep(long s) {
        if (s < 0) throw new UserError("optimizer: step must be >= 0");
        step = s;
    }

    /** The trainable parameters, in order. */
    public List<Param> params() { return params; }

    /** First moment of the named parameter (same shape, heap or off-heap like the parameter). */
    public Param expAvg(String name) { return expAvg.get(name); }

    /** Second moment of the named parameter. */
    public Param expAvgSq(String name) { return expAvgSq.get(name); }

    /** All moment tensors (named {@code <param>.exp_avg} and {@code <param>.exp_avg_sq}), for checkpoints. */
    public List<Param> stateTensors() {
        List<Param> out = new ArrayList<>();
        for (Param p : params) { out.add(expAvg.get(p.name)); out.add(expAvgSq.get(p.name)); }
        return out;
    }

    /** Global L2 norm of all gradients (parameters without a gradient count as zero). */
    public double gradNorm() {
        double ss = 0;
        for (Param p : params) {
            if (!p.hasGrad()) continue;
            if (p.isHeap()) {
                float[] g = p.grad();
                double s = 0;
                for (float x : g) s += (double) x * x;
                ss += s;
            } else {
                MemorySegment g = p.gradSegment();
                long n = p.numel();
                float[] buf = scratch(0)[1];
                double s = 0;
                for (long off = 0; off < n; off += BLOCK) {  // same order as element by element
                    int len = (int) Math.min(BLOCK, n - off);
                    MemorySegment.copy(g, F, off * Float.BYTES, buf, 0, len);
                    for (int i = 0; i < len; i++) { double x = buf[i]; s += x * x; }
                }
                ss += s;
            }
        }
        return Math.sqrt(ss);
    }

    /**
     * Scales all gradients so that their global norm is at most {@code grad_clip} (torch
     * {@code clip_grad_norm_}: factor max/(norm + 1e-6) when below 1). Returns the norm before clipping.
     */
    public double clipGradients() {
        double norm = gradNorm();
        if (cfg.gradClip <= 0) return norm;
        double coef = cfg.gradClip / (norm + 1e-6);
        if (coef >= 1) return norm;
        float c = (float) coef;
        for (Param p : params) {
            if (!p.hasGrad()) continue;
            if (p.isHeap()) {
                float[] g = p.grad();
                for (int i = 0; i < g.length; i++) g[i] *= c;
            } else {
                MemorySegment g = p.gradSegment();
                long n = p.numel();
                float[] buf = scratch(0)[1];
                for (long off = 0; off < n; off += BLOCK) {
                    int len = (int) Math.min(BLOCK, n - off);
                    MemorySegment.copy(g, F, off * Float.BYTES, buf, 0, len);
                    for (int i = 0; i < len; i++) buf[i] *= c;
                    MemorySegment.copy(buf, 0, g, F, off * Float.BYTES, len);
                }
            }
        }
        return norm;
    }

    /** Clips, then takes one step with the schedule's LRs at t = step() + 1 (the 1-based step number). Returns the pre-clip gradient norm. */
    public double step(LrSchedule schedule) {
        long t0 = StepProfile.start();
        double norm = clipGradients();
        long t = step + 1;
        update(schedule.lr(t), schedule.valueLr(t), schedule.fixedValueLr(t));
        StepProfile.stop(StepProfile.Kind.OPTIMIZER, t0);
        return norm;
    }

    /** One AdamW update with the given LRs per group (no clipping). Parameters that never received a gradient are skipped. */
    public void update(double lr, double valueLr, double fixedLr) {
        step++;
        final double b1 = cfg.beta1, b2 = cfg.beta2, eps = cfg.eps;
        final double bc1 = 1 - Math.pow(b1, step), bc2 = 1 - Math.pow(b2, step);
        final double sqrtBc2 = Math.sqrt(bc2);
        for (int pi = 0; pi < params.size(); pi++) {
            Param p = params.get(pi);
            if (!p.hasGrad()) continue; // torch skips parameters whose grad is None
            double plr = switch (p.group) {
                case DECAY, NO_DECAY -> lr;
                case VALUE -> valueLr;
                case VALUE_FIXED_LR -> fixedLr;
            };
            final float decay = (float) (1 - plr * wd[pi]);
            final float stepSize = (float) (plr / bc1);
            final float fb1 = (float) b1, fb2 = (float) b2, omb1 = (float) (1 - b1), omb2 = (float) (1 - b2);
            final float fSqrtBc2 = (float) sqrtBc2, fEps = (float) eps;
            if (p.isHeap()) {
                final float[] w = p.data(), g = p.grad();
                final float[] m = expAvg.get(p.name).data(), v = expAvgSq.get(p.name).data();
                Parallel.forRange(w.length, 1 << 15, (s, e) ->
                        adamw(w, g, m, v, s, e, decay, stepSize, fb1, fb2, omb1, omb2, fSqrtBc2, fEps));
            } else {
                // off-heap tables: the same loop on blocks copied into per-chunk heap scratch (bulk copies and an
                // int-indexed loop instead of per-element long-indexed segment access; identical arithmetic)
                final MemorySegment w = p.segment(), g = p.gradSegment();
                final MemorySegment m = expAvg.get(p.name).segment(), v = expAvgSq.get(p.name).segment();
                final long n = p.numel();
                final int blocks = (int) ((n + BLOCK - 1) / BLOCK);
                final int chunks = Math.min(Parallel.threads(), blocks);
                Parallel.forChunks(blocks, chunks, (c, first, end) -> {
                    float[][] sc = scratch(c);
                    for (int b = first; b < end; b++) {
                        long off = (long) b * BLOCK;
                        int len = (int) Math.min(BLOCK, n - off);
                        MemorySegment.copy(w, F, off * Float.BYTES, sc[0], 0, len);
                        MemorySegment.copy(g, F, off * Float.BYTES, sc[1], 0, len);
                        MemorySegment.copy(m, F, off * Float.BYTES, sc[2], 0, len);
                        MemorySegment.copy(v, F, off * Float.BYTES, sc[3], 0, len);
                        adamw(sc[0], sc[1], sc[2], sc[3], 0, len, decay, stepSize, fb1, fb2, omb1, omb2, fSqrtBc2, fEps);
                        MemorySegment.copy(sc[0], 0, w, F, off * Float.BYTES, len);
                        MemorySegment.copy(sc[2], 0, m, F, off * Float.BYTES, len);
                        MemorySegment.copy(sc[3], 0, v, F, off * Float.BYTES, len);
                    }
                });
            }
        }
    }

    /** Elements per block of an off-heap tensor: four 64 KiB scratch arrays stay in the core's L2. */
    private static final int BLOCK = 1 << 14;
    private float[][][] scratch = new float[0][][];

    private synchronized float[][] scratch(int chunk) {
        if (chunk >= scratch.length) scratch = java.util.Arrays.copyOf(scratch, chunk + 1);
        if (scratch[chunk] == null) scratch[chunk] = new float[4][BLOCK];
        return scratch[chunk];
    }

    /** The AdamW update of elements [s, e): decoupled decay, moments, bias-corrected step. */
    private static void adamw(float[] w, float[] g, float[] m, float[] v, int s, int e, float decay, float stepSize,
                              float fb1, float fb2, float omb1, float omb2, float fSqrtBc2, float fEps) {
        for (int i = s; i < e; i++) {
            float gi = g[i];
            float wi = w[i] * decay;
            float mi = fb1 * m[i] + omb1 * gi;
            float vi = fb2 * v[i] + omb2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            w[i] = wi - stepSize * mi / ((float) Math.sqrt(vi) / fSqrtBc2 + fEps);
        }
    }

    /** Zeroes every gradient. */
    public void zeroGrad() {
        for (Param p : params) p.zeroGrad();
    }
}
