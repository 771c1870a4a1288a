package dev.ultramem.experiment;

import dev.ultramem.core.UserError;
import dev.ultramem.io.AtomicFiles;
import dev.ultramem.model.Configs;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.markers.SeriesMarkers;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * The report of an experiment folder (or of several shard folders of one plan): report.md with what
 * was run, the table (mean ± sample std over seeds), the verdicts computed by {@link Stats}, PNG plots
 * of the validation loss against tokens and training FLOPs, the exact configs and per-step CSVs.
 * Everything in it follows from the plan and the runs' files, so an interrupted and resumed experiment
 * writes the same report as an uninterrupted one (wall times go to timing.csv, not into the report).
 */
public final class Report {
    private Report() {}

    public static final String FILE = "report.md";

    /** A finished run and the folder it trained in. */
    public record Finished(RunResult result, Path dir) {}

    /** The finished runs of the plan found in the folders (the first folder holding a run wins). */
    public static List<Finished> collect(Plan plan, List<Path> dirs) {
        List<Finished> out = new ArrayList<>();
        for (Plan.Run r : plan.runs) {
            for (Path d : dirs) {
                Path run = d.resolve("runs").resolve(r.id()), f = run.resolve(RunResult.FILE);
                if (!Files.exists(f)) continue;
                try {
                    out.add(new Finished(Configs.JSON.readValue(f.toFile(), RunResult.class), run));
                } catch (IOException e) {
                    throw new UserError(f + ": unreadable run result (" + Configs.JSON.getClass().getSimpleName() + ": " + e.getMessage().lines().findFirst().orElse("") + ")");
                }
                break;
            }
        }
        return out;
    }

    /** Merges shard folders: all must hold the same plan; the report goes to out. */
    public static Plan merge(List<Path> dirs, Path out) {
        if (dirs.isEmpty()) throw new UserError("experiment report needs at least one experiment folder");
        Plan plan = null;
        com.fasterxml.jackson.databind.JsonNode first = null;
        for (Path d : dirs) {
            Path f = d.resolve(ExperimentRunner.PLAN_FILE);
            if (!Files.exists(f)) throw new UserError(d + ": not an experiment folder (no " + ExperimentRunner.PLAN_FILE + ")");
            var tree = Configs.readTree(f).path("plan");
            if (first == null) {
                first = tree;
                plan = Plan.fromTree(tree, f.toString());
            } else if (!Plan.sameJson(first, tree)) {
                throw new UserError(d + " holds another experiment (or other settings) than " + dirs.get(0) + "; only shards of one plan can be merged");
            }
        }
        List<Finished> runs = collect(plan, dirs);
        if (!dirs.contains(out)) {
            try {
                Files.createDirectories(out);
                AtomicFiles.write(out.resolve(ExperimentRunner.PLAN_FILE), Files.readString(dirs.get(0).resolve(ExperimentRunner.PLAN_FILE)));
            } catch (IOException e) {
                throw AtomicFiles.writeError(out.resolve(ExperimentRunner.PLAN_FILE), e);
            }
        }
        for (Plan.Run r : plan.runs) write(out.resolve("configs").resolve(r.id() + ".json"), json(r.job().toTree()));
        write(out, plan, runs);
        return plan;
    }

