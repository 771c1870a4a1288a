package dev.ultramem.cli;

import dev.ultramem.bench.ServeBench;
import dev.ultramem.core.Parallel;
import dev.ultramem.core.UserError;
import dev.ultramem.model.Model;
import dev.ultramem.train.JobConfig;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"The HTTP server under concurrent streaming clients against direct batched decode steps:",
                "tokens/s of both on one freshly initialised model, and their ratio."})
final class BenchServeCommand implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Option(names = "--preset", description = "model preset (default: ${DEFAULT-VALUE})")
    String preset = "ref-256";

    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "config override")
    List<String> overrides = new ArrayList<>();

    @Option(names = "--max-batch", description = "decoder slots (default: ${DEFAULT-VALUE})")
    int batch = 64;

    @Option(names = "--clients", description = "concurrent streaming clients (default: ${DEFAULT-VALUE})")
    int clients = 64;

    @Option(names = "--prompt-tokens", description = "prompt length of each client (default: ${DEFAULT-VALUE})")
    int promptTokens = 16;

    @Option(names = "--tokens", description = "tokens generated per client (default: ${DEFAULT-VALUE})")
    int tokens = 64;

    @CommandLine.Mixin ThreadsOption threads = new ThreadsOption();

    @Override
    public Integer call() throws Exception {
        PrintWriter o = spec.commandLine().getOut();
        threads.apply();
        if (batch < 1 || clients < 1 || promptTokens < 1 || tokens < 2)
            throw new UserError("--max-batch, --clients and --prompt-tokens must be >= 1, --tokens >= 2");
        JobConfig job = JobConfig.build(preset, null, overrides);
        if (promptTokens + tokens > job.model.maxSeqLen)
            throw new UserError("--prompt-tokens + --tokens (" + (promptTokens + tokens) + ") exceed the model's max_seq_len " + job.model.maxSeqLen);
        Model model = new Model(job.model);
        model.initialize(1);
        model.afterWeightsChanged();
        o.printf("== serve: preset %s, %d slots, %d streaming clients, %d prompt + %d generated tokens each, %d threads%n",
                preset, batch, clients, promptTokens, tokens, Parallel.threads());
        o.flush();
        ServeBench.Result r = ServeBench.run(model, batch, clients, promptTokens, tokens);
        o.printf("direct decode steps at batch %d: %s tokens/s%n", batch, Runs.human(r.decodeTokensPerSecond()));
        o.printf("server, %d clients: %s tokens/s (%,d tokens, first request to last [DONE]), mean time to first token %.0f ms%s%n",
                clients, Runs.human(r.serverTokensPerSecond()), r.tokens(), r.meanTtftMillis(),
                r.failed() > 0 ? ", " + r.failed() + " clients failed (the first: " + r.firstFailure() + ")" : "");
        o.printf("server while all %d clients stream: %s tokens/s%n", clients, Runs.human(r.steadyTokensPerSecond()));
        o.printf("decode steps: direct %,d of batch %.0f, %.2f ms each; server %,d of mean batch %.1f, %.2f ms each%n",
                r.direct().count(), r.direct().meanBatch(), r.direct().meanMillis(),
                r.server().count(), r.server().meanBatch(), r.server().meanMillis());
        o.printf("server (all streaming) / direct: %.0f%% (server measured after %d warm-up rounds)%n", 100 * r.ratio(), r.serverWarmUps());
        return r.failed() > 0 ? 1 : 0;
    }
}
