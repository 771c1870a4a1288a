package dev.ultramem.experiment;

import dev.ultramem.model.Configs;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A quick experiment end to end: the report of an uninterrupted run, of one interrupted and resumed,
 * and of two shards merged are the same file; the report's table and verdicts follow from the runs' results.
 */
class ExperimentRunTest {
    @TempDir static Path tmp;
    static Path full;
    static Plan plan;

    @BeforeAll
    static void runUninterrupted() {
        plan = Plan.of(Experiments.byName("density"), Scale.QUICK, 2, null, null);
        full = tmp.resolve("full");
        assertTrue(new ExperimentRunner(plan, full, new PrintWriter(new StringWriter())).run(false, 1, 1));
    }

    @Test
    void reportHasEveryRowAndVerdictsThatFollowFromTheResults() throws IOException {
        String md = Files.readString(full.resolve(Report.FILE));
        for (Variant v : plan.experiment.variants(Scale.QUICK)) assertTrue(md.contains("| `" + v.name() + "` |"), v.name());
        assertTrue(md.contains("runs finished: 8 of 8"));
        for (String f : List.of("loss_vs_tokens.png", "loss_vs_flops.png", "timing.csv", ExperimentRunner.PLAN_FILE))
            assertTrue(Files.size(full.resolve(f)) > 0, f);
        // the verdict of each claim, recomputed here from result.json by the rule (m vs 2s) written out by hand
        Map<String, double[]> loss = new TreeMap<>();
        for (Plan.Run r : plan.runs) {
            RunResult res = Configs.JSON.readValue(full.resolve("runs").resolve(r.id()).resolve(RunResult.FILE).toFile(), RunResult.class);
            loss.merge(r.variant().name(), new double[]{res.valLoss()}, (a, b) -> new double[]{a[0], b[0]});
            assertEquals(r.job().train.steps, res.steps());
            assertEquals(res.valLoss() / Math.log(2), res.bitsPerByte(), 1e-12);
            // the exact config of every run is in configs/
            assertTrue(Plan.sameJson(r.job().toTree(), Configs.readTree(full.resolve("configs").resolve(r.id() + ".json"))), r.id());
            List<String> csv = Files.readAllLines(full.resolve("csv").resolve(r.id() + ".csv"));
            assertEquals(r.job().train.steps + 1, csv.size());
            String[] last = csv.get(csv.size() - 1).split(",");
            assertEquals((long) r.job().train.steps * r.job().train.batchSize * r.job().train.seqLen, Long.parseLong(last[1]));
            assertEquals(res.valLoss(), Float.parseFloat(last[4]), 1e-6);
        }
        for (Claim c : plan.experiment.claims()) {
            double[] a = loss.get(c.better()), b = loss.get(c.worse());
            double m = (a[0] + a[1]) / 2 - (b[0] + b[1]) / 2;          // lower is better: m > 0 when better wins
            m = -m;
            double va = (a[0] - a[1]) * (a[0] - a[1]) / 2, vb = (b[0] - b[1]) * (b[0] - b[1]) / 2;  // n−1 = 1
            double s = Math.sqrt(va + vb);
            String want = m > 2 * s ? "reproduces" : m < -2 * s ? "does not reproduce" : "inconclusive (difference within 2 std)";
            String row = md.lines().filter(l -> l.startsWith("| " + c.text() + " |")).findFirst().orElseThrow();
            assertTrue(row.contains("**" + want + "**"), row + " expected " + want);
        }
    }