    public static void write(Path out, Plan plan, List<Finished> runs) {
        Experiment e = plan.experiment;
        List<Variant> rows = e.variants(plan.scale);
        Map<String, List<Finished>> byRow = new LinkedHashMap<>();
        for (Variant v : rows) byRow.put(v.name(), new ArrayList<>());
        for (Finished f : runs) byRow.get(f.result().variant()).add(f);
        for (List<Finished> l : byRow.values()) l.sort(Comparator.comparingLong(f -> f.result().seed()));
        Set<String> tasks = new LinkedHashSet<>();
        for (Finished f : runs) tasks.addAll(f.result().tasks().keySet());

        StringBuilder md = new StringBuilder();
        md.append("# Experiment `").append(e.name()).append("`\n\n").append(e.summary()).append(".\n\n");
        md.append("Paper: ").append(e.paper()).append(".\n\n## What was run\n\n");
        md.append("- command: `ultramem experiment ").append(e.name()).append(" --scale ").append(plan.scale.id())
                .append(" --seeds ").append(plan.seeds).append(" --tokens ").append(plan.tokens);
        if (plan.data != null) for (Path p : plan.data) md.append(" --data ").append(p);
        md.append("`").append(plan.scale == Scale.QUICK ? " (with --quick: a smoke run, not evidence)" : "").append('\n');
        md.append("- data: ").append(plan.data != null ? plan.data.toString() : plan.dataDescription())
                .append(rows.stream().anyMatch(v -> v.data() != null) ? "; rows marked with a data set train on generated task text instead (below)" : "").append('\n');
        Plan.Run r0 = plan.runs.get(0);
        md.append("- seeds: ").append(seedList(plan)).append(" (each seed gives every row the same initialisation seed and the same data order)\n");
        md.append("- budget: ").append(String.format("%,d", plan.tokens)).append(" tokens per run (")
                .append(r0.job().train.steps).append(" steps of ").append(r0.job().train.batchSize).append(" × ")
                .append(r0.job().train.seqLen).append(" tokens)").append(rows.stream().anyMatch(v -> v.tokens() > 0) ? "; rows with their own budget are marked below" : "")
                .append("; schedule: warmup ").append(r0.job().train.warmupSteps).append(" steps, cosine to ")
                .append(r0.job().train.finalLrRatio).append(" × peak; validation every ").append(r0.job().train.evalEvery)
                .append(" steps on ").append(r0.job().train.evalBatches).append(" fixed batches\n");
        md.append("- model base: d_model ").append(r0.job().model.dModel).append(", ").append(r0.job().model.nLayers)
                .append(" layers, ").append(r0.job().model.nHeads).append(" heads, byte vocabulary (bits per byte = loss / ln 2)\n");
        md.append("- learning rate: peak ").append(r0.job().train.lr).append(" for every row (not tuned per row); value-table LR multipliers as each row declares (table)\n");
        md.append("- cost matching: ").append(e.matching()).append("; reference row `").append(e.reference()).append("`\n");
        md.append("- runs finished: ").append(runs.size()).append(" of ").append(plan.runs.size()).append('\n');
        if (runs.size() < plan.runs.size()) {
            List<String> missing = new ArrayList<>();
            Set<String> have = new LinkedHashSet<>();
            for (Finished f : runs) have.add(f.result().id());
            for (Plan.Run r : plan.runs) if (!have.contains(r.id())) missing.add(r.id());
            md.append("- missing: ").append(String.join(", ", missing)).append('\n');
        }

        md.append("\n## Results\n\nMean ± sample standard deviation over seeds of the final validation loss (nats per byte), bits per byte");
        if (!tasks.isEmpty()) md.append(" and the task metrics (exact-match accuracy on held-out items; fact rows: accuracy on the trained facts and stored bits)");
        md.append(". Costs as `ultramem info` counts them: activated parameters and training FLOPs (6 × forward multiply-adds) per token at the ")
                .append("training context, total parameters, and parameter bytes a forward reads per token at batch 1 and 64 (seed-1 weights). ")
                .append("Δ: relative to the reference row.\n\n");
        md.append("| row | what | seeds | val loss | bits/byte |");
        for (String t : tasks) md.append(' ').append(t).append(" |");
        if (e.sequential()) md.append(" Δ val loss vs previous row |");
        md.append(" activated params/token | training FLOPs/token | Δ compute | total params | Δ total params | bytes/token B=1 | B=64 | matched | LR × value LR |\n");
        md.append("|---|---|---:|---:|---:|").append("---:|".repeat(tasks.size())).append(e.sequential() ? "---:|" : "")
                .append("---:|---:|---:|---:|---:|---:|---:|---|---|\n");
        RunResult ref = byRow.get(e.reference()).isEmpty() ? null : byRow.get(e.reference()).get(0).result();
        Variant prev = null;
        for (Variant v : rows) {
            List<Finished> fs = byRow.get(v.name());
            md.append("| `").append(v.name()).append("` | ").append(v.label());
            if (v.data() != null) md.append(" [data ").append(v.data()).append(v.tokens() > 0 ? ", " + String.format("%,d", fs.isEmpty() ? v.tokens() : fs.get(0).result().tokens()) + " tokens" : "").append(']');
            md.append(" | ").append(fs.size()).append(" | ").append(meanStd(values(fs, Claim.VAL_LOSS), 4))
                    .append(" | ").append(meanStd(values(fs, "bits_per_byte"), 4)).append(" |");
            for (String t : tasks) md.append(' ').append(meanStd(values(fs, t), t.startsWith("bits_per") ? 6 : 3)).append(" |");
            if (e.sequential()) {
                if (prev == null) md.append(" – |");
                else {
                    double[] a = values(fs, Claim.VAL_LOSS), b = values(byRow.get(prev.name()), Claim.VAL_LOSS);
                    md.append(' ').append(a.length == 0 || b.length == 0 ? "–" : signed(Stats.mean(a) - Stats.mean(b), 4) + " ± " + num(Stats.differenceStd(a, b), 4)).append(" |");
                }
            }
            if (fs.isEmpty()) md.append(" – | – | – | – | – | – | – |");
            else {
                RunResult c = fs.get(0).result();
                md.append(String.format(" %,d | %,d | %s | %,d | %s | %,d | %,d |", c.activatedParamsPerToken(), c.trainingFlopsPerToken(),
                        ref == null ? "–" : pct(c.trainingFlopsPerToken(), ref.trainingFlopsPerToken()), c.totalParams(),
                        ref == null ? "–" : pct(c.totalParams(), ref.totalParams()), c.paramBytesPerTokenB1(), c.paramBytesPerTokenB64()));
            }
            md.append(' ').append(v.name().equals(e.reference()) ? "reference" : v.match().text + (v.tableFactor() != 1 ? " (tables × " + v.tableFactor() + ")" : ""))
                    .append(" | ").append(fs.isEmpty() ? "–" : fs.get(0).result().lr() + " × " + fs.get(0).result().valueLrTimes()).append(" |\n");
            prev = v;
        }

        md.append("\n## Verdicts\n\nComputed by the code, not edited: with m the difference of the means in the claimed direction and ")
                .append("s = sqrt(s_A² + s_B²) from the two rows' sample standard deviations over seeds, a claim **reproduces** when m > 2s, ")
                .append("**does not reproduce** when m < −2s and is **inconclusive** when |m| ≤ 2s (or with fewer than two seeds).\n\n");
        md.append("| claim | better | worse | metric | m ± s | verdict | paper |\n|---|---|---|---|---:|---|---|\n");
        for (Claim c : e.claims()) {
            // a row may be absent from a scale's grid (--quick has no 4-of-8 placement): its claim has no runs
            double[] a = values(byRow.getOrDefault(c.better(), List.of()), c.metric()), b = values(byRow.getOrDefault(c.worse(), List.of()), c.metric());
            Stats.Verdict v = Stats.verdict(a, b, c.lowerIsBetter());
            String diff = a.length == 0 || b.length == 0 ? "–"
                    : signed(Stats.claimedDifference(a, b, c.lowerIsBetter()), 4) + " ± " + num(Stats.differenceStd(a, b), 4);
            md.append("| ").append(c.text()).append(" | `").append(c.better()).append("` | `").append(c.worse()).append("` | ")
                    .append(c.metric()).append(" | ").append(diff).append(" | **").append(v.text).append("** | ").append(c.paper()).append(" |\n");
        }
        if (e.claims().isEmpty()) md.append("(no claims declared)\n");

        md.append("\n## Files\n\n- `loss_vs_tokens.png`, `loss_vs_flops.png`: mean validation loss over seeds per row\n");
        List<String> diag = new ArrayList<>(e.diagnostics() ? writeDiagnostics(out, rows, byRow) : List.of());
        for (String f : writeFactCapacity(out, rows, byRow)) md.append("- `").append(f).append("`: the fact probe against the number of facts (mean over seeds)\n");
        for (String d : diag) md.append("- `").append(d).append("`: memory-layer diagnostic over training (mean over layers and seeds)\n");
        md.append("- `configs/<run>.json`: the exact config of every run; `csv/<run>.csv`: per step: tokens, training FLOPs, training loss, ")
                .append("validation loss (where measured), LR\n- `runs/<run>/`: the run folders (checkpoint, metrics.csv, loss.png, memory.csv, result.json)\n")
                .append("- `timing.csv`: wall time per run (of the process that finished it, for a resumed run the part after the resume)\n");

        StringBuilder timing = new StringBuilder("run,wall_seconds\n");
        for (Finished f : runs) {
            timing.append(f.result().id()).append(',').append(String.format("%.1f", f.result().wallSeconds())).append('\n');
            writeStepCsv(out, f);
        }
        write(out.resolve("timing.csv"), timing.toString());
        writeLossPlots(out, rows, byRow);
        write(out.resolve(FILE), md.toString());
    }

