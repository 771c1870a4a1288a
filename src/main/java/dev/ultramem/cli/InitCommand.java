package dev.ultramem.cli;

import dev.ultramem.bench.ProcessStats;
import dev.ultramem.core.UserError;
import dev.ultramem.model.MemoryPlan;
import dev.ultramem.model.Model;
import dev.ultramem.model.ModelCosts;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.train.JobConfig;
import dev.ultramem.train.RunLock;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

@Command(name = "init", mixinStandardHelpOptions = true,
        description = {"Writes a freshly initialised model as a weights-only checkpoint, without training: for serving,",
                "benchmarks and models whose tables are larger than RAM at decode time (generate, eval, serve and info",
                "map the tables from the file). The value and pre-value tables are never in memory: their values are drawn",
                "a few MB at a time while the file is written, the same values as a model initialised in memory."})
final class InitCommand implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @CommandLine.Mixin ConfigOptions cfg = new ConfigOptions();

    @Option(names = "--out", required = true, description = "run folder to write latest.safetensors and config.json into")
    Path out;

    @Option(names = "--seed", description = "initialisation seed (default: train.seed)")
    Long seed;

    @Option(names = "--force", description = "overwrite a run folder that already holds a checkpoint")
    boolean force;

    @Override
    public Integer call() {
        PrintWriter o = spec.commandLine().getOut();
        JobConfig job = cfg.build(seed != null ? List.of("train.seed=" + seed) : List.of());
        Capacity.require(MemoryPlan.Use.INIT, job);
        try (RunLock lock = Runs.lock(out, o)) {
            if (!force && Files.exists(out.resolve(Checkpoint.LATEST)))
                throw new UserError(out + " already holds a checkpoint; pass --force to replace it");
            long t0 = System.nanoTime();
            Model model = new Model(job.model);
            model.initializeTablesDeferred(job.train.seed);
            Path file = out.resolve(Checkpoint.LATEST);
            Checkpoint.saveWeightsOnly(file, job, model);
            ModelCosts c = ModelCosts.of(job.model, job.model.maxSeqLen);
            long peak = ProcessStats.now().peakRssBytes();
            o.printf("wrote %s: %,d parameters (%,d in value tables), %s on disk, in %.1f s%s%n", file, c.totalParams(), c.tableParams(),
                    MemoryPlan.human(fileSize(file)), (System.nanoTime() - t0) / 1e9, peak < 0 ? "" : "; peak RSS " + MemoryPlan.human(peak));
        }
        return 0;
    }

    private static long fileSize(Path f) {
        try { return Files.size(f); } catch (java.io.IOException e) { return -1; }
    }
}
