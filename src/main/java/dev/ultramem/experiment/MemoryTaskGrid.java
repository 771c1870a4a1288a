package dev.ultramem.experiment;

import java.util.ArrayList;
import java.util.List;

import static dev.ultramem.experiment.Variant.Match.BOTH;
import static dev.ultramem.experiment.Variant.Match.NONE;

/**
 * The memory-tasks experiment: UltraMemV2 vs MoE 8/64 vs dense trained on the three synthetic memory
 * tasks ({@link MemoryTasks}), scored by exact match on held-out items, and the closed-book fact
 * probe swept over the number of facts. The training window is twice the scale's (episodes fill at most
 * half of it, so most windows hold a whole episode).
 */
final class MemoryTaskGrid {
    private MemoryTaskGrid() {}

    static final String FACT_ACCURACY = "fact_accuracy";
    /** Expected number of times each fact is seen in training. */
    static final int EXPOSURES = 20;

    static int[] factCounts(Scale s) {
        return switch (s) {
            case QUICK -> new int[]{8, 16};
            case TINY -> new int[]{32, 128, 512};
            case SMALL -> new int[]{128, 512, 2048};
        };
    }

    static Experiment experiment() {
        String p = "P2 Table 2 (32K context, SeedMoE-2.5B/30B vs UltraMemV2-2.5B/60B-top768): ";
        return new Experiment("memory-tasks",
                "UltraMemV2 vs MoE 8/64 vs dense on long-context memorisation, multi-round key→value memorisation and in-context "
                        + "symbol mappings (exact match on held-out items), and a closed-book fact-capacity probe (accuracy, stored bits per parameter)",
                "UltraMemV2 Table 2", "moe-8of64", true,
                "implemented; the fact probe has no paper claim (reported, no verdict)",
                0, 50_000, 300_000, false, false,
                "UltraMemV2's forward compute and total parameters are matched to MoE 8/64 (dense FFN width, table size); "
                        + "the dense row matches the compute by construction. Fact rows reuse the same three shapes, with a token "
                        + "budget of " + EXPOSURES + " expected exposures per fact; the task rows train with half the scale's batch, the fact rows "
                        + "with a quarter (costs per token are unchanged)",
                List.of(new Claim("UltraMemV2 beats MoE on long-context memorisation", "ultramem-v2", "moe-8of64", MemoryTasks.LONG_CONTEXT, p + "23.5 vs 21.9"),
                        new Claim("UltraMemV2 beats MoE on multi-round memorisation", "ultramem-v2", "moe-8of64", MemoryTasks.MULTI_ROUND, p + "31.2 vs 25.0"),
                        new Claim("UltraMemV2 beats MoE on in-context learning", "ultramem-v2", "moe-8of64", MemoryTasks.IN_CONTEXT, p + "29.5 vs 21.6")),
                s -> {
                    int L = s.layers, T = 2 * s.seqLen;
                    List<String> window = List.of("model.max_seq_len=" + T, "train.seq_len=" + T);
                    List<Variant> models = List.of(
                            Variant.of("moe-8of64", "MoE top-8 of 64 (reference)", NONE, Experiments.plus(Experiments.moe(s, 64, 8), window.toArray(String[]::new))),
                            Variant.of("ultramem-v2", "UltraMemV2, every block", BOTH, Experiments.plus(Experiments.ultramemV2(s, L), window.toArray(String[]::new))),
                            Variant.of("dense", "dense SwiGLU", NONE, window));
                    List<Variant> rows = new ArrayList<>();
                    // half the scale's batch for the task text, a quarter for the facts (more steps per token: a fact is a short line)
                    for (Variant m : models)
                        rows.add(new Variant(m.name(), m.label(), Experiments.plus(m.sets(), "train.batch_size=" + Math.max(1, s.batch / 2)),
                                m.match(), 1, "tasks", 0));
                    for (int n : factCounts(s)) {
                        // the text holds each fact FACT_REPEATS times; EXPOSURES/FACT_REPEATS passes over it
                        long bytes = MemoryTasks.factText(MemoryTasks.facts(Datasets.SEED, n), Datasets.FACT_REPEATS, Datasets.SEED).length;
                        long tokens = bytes * EXPOSURES / Datasets.FACT_REPEATS;
                        for (Variant m : models)
                            rows.add(new Variant(m.name() + "-facts" + n, m.label().replace(" (reference)", "") + ", " + n + " facts",
                                    Experiments.plus(m.sets(), "train.batch_size=" + Math.max(1, s.batch / 4)), m.match(), 1, "facts-" + n, tokens));
                    }
                    return rows;
                });
    }
}