    static String seedList(Plan p) {
        List<String> s = new ArrayList<>();
        for (int i = 0; i < p.seeds; i++) s.add(Long.toString(Plan.FIRST_SEED + i));
        return String.join(", ", s);
    }

    static double[] values(List<Finished> fs, String metric) {
        List<Double> l = new ArrayList<>();
        for (Finished f : fs) {
            double v = f.result().metric(metric);
            if (!Double.isNaN(v)) l.add(v);
        }
        return l.stream().mapToDouble(Double::doubleValue).toArray();
    }

    static String meanStd(double[] x, int digits) {
        if (x.length == 0) return "–";
        double s = Stats.sampleStd(x);
        return num(Stats.mean(x), digits) + (Double.isNaN(s) ? "" : " ± " + num(s, digits));
    }

    static String num(double v, int digits) { return String.format("%." + digits + "f", v); }

    /** With a sign; a value that rounds to zero prints as +0 (not -0). */
    static String signed(double v, int digits) {
        return String.format("%+." + digits + "f", Math.abs(v) < 0.5 * Math.pow(10, -digits) ? 0.0 : v);
    }

    static String pct(long v, long ref) { return String.format("%+.1f%%", 100.0 * (v - ref) / ref); }

    // ---- per-step CSVs and plots ----

