package dev.ultramem.experiment;

import java.util.ArrayList;
import java.util.List;

/**
 * The shared shape and training recipe of every row at one scale: the dense transformer, the batch,
 * the LR (one for all rows: not tuned per variant) and the widths the memory layers are derived from.
 * {@code quick} is a smoke run for the tests; {@code tiny} is the default; {@code small} is the
 * fair-comparison family of docs/PRESETS.md (d 256, 8 layers).
 *
 * @param knn values each head of a two-layer, two-head memory reads; UltraMemV2 in every block reads
 *            4·knn/L per layer so that all memory models activate the same number of value rows
 */
public enum Scale {
    QUICK(32, 2, 2, 32, 4, 8, 2, 2e-3, 8),
    TINY(128, 4, 4, 64, 16, 32, 8, 2e-3, 1),
    SMALL(256, 8, 4, 128, 16, 64, 8, 2e-3, 1);

    public final int d, layers, heads, seqLen, batch, knn, evalBatches;
    public final double lr;
    /** Token budgets of the declarations are divided by this (quick runs a few steps). */
    public final int budgetDivisor;

    Scale(int d, int layers, int heads, int seqLen, int batch, int knn, int evalBatches, double lr, int budgetDivisor) {
        this.d = d;
        this.layers = layers;
        this.heads = heads;
        this.seqLen = seqLen;
        this.batch = batch;
        this.knn = knn;
        this.evalBatches = evalBatches;
        this.lr = lr;
        this.budgetDivisor = budgetDivisor;
    }

    public String id() { return name().toLowerCase(); }

    public static Scale parse(String s) {
        for (Scale x : values()) if (x.id().equals(s)) return x;
        throw new dev.ultramem.core.UserError("--scale must be tiny or small, got '" + s + "'");
    }

    public int tokensPerStep() { return batch * seqLen; }

    /** SwiGLU inner width of the dense reference (mlp_hidden_size is twice it). */
    public int inner() { return 2 * d; }

    /** The dense base every row starts from; layers may differ from the scale's (placement uses 8 at every scale but quick). */
    public List<String> base(int nLayers) {
        List<String> s = new ArrayList<>(List.of(
                "model.vocab_size=256", "model.d_model=" + d, "model.n_layers=" + nLayers, "model.n_heads=" + heads,
                "model.max_seq_len=" + seqLen, "model.mlp_hidden_size=" + 2 * inner(), "model.ffn_type=dense", "model.mem_type=none",
                "train.batch_size=" + batch, "train.seq_len=" + seqLen, "train.lr=" + lr, "train.eval_batches=" + evalBatches,
                "train.mem_value_lr_times=1.0", "train.mem_value_lr_max_steps_rate=1.0", "train.log_every=1"));
        return s;
    }

    /** The schedule of a run of the given number of steps: 10% warmup, cosine to the end, 8 evaluations, 4 checkpoints. */
    public static List<String> schedule(int steps) {
        return List.of("train.steps=" + steps, "train.warmup_steps=" + Math.max(1, steps / 10),
                "train.eval_every=" + Math.max(1, steps / 8), "train.checkpoint_every=" + Math.max(1, steps / 4));
    }
}