    @Test
    void interruptedAndResumedGivesTheSameReport() throws IOException {
        Path dir = tmp.resolve("resumed");
        AtomicInteger asked = new AtomicInteger();
        ExperimentRunner first = new ExperimentRunner(plan, dir, new PrintWriter(new StringWriter()));
        first.setStopRequest(() -> asked.incrementAndGet() > 40);
        assertFalse(first.run(false, 1, 1));
        long interrupted = plan.runs.stream().filter(r -> Files.exists(dir.resolve("runs").resolve(r.id()).resolve("latest.safetensors"))
                && !Files.exists(dir.resolve("runs").resolve(r.id()).resolve(RunResult.FILE))).count();
        assertEquals(1, interrupted, "one run stopped mid-way with a checkpoint");
        assertFalse(Files.exists(dir.resolve(Report.FILE)));
        // without --resume the folder is refused
        var e = assertThrows(dev.ultramem.core.UserError.class, () -> new ExperimentRunner(plan, dir, new PrintWriter(new StringWriter())).run(false, 1, 1));
        assertTrue(e.getMessage().contains("--resume"), e.getMessage());
        StringWriter log = new StringWriter();
        assertTrue(new ExperimentRunner(plan, dir, new PrintWriter(log)).run(true, 1, 1));
        assertTrue(log.toString().contains("finished earlier, skipped"));
        assertTrue(log.toString().contains("resuming from step"));
        assertSameOutputs(full, dir);
    }

    @Test
    void shardsMergeIntoTheSameReport() throws IOException {
        Path a = tmp.resolve("shard1"), b = tmp.resolve("shard2"), merged = tmp.resolve("merged");
        assertTrue(new ExperimentRunner(plan, a, new PrintWriter(new StringWriter())).run(false, 1, 2));
        assertTrue(new ExperimentRunner(plan, b, new PrintWriter(new StringWriter())).run(false, 2, 2));
        assertTrue(Files.readString(a.resolve(Report.FILE)).contains("runs finished: 4 of 8"));
        assertTrue(Files.readString(a.resolve(Report.FILE)).contains("inconclusive (runs missing)") || plan.seeds < 2);
        Report.merge(List.of(a, b), merged);
        assertSameOutputs(full, merged);
        // a folder of another plan is refused
        Plan other = Plan.of(Experiments.byName("density"), Scale.QUICK, 1, null, null);
        Path c = tmp.resolve("other");
        new ExperimentRunner(other, c, new PrintWriter(new StringWriter())).run(false, 1, 1);
        assertThrows(dev.ultramem.core.UserError.class, () -> Report.merge(List.of(a, c), tmp.resolve("bad")));
    }

    @Test
    void memoryTasksScoreHeldOutItemsAndFacts() throws IOException {
        Plan p = Plan.of(Experiments.byName("memory-tasks"), Scale.QUICK, 1, null, null);
        Path dir = tmp.resolve("tasks");
        assertTrue(new ExperimentRunner(p, dir, new PrintWriter(new StringWriter())).run(false, 1, 1));
        for (Plan.Run r : p.runs) {
            RunResult res = Configs.JSON.readValue(dir.resolve("runs").resolve(r.id()).resolve(RunResult.FILE).toFile(), RunResult.class);
            if (r.variant().data().equals("tasks")) {
                assertEquals(List.of(MemoryTasks.LONG_CONTEXT, MemoryTasks.MULTI_ROUND, MemoryTasks.IN_CONTEXT), List.copyOf(res.tasks().keySet()));
                for (double a : res.tasks().values()) assertTrue(a >= 0 && a <= 1);
            } else {
                int n = Datasets.factCount(r.variant().data());
                double acc = res.tasks().get(MemoryTaskGrid.FACT_ACCURACY);
                assertEquals(MemoryTasks.storedBits(acc, n), res.tasks().get("stored_bits"), 1e-12);
                assertEquals(res.tasks().get("stored_bits") / res.totalParams(), res.tasks().get("bits_per_param"), 1e-15);
            }
        }
        String md = Files.readString(dir.resolve(Report.FILE));
        assertTrue(md.contains("| long_context | multi_round | in_context | fact_accuracy |"), md);
        assertTrue(Files.exists(dir.resolve("fact_accuracy_vs_facts.png")));
    }

    /** report.md, the per-step CSVs and the configs are byte for byte equal (timing.csv holds wall times and differs). */
    static void assertSameOutputs(Path x, Path y) throws IOException {
        assertEquals(Files.readString(x.resolve(Report.FILE)), Files.readString(y.resolve(Report.FILE)));
        for (String sub : List.of("csv", "configs")) {
            try (Stream<Path> s = Files.list(x.resolve(sub))) {
                for (Path f : s.toList()) assertArrayEquals(Files.readAllBytes(f), Files.readAllBytes(y.resolve(sub).resolve(f.getFileName())), f.toString());
            }
        }
    }
}