    /** Rows of a run's metrics.csv: step, train loss, validation loss (NaN where not measured), LR. */
    static List<double[]> metrics(Path runDir) {
        List<double[]> rows = new ArrayList<>();
        Path f = runDir.resolve("metrics.csv");
        try {
            List<String> lines = Files.readAllLines(f, StandardCharsets.UTF_8);
            for (String line : lines.subList(1, lines.size())) {
                String[] c = line.split(",", -1);
                rows.add(new double[]{Double.parseDouble(c[0]), Double.parseDouble(c[1]), c[2].isEmpty() ? Double.NaN : Double.parseDouble(c[2]), Double.parseDouble(c[3])});
            }
        } catch (IOException | RuntimeException e) {
            throw new UserError(f + ": unreadable metrics (" + e.getMessage() + ")");
        }
        return rows;
    }

    private static void writeStepCsv(Path out, Finished f) {
        RunResult r = f.result();
        long perStep = r.tokens() / Math.max(1, r.steps());
        StringBuilder sb = new StringBuilder("step,tokens,train_flops,train_loss,val_loss,lr\n");
        for (double[] m : metrics(f.dir())) {
            long step = (long) m[0], tokens = step * perStep;
            sb.append(step).append(',').append(tokens).append(',').append(tokens * r.trainingFlopsPerToken()).append(',')
                    .append((float) m[1]).append(',').append(Double.isNaN(m[2]) ? "" : Float.toString((float) m[2])).append(',')
                    .append((float) m[3]).append('\n');
        }
        write(out.resolve("csv").resolve(r.id() + ".csv"), sb.toString());
    }

