package dev.ultramem.train;

import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import dev.ultramem.core.UserError;
import dev.ultramem.model.MemoryPlan;

import static dev.ultramem.model.Configs.requireFinite;

/** Optimiser, schedule and loop settings (snake_case keys in config files). */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
public final class TrainConfig implements MemoryPlan.Training {
    public int steps = 600;
    public int batchSize = 16;
    public int seqLen = 128;
    public double lr = 3e-3;
    /** Warmup steps (LR rises from 10% to 100%). */
    public int warmupSteps = 60;
    /** Final LR as a fraction of the peak (cosine decay to it). */
    public double finalLrRatio = 0.1;
    public double beta1 = 0.9;
    public double beta2 = 0.95;
    public double eps = 1e-8;
    public double weightDecay = 0.1;
    /** Decay norm weights and embeddings too (official base config: true). */
    public boolean decayNormAndEmbeddings = true;
    public double gradClip = 1.0;
    /**
     * Value-table LR multiplier at step 0, decaying linearly to 1 over steps·rate (1 = constant); unset
     * (null) it is resolved by the model's mem_type as the spec decided: 4 for ultramem_v1, 1 otherwise.
     */
    public Double memValueLrTimes = null;
    public double memValueLrMaxStepsRate = 1.0;
    /** Memory+ value tables: constant LR. */
    public double memoryPlusValueLr = 1e-3;
    public long seed = 1234;
    public int evalEvery = 100;
    public int evalBatches = 8;
    public int checkpointEvery = 200;
    public int logEvery = 10;
    /** Fraction of the corpus held out for validation. */
    public double valFraction = 0.05;

    /** The value-LR multiplier at step 0 in force for a model of this mem_type (unset resolved by type). */
    public double valueLrTimes(String memType) {
        if (memValueLrTimes != null) return memValueLrTimes;
        return "ultramem_v1".equals(memType) ? 4.0 : 1.0;
    }

    @Override public int batchSize() { return batchSize; }

    @Override public int seqLen() { return seqLen; }

    @Override public int steps() { return steps; }

    @Override public TrainConfig defaults() { return new TrainConfig(); }

    public TrainConfig validate() {
        requireFinite("lr", lr); requireFinite("final_lr_ratio", finalLrRatio); requireFinite("beta1", beta1); requireFinite("beta2", beta2);
        requireFinite("eps", eps); requireFinite("weight_decay", weightDecay); requireFinite("grad_clip", gradClip);
        if (memValueLrTimes != null) requireFinite("mem_value_lr_times", memValueLrTimes);
        requireFinite("mem_value_lr_max_steps_rate", memValueLrMaxStepsRate);
        requireFinite("memory_plus_value_lr", memoryPlusValueLr); requireFinite("val_fraction", valFraction);
        pos("steps", steps); pos("batch_size", batchSize); pos("seq_len", seqLen);
        if (!(lr > 0)) throw new UserError("config: lr must be > 0");
        if (warmupSteps < 0) throw new UserError("config: warmup_steps must be >= 0");
        if (finalLrRatio < 0 || finalLrRatio > 1) throw new UserError("config: final_lr_ratio must be in [0, 1]");
        if (beta1 < 0 || beta1 >= 1 || beta2 < 0 || beta2 >= 1) throw new UserError("config: beta1 and beta2 must be in [0, 1)");
        if (!(eps > 0)) throw new UserError("config: eps must be > 0");
        if (weightDecay < 0) throw new UserError("config: weight_decay must be >= 0");
        if (gradClip < 0) throw new UserError("config: grad_clip must be >= 0 (0 disables clipping)");
        if ((memValueLrTimes != null && memValueLrTimes <= 0) || memValueLrMaxStepsRate <= 0) throw new UserError("config: mem_value_lr_times and mem_value_lr_max_steps_rate must be > 0");
        if (!(memoryPlusValueLr > 0)) throw new UserError("config: memory_plus_value_lr must be > 0");
        pos("eval_every", evalEvery); pos("eval_batches", evalBatches); pos("checkpoint_every", checkpointEvery); pos("log_every", logEvery);
        if (!(valFraction > 0 && valFraction < 0.5)) throw new UserError("config: val_fraction must be in (0, 0.5)");
        return this;
    }

    private static void pos(String k, int v) { if (v <= 0) throw new UserError("config: " + k + " must be > 0, got " + v); }
}
