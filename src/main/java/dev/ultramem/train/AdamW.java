package dev.ultramem.train;

import dev.ultramem.core.Param;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/** AdamW over the trainable params (placeholder until the model package provides its own). */
public final class AdamW {
    private final List<Param> params = new ArrayList<>();
    private final Map<Param, MemorySegment> m = new IdentityHashMap<>(), v = new IdentityHashMap<>();
    private final TrainConfig cfg;
    private long t;

    public AdamW(List<Param> all, TrainConfig cfg) {
        this.cfg = cfg;
        for (Param p : all) {
            if (!p.trainable) continue;
            params.add(p);
            m.put(p, Arena.ofAuto().allocate(p.numel() * 4, 64));
            v.put(p, Arena.ofAuto().allocate(p.numel() * 4, 64));
        }
    }

    public List<Param> params() { return params; }
    public MemorySegment m(Param p) { return m.get(p); }
    public MemorySegment v(Param p) { return v.get(p); }
    public long stepCount() { return t; }
    public void setStepCount(long s) { t = s; }

    public void step(double lr) {
        t++;
        double b1 = cfg.beta1, b2 = cfg.beta2, c1 = 1 - Math.pow(b1, t), c2 = 1 - Math.pow(b2, t);
        for (Param p : params) {
            double wd = p.group == Param.Group.NO_DECAY ? 0 : cfg.weightDecay;
            MemorySegment w = p.segment(), g = p.gradSegment(), ms = m.get(p), vs = v.get(p);
            long n = p.numel();
            for (long i = 0; i < n; i++) {
                float gi = g.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                float mi = (float) (b1 * ms.getAtIndex(ValueLayout.JAVA_FLOAT, i) + (1 - b1) * gi);
                float vi = (float) (b2 * vs.getAtIndex(ValueLayout.JAVA_FLOAT, i) + (1 - b2) * gi * gi);
                ms.setAtIndex(ValueLayout.JAVA_FLOAT, i, mi);
                vs.setAtIndex(ValueLayout.JAVA_FLOAT, i, vi);
                float wi = w.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                wi -= (float) (lr * (wd * wi + (mi / c1) / (Math.sqrt(vi / c2) + cfg.eps)));
                w.setAtIndex(ValueLayout.JAVA_FLOAT, i, wi);
            }
        }
    }
}
