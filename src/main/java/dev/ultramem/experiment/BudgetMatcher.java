package dev.ultramem.experiment;

import dev.ultramem.core.UserError;
import dev.ultramem.model.ModelConfig;
import dev.ultramem.model.ModelCosts;

import java.util.ArrayList;
import java.util.List;
import java.util.function.IntFunction;
import java.util.function.ToLongFunction;

/**
 * Matches a row's cost to a reference row, counted as {@code info} counts it ({@link ModelCosts}):
 * the dense FFN width ({@code mlp_hidden_size}, in steps of 16) is chosen so that the forward
 * multiply-adds per token come closest to the reference's, and the table size ({@code mem_knum}) so
 * that the total parameters (or, for {@link Variant.Match#COMPUTE_TABLES}, the table parameters) do. The two interact (keys grow with knum, dense parameters with the FFN),
 * so the two searches alternate until neither changes. Exact equality is usually impossible (integer
 * widths): the report prints how close each row came.
 */
public final class BudgetMatcher {
    private BudgetMatcher() {}

    /** FFN widths move in steps of 16 so that the SwiGLU halves stay multiples of 8. */
    static final int FFN_STEP = 16;

    /** The overrides that match {@code cfg} (changed in place) to the targets; empty when nothing changes. */
    public static List<String> match(ModelConfig cfg, int contextLen, Variant.Match how, long targetForwardMacs, long targetParams) {
        List<String> sets = new ArrayList<>();
        if (how == Variant.Match.NONE) return sets;
        boolean ffn = how.compute() && cfg.ffnType.equals("dense");
        boolean tables = how.params() && cfg.hasMemory();
        if (how.compute() && !ffn) throw new IllegalArgumentException("compute matching needs a dense FFN slot to resize");
        if (how.params() && !tables) throw new IllegalArgumentException("parameter matching needs memory tables to resize");
        int mlp0 = cfg.mlpHiddenSize, knum0 = cfg.memKnum;
        for (int round = 0; round < 8; round++) {
            int mlp = cfg.mlpHiddenSize, knum = cfg.memKnum;
            if (ffn) cfg.mlpHiddenSize = FFN_STEP * closest(i -> { cfg.mlpHiddenSize = FFN_STEP * i; return cfg; },
                    1, 1 << 16, c -> ModelCosts.of(c, contextLen).forwardMacsPerToken(), targetForwardMacs);
            if (tables) cfg.memKnum = closest(i -> { cfg.memKnum = i; return cfg; },
                    2, 1 << 15, c -> how == Variant.Match.COMPUTE_TABLES ? ModelCosts.of(c, contextLen).tableParams()
                            : ModelCosts.of(c, contextLen).totalParams(), targetParams);
            if (mlp == cfg.mlpHiddenSize && knum == cfg.memKnum) break;
        }
        try {
            cfg.validate();
        } catch (UserError e) {
            throw new IllegalStateException("matched config is invalid: " + e.getMessage(), e);
        }
        if (cfg.mlpHiddenSize != mlp0) sets.add("model.mlp_hidden_size=" + cfg.mlpHiddenSize);
        if (cfg.memKnum != knum0) sets.add("model.mem_knum=" + cfg.memKnum);
        return sets;
    }

    /**
     * The i in [lo, hi] whose count comes closest to target, for a count that does not decrease in i
     * (binary search for the first i at or above the target, then the nearer of it and its predecessor).
     */
    static int closest(IntFunction<ModelConfig> at, int lo, int hi, ToLongFunction<ModelConfig> count, long target) {
        int a = lo, b = hi;
        while (a < b) {
            int mid = (a + b) >>> 1;
            if (count.applyAsLong(at.apply(mid)) >= target) b = mid; else a = mid + 1;
        }
        long above = count.applyAsLong(at.apply(a));
        if (a > lo) {
            long below = count.applyAsLong(at.apply(a - 1));
            if (target - below <= above - target) a = a - 1;
        }
        at.apply(a);
        return a;
    }
}
