package dev.ultramem.train;

/** Warmup from 10% then cosine decay to final_lr_ratio (placeholder until the model package provides its own). */
public final class LrSchedule {
    private final TrainConfig c;

    public LrSchedule(TrainConfig c) { this.c = c; }

    public double lr(long step) {
        if (step < c.warmupSteps) return c.lr * (0.1 + 0.9 * step / (double) c.warmupSteps);
        double p = Math.min(1, (step - c.warmupSteps) / (double) Math.max(1, c.steps - c.warmupSteps));
        return c.lr * (c.finalLrRatio + (1 - c.finalLrRatio) * 0.5 * (1 + Math.cos(Math.PI * p)));
    }
}
