package dev.ultramem.cli;

import dev.ultramem.core.Parallel;
import dev.ultramem.core.UserError;
import dev.ultramem.data.ByteTokenizer;
import dev.ultramem.data.Corpus;
import dev.ultramem.data.SyntheticCorpus;
import dev.ultramem.model.MemoryPlan;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.train.JobConfig;
import dev.ultramem.train.RunLock;
import dev.ultramem.train.Trainer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

@Command(name = "train", mixinStandardHelpOptions = true,
        description = {"Trains a model on UTF-8 text files or folders (or the built-in corpus when none is given).",
                "The config is built from --preset, then --config, then --set overrides."})
final class TrainCommand implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(arity = "0..*", paramLabel = "TEXT", description = "UTF-8 text files or folders (default: the built-in synthetic corpus)")
    List<Path> inputs = new ArrayList<>();

    @CommandLine.Mixin ConfigOptions cfg = new ConfigOptions();

    @Option(names = "--out", description = "run folder for checkpoint, metrics and plot (default: ${DEFAULT-VALUE})")
    Path out = Path.of("runs", "train");

    @Option(names = "--steps", description = "training steps (overrides train.steps)")
    Integer steps;

    @CommandLine.Mixin ThreadsOption threads = new ThreadsOption();

    @CommandLine.Mixin RunOptions run = new RunOptions();

    @Option(names = "--force", description = "overwrite a run folder that already holds a checkpoint")
    boolean force;

    @Option(names = "--no-sample", description = "do not print a generated sample after training")
    boolean noSample;

    @Override
    public Integer call() {
        PrintWriter o = spec.commandLine().getOut(), e = spec.commandLine().getErr();
        threads.apply();
        long maxMillis = run.maxMillis();
        JobConfig job = cfg.build(steps != null ? List.of("train.steps=" + steps) : List.of());
        Capacity.require(MemoryPlan.Use.TRAIN, job);
        // held from the checkpoint check to the end, so no second run can write into the folder meanwhile
        try (RunLock lock = Runs.lock(out, o)) {
            if (!force && Files.exists(out.resolve(Checkpoint.LATEST)))
                throw new UserError(out + " already holds a checkpoint; continue it with 'ultramem resume " + out
                        + "' or pass --force to start over");
            Corpus corpus = inputs.isEmpty()
                    ? Corpus.builtin(SyntheticCorpus.DEFAULT_SEED, SyntheticCorpus.DEFAULT_BYTES, job.train.valFraction)
                    : Corpus.load(inputs, job.train.valFraction);
            corpus.requireWindows(job.train.seqLen);
            if (!job.model.tokenizer.equals(ByteTokenizer.NAME)) o.println("tokenizer: " + job.model.tokenizer);
            o.println("data: " + (inputs.isEmpty() ? "built-in synthetic corpus" : inputs.toString()) + ", "
                    + corpus.train().length + " training bytes, " + corpus.val().length + " validation bytes");
            o.println("output folder: " + out.toAbsolutePath().normalize() + "  (" + Parallel.threads() + " threads)");
            Trainer t = Trainer.fresh(job, corpus, out);
            try (StopSignals signals = StopSignals.install(System.err)) {
                int code = Runs.train(t, o, e, run.quiet, maxMillis, run.stopAt, signals);
                if (code != 0) return code;
            }
            Runs.printRunFiles(out, o);
            if (!noSample) Runs.printSample(t.model, t.tokenizer(), "", 120, 0.7, 7, o);
        }
        return 0;
    }
}
