package dev.ultramem.experiment;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ultramem.core.UserError;
import dev.ultramem.data.Corpus;
import dev.ultramem.data.SyntheticCorpus;
import dev.ultramem.io.AtomicFiles;
import dev.ultramem.model.Configs;
import dev.ultramem.model.Model;
import dev.ultramem.model.ModelCosts;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.train.RunLock;
import dev.ultramem.train.Trainer;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;

/**
 * Runs the runs of a plan (or of one shard of it) into an experiment folder, each in its own run folder
 * {@code runs/<id>/} through the ordinary trainer (checkpoints, metrics.csv, memory.csv), then writes the
 * report over every finished run found there. With resume, finished runs (those with a result.json) are
 * skipped and an interrupted one continues from its checkpoint, so the report equals an uninterrupted one.
 */
public final class ExperimentRunner {
    public static final String PLAN_FILE = "experiment.json";

    private final Plan plan;
    private final Path out;
    private final PrintWriter log;
    private BooleanSupplier stop = () -> false;
    private final Map<String, Corpus> corpora = new HashMap<>();

    public ExperimentRunner(Plan plan, Path out, PrintWriter log) {
        this.plan = plan;
        this.out = out;
        this.log = log;
    }

    /** Asked between steps: true stops the run in progress with a checkpoint (resume continues it). */
    public void setStopRequest(BooleanSupplier stop) { this.stop = stop; }

    /**
     * Runs shard i of n (1/1: all). Without resume the folder must not hold an experiment yet; with it,
     * it must hold this plan. Returns true when every run of the shard finished.
     */
    public boolean run(boolean resume, int shard, int shards) {
        if (shards < 1 || shard < 1 || shard > shards) throw new UserError("--shard must be i/n with 1 <= i <= n, got " + shard + "/" + shards);
        checkOrWritePlan(resume, shard, shards);
        List<Plan.Run> mine = plan.shard(shard, shards);
        long t0 = System.nanoTime();
        int done = 0;
        for (Plan.Run r : mine) {
            Path dir = runDir(r);
            writeConfig(r);
            if (Files.exists(dir.resolve(RunResult.FILE))) {
                done++;
                log.printf("[%d/%d] %s: finished earlier, skipped%n", done, mine.size(), r.id());
                continue;
            }
            log.printf("[%d/%d] %s: %s, seed %d, %d steps of %d tokens%n", done + 1, mine.size(), r.id(), r.variant().label(),
                    r.seed(), r.job().train.steps, Plan.tokensPerStep(r.job()));
            log.flush();
            if (!runOne(r, dir, done, mine.size())) {
                log.printf("stopped during %s; continue with --resume%n", r.id());
                log.flush();
                return false;
            }
            done++;
            double secs = (System.nanoTime() - t0) / 1e9;
            log.printf("overall: %d/%d runs done, elapsed %s%n", done, mine.size(), clock(secs));
            log.flush();
        }
        Report.write(out, plan, Report.collect(plan, List.of(out)));
        log.println("report: " + out.resolve(Report.FILE));
        log.flush();
        return true;
    }

    private void checkOrWritePlan(boolean resume, int shard, int shards) {
        Path f = out.resolve(PLAN_FILE);
        ObjectNode tree = plan.toTree();
        if (Files.exists(f)) {
            JsonNode stored = Configs.readTree(f);
            boolean same = Plan.sameJson(stored.path("plan"), tree);
            // shards of one plan may share a folder: each run folder has its own lock
            if (!resume && !(shards > 1 && same))
                throw new UserError(out + " already holds an experiment; continue it with --resume or choose another --out");
            if (!same)
                throw new UserError(out + " holds an experiment planned with other settings (experiment, scale, seeds, tokens, data); "
                        + "choose another --out or rerun with the same settings");
            return;
        }
        try {
            Files.createDirectories(out);
            ObjectNode root = Configs.JSON.createObjectNode();
            root.set("plan", tree);
            AtomicFiles.write(f, Configs.JSON.writeValueAsString(root) + "\n");
        } catch (IOException e) {
            throw AtomicFiles.writeError(f, e);
        }
    }

    Path runDir(Plan.Run r) { return out.resolve("runs").resolve(r.id()); }

    private void writeConfig(Plan.Run r) {
        Path f = out.resolve("configs").resolve(r.id() + ".json");
        try {
            Files.createDirectories(f.getParent());
            AtomicFiles.write(f, Configs.JSON.writeValueAsString(r.job().toTree()) + "\n");
        } catch (IOException e) {
            throw AtomicFiles.writeError(f, e);
        }
    }

