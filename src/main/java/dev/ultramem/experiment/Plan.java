package dev.ultramem.experiment;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ultramem.core.UserError;
import dev.ultramem.model.ModelConfig;
import dev.ultramem.model.ModelCosts;
import dev.ultramem.train.JobConfig;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The runs of one experiment at one scale: every row of the grid × every seed, each with its exact
 * job config. Rows share the base, the token budget, the schedule and, per seed, the seed (so the same
 * initialisation stream and the same data order); the matched overrides come from {@link BudgetMatcher}.
 * Runs are ordered seed by seed, so a partial or sharded experiment has whole seeds of the grid first.
 */
public final class Plan {
    /** One run: a row of the grid at one seed. */
    public record Run(int index, String id, Variant variant, int seedIndex, long seed, JobConfig job) {}

    public final Experiment experiment;
    public final Scale scale;
    public final int seeds;
    public final long tokens;
    /** The training text: null for the built-in corpus. */
    public final List<Path> data;
    public final List<Run> runs;

    public static final long FIRST_SEED = 1000;

    private Plan(Experiment e, Scale s, int seeds, long tokens, List<Path> data, List<Run> runs) {
        this.experiment = e;
        this.scale = s;
        this.seeds = seeds;
        this.tokens = tokens;
        this.data = data;
        this.runs = runs;
    }

    public static Plan of(Experiment e, Scale s, int seeds, Long tokenBudget, List<Path> data) {
        if (!e.implemented()) throw new UserError("experiment " + e.name() + " is declared but not implemented: " + e.status());
        if (seeds < 1) throw new UserError("--seeds must be >= 1, got " + seeds);
        long tokens = tokenBudget != null ? tokenBudget : e.tokens(s);
        if (tokens < s.tokensPerStep())
            throw new UserError("--tokens must be at least one batch (" + s.tokensPerStep() + " tokens at scale " + s.id() + "), got " + tokens);
        List<Path> files = data == null || data.isEmpty() ? null : List.copyOf(data);
        if (files != null && e.variants(s).stream().allMatch(v -> v.data() != null))
            throw new UserError("experiment " + e.name() + " trains on its own generated text; --data does not apply to it");
        int L = e.layers(s);
        List<Variant> vs = e.variants(s);
        Variant ref = e.variant(s, e.reference());
        ModelCosts refCosts = ModelCosts.of(job(s, L, ref, List.of(), 1, FIRST_SEED).model, s.seqLen);
        List<List<String>> matched = new ArrayList<>();
        for (Variant v : vs) {
            ModelConfig cfg = job(s, L, v, List.of(), 1, FIRST_SEED).model.copy();
            long targetParams = (v.match() == Variant.Match.COMPUTE_TABLES ? refCosts.tableParams() : refCosts.totalParams())
                    + Math.round((v.tableFactor() - 1) * refCosts.tableParams());
            matched.add(BudgetMatcher.match(cfg, s.seqLen, v.match(), refCosts.forwardMacsPerToken(), targetParams));
        }
        List<Run> runs = new ArrayList<>();
        for (int si = 0; si < seeds; si++) {
            for (int vi = 0; vi < vs.size(); vi++) {
                Variant v = vs.get(vi);
                long rowTokens = s == Scale.QUICK || v.tokens() == 0 ? tokens : v.tokens();
                long seed = FIRST_SEED + si;
                int perStep = tokensPerStep(job(s, L, v, matched.get(vi), 1, seed));
                int steps = (int) Math.max(1, Math.min(Integer.MAX_VALUE, rowTokens / perStep));
                runs.add(new Run(runs.size(), v.name() + "-s" + seed, v, si, seed, job(s, L, v, matched.get(vi), steps, seed)));
            }
        }
        return new Plan(e, s, seeds, tokens, files, List.copyOf(runs));
    }

    public static int tokensPerStep(JobConfig j) { return j.train.batchSize * j.train.seqLen; }

    private static JobConfig job(Scale s, int L, Variant v, List<String> matched, int steps, long seed) {
        List<String> sets = new ArrayList<>(s.base(L));
        sets.addAll(Scale.schedule(steps));
        sets.add("train.seed=" + seed);
        sets.addAll(v.sets());
        sets.addAll(matched);
        try {
            return JobConfig.build(null, null, sets);
        } catch (UserError err) {
            throw new IllegalStateException("row " + v.name() + " of the grid is invalid: " + err.getMessage(), err);
        }
    }

    /** The runs this shard (1-based i of n) executes: every n-th run starting at the i-th. */
    public List<Run> shard(int i, int n) {
        List<Run> out = new ArrayList<>();
        for (Run r : runs) if (r.index() % n == i - 1) out.add(r);
        return out;
    }