    /** Mean validation loss over a row's seeds at each evaluated step (steps every seed evaluated). */
    static TreeMap<Long, Double> meanValCurve(List<Finished> fs) {
        TreeMap<Long, double[]> acc = new TreeMap<>();
        for (Finished f : fs)
            for (double[] m : metrics(f.dir()))
                if (!Double.isNaN(m[2])) {
                    double[] a = acc.computeIfAbsent((long) m[0], k -> new double[2]);
                    a[0] += m[2];
                    a[1]++;
                }
        TreeMap<Long, Double> out = new TreeMap<>();
        acc.forEach((k, a) -> { if (a[1] == fs.size()) out.put(k, a[0] / a[1]); });
        return out;
    }

    private static void writeLossPlots(Path out, List<Variant> rows, Map<String, List<Finished>> byRow) {
        for (boolean flops : new boolean[]{false, true}) {
            XYChart chart = chart("validation loss (mean over seeds)", flops ? "training FLOPs" : "tokens", "nats per byte");
            for (Variant v : rows) {
                List<Finished> fs = byRow.get(v.name());
                if (fs.isEmpty()) continue;
                RunResult r = fs.get(0).result();
                long perStep = r.tokens() / Math.max(1, r.steps());
                TreeMap<Long, Double> curve = meanValCurve(fs);
                if (curve.isEmpty()) continue;
                double[] x = new double[curve.size()], y = new double[curve.size()];
                int i = 0;
                for (var p : curve.entrySet()) {
                    x[i] = (double) p.getKey() * perStep * (flops ? r.trainingFlopsPerToken() : 1);
                    y[i++] = p.getValue();
                }
                chart.addSeries(v.name(), x, y).setMarker(SeriesMarkers.CIRCLE);
            }
            png(out.resolve(flops ? "loss_vs_flops.png" : "loss_vs_tokens.png"), chart);
        }
    }

    /** Fact accuracy and stored bits against the number of facts, one line per model (rows trained on facts-N). */
    private static List<String> writeFactCapacity(Path out, List<Variant> rows, Map<String, List<Finished>> byRow) {
        List<String> written = new ArrayList<>();
        for (String metric : List.of(MemoryTaskGrid.FACT_ACCURACY, "stored_bits")) {
            XYChart chart = chart(metric + " vs facts", "facts (N)", metric);
            Map<String, TreeMap<Integer, Double>> lines = new LinkedHashMap<>();
            for (Variant v : rows) {
                if (v.data() == null || !v.data().startsWith("facts-")) continue;
                double[] x = values(byRow.get(v.name()), metric);
                if (x.length == 0) continue;
                lines.computeIfAbsent(v.name().replaceAll("-facts\\d+$", ""), k -> new TreeMap<>()).put(Datasets.factCount(v.data()), Stats.mean(x));
            }
            lines.forEach((model, pts) -> chart.addSeries(model, pts.keySet().stream().mapToDouble(Integer::doubleValue).toArray(),
                    pts.values().stream().mapToDouble(Double::doubleValue).toArray()).setMarker(SeriesMarkers.CIRCLE));
            if (lines.isEmpty()) continue;
            String file = metric + "_vs_facts.png";
            png(out.resolve(file), chart);
            written.add(file);
        }
        return written;
    }

