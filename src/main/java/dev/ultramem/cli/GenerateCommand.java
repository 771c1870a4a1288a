package dev.ultramem.cli;

import dev.ultramem.core.UserError;
import dev.ultramem.data.ByteTokenizer;
import dev.ultramem.infer.Generator;
import dev.ultramem.infer.Sampler;
import dev.ultramem.model.MemoryPlan;
import dev.ultramem.train.Checkpoint;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;

@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Generates text from a checkpoint with the KV-cache decoder (greedy at --temperature 0).")
final class GenerateCommand implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", arity = "0..1", paramLabel = "CHECKPOINT", description = "checkpoint file or run folder (default: ${DEFAULT-VALUE})")
    Path checkpoint = Main.DEFAULT_OUT;

    @Option(names = "--prompt", description = "text to continue (default: empty)")
    String prompt = "";

    @Option(names = "--max-tokens", description = {"tokens (bytes) to generate (default: ${DEFAULT-VALUE}); printed as they come,",
            "past max_seq_len the model continues from the last half of its window"})
    int maxTokens = 200;

    @Option(names = "--temperature", description = "0 = greedy (default: ${DEFAULT-VALUE})")
    double temperature = 0.8;

    @Option(names = "--top-k", description = "sample among the k most probable tokens, 0 = all (default: ${DEFAULT-VALUE})")
    int topK = 0;

    @Option(names = "--top-p", description = "nucleus sampling mass in (0, 1] (default: ${DEFAULT-VALUE})")
    double topP = 1.0;

    @Option(names = "--seed", description = "sampling seed (default: ${DEFAULT-VALUE})")
    long seed = 0;

    @CommandLine.Mixin ThreadsOption threads = new ThreadsOption();

    @Override
    public Integer call() {
        PrintWriter o = spec.commandLine().getOut();
        threads.apply();
        if (maxTokens < 1) throw new UserError("--max-tokens must be >= 1, got " + maxTokens);
        Sampler sampler = new Sampler(temperature, topK, topP, seed);
        Capacity.requireForCheckpoint(checkpoint, MemoryPlan.Use.GENERATE, j -> {});
        Checkpoint.Loaded ck = Checkpoint.load(checkpoint, false, true);
        ck.model().setTraining(false);
        int[] ids = new ByteTokenizer().encode(prompt);
        if (ids.length > 0 && ck.job().model.vocabSize < 256)
            throw new UserError("the model's vocabulary (" + ck.job().model.vocabSize + ") is smaller than the byte tokenizer's (256)");
        o.print(prompt);
        Runs.Utf8Printer p = new Runs.Utf8Printer(o);
        Generator.stream(ck.model(), ids, maxTokens, sampler, p::accept);
        p.finish();
        o.println();
        return 0;
    }
}
