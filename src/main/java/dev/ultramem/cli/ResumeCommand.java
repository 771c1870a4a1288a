package dev.ultramem.cli;

import dev.ultramem.core.UserError;
import dev.ultramem.data.Corpus;
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

@Command(name = "resume", mixinStandardHelpOptions = true,
        description = {"Continues training from a checkpoint file or run folder.",
                "Weights, optimizer state and the data sampler's RNG are restored, so the loss curve is exactly that of an uninterrupted run."})
final class ResumeCommand implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "CHECKPOINT", description = "checkpoint file or run folder")
    Path checkpoint;

    @Option(names = "--steps", description = "new total number of steps (default: the checkpoint's train.steps)")
    Integer steps;

    @Option(names = "--out", description = "run folder to write to (default: the checkpoint's folder)")
    Path out;

    @Option(names = "--data", arity = "1..*", paramLabel = "TEXT", description = "train on these files instead of the checkpoint's data")
    List<Path> data = new ArrayList<>();

    @Option(names = "--force", description = "with --out: overwrite a folder that holds another run's checkpoint")
    boolean force;

    @CommandLine.Mixin ThreadsOption threads = new ThreadsOption();

    @CommandLine.Mixin RunOptions run = new RunOptions();

    @Override
    public Integer call() {
        PrintWriter o = spec.commandLine().getOut(), e = spec.commandLine().getErr();
        threads.apply();
        long maxMillis = run.maxMillis();
        Path file = Checkpoint.resolve(checkpoint);
        Path dir = out != null ? out : file.toAbsolutePath().getParent();
        Capacity.requireForCheckpoint(file, MemoryPlan.Use.TRAIN, j -> { if (steps != null) j.train.steps = steps; });
        // locked before the checkpoint is read, so a run still writing it cannot hand over an older one
        try (RunLock lock = Runs.lock(dir, o)) {
            Checkpoint.Loaded ck = Checkpoint.load(file, true);
            JobConfig job = ck.job();
            if (steps != null) {
                if (steps <= ck.progress().step())
                    throw new UserError("--steps " + steps + " is not beyond the checkpoint's step " + ck.progress().step());
                job.train.steps = steps;
            }
            if (ck.progress().step() >= job.train.steps)
                throw new UserError(ck.file() + ": training already finished at step " + ck.progress().step() + "; pass --steps N to train further");
            Corpus corpus;
            if (data.isEmpty()) {
                corpus = Corpus.fromSource(ck.progress().dataSource(), job.train.valFraction);
                if (!corpus.sameBytesAs(ck.progress().dataSource()))
                    throw new UserError("the training data changed since the checkpoint was written; pass it with --data to continue on the new text");
            } else {
                corpus = Corpus.load(data, job.train.valFraction);
            }
            Path target = dir.resolve(Checkpoint.LATEST);
            boolean ownFolder = sameFile(target, ck.file());
            if (!force && Files.exists(target) && !ownFolder)
                throw new UserError(dir + " already holds another run's checkpoint; choose another --out or pass --force to overwrite it");
            o.println("resuming " + ck.file() + " at step " + ck.progress().step() + " of " + job.train.steps);
            o.println("output folder: " + dir.normalize());
            Trainer t = Trainer.resume(ck, job, corpus, dir);
            if (!ownFolder) t.dropStaleDiagnostics();  // another run's folder, or a new one
            try (StopSignals signals = StopSignals.install(System.err)) {
                int code = Runs.train(t, o, e, run.quiet, maxMillis, run.stopAt, signals);
                if (code != 0) return code;
            }
            Runs.printRunFiles(dir, o);
        }
        return 0;
    }

    private static boolean sameFile(Path a, Path b) {
        try {
            return Files.isSameFile(a, b);
        } catch (java.io.IOException e) {
            return false;
        }
    }
}
