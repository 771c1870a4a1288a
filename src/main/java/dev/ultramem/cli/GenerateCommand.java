package dev.ultramem.cli;

import dev.ultramem.bench.ProcessStats;
import dev.ultramem.core.UserError;
import dev.ultramem.data.Tokenizer;
import dev.ultramem.infer.Generator;
import dev.ultramem.infer.Sampler;
import dev.ultramem.model.MemoryPlan;
import dev.ultramem.train.Checkpoint;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
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

    @Option(names = "--prompt-file", paramLabel = "FILE", description = "continue the bytes of this file, used as they are (any bytes, not only UTF-8)")
    Path promptFile;

    @Option(names = "--max-tokens", description = {"tokens (bytes with the byte tokenizer) to generate (default: ${DEFAULT-VALUE}); printed as they come,",
            "past max_seq_len the window slides (each token sees the last max_seq_len positions)"})
    int maxTokens = 200;

    @Option(names = "--temperature", description = "0 = greedy (default: ${DEFAULT-VALUE})")
    double temperature = 0.8;

    @Option(names = "--top-k", description = "sample among the k most probable tokens, 0 = all (default: ${DEFAULT-VALUE})")
    int topK = 0;

    @Option(names = "--top-p", description = "nucleus sampling mass in (0, 1] (default: ${DEFAULT-VALUE})")
    double topP = 1.0;

    @Option(names = "--seed", description = "sampling seed (default: ${DEFAULT-VALUE})")
    long seed = 0;

    @Option(names = "--stats", description = "print tokens/s, peak resident memory and page faults per token to stderr at the end")
    boolean stats;

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
        Tokenizer tok = ck.tokenizer();
        int[] ids = promptTokens(tok);
        if (ids.length > 0 && ck.job().model.vocabSize < tok.vocabSize())
            throw new UserError("the model's vocabulary (" + ck.job().model.vocabSize + ") is smaller than its tokenizer's ("
                    + tok.vocabSize() + ", " + tok.name() + ")");
        Runs.Utf8Printer p = new Runs.Utf8Printer(o, tok);
        for (int id : ids) p.accept(id);
        int[] start = ids.length == 0 ? Runs.promptIds(tok, "") : ids;
        ProcessStats before = ProcessStats.now();
        long t0 = System.nanoTime();
        Generator.stream(ck.model(), start, maxTokens, sampler, p::accept);
        double sec = (System.nanoTime() - t0) / 1e9;
        p.finish();
        o.println();
        if (stats) {
            o.flush();
            ProcessStats after = ProcessStats.now();
            System.err.printf("generated %d tokens in %.2f s (%.1f tokens/s, prompt included); peak RSS %s; page faults per token: "
                            + "%.1f minor, %.2f major; tables mapped from the checkpoint: %s%n", maxTokens, sec, maxTokens / sec,
                    MemoryPlan.human(after.peakRssBytes()), (after.minorFaults() - before.minorFaults()) / (double) maxTokens,
                    (after.majorFaults() - before.majorFaults()) / (double) maxTokens, MemoryPlan.human(mappedBytes(ck)));
        }
        return 0;
    }

    private static long mappedBytes(Checkpoint.Loaded ck) {
        long b = 0;
        for (var q : ck.model().params()) if (q.isMapped()) b += q.numel() * q.elementBytes();
        return b;
    }

    /**
     * The prompt's tokens. Java decodes the command line with the locale's charset and replaces
     * bytes that are not valid there with U+FFFD, so a U+FFFD in --prompt means the prompt was changed
     * before it arrived: it is refused (--prompt-file passes any bytes through unchanged to the byte
     * tokenizer; the others read the file as UTF-8, with U+FFFD for invalid sequences).
     */
    private int[] promptTokens(Tokenizer tok) {
        if (promptFile != null) {
            if (!prompt.isEmpty()) throw new UserError("give either --prompt or --prompt-file, not both");
            UserError.requireRegularFile(promptFile);
            byte[] b;
            try {
                b = Files.readAllBytes(promptFile);
            } catch (IOException e) {
                throw UserError.cannotRead(promptFile, e);
            }
            return tok.encode(b);
        }
        int bad = prompt.indexOf('\uFFFD');
        if (bad >= 0)
            throw new UserError("--prompt holds bytes that are not UTF-8 (replaced by U+FFFD at byte offset "
                    + prompt.substring(0, bad).getBytes(StandardCharsets.UTF_8).length
                    + "); pass such a prompt with --prompt-file FILE, whose bytes are used as they are");
        return tok.encode(prompt);
    }
}
