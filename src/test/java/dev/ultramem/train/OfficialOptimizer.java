package dev.ultramem.train;

import dev.ultramem.core.Param;

import java.lang.foreign.ValueLayout;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The official optimizer written from the spec (official-layers.md §6.1–6.3) in double precision, to
 * check the engine's training against: the parameter groups of {@code get_param_groups}, the
 * {@code CosWithWarmup.get_lr} schedule with the value-LR multiplier, global-norm clipping as OLMo's
 * {@code _do_global_fixed_clipping}, and torch's AdamW. Nothing here calls the engine's optimizer
 * code; it is fed the engine's raw (unclipped) gradients.
 */
final class OfficialOptimizer {

    /** The three official groups. */
    enum Group { DECAY, NO_DECAY, VALUE }

    /**
     * get_param_groups, by the module each tensor belongs to (read from its official name): norm
     * weights (RMSNorm modules: attn_norm, ff_norm, q_norm, k_norm, ln_f, query_norm, keys_norm) decay
     * iff decay_norm_and_bias, the embedding iff decay_embeddings, other {@code *.weight} tensors are
     * nn.Linear weights and decay; then anything named {@code values_for_look_up} (values and
     * pre-values) inside mem_blocks or full_memory_layer is the value group, and any other tensor of
     * mem_blocks (keys, Tucker cores) decays. Anything else is not classified (the official code asserts).
     */
    static Group classify(String name, boolean decayNormAndEmbeddings) {
        if (name.endsWith("weight")) {
            String module = name.substring(0, name.lastIndexOf('.'));
            String leaf = module.substring(module.lastIndexOf('.') + 1);
            if (List.of("attn_norm", "ff_norm", "q_norm", "k_norm", "ln_f", "query_norm", "keys_norm").contains(leaf))
                return decayNormAndEmbeddings ? Group.DECAY : Group.NO_DECAY;
            if (module.equals("transformer.wte")) return decayNormAndEmbeddings ? Group.DECAY : Group.NO_DECAY;
            return Group.DECAY;
        }
        if ((name.contains("mem_blocks") || name.contains("full_memory_layer")) && name.contains("values_for_look_up")) return Group.VALUE;
        if (name.contains("mem_blocks")) return Group.DECAY;
        throw new AssertionError(name + " is not separated into a group by the official rules");
    }

    /**
     * CosWithWarmup.get_lr at the official step t (1-based: global_step is incremented before the
     * step), for the value group with the multiplier 1 + (times − 1)·max(0, 1 − t/(T·rate)) on the peak,
     * and Memory+ values at their constant LR.
     */
    static double lr(TrainConfig c, String memType, boolean valueGroup, long t) {
        double lr0 = c.lr;
        if (valueGroup) {
            if (memType.equals("memory_plus")) return c.memoryPlusValueLr;
            double times = c.memValueLrTimes != null ? c.memValueLrTimes : memType.equals("ultramem_v1") ? 4.0 : 1.0;
            lr0 *= 1 + (times - 1) * Math.max(0, 1 - t / (c.steps * c.memValueLrMaxStepsRate));
        }
        double etaMin = lr0 * c.finalLrRatio, warmMin = 0.1 * lr0;
        if (t < c.warmupSteps) return warmMin + (lr0 - warmMin) * Math.min(t, c.warmupSteps) / c.warmupSteps;
        if (t >= c.steps) return etaMin;
        return etaMin + (lr0 - etaMin) * (1 + Math.cos(Math.PI * (t - c.warmupSteps) / (c.steps - c.warmupSteps))) / 2;
    }

    private final TrainConfig cfg;
    private final String memType;
    final Map<String, double[]> w = new LinkedHashMap<>(), m = new LinkedHashMap<>(), v = new LinkedHashMap<>();
    private final Map<String, Group> group = new LinkedHashMap<>();
    private long t;
    /** clip coefficient of the last step (1 when not clipped) and the pre-clip norm */
    double lastClip, lastNorm;

    /** Starts from the current values of the trainable tensors. */
    OfficialOptimizer(List<Param> params, TrainConfig cfg, String memType) {
        this.cfg = cfg;
        this.memType = memType;
        for (Param p : params) {
            if (!p.trainable) continue;
            double[] a = new double[(int) p.numel()];
            for (int i = 0; i < a.length; i++) a[i] = p.get(i);
            w.put(p.name, a);
            m.put(p.name, new double[a.length]);
            v.put(p.name, new double[a.length]);
            group.put(p.name, classify(p.name, cfg.decayNormAndEmbeddings));
        }
    }

    static double[] gradOf(Param p) {
        double[] g = new double[(int) p.numel()];
        for (int i = 0; i < g.length; i++) g[i] = p.gradSegment().getAtIndex(ValueLayout.JAVA_FLOAT, i);
        return g;
    }

    /** One optimizer step from the raw gradients (by name; a missing name is a tensor without gradient, skipped as torch does). */
    void step(Map<String, double[]> grads) {
        t++;
        // global L2 norm over every gradient, clip coefficient max/(norm + 1e-6) clamped at 1
        double ss = 0;
        for (double[] g : grads.values()) for (double x : g) ss += x * x;
        lastNorm = Math.sqrt(ss);
        lastClip = cfg.gradClip > 0 ? Math.min(1, cfg.gradClip / (lastNorm + 1e-6)) : 1;
        double b1 = cfg.beta1, b2 = cfg.beta2;
        double bc1 = 1 - Math.pow(b1, t), bc2 = 1 - Math.pow(b2, t);
        for (var e : w.entrySet()) {
            double[] g = grads.get(e.getKey());
            if (g == null) continue;
            Group gr = group.get(e.getKey());
            double lr = lr(cfg, memType, gr == Group.VALUE, t);
            double wd = gr == Group.NO_DECAY ? 0 : cfg.weightDecay;
            double[] p = e.getValue(), mm = m.get(e.getKey()), vv = v.get(e.getKey());
            for (int i = 0; i < p.length; i++) {
                double gi = g[i] * lastClip;
                p[i] *= 1 - lr * wd;
                mm[i] = b1 * mm[i] + (1 - b1) * gi;
                vv[i] = b2 * vv[i] + (1 - b2) * gi * gi;
                p[i] -= lr / bc1 * mm[i] / (Math.sqrt(vv[i]) / Math.sqrt(bc2) + cfg.eps);
            }
        }
    }
}