    /** Trains one run to its end (or until a stop request); writes result.json when it finished. */
    private boolean runOne(Plan.Run r, Path dir, int doneBefore, int total) {
        long t0 = System.nanoTime();
        Corpus corpus = corpus(r.variant().data());
        try (RunLock lock = RunLock.acquire(dir)) {
            lock.removeStaleTempFiles();
            Trainer t;
            Path ck = dir.resolve(Checkpoint.LATEST);
            if (Files.exists(ck)) {
                Checkpoint.Loaded loaded = Checkpoint.load(ck, true);
                if (!Plan.sameJson(loaded.job().toTree(), r.job().toTree()))
                    throw new UserError(ck + " holds a checkpoint of another config than run " + r.id() + " of this experiment");
                if (!corpus.sameBytesAs(loaded.progress().dataSource()))
                    throw new UserError(ck + ": the training data changed since the checkpoint was written; rerun the experiment in a new folder");
                t = Trainer.resume(loaded, loaded.job(), corpus, dir);
                log.printf("  resuming from step %d%n", t.step());
            } else {
                t = Trainer.fresh(r.job(), corpus, dir);
            }
            t.setStopRequest(stop);
            long steps = r.job().train.steps, every = Math.max(1, steps / 5);
            t.run(0, new Trainer.Listener() {
                @Override public void onStep(long step, float loss, double lr, double tps) {
                    if (step % every == 0 || step == steps) {
                        log.printf("  %s step %d/%d  loss %.4f  %.0f tok/s  (overall %.0f%%)%n", r.id(), step, steps, loss, tps,
                                100.0 * (doneBefore + (double) step / steps) / total);
                        log.flush();
                    }
                }
            });
            if (t.step() < steps) return false;
            RunResult res = result(r, t, (System.nanoTime() - t0) / 1e9);
            Path f = dir.resolve(RunResult.FILE);
            try {
                AtomicFiles.write(f, Configs.JSON.writeValueAsString(res) + "\n");
            } catch (IOException e) {
                throw AtomicFiles.writeError(f, e);
            }
            log.printf("  %s: val loss %.4f (%.3f bits/byte)%s%n", r.id(), res.valLoss(), res.bitsPerByte(),
                    res.tasks().isEmpty() ? "" : ", tasks " + res.tasks());
            return true;
        }
    }

    private RunResult result(Plan.Run r, Trainer t, double secs) {
        float[] val = t.valLossHistory(), train = t.trainLossHistory();
        double v = val[val.length - 1];
        Map<String, Double> tasks = new LinkedHashMap<>();
        for (var e : Datasets.tests(r.variant().data(), plan.scale).entrySet())
            tasks.put(e.getKey(), MemoryTasks.accuracy(t.model, e.getValue(), r.job().train.seqLen));
        Model counting = ModelCosts.forCounting(r.job().model);
        ModelCosts c = ModelCosts.of(counting, r.job().train.seqLen);
        Double facts = tasks.get(MemoryTaskGrid.FACT_ACCURACY);
        if (facts != null) {
            double bits = MemoryTasks.storedBits(facts, Datasets.factCount(r.variant().data()));
            tasks.put("stored_bits", bits);
            tasks.put("bits_per_param", bits / c.totalParams());
            tasks.put("bits_per_activated_param", bits / c.activatedParamsPerToken());
        }
        long b1 = ModelCosts.measuredParamBytesPerToken(counting, 1), b64 = ModelCosts.measuredParamBytesPerToken(counting, 64);
        return new RunResult(r.id(), r.variant().name(), r.seed(), t.step(), t.step() * Plan.tokensPerStep(r.job()), v, v / Math.log(2),
                train[train.length - 1], tasks, c.totalParams(), c.tableParams(), c.activatedParamsPerToken(), c.forwardMacsPerToken(),
                c.trainingFlopsPerToken(), b1, b64, r.job().train.lr, r.job().train.memValueLrTimes, secs);
    }

    private Corpus corpus(String data) {
        String key = data == null ? "" : data;
        return corpora.computeIfAbsent(key, k -> {
            double vf = plan.runs.get(0).job().train.valFraction;
            if (data != null) return Datasets.corpus(data, plan.scale, vf);
            return plan.data == null ? Corpus.builtin(SyntheticCorpus.DEFAULT_SEED, SyntheticCorpus.DEFAULT_BYTES, vf)
                    : Corpus.load(plan.data, vf);
        });
    }

    static String clock(double secs) {
        long s = Math.round(secs);
        return String.format("%d:%02d", s / 60, s % 60);
    }

    static List<String> ids(List<Plan.Run> runs) {
        List<String> l = new ArrayList<>();
        for (Plan.Run r : runs) l.add(r.id());
        return l;
    }
}
