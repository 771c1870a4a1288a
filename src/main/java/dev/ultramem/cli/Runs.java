package dev.ultramem.cli;

import dev.ultramem.core.UserError;
import dev.ultramem.data.ByteTokenizer;
import dev.ultramem.data.Tokenizer;
import dev.ultramem.infer.Generator;
import dev.ultramem.infer.Sampler;
import dev.ultramem.model.Model;
import dev.ultramem.model.ModelCosts;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.train.RunLock;
import dev.ultramem.train.Trainer;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/** Shared pieces of the training commands: progress display, summary, sample. */
final class Runs {
    private Runs() {}

    static boolean interactive() {
        java.io.Console c = System.console();
        return c != null && c.isTerminal();
    }

    /**
     * Locks a run folder for this process (creating it; see {@link RunLock}) and removes the temporary
     * files a killed run left there. Fails early, before any training, when the folder cannot be written.
     */
    static RunLock lock(Path out, PrintWriter o) {
        RunLock lock = RunLock.acquire(out);
        try {
            for (Path p : lock.removeStaleTempFiles()) o.println("removed a temporary file left by an interrupted run: " + p);
            Files.delete(Files.createTempFile(out, "." + RunLock.WRITE_PROBE + ".", ".tmp"));
            return lock;
        } catch (IOException | RuntimeException e) {
            lock.close();
            if (e instanceof RuntimeException r) throw r;
            throw new UserError(out + ": cannot write to the output folder (" + e.getMessage() + ")");
        }
    }

