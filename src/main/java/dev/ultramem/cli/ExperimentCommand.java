package dev.ultramem.cli;

import dev.ultramem.core.Parallel;
import dev.ultramem.core.UserError;
import dev.ultramem.experiment.Claim;
import dev.ultramem.experiment.Experiment;
import dev.ultramem.experiment.ExperimentRunner;
import dev.ultramem.experiment.Experiments;
import dev.ultramem.experiment.Plan;
import dev.ultramem.experiment.Report;
import dev.ultramem.experiment.Scale;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

@Command(name = "experiment", mixinStandardHelpOptions = true,
        description = {"Reruns a claim of the UltraMem / UltraMemV2 papers: a declared grid of configs x seeds at matched cost,",
                "with a report (table with mean ± std over seeds, verdict per claim, plots, configs, per-step CSVs).",
                "  experiment --list              the experiments, their claims and expected time",
                "  experiment NAME [options]      runs one",
                "  experiment report DIR...       merges shard folders into one report"},
        subcommands = {ExperimentCommand.ReportCommand.class})
final class ExperimentCommand implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", arity = "0..1", paramLabel = "NAME", description = "experiment name (see --list)")
    String name;

    @Option(names = "--list", description = "list the experiments with their claims and expected time")
    boolean list;

    @Option(names = "--data", arity = "1..*", paramLabel = "FILES", description = "UTF-8 text files or folders (default: the built-in corpus)")
    List<Path> data = new ArrayList<>();

    @Option(names = "--seeds", description = "seeds per row (default: 3, with --quick 2)")
    Integer seeds;

    @Option(names = "--tokens", paramLabel = "BUDGET", description = "training tokens per run (default: the experiment's at its scale)")
    Long tokens;

    @Option(names = "--scale", description = "tiny (default, at most 45 min on 2 cores) or small (the family presets' d 256, 8 layers; longer)")
    String scale = "tiny";

    @Option(names = "--quick", description = "a smoke run of under a minute (tiny models, a few steps): not evidence")
    boolean quick;

    @Option(names = "--out", description = "experiment folder (default: experiments/NAME)")
    Path out;

    @Option(names = "--resume", description = "skip finished runs and continue the interrupted one from its checkpoint")
    boolean resume;

    @Option(names = "--shard", paramLabel = "i/n", description = "run every n-th run of the grid, starting at the i-th (1-based)")
    String shard = "1/1";

    @Option(names = "--plan", description = "print the grid with its costs (as info counts them) and exit without training")
    boolean planOnly;

    @CommandLine.Mixin ThreadsOption threads = new ThreadsOption();

    @Override
    public Integer call() {
        PrintWriter o = spec.commandLine().getOut();
        if (list) {
            list(o);
            return 0;
        }
        if (name == null) throw new UserError("experiment: give an experiment NAME (see 'ultramem experiment --list') or 'report DIR...'");
        threads.apply();
        Experiment e = Experiments.byName(name);
        Scale s = quick ? Scale.QUICK : Scale.parse(scale);
        int[] sh = parseShard(shard);
        Plan plan = Plan.of(e, s, seeds != null ? seeds : quick ? 2 : 3, tokens, data);
        if (planOnly) {
            o.print(plan.costTable());
            o.printf("expected time about %s%n", minutes(plan.estimatedSeconds()));
            o.flush();
            return 0;
        }
        // the heap and table limits of every run, before any training (as train checks them)
        java.util.Set<String> checked = new java.util.HashSet<>();
        for (Plan.Run r : plan.shard(sh[0], sh[1]))
            if (checked.add(r.variant().name())) Capacity.require(dev.ultramem.model.MemoryPlan.Use.TRAIN, r.job());
        Path dir = out != null ? out : Path.of("experiments", e.name() + (quick ? "-quick" : ""));
        o.printf("experiment %s: %d rows x %d seeds = %d runs (shard %d/%d: %d), scale %s, %,d tokens per run, %d threads%n",
                e.name(), e.variants(s).size(), plan.seeds, plan.runs.size(), sh[0], sh[1], plan.shard(sh[0], sh[1]).size(),
                s.id(), plan.tokens, Parallel.threads());
        o.printf("data: %s; folder: %s; expected time of all runs about %s%n", plan.dataDescription(),
                dir.toAbsolutePath().normalize(), minutes(plan.estimatedSeconds()));
        o.flush();
        ExperimentRunner runner = new ExperimentRunner(plan, dir, o);
        try (StopSignals signals = StopSignals.install(System.err)) {
            runner.setStopRequest(signals::requested);
            boolean done = runner.run(resume, sh[0], sh[1]);
            if (!done) {
                o.println("continue with: ultramem experiment " + e.name() + " --resume --out " + dir + " (and the same options)");
                o.flush();
                return signals.requested() ? signals.exitCode() : 1;
            }
        }
        return 0;
    }

    static int[] parseShard(String s) {
        String[] p = s.split("/");
        try {
            if (p.length == 2) {
                int i = Integer.parseInt(p[0].strip()), n = Integer.parseInt(p[1].strip());
                if (n >= 1 && i >= 1 && i <= n) return new int[]{i, n};
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        throw new UserError("--shard must be i/n with 1 <= i <= n (e.g. 2/4), got '" + s + "'");
    }

    static String minutes(double secs) {
        return secs < 90 ? String.format("%.0f s", secs) : String.format("%.0f min", secs / 60);
    }

    private static void list(PrintWriter o) {
        o.printf("expected times assume %.1e training FLOP/s (an idle 2-core machine; a shared one is slower)%n%n", Plan.ASSUMED_FLOPS_PER_SECOND);
        for (Experiment e : Experiments.all()) {
            o.println(e.name() + (e.implemented() ? "" : "  [declared, NOT IMPLEMENTED]"));
            o.println("  " + e.summary());
            o.println("  paper: " + e.paper() + "; status: " + e.status());
            if (e.implemented()) {
                Plan tiny = Plan.of(e, Scale.TINY, 3, null, null);
                Plan small = Plan.of(e, Scale.SMALL, 3, null, null);
                o.printf("  grid: %d rows x 3 seeds; expected time: tiny (default) about %s, small about %s%n", e.variants(Scale.TINY).size(),
                        minutes(tiny.estimatedSeconds()), minutes(small.estimatedSeconds()));
            }
            for (Claim c : e.claims()) o.println("  claim: " + c.text() + " (" + c.metric() + "; " + c.paper() + ")");
            o.println();
        }
        o.flush();
    }

    @Command(name = "report", mixinStandardHelpOptions = true,
            description = "Merges the folders of shards of one experiment (same plan) into one report.")
    static final class ReportCommand implements Callable<Integer> {
        @CommandLine.Spec CommandLine.Model.CommandSpec spec;

        @Parameters(arity = "1..*", paramLabel = "DIR", description = "experiment folders (shards of one plan)")
        List<Path> dirs = new ArrayList<>();

        @Option(names = "--out", description = "folder of the merged report (default: the first DIR)")
        Path out;

        @Override
        public Integer call() {
            PrintWriter o = spec.commandLine().getOut();
            Path target = out != null ? out : dirs.get(0);
            Plan p = Report.merge(dirs, target);
            o.println("merged " + dirs.size() + " folder(s) of experiment " + p.experiment.name() + ": " + target.resolve(Report.FILE));
            o.flush();
            return 0;
        }
    }
}
