package dev.ultramem.cli;

import dev.ultramem.core.UserError;
import dev.ultramem.data.ByteTokenizer;
import dev.ultramem.data.Corpus;
import dev.ultramem.data.Tokenizer;
import dev.ultramem.data.Tokenizers;
import dev.ultramem.data.Tokens;
import dev.ultramem.data.SyntheticCorpus;
import dev.ultramem.model.MemoryPlan;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.train.Trainer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

@Command(name = "eval", mixinStandardHelpOptions = true,
        description = {"Validation loss, bits per byte and perplexity of a checkpoint: on text files (non-overlapping windows spread evenly over the text, up to --max-batches batches) or on the validation split of the checkpoint's training data."})
final class EvalCommand implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", arity = "0..1", paramLabel = "CHECKPOINT", description = "checkpoint file or run folder (default: ${DEFAULT-VALUE})")
    Path checkpoint = Main.DEFAULT_OUT;

    @Option(names = "--data", arity = "1..*", paramLabel = "TEXT", description = "UTF-8 text files or folders to evaluate on")
    List<Path> data = new ArrayList<>();

    @Option(names = "--builtin", description = "evaluate on the validation split of the built-in corpus")
    boolean builtin;

    @Option(names = "--max-batches", description = "at most this many batches (default: ${DEFAULT-VALUE})")
    int maxBatches = 64;

    @CommandLine.Mixin ThreadsOption threads = new ThreadsOption();

    @Override
    public Integer call() {
        PrintWriter o = spec.commandLine().getOut();
        threads.apply();
        if (maxBatches < 1) throw new UserError("--max-batches must be >= 1");
        if (builtin && !data.isEmpty()) throw new UserError("--builtin and --data choose different texts; pass one of them");
        Capacity.requireForCheckpoint(checkpoint, MemoryPlan.Use.EVAL, j -> {});
        Checkpoint.Loaded ck = Checkpoint.load(checkpoint, false, true);
        int B = ck.job().train.batchSize, T = ck.job().train.seqLen;
        Tokenizer tok = ck.tokenizer();
        Tokenizers.requireFits(tok, ck.job().model.vocabSize);
        byte[] text;
        Tokens tokens;
        String what;
        if (!data.isEmpty()) {
            text = Corpus.readAll(data);
            tokens = tok instanceof ByteTokenizer ? Tokens.of(text) : Tokens.of(tok.encode(text));
            what = data.toString();
        } else {
            Corpus corpus;
            if (builtin || ck.progress().dataSource() == null) {
                corpus = Corpus.builtin(SyntheticCorpus.DEFAULT_SEED, SyntheticCorpus.DEFAULT_BYTES, ck.job().train.valFraction);
                what = "built-in corpus, validation split";
            } else {
                corpus = Corpus.fromSource(ck.progress().dataSource(), ck.job().train.valFraction);
                if (!corpus.sameBytesAs(ck.progress().dataSource()))
                    throw new UserError("the training data changed since the checkpoint was written, so its validation split moved; pass the text with --data");
                what = "validation split of the training data";
            }
            text = corpus.val();
            tokens = corpus.encode(tok).val();
        }
        boolean bytes = tok instanceof ByteTokenizer;
        String unit = bytes ? "bytes" : "tokens";
        if (tokens.length() < T + 1) throw new UserError("evaluation text has " + tokens.length() + " " + unit + ", needs at least seq_len+1 = " + (T + 1));
        long windows = (tokens.length() - 1) / T;
        int batches = (int) Math.max(1, Math.min(maxBatches, (windows + B - 1) / B));
        Trainer.Score score = Trainer.score(ck.model(), tokens, tok, batches, B, T);
        double loss = (float) score.meanLoss();
        o.println("checkpoint: " + ck.file() + " (step " + ck.progress().step() + ")" + (bytes ? "" : ", tokenizer " + tok.name()));
        long scored = Math.min((long) batches * B * T, windows * T);
        o.println("data: " + what + ", " + text.length + " bytes" + (bytes ? "" : " = " + tokens.length() + " tokens")
                + "; scored " + scored + " of them in " + batches + " batches of " + B + " x " + T
                + (scored < windows * T ? " (--max-batches to score more)" : ""));
        // bits per byte divide the total by the bytes of the scored tokens, so runs with different tokenizers compare
        o.printf("loss %.4f nats/%s%nbits per byte %.4f%nperplexity %.3f%n", loss, bytes ? "byte" : "token", score.bitsPerByte(), Math.exp(loss));
        return 0;
    }
}
