package dev.ultramem.experiment;

import java.util.List;

/**
 * One row of an experiment's grid: config overrides over the scale's base ({@code section.key=value},
 * as {@code --set} takes them) and how its cost is matched to the experiment's reference row.
 *
 * @param match       what {@link BudgetMatcher} adjusts: the dense FFN width to the reference's forward
 *                    compute per token and/or the table size to its total parameters
 * @param tableFactor the parameter target is the reference's total (table parameters with
 *                    {@link Match#COMPUTE_TABLES}) plus (tableFactor − 1) × its table parameters (2: twice the tables)
 * @param data        the data set the row trains on (null: the experiment's corpus)
 * @param tokens      the row's token budget (0: the experiment's)
 */
public record Variant(String name, String label, List<String> sets, Match match, double tableFactor, String data, long tokens) {

    public enum Match {
        NONE("as declared"), COMPUTE("compute"), PARAMS("total params"), BOTH("compute + total params"),
        /** Compute, and the table (sparse) parameters rather than the total. */
        COMPUTE_TABLES("compute + table params");

        public final String text;

        Match(String text) { this.text = text; }

        boolean compute() { return this == COMPUTE || this == BOTH || this == COMPUTE_TABLES; }

        boolean params() { return this == PARAMS || this == BOTH || this == COMPUTE_TABLES; }
    }

    public Variant {
        sets = List.copyOf(sets);
    }

    public static Variant of(String name, String label, Match match, List<String> sets) {
        return new Variant(name, label, sets, match, 1, null, 0);
    }

    public Variant withTableFactor(double f) { return new Variant(name, label, sets, match, f, data, tokens); }

    public Variant withData(String d, long tok) { return new Variant(name, label, sets, match, tableFactor, d, tok); }
}
