package dev.ultramem.train;

import dev.ultramem.core.Param;

/**
 * The official cosine-with-warmup schedule ({@code CosWithWarmup.get_lr}) in optimizer steps. As in
 * the official trainer, t is the 1-based number of the step being taken (its {@code global_step}
 * is incremented before the step): the first step has t = 1 and the last t = steps.
 * Warmup rises linearly from 10% of the peak, then a cosine decays to {@code final_lr_ratio} of the
 * peak at {@code steps}, after which the LR stays there. The value group uses a peak boosted by
 * {@code 1 + (times − 1)·max(0, 1 − t/(steps·rate))}; Memory+ values use a constant LR.
 */
public final class LrSchedule {
    private final double lr0, finalRatio, times, rate, fixedLr;
    private final int warmup, steps;

    /** The schedule of a run; memType resolves an unset value-LR multiplier ({@link TrainConfig#valueLrTimes}). */
    public LrSchedule(TrainConfig cfg, String memType) {
        this.lr0 = cfg.lr;
        this.warmup = cfg.warmupSteps;
        this.steps = cfg.steps;
        this.finalRatio = cfg.finalLrRatio;
        this.times = cfg.valueLrTimes(memType);
        this.rate = cfg.memValueLrMaxStepsRate;
        this.fixedLr = cfg.memoryPlusValueLr;
    }

    /** LR of the DECAY and NO_DECAY groups at step t (1-based). */
    public double lr(long t) { return shape(lr0, t); }

    /** LR of the VALUE group at step t (boosted peak, same shape). */
    public double valueLr(long t) {
        double m = 1 + (times - 1) * Math.max(0, 1 - t / (steps * rate));
        return shape(lr0 * m, t);
    }

    /** LR of the VALUE_FIXED_LR group (Memory+ values): constant. */
    public double fixedValueLr(long t) { return fixedLr; }

    public double lr(Param.Group group, long t) {
        return switch (group) {
            case DECAY, NO_DECAY -> lr(t);
            case VALUE -> valueLr(t);
            case VALUE_FIXED_LR -> fixedValueLr(t);
        };
    }

    private double shape(double peak, long t) {
        if (t < warmup) return 0.1 * peak + 0.9 * peak * t / warmup;
        if (t >= steps) return finalRatio * peak;
        double progress = (double) (t - warmup) / (steps - warmup);
        return finalRatio * peak + (1 - finalRatio) * peak * (1 + Math.cos(Math.PI * progress)) / 2;
    }
}