    /** Diagnostic plots from the runs' memory.csv; λ1/λ2 is sv1/sv2 of the summed Tucker core. */
    private static List<String> writeDiagnostics(Path out, List<Variant> rows, Map<String, List<Finished>> byRow) {
        List<String> names = List.of("top1_score", "output_std", "lambda1_over_lambda2", "coverage");
        List<String> written = new ArrayList<>();
        for (String metric : names) {
            XYChart chart = chart(metric, "step", metric);
            boolean any = false;
            for (Variant v : rows) {
                TreeMap<Long, double[]> acc = new TreeMap<>();
                for (Finished f : byRow.get(v.name())) diagnostic(f.dir(), metric, acc);
                if (acc.isEmpty()) continue;
                double[] x = new double[acc.size()], y = new double[acc.size()];
                int i = 0;
                for (var p : acc.entrySet()) { x[i] = p.getKey(); y[i++] = p.getValue()[0] / p.getValue()[1]; }
                chart.addSeries(v.name(), x, y).setMarker(SeriesMarkers.NONE);
                any = true;
            }
            if (any) {
                String file = "diag_" + metric + ".png";
                png(out.resolve(file), chart);
                written.add(file);
            }
        }
        return written;
    }

    /** Adds a run's per-step mean over layers of a diagnostic into acc (step → {sum, count}). */
    private static void diagnostic(Path runDir, String metric, TreeMap<Long, double[]> acc) {
        Path f = runDir.resolve("memory.csv");
        if (!Files.exists(f)) return;
        Map<String, Double> sv1 = new LinkedHashMap<>();
        try {
            List<String> lines = Files.readAllLines(f, StandardCharsets.UTF_8);
            TreeMap<Long, double[]> run = new TreeMap<>();
            for (String line : lines.subList(1, lines.size())) {
                String[] c = line.split(",");
                long step = Long.parseLong(c[0]);
                double v = Double.parseDouble(c[3]);
                String key = c[0] + "," + c[1];
                if (metric.equals("lambda1_over_lambda2")) {
                    if (c[2].equals("sv1")) sv1.put(key, v);
                    else if (c[2].equals("sv2") && sv1.containsKey(key) && v > 0) add(run, step, sv1.get(key) / v);
                } else if (c[2].equals(metric)) add(run, step, v);
            }
            run.forEach((step, a) -> add(acc, step, a[0] / a[1]));
        } catch (IOException | RuntimeException e) {
            throw new UserError(f + ": unreadable diagnostics (" + e.getMessage() + ")");
        }
    }

    private static void add(TreeMap<Long, double[]> m, long step, double v) {
        double[] a = m.computeIfAbsent(step, k -> new double[2]);
        a[0] += v;
        a[1]++;
    }

    private static XYChart chart(String title, String x, String y) {
        System.setProperty("java.awt.headless", "true");
        XYChart c = new XYChartBuilder().width(900).height(540).title(title).xAxisTitle(x).yAxisTitle(y).build();
        c.getStyler().setLegendVisible(true);
        return c;
    }

    private static void png(Path f, XYChart chart) {
        if (chart.getSeriesMap().isEmpty()) return;
        try {
            AtomicFiles.write(f, BitmapEncoder.getBitmapBytes(chart, BitmapEncoder.BitmapFormat.PNG));
        } catch (IOException e) {
            throw AtomicFiles.writeError(f, e);
        } catch (Exception | LinkageError e) {
            System.err.println("warning: could not render " + f + " (" + e + ")");
        }
    }

    static String json(Object tree) {
        try {
            return Configs.JSON.writeValueAsString(tree) + "\n";
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void write(Path f, String text) {
        try {
            Files.createDirectories(f.getParent());
            AtomicFiles.write(f, text);
        } catch (IOException e) {
            throw AtomicFiles.writeError(f, e);
        }
    }
}