    public String dataDescription() {
        if (data != null) return data.toString();
        return "built-in synthetic corpus (seed " + dev.ultramem.data.SyntheticCorpus.DEFAULT_SEED + ", "
                + dev.ultramem.data.SyntheticCorpus.DEFAULT_BYTES + " bytes)";
    }

    /** What identifies the plan: two folders with equal trees hold shards of one experiment. */
    public ObjectNode toTree() {
        ObjectNode t = JsonNodeFactory.instance.objectNode();
        t.put("experiment", experiment.name());
        t.put("scale", scale.id());
        t.put("seeds", seeds);
        t.put("tokens", tokens);
        ArrayNode d = t.putArray("data");
        if (data != null) for (Path p : data) d.add(p.toAbsolutePath().normalize().toString());
        ArrayNode rs = t.putArray("runs");
        for (Run r : runs) {
            ObjectNode o = rs.addObject();
            o.put("id", r.id());
            o.put("variant", r.variant().name());
            o.put("seed", r.seed());
            o.set("config", r.job().toTree());
        }
        return t;
    }

    /** Rebuilds a plan from its tree (the report of stored folders); fails when the declaration changed since. */
    public static Plan fromTree(JsonNode t, String where) {
        Experiment e = Experiments.byName(t.path("experiment").asText());
        Scale s = Scale.valueOf(t.path("scale").asText().toUpperCase());
        List<Path> data = new ArrayList<>();
        t.path("data").forEach(n -> data.add(Path.of(n.asText())));
        Plan p = of(e, s, t.path("seeds").asInt(), t.path("tokens").asLong(), data);
        if (!sameJson(p.toTree(), t))
            throw new UserError(where + ": the experiment was planned by a different version of its declaration; rerun it");
        return p;
    }

    /**
     * Training FLOPs per second assumed by {@link #estimatedSeconds()}: calibrated on the six experiments'
     * default runs on an idle 2-core Zen 4 (3.4–5.2 min each, 8.5–12.6× faster than the 3·10⁹ assumed
     * before, docs/BENCHMARKS.md), rounded down so the slowest experiment (layers) is not underestimated;
     * a shared machine takes longer.
     */
    public static final double ASSUMED_FLOPS_PER_SECOND = 2.5e10;

    /** Expected wall time of all runs: their training FLOPs (evaluations add about 10%) at the assumed rate. */
    public double estimatedSeconds() {
        double flops = 0;
        Map<String, Long> perToken = new java.util.HashMap<>();
        for (Run r : runs) {
            long f = perToken.computeIfAbsent(r.variant().name(), k -> ModelCosts.of(r.job().model, r.job().train.seqLen).trainingFlopsPerToken());
            flops += (double) f * r.job().train.steps * tokensPerStep(r.job());
        }
        return 1.1 * flops / ASSUMED_FLOPS_PER_SECOND;
    }

    /** The grid's rows with their costs as {@code info} counts them and the difference to the reference (no training). */
    public String costTable() {
        StringBuilder sb = new StringBuilder("| row | matched | activated params/token | training FLOPs/token | Δ compute | total params | table params | Δ total params | steps |\n"
                + "|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
        ModelCosts ref = null;
        for (Run r : runs) if (r.seedIndex() == 0 && r.variant().name().equals(experiment.reference())) ref = ModelCosts.of(r.job().model, r.job().train.seqLen);
        for (Run r : runs) {
            if (r.seedIndex() != 0) continue;
            ModelCosts c = ModelCosts.of(r.job().model, r.job().train.seqLen);
            sb.append(String.format("| %s | %s | %,d | %,d | %+.1f%% | %,d | %,d | %+.1f%% | %d |%n", r.variant().name(), r.variant().match().text,
                    c.activatedParamsPerToken(), c.trainingFlopsPerToken(), 100.0 * (c.trainingFlopsPerToken() - ref.trainingFlopsPerToken()) / ref.trainingFlopsPerToken(),
                    c.totalParams(), c.tableParams(), 100.0 * (c.totalParams() - ref.totalParams()) / ref.totalParams(), r.job().train.steps));
        }
        return sb.toString();
    }

    /**
     * Whether two trees hold the same JSON: a tree read from a file has int nodes where one built from
     * a config has long nodes, which {@link JsonNode#equals} tells apart; their JSON text reads back alike.
     */
    public static boolean sameJson(JsonNode a, JsonNode b) {
        try {
            return dev.ultramem.model.Configs.JSON.readTree(a.toString()).equals(dev.ultramem.model.Configs.JSON.readTree(b.toString()));
        } catch (java.io.IOException e) {
            throw new IllegalStateException(e);
        }
    }
}
