package dev.ultramem.cli;

import dev.ultramem.core.Parallel;
import dev.ultramem.core.UserError;
import dev.ultramem.data.Corpus;
import dev.ultramem.data.SyntheticCorpus;
import dev.ultramem.model.MemoryPlan;
import dev.ultramem.train.JobConfig;
import dev.ultramem.train.RunLock;
import dev.ultramem.train.Trainer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;

/** Entry point of {@code bin/ultramem}: the default job without arguments, subcommands otherwise. */
@Command(name = "ultramem", mixinStandardHelpOptions = true, version = "ultramem 0.1.0",
        description = {"Memory-layer language models in pure Java: training, evaluation, generation.",
                "Without a subcommand, runs the built-in default job: trains a small model on the built-in",
                "synthetic corpus for about two minutes, then prints the validation loss and a sample."},
        subcommands = {TrainCommand.class, ResumeCommand.class, EvalCommand.class, GenerateCommand.class,
                InfoCommand.class, BenchCommand.class, ImportCommand.class, ExportCommand.class, ConvertCommand.class, InitCommand.class,
                ServeCommand.class, ExperimentCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Callable<Integer> {

    /** Preset of the default job. */
    public static final String DEFAULT_PRESET = "ultramem-v2-tiny";
    public static final Path DEFAULT_OUT = Path.of("runs", "default");
    /** Wall-clock budget of the default job: it stops (with a checkpoint) when this is reached. */
    public static final double DEFAULT_MINUTES = 2.0;

    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Option(names = "--preset", description = "model and training preset of the default job (default: ${DEFAULT-VALUE})")
    String preset = DEFAULT_PRESET;

    @Option(names = "--out", description = "output folder (default: ${DEFAULT-VALUE})")
    Path out = DEFAULT_OUT;

    @Option(names = "--steps", description = "training steps (default: the preset's)")
    Integer steps;

    @CommandLine.Mixin ThreadsOption threads = new ThreadsOption();

    @Option(names = "--max-minutes", description = "stop after this many minutes (default: ${DEFAULT-VALUE})")
    double maxMinutes = DEFAULT_MINUTES;

    @Option(names = "--set", description = "override a config value, e.g. --set train.lr=1e-3")
    List<String> overrides = new ArrayList<>();

    @Option(names = "--quiet", description = "no progress bar")
    boolean quiet;

    @Option(names = "--debug", scope = CommandLine.ScopeType.INHERIT, description = "print stack traces of internal errors")
    boolean debug;

    @Override
    public Integer call() {
        PrintWriter o = spec.commandLine().getOut(), e = spec.commandLine().getErr();
        threads.apply();
        long budget = RunOptions.maxMillis(maxMinutes), limit = budget;
        List<String> sets = new ArrayList<>(overrides);
        if (steps != null) sets.add("train.steps=" + steps);
        JobConfig job = JobConfig.build(preset, null, sets);
        Capacity.require(MemoryPlan.Use.TRAIN, job);
        Corpus corpus = Corpus.builtin(SyntheticCorpus.DEFAULT_SEED, SyntheticCorpus.DEFAULT_BYTES, job.train.valFraction);
        o.println("ultramem default job: preset " + preset + ", built-in synthetic corpus (" + corpus.totalBytes() + " bytes), "
                + Parallel.threads() + " threads, up to " + maxMinutes + " min");
        o.println("output folder: " + out.toAbsolutePath().normalize());
        try (RunLock lock = Runs.lock(out, o); StopSignals signals = StopSignals.install(System.err)) {
            Trainer t = Trainer.fresh(job, corpus, out);
            t.setStopRequest(signals::requested);
            long t0 = System.currentTimeMillis();
            if (steps == null && budget > 0) {
                // the first steps measure the speed of this machine; the run is then sized to the time budget
                int fitted = t.fitStepsToTime(budget, new Trainer.Listener() {});
                o.println("speed probe: " + fitted + " steps fit in " + maxMinutes + " min on this machine"
                        + (job.train.warmupSteps - 1 > t.step() ? " (fitted again from the measured speed at step " + (job.train.warmupSteps - 1) + ")" : ""));
                job.train.evalEvery = Math.max(10, Math.min(job.train.evalEvery, fitted / 6));  // a few points on the validation curve
                limit = Math.max(1, budget + budget / 4 - (System.currentTimeMillis() - t0));  // safety net only
            }
            int code = Runs.train(t, o, e, quiet, limit, null, signals);
            if (code != 0) return code;
            long secs = (System.currentTimeMillis() - t0) / 1000;
            o.println(t.step() == job.train.steps
                    ? "schedule: all " + job.train.steps + " planned steps done in " + Runs.clock(secs) + " (budget " + Runs.clock(budget / 1000.0) + ")"
                    : "schedule: stopped by the time limit at step " + t.step() + " of " + job.train.steps + " after " + Runs.clock(secs));
            Runs.printRunFiles(out, o);
            Runs.printSample(t.model, t.tokenizer(), "the capital of ", 160, 0.7, 7, o);
        }
        return 0;
    }


    /** A command line whose errors print one line: UserError exits 2, anything else 1. */
    public static CommandLine commandLine(PrintWriter out, PrintWriter err, boolean debug) {
        CommandLine cl = new CommandLine(new Main());
        // an empty path would silently mean the current folder
        cl.registerConverter(Path.class, s -> {
            if (s.isBlank()) throw new CommandLine.TypeConversionException("empty path");
            return Path.of(s);
        });
        cl.setOut(out);
        cl.setErr(err);
        // the command descriptions are written as lines of up to 115 characters: at picocli's default 80 columns
        // every one of them wrapped into a long and a short line
        cl.setUsageHelpWidth(120);
        cl.setParameterExceptionHandler((ex, args) -> {
            String msg = ex.getMessage() == null ? ex.toString() : ex.getMessage().lines().findFirst().orElse("");
            err.println("error: " + msg + " (see --help)");
            err.flush();
            return 2;
        });
        cl.setExecutionExceptionHandler((ex, cmd, parseResult) -> {
            PrintWriter w = err;
            out.flush();
            int code;
            if (ex instanceof UserError) {
                w.println("error: " + oneLine(ex.getMessage()));
                code = 2;
            } else {
                w.println("error: internal: " + ex.getClass().getName() + ": " + oneLine(ex.getMessage()));
                code = 1;
            }
            if (debug) ex.printStackTrace(w);
            w.flush();
            return code;
        });
        return cl;
    }

    static String oneLine(String s) {
        if (s == null) return "";
        return s.replace('\r', ' ').replace('\n', ' ');
    }

    public static int run(String[] args, PrintWriter out, PrintWriter err) {
        boolean debug = Boolean.getBoolean("ultramem.debug") || Arrays.asList(args).contains("--debug");
        try {
            return commandLine(out, err, debug).execute(args);
        } catch (ExceptionInInitializerError e) {
            // a bad -D setting read in a static initializer (e.g. -Dultramem.kernels=...): report it as bad input
            if (!(e.getCause() instanceof IllegalArgumentException bad)) throw e;
            err.println("error: " + oneLine(bad.getMessage()));
            if (debug) e.printStackTrace(err);
            return 2;
        } finally {
            out.flush();
            err.flush();
        }
    }

    public static void main(String[] args) {
        PrintWriter out = new PrintWriter(System.out, true);
        PrintWriter err = new PrintWriter(System.err, true);
        int code;
        try {
            code = run(args, out, err);
        } catch (OutOfMemoryError e) {
            err.println("error: out of memory (raise -Xmx via ULTRAMEM_JAVA_OPTS or use a smaller model)");
            code = 1;
        }
        out.flush();
        err.flush();
        System.exit(code);
    }
}
