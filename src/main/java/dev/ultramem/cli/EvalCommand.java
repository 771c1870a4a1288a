package dev.ultramem.cli;

import dev.ultramem.core.UserError;
import dev.ultramem.data.Corpus;
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
        byte[] text;
        String what;
        if (!data.isEmpty()) {
            text = Corpus.readAll(data);
            what = data.toString();
        } else if (builtin || ck.progress().dataSource() == null) {
            text = Corpus.builtin(SyntheticCorpus.DEFAULT_SEED, SyntheticCorpus.DEFAULT_BYTES, ck.job().train.valFraction).val();
            what = "built-in corpus, validation split";
        } else {
            Corpus corpus = Corpus.fromSource(ck.progress().dataSource(), ck.job().train.valFraction);
            if (!corpus.sameBytesAs(ck.progress().dataSource()))
                throw new UserError("the training data changed since the checkpoint was written, so its validation split moved; pass the text with --data");
            text = corpus.val();
            what = "validation split of the training data";
        }
        if (text.length < T + 1) throw new UserError("evaluation text has " + text.length + " bytes, needs at least seq_len+1 = " + (T + 1));
        long windows = (text.length - 1) / T;
        int batches = (int) Math.max(1, Math.min(maxBatches, (windows + B - 1) / B));
        float loss = Trainer.evaluate(ck.model(), text, batches, B, T);
        o.println("checkpoint: " + ck.file() + " (step " + ck.progress().step() + ")");
        long scored = Math.min((long) batches * B * T, windows * T);
        o.println("data: " + what + ", " + text.length + " bytes; scored " + scored + " of them in " + batches + " batches of " + B + " x " + T
                + (scored < windows * T ? " (--max-batches to score more)" : ""));
        o.printf("loss %.4f nats/byte%nbits per byte %.4f%nperplexity %.3f%n", loss, loss / Math.log(2), Math.exp(loss));
        return 0;
    }
}
