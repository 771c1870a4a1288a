package dev.ultramem.cli;

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
        Tokenizer tok = ck.tokenizer();
        int[] ids = promptTokens(tok);
        if (ids.length > 0 && ck.job().model.vocabSize < tok.vocabSize())
            throw new UserError("the model's vocabulary (" + ck.job().model.vocabSize + ") is smaller than its tokenizer's ("
                    + tok.vocabSize() + ", " + tok.name() + ")");
        Runs.Utf8Printer p = new Runs.Utf8Printer(o, tok);
        for (int id : ids) p.accept(id);
        int[] start = ids.length == 0 ? Runs.promptIds(tok, "") : ids;
        Generator.stream(ck.model(), start, maxTokens, sampler, p::accept);
        p.finish();
        o.println();
        return 0;
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