    /**
     * Runs the trainer with a progress bar (terminal) or periodic status lines, then prints a summary.
     * Returns the process's exit status: 0, or 128 + the signal's number when SIGINT/SIGTERM stopped it
     * (after the step in progress, with a checkpoint, metrics and plot written).
     */
    static int train(Trainer t, PrintWriter o, PrintWriter e, boolean quiet, long maxMillis, Long stopAt, StopSignals signals) {
        if (stopAt != null && (stopAt <= t.step() || stopAt > t.job.train.steps))
            throw new UserError("--stop-at must be between step " + (t.step() + 1) + " and train.steps (" + t.job.train.steps + "), got " + stopAt);
        long total = stopAt != null ? stopAt : t.job.train.steps, start = t.step();
        int B = t.job.train.batchSize, T = t.job.train.seqLen;
        o.println("model: d_model " + t.job.model.dModel + ", " + t.job.model.nLayers + " layers, ffn " + t.job.model.ffnType
                + ", memory " + t.job.model.memType + "; " + String.format("%,d", ModelCosts.of(t.model, t.job.train.seqLen).totalParams()) + " parameters");
        o.println("training: steps " + start + " -> " + total + ", batch " + B + " x " + T + " tokens, lr " + t.job.train.lr
                + (maxMillis > 0 ? ", time limit " + Duration.ofMillis(maxMillis).toSeconds() + " s" : ""));
        o.flush();
        boolean bar = !quiet && interactive();
        ProgressBar pb = bar ? new ProgressBarBuilder().setTaskName("train").setInitialMax(total)
                .setStyle(ProgressBarStyle.ASCII).setUpdateIntervalMillis(250).startsFrom(start, Duration.ZERO)
                .setConsumer(new ConsoleProgressBarConsumer(System.err, 110)).build() : null;
        long every = Math.max(1, Math.max(t.job.train.logEvery, (total - start) / 10));
        long t0 = System.nanoTime();
        final float[] lastVal = {Float.NaN};
        final java.util.Map<String, Double> lastMem = new java.util.LinkedHashMap<>();
        t.setStopRequest(signals::requested);
        try {
            t.run(total, maxMillis, new Trainer.Listener() {
                /** The step this run ends at (a time-fitted schedule may change it). */
                long end() { return stopAt != null ? stopAt : t.job.train.steps; }
                @Override public void onStep(long step, float loss, double lr, double tps) {
                    if (pb != null) {
                        pb.stepTo(step);
                        pb.setExtraMessage(String.format(" loss %.3f  %s tok/s%s", loss, human(tps),
                                Float.isNaN(lastVal[0]) ? "" : String.format("  val %.3f", lastVal[0])));
                    } else if (!quiet && (step % every == 0 || step == end())) {
                        double secs = (System.nanoTime() - t0) / 1e9;
                        double eta = secs / (step - start) * (end() - step);
                        o.printf("step %d/%d  loss %.4f  %s tok/s  elapsed %s  eta %s%n", step, end(), loss, human(tps), clock(secs), clock(eta));
                        o.flush();
                    }
                }
                @Override public void onMemoryDiagnostics(long step, java.util.Map<String, Double> mean) {
                    lastMem.clear();
                    lastMem.putAll(mean);
                    if (pb == null && !quiet) { o.printf("step %d  memory: %s%n", step, formatDiagnostics(mean)); o.flush(); }
                }
                @Override public void onPlan(long step, long totalSteps) {
                    if (pb != null) pb.maxHint(totalSteps);
                    else if (!quiet) { o.printf("step %d  schedule fitted again to the measured speed: %d steps%n", step, totalSteps); o.flush(); }
                }
                @Override public void onEval(long step, float v) {
                    lastVal[0] = v;
                    if (pb == null && !quiet) { o.printf("step %d  val loss %.4f%n", step, v); o.flush(); }
                }
            });
        } finally {
            if (pb != null) pb.close();
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        long done = t.step() - start;
        String resume = " (continue with: ultramem resume " + t.outDir() + ")";
        o.printf("trained %d steps in %s (%s tok/s)%s%n", done, clock(secs), human(done * B * (double) T / Math.max(secs, 1e-9)),
                signals.requested() ? ", stopped by " + signals.signalName() + " at step " + t.step() + " of " + t.job.train.steps + resume
                        : t.step() < t.job.train.steps ? ", paused at step " + t.step() + " of " + t.job.train.steps + resume : "");
        float[] vl = t.valLossHistory();
        if (vl.length > 0) {
            float v = vl[vl.length - 1];
            o.printf("validation loss %.4f  (%.3f bits per byte, perplexity %.2f)%n", v, v / Math.log(2), Math.exp(v));
        }
        float[] tl = t.trainLossHistory();
        if (tl.length > 0) o.printf("training loss: first step %.4f, last step %.4f%n", tl[0], tl[tl.length - 1]);
        if (!lastMem.isEmpty()) o.println("memory layers (mean over layers, last interval): " + formatDiagnostics(lastMem));
        if (signals.requested()) {
            printRunFiles(t.outDir(), o);
            o.flush();
            return signals.exitCode();
        }
        o.flush();
        return 0;
    }

    static String formatDiagnostics(java.util.Map<String, Double> m) {
        StringBuilder sb = new StringBuilder();
        m.forEach((k, v) -> sb.append(sb.length() == 0 ? "" : "  ").append(k).append(' ').append(String.format("%.3f", v)));
        return sb.toString();
    }

    static void printRunFiles(Path out, PrintWriter o) {
        o.println("checkpoint: " + out.resolve(Checkpoint.LATEST));
        o.println("metrics:    " + out.resolve("metrics.csv"));
        if (Files.exists(out.resolve("loss.png"))) o.println("loss plot:  " + out.resolve("loss.png"));
    }

    static void printSample(Model model, Tokenizer tok, String prompt, int tokens, double temperature, long seed, PrintWriter o) {
        o.println("sample (temperature " + temperature + "):");
        o.print(prompt);
        Utf8Printer p = new Utf8Printer(o, tok);
        Generator.generate(model, promptIds(tok, prompt), tokens, new Sampler(temperature, 0, 1.0, seed), p::accept);
        p.finish();
        o.println();
        o.flush();
    }

    static String human(double x) {
        if (x >= 1e6) return String.format("%.2fM", x / 1e6);
        if (x >= 1e3) return String.format("%.1fk", x / 1e3);
        return String.format("%.0f", x);
    }

    static String clock(double secs) {
        if (!Double.isFinite(secs)) return "?";
        long s = Math.round(secs);
        return String.format("%d:%02d", s / 60, s % 60);
    }

    /**
     * The ids generation starts from. The generator starts an empty prompt from a newline byte, which
     * only the byte tokenizer reads as a newline: the others start from their own newline token.
     */
    static int[] promptIds(Tokenizer tok, String prompt) {
        return prompt.isEmpty() && !(tok instanceof ByteTokenizer) ? tok.encode("\n") : tok.encode(prompt);
    }

    /** Prints the bytes of tokens as they arrive, decoding UTF-8 sequences that span several tokens. */
    static final class Utf8Printer {
        private final PrintWriter out;
        private final Tokenizer tok;
        private final CharsetDecoder dec = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPLACE).onUnmappableCharacter(CodingErrorAction.REPLACE);
        private final ByteBuffer in = ByteBuffer.allocate(16);
        private final CharBuffer chars = CharBuffer.allocate(32);

        Utf8Printer(PrintWriter out, Tokenizer tok) {
            this.out = out;
            this.tok = tok;
        }

        /** One token: a byte for the byte tokenizer, else its bytes (U+FFFD for an id beyond the tokenizer's, which a larger model vocabulary allows). */
        void accept(int token) {
            if (tok instanceof ByteTokenizer) {
                acceptByte((byte) token);
                return;
            }
            byte[] b = token >= 0 && token < tok.vocabSize() ? tok.decodeBytes(new int[]{token}) : Tokenizer.REPLACEMENT;
            for (byte x : b) acceptByte(x);
        }

        private void acceptByte(byte x) {
            in.put(x);
            in.flip();
            dec.decode(in, chars, false);
            in.compact();
            flushChars();
        }

        void finish() {
            in.flip();
            dec.decode(in, chars, true);
            dec.flush(chars);
            in.clear();
            flushChars();
        }

        private void flushChars() {
            chars.flip();
            if (chars.hasRemaining()) { out.append(chars); out.flush(); }
            chars.clear();
        }
    }
}
