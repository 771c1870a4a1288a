package dev.ultramem.experiment;

import java.util.List;
import java.util.function.Function;

/**
 * A declared experiment: a grid of rows (per scale), the row every other row's cost is matched to, and
 * the claims its verdicts are computed for.
 *
 * @param implemented false for a declaration the engine cannot run yet ({@code status} says why); it is
 *                    listed, never run
 * @param layers      n_layers of the base (0: the scale's)
 * @param tinyTokens  token budget per run at the default scale; {@code smallTokens} at --scale small
 * @param sequential  report each row's difference to the previous row (an ablation ladder)
 * @param diagnostics plot the memory-layer diagnostics over training
 * @param matching    how the grid's costs are matched, in words, for the report
 */
public record Experiment(String name, String summary, String paper, String reference, boolean implemented, String status,
                         int layers, long tinyTokens, long smallTokens, boolean sequential, boolean diagnostics,
                         String matching, List<Claim> claims, Function<Scale, List<Variant>> grid) {

    public List<Variant> variants(Scale s) { return grid.apply(s); }

    public int layers(Scale s) { return s == Scale.QUICK || layers == 0 ? s.layers : layers; }

    /** The token budget per run (a quick run: a few steps). */
    public long tokens(Scale s) {
        return switch (s) {
            case QUICK -> 6L * s.tokensPerStep();
            case TINY -> tinyTokens;
            case SMALL -> smallTokens;
        };
    }

    public Variant variant(Scale s, String name) {
        for (Variant v : variants(s)) if (v.name().equals(name)) return v;
        throw new IllegalArgumentException(this.name + " has no row " + name);
    }
}
