package dev.ultramem.train;

import dev.ultramem.core.UserError;
import dev.ultramem.data.BatchSampler;
import dev.ultramem.data.Corpus;
import dev.ultramem.data.Tokenizer;
import dev.ultramem.data.Tokenizers;
import dev.ultramem.data.Tokens;
import dev.ultramem.io.AtomicFiles;
import dev.ultramem.model.Model;
import dev.ultramem.core.StepProfile;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * The training loop: sample a batch, forward and backward, clip the global gradient norm, AdamW
 * step at the scheduled LR, refresh derived weights; evaluate, checkpoint and log on schedule.
 * Everything that affects the numbers (weights, AdamW moments, the sampler's RNG, the step) is in the
 * checkpoint, so stopping and resuming reproduces an uninterrupted run bit for bit.
 */
public final class Trainer {

    /** Progress callbacks (the CLI draws a progress bar from them). */
    public interface Listener {
        default void onStep(long step, float loss, double lr, double tokensPerSecond) {}
        default void onEval(long step, float valLoss) {}
        default void onCheckpoint(long step, Path file) {}
        /** A time-fitted schedule's total was fitted again at this step. */
        default void onPlan(long step, long totalSteps) {}
        /** Memory-layer diagnostics of the training batches since the last evaluation, averaged over memory layers. */
        default void onMemoryDiagnostics(long step, java.util.Map<String, Double> mean) {}
    }

    /** The loss became NaN or infinite; the last good checkpoint is left untouched. */
    public static final class NonFiniteLoss extends UserError {
        public final long step;
        NonFiniteLoss(long step, String msg) { super(msg); this.step = step; }
    }

    public final JobConfig job;
    public final Model model;
    public final AdamW optimizer;
    private LrSchedule schedule;
    private final Corpus corpus;
    /** The corpus as tokens of the model's tokenizer (the bytes themselves for the byte tokenizer). */
    private final Corpus.Encoded tokens;
    private final Tokenizer tokenizer;
    private final BatchSampler sampler;
    private final Path outDir;
    private final int B, T;
    private final int[] inputs, targets;
    private long step;
    private float[] trainLoss;
    private float[] valSteps, valLoss;
    private int nVal;
    private double lastGradNorm;
    /** Asked between steps: true once the user wants the run to stop (the CLI sets it from SIGINT/SIGTERM). */
    private java.util.function.BooleanSupplier stopRequest = () -> false;
    /** The step the last checkpoint in outDir was written at (-1: none by this trainer). */
    private long savedStep = -1;
    /** metrics.csv while training runs: rows are appended as steps finish and flushed at every checkpoint. */
    private java.io.Writer metricsLog;

    private Trainer(JobConfig job, Model model, AdamW opt, Corpus corpus, Tokenizer tokenizer, Path outDir) {
        // not a config rule: imported models may have any vocabulary, but training text needs the tokenizer's ids
        Tokenizers.requireFits(tokenizer, job.model.vocabSize);
        this.job = job;
        this.tokenizer = tokenizer;
        this.model = model;
        this.optimizer = opt;
        this.schedule = new LrSchedule(job.train, job.model.memType);
        this.corpus = corpus;
        this.tokens = corpus.encode(tokenizer).requireWindows(job.train.seqLen);
        this.B = job.train.batchSize;
        this.T = job.train.seqLen;
        this.inputs = new int[B * T];
        this.targets = new int[B * T];
        this.sampler = new BatchSampler(tokens.train(), samplerSeed(job.train.seed));
        this.outDir = outDir;
        // grown as steps complete: a long planned schedule must not allocate per planned step
        this.trainLoss = new float[(int) Math.min(1024, Math.max(16, job.train.steps))];
        this.valSteps = new float[16];
        this.valLoss = new float[16];
    }

    static long samplerSeed(long seed) { return seed * 0x9E3779B97F4A7C15L + 0x5851F42D4C957F2DL; }

    /** A new run: weights initialised from train.seed. */
    public static Trainer fresh(JobConfig job, Corpus corpus, Path outDir) {
        Tokenizer tok = Tokenizers.named(job.model.tokenizer);
        Tokenizers.requireFits(tok, job.model.vocabSize);  // before the model is built
        Model model = new Model(job.model);
        model.initialize(job.train.seed);
        model.afterWeightsChanged();
        Trainer t = new Trainer(job, model, new AdamW(model.params(), job.train), corpus, tok, outDir);
        t.dropStaleDiagnostics();
        return t;
    }

    /** A new history starts in outDir: memory.csv of an earlier run there (it is appended to) is removed. */
    public void dropStaleDiagnostics() {
        if (outDir == null) return;
        try {
            Files.deleteIfExists(outDir.resolve("memory.csv"));
        } catch (IOException e) {
            throw new UserError(outDir + ": cannot remove the old memory.csv (" + e.getMessage() + ")");
        }
    }

    /** Continues a loaded checkpoint (its job may carry a changed train.steps). */
    public static Trainer resume(Checkpoint.Loaded ck, JobConfig job, Corpus corpus, Path outDir) {
        if (ck.optimizer() == null) throw new IllegalArgumentException("checkpoint loaded without optimizer state");
        if (!ck.tokenizer().name().equals(job.model.tokenizer))
            throw new IllegalArgumentException("the job's tokenizer " + job.model.tokenizer + " is not the checkpoint's " + ck.tokenizer().name());
        Trainer t = new Trainer(job, ck.model(), ck.optimizer(), corpus, ck.tokenizer(), outDir);
        Checkpoint.Progress p = ck.progress();
        t.step = p.step();
        t.sampler.setState(p.dataRng());
        t.trainLoss = Arrays.copyOf(p.trainLoss(), p.trainLoss().length + 1024);
        t.nVal = p.valLoss().length;
        t.valSteps = Arrays.copyOf(p.valSteps(), t.nVal + 16);
        t.valLoss = Arrays.copyOf(p.valLoss(), t.nVal + 16);
        return t;
    }

    public long step() { return step; }

    /** Sets what the loop asks between steps whether to stop early (with a checkpoint, metrics and plot). */
    public void setStopRequest(java.util.function.BooleanSupplier stop) { this.stopRequest = stop; }

    private boolean stopRequested() { return stopRequest.getAsBoolean(); }

    /**
     * Changes train.steps while still inside the warmup (where the LR does not depend on the total),
     * so the run stays exactly reproducible: a resumed run reads the new total from the checkpoint.
     */
    public void setTotalSteps(int steps) {
        if (step >= job.train.warmupSteps && step > 0)
            throw new IllegalStateException("the total can only change during warmup (step " + step + ")");
        if (steps <= step) throw new IllegalArgumentException("steps must exceed the current step");
        job.train.steps = steps;
        schedule = new LrSchedule(job.train, job.model.memType);
    }

    /**
     * Trains a few warmup steps, measures their speed and sets train.steps so that the whole schedule
     * ends within {@link #TIME_FIT_SHARE} of budgetMillis (never more than the configured steps). The
     * total is fitted again at the last warmup step, from the speed of every step since the probe
     * (evaluations and checkpoints included), so a machine slower than the probe suggested still
     * finishes its schedule. Returns the new total.
     */
    public int fitStepsToTime(long budgetMillis, Listener listener) {
        // The first steps run while the JIT compiles (the memory layers' kernels are compiled last), so
        // the estimate is the median of the second half of the probe steps. The probe stays inside the
        // warmup, where the total may still change, and stops after the step that passes an eighth of
        // the budget (at least four steps).
        int maxProbe = (int) Math.max(1, Math.min(24, Math.min(job.train.warmupSteps - 1, job.train.steps - 1)));
        long start = clock.getAsLong();
        double[] ms = new double[maxProbe];
        int probed = 0;
        for (int i = 0; i < maxProbe && !stopRequested(); i++) {
            long ts = clock.getAsLong();
            float loss = trainStep();
            ms[probed++] = (clock.getAsLong() - ts) / 1e6;
            listener.onStep(step, loss, schedule.lr(step), (double) B * T / (ms[probed - 1] / 1e3));
            if (i >= 3 && (clock.getAsLong() - start) / 1e6 > budgetMillis / 8.0) break;
        }
        if (probed == 0) return job.train.steps;
        double[] late = Arrays.copyOfRange(ms, probed / 2, probed);
        Arrays.sort(late);
        double perStep = late[late.length / 2];
        double spent = (clock.getAsLong() - start) / 1e6;
        // evaluation passes cost about a third of a training step per batch
        double evalShare = 1 + job.train.evalBatches / 3.0 / job.train.evalEvery;
        long fit = step + (long) (Math.max(0, budgetMillis * TIME_FIT_SHARE - spent) / (perStep * evalShare));
        fittedMaxSteps = job.train.steps;
        deadline = start + (long) (budgetMillis * 1e6 * TIME_FIT_SHARE);
        int steps = (int) Math.min(job.train.steps, Math.max(step + 1, fit));
        if (step < job.train.warmupSteps && steps > step) {
            setTotalSteps(steps);
            // a short run still needs its cosine decay: warmup takes at most a fifth of it
            // (the probe steps already ran with the longer warmup's lower LR; config.json records the result)
            int warm = (int) Math.max(step, steps / 5);
            if (warm < job.train.warmupSteps) {
                job.train.warmupSteps = warm;
                schedule = new LrSchedule(job.train, job.model.memType);
            }
        }
        return job.train.steps;
    }

    /** The share of a time budget that a time-fitted schedule plans for (the rest: final evaluation, sample, plot, drift). */
    public static final double TIME_FIT_SHARE = 0.9;

    /** Deadline (clock nanos) of a time-fitted schedule, 0 without one; the configured steps bound its re-fit. */
    private long deadline;
    private int fittedMaxSteps;
    /** Time spent in evaluations, for the re-fit. */
    private long evalNanos;
    private int evalCount;
    private java.util.function.LongSupplier clock = System::nanoTime;

    /** The clock the loop's timing reads (tests use a simulated one). */
    public void setClock(java.util.function.LongSupplier nanoClock) { this.clock = nanoClock; }

    /**
     * The re-fit of a time-fitted schedule at the last warmup step (the last step where the total may
     * change): the steps that fit between now and the deadline at the speed measured since loopStart
     * (loopSteps steps), with the evaluations still to come at their measured cost.
     */
    private void refitToDeadline(long loopStart, long loopSteps, long evalNanosAtStart) {
        long now = clock.getAsLong();
        double windowEval = evalNanos - evalNanosAtStart;
        double perStep = Math.max(1, (now - loopStart - windowEval) / loopSteps);
        double perEval = evalCount > 0 ? (double) evalNanos / evalCount : perStep * job.train.evalBatches / 3.0;
        double perPlannedStep = perStep + perEval / job.train.evalEvery;
        long fit = step + (long) (Math.max(0, deadline - now) / perPlannedStep);
        int steps = (int) Math.min(fittedMaxSteps, Math.max(step + 1, fit));
        if (steps != job.train.steps) setTotalSteps(steps);
        deadline = 0;
    }

    public float[] trainLossHistory() { return Arrays.copyOf(trainLoss, (int) step); }

    public float[] valStepHistory() { return Arrays.copyOf(valSteps, nVal); }

    public float[] valLossHistory() { return Arrays.copyOf(valLoss, nVal); }

    public double lastGradNorm() { return lastGradNorm; }

    public Corpus corpus() { return corpus; }

    public Tokenizer tokenizer() { return tokenizer; }

    public Path outDir() { return outDir; }

    /**
     * Trains until train.steps (or until maxMillis elapse, if > 0), evaluating and checkpointing on
     * schedule and at the end. Returns the step reached.
     */
    public long run(long maxMillis, Listener listener) { return run(job.train.steps, maxMillis, listener); }

    /**
     * As {@link #run(long, Listener)} but stops at stopStep (a checkpoint is written there). A stop
     * request ends the run after the current step, with a checkpoint there; metrics.csv and loss.png
     * are written in every case, a non-finite loss included.
     */
    public long run(long stopStep, long maxMillis, Listener listener) {
        long target = Math.min(stopStep, job.train.steps);
        try {
            trainUntil(target, maxMillis, listener);
        } catch (NonFiniteLoss e) {
            // the curve up to the failure is worth keeping; the checkpoint stays at the last good step
            if (outDir != null) writeMetricsAndPlot();
            throw e;
        }
        if (outDir != null) writeMetricsAndPlot();
        return step;
    }

    private void writeMetricsAndPlot() {
        writeMetrics();
        LossPlot.write(outDir.resolve("loss.png"), trainLossHistory(), valStepHistory(), valLossHistory());
    }

    private void trainUntil(long target, long maxMillis, Listener listener) {
        long t0 = clock.getAsLong(), step0 = step, eval0 = evalNanos;
        long tokens = 0;
        boolean toEnd = target == job.train.steps;
        if (outDir != null) openMetricsLog();
        try {
            while (step < target && !stopRequested()) {
                float loss = trainStep();
                tokens += (long) B * T;
                double secs = (clock.getAsLong() - t0) / 1e9;
                listener.onStep(step, loss, schedule.lr(step), tokens / Math.max(secs, 1e-9));
                if (deadline != 0 && step == job.train.warmupSteps - 1 && step < target) {
                    refitToDeadline(t0, step - step0, eval0);
                    if (toEnd) target = job.train.steps;
                    listener.onPlan(step, job.train.steps);
                }
                boolean last = step == target;
                boolean stop = !last && stopRequested();
                boolean timeUp = maxMillis > 0 && (clock.getAsLong() - t0) / 1e6 >= maxMillis && !last;
                boolean evalNow = step % job.train.evalEvery == 0 || step == job.train.steps;
                // a run stopped by the time limit also gets a validation point where it stops
                // (one stopped by a signal does not: it should end quickly)
                if (evalNow || (timeUp && (nVal == 0 || valSteps[nVal - 1] != step))) evalAndRecord(listener);
                appendMetricsRow((int) step - 1);
                if (outDir != null && (step % job.train.checkpointEvery == 0 || last || timeUp || stop)) {
                    listener.onCheckpoint(step, save());
                }
                if (timeUp || stop) break;
            }
            // stopped before the loop's first step (e.g. during the speed probe), after steps not yet saved
            if (outDir != null && stopRequested() && step > 0 && savedStep != step) listener.onCheckpoint(step, save());
        } finally {
            closeMetricsLog();
        }
    }

    /** Logs the memory diagnostics of the interval, then measures and records the validation loss. */
    private void evalAndRecord(Listener listener) {
        var diag = memoryDiagnostics();
        if (!diag.isEmpty()) listener.onMemoryDiagnostics(step, diag);
        long e0 = clock.getAsLong();
        float v = evaluate();
        evalNanos += clock.getAsLong() - e0;
        evalCount++;
        if (!Float.isFinite(v)) throw nonFinite("validation loss", v);
        recordVal(step, v);
        listener.onEval(step, v);
    }

    /** One optimisation step; returns the reported loss (cross-entropy plus aux losses). */
    public float trainStep() {
        model.setTraining(true);
        optimizer.zeroGrad();
        sampler.next(inputs, targets, B, T);
        float ce = model.forwardBackward(inputs, targets, B, T);
        float loss = (float) (ce + model.lastAuxLoss());
        if (!Float.isFinite(loss)) throw nonFinite("loss", loss);
        long t0 = StepProfile.start();
        lastGradNorm = optimizer.clipGradients();
        if (!Double.isFinite(lastGradNorm)) throw nonFinite("gradient norm", lastGradNorm);
        long t = optimizer.step() + 1; // the official schedule's t: 1-based number of this step
        optimizer.update(schedule.lr(t), schedule.valueLr(t), schedule.fixedValueLr(t));
        StepProfile.stop(StepProfile.Kind.OPTIMIZER, t0);
        model.afterWeightsChanged();
        if (step >= trainLoss.length) trainLoss = Arrays.copyOf(trainLoss, (int) step * 2 + 16);
        trainLoss[(int) step] = loss;
        step++;
        return loss;
    }

    private NonFiniteLoss nonFinite(String what, double v) {
        String where = "";
        if (outDir != null) {
            where = Files.exists(outDir.resolve(Checkpoint.LATEST))
                    ? "; the last good checkpoint in " + outDir + " was kept"
                    : "; no checkpoint was written (the first comes at step " + Math.min(job.train.checkpointEvery, job.train.steps) + ")";
        }
        return new NonFiniteLoss(step + 1, what + " became " + v + " at step " + (step + 1) + where
                + " (try a lower train.lr or train.grad_clip)");
    }

    /** Mean validation loss over the fixed eval_batches validation batches. */
    public float evaluate() {
        float v = evaluate(model, tokens.val(), job.train.evalBatches, B, T);
        // diagnostics describe training batches only
        for (var l : model.memoryLayers()) l.resetDiagnostics();
        return v;
    }

    /**
     * Collects each memory layer's diagnostics since the last evaluation, appends them to
     * memory.csv (step,layer,metric,value) and returns their mean over layers. Empty without memory layers.
     */
    public java.util.Map<String, Double> memoryDiagnostics() {
        var layers = model.memoryLayers();
        java.util.Map<String, Double> mean = new java.util.LinkedHashMap<>();
        StringBuilder rows = new StringBuilder();
        for (int k = 0; k < layers.size(); k++) {
            for (var e : layers.get(k).diagnostics().entrySet()) {
                mean.merge(e.getKey(), e.getValue() / layers.size(), Double::sum);
                rows.append(step).append(',').append(k).append(',').append(e.getKey()).append(',').append(e.getValue()).append('\n');
            }
        }
        if (outDir != null && rows.length() > 0) {
            Path f = outDir.resolve("memory.csv");
            try {
                Files.createDirectories(outDir);
                if (!Files.exists(f)) Files.writeString(f, "step,layer,metric,value\n", StandardCharsets.UTF_8);
                Files.writeString(f, rows, StandardCharsets.UTF_8, java.nio.file.StandardOpenOption.APPEND);
            } catch (IOException e) {
                throw AtomicFiles.writeError(f, e);
            }
        }
        return mean;
    }

    public static float evaluate(Model model, byte[] data, int batches, int B, int T) {
        return evaluate(model, Tokens.of(data), batches, B, T);
    }

    /** Mean loss per token over the fixed validation batches of data. */
    public static float evaluate(Model model, Tokens data, int batches, int B, int T) {
        return (float) score(model, data, null, batches, B, T).meanLoss();
    }

    /**
     * What an evaluation measured: the mean loss per scored token (nats) over {@code tokens} scored
     * target tokens, which stand for {@code bytes} bytes of text (0 when not counted).
     */
    public record Score(double meanLoss, long tokens, long bytes) {
        /** Total nats over ln 2 · bytes: comparable across tokenizers, as every tokenizer here is byte-level. */
        public double bitsPerByte() { return meanLoss * tokens / (Math.log(2) * bytes); }
    }

    /** As {@link #evaluate(Model, Tokens, int, int, int)}, also counting the bytes of the scored targets when tok is given. */
    public static Score score(Model model, Tokens data, Tokenizer tok, int batches, int B, int T) {
        int[] in = new int[B * T], tg = new int[B * T];
        model.setTraining(false);
        double sum = 0;
        long bytes = 0;
        for (int i = 0; i < batches; i++) {
            BatchSampler.evalBatch(data, i, batches, in, tg, B, T);
            sum += model.loss(in, tg, B, T);
            if (tok != null) for (int t : tg) bytes += tok.byteLength(t);
        }
        model.setTraining(true);
        return new Score(sum / batches, (long) batches * B * T, bytes);
    }

    private void recordVal(long s, float v) {
        if (nVal == valLoss.length) {
            valLoss = Arrays.copyOf(valLoss, nVal * 2);
            valSteps = Arrays.copyOf(valSteps, nVal * 2);
        }
        valSteps[nVal] = s;
        valLoss[nVal++] = v;
    }

    /**
     * Writes latest.safetensors in the run folder. The metrics.csv rows up to this step are flushed
     * first, so a process killed at any moment leaves at least the rows of its last checkpoint.
     */
    public Path save() {
        flushMetricsLog();
        Path f = outDir.resolve(Checkpoint.LATEST);
        Checkpoint.save(f, job, model, optimizer, progress(), tokenizer);
        savedStep = step;
        return f;
    }

    public Checkpoint.Progress progress() {
        return new Checkpoint.Progress(step, sampler.state(), corpus.source(), trainLossHistory(), valStepHistory(), valLossHistory());
    }

    /** metrics.csv: one row per step (train loss, LR) with the validation loss where it was measured. */
    public void writeMetrics() {
        StringBuilder sb = new StringBuilder(METRICS_HEADER);
        int vi = 0;
        for (int s = 0; s < step; s++) {
            while (vi < nVal && valSteps[vi] < s + 1) vi++;
            appendRow(sb, s, vi < nVal && valSteps[vi] == s + 1 ? valLoss[vi] : Float.NaN);
        }
        Path f = outDir.resolve("metrics.csv");
        try {
            AtomicFiles.write(f, sb);
        } catch (IOException e) {
            throw AtomicFiles.writeError(f, e);
        }
    }

    private static final String METRICS_HEADER = "step,train_loss,val_loss,lr\n";

    /** Row of step s+1; a NaN val means no validation point at that step. */
    private void appendRow(StringBuilder sb, int s, float val) {
        sb.append(s + 1).append(',').append(trainLoss[s]).append(',').append(Float.isNaN(val) ? "" : Float.toString(val)).append(',')
                .append((float) schedule.lr(s + 1)).append('\n');
    }

    /** Rewrites metrics.csv from the history so far (a killed run may have left rows past its checkpoint), then appends. */
    private void openMetricsLog() {
        writeMetrics();
        Path f = outDir.resolve("metrics.csv");
        try {
            metricsLog = Files.newBufferedWriter(f, StandardCharsets.UTF_8, java.nio.file.StandardOpenOption.APPEND);
        } catch (IOException e) {
            throw AtomicFiles.writeError(f, e);
        }
    }

    private void appendMetricsRow(int s) {
        if (metricsLog == null) return;
        StringBuilder sb = new StringBuilder(64);
        appendRow(sb, s, nVal > 0 && valSteps[nVal - 1] == s + 1 ? valLoss[nVal - 1] : Float.NaN);
        try {
            metricsLog.append(sb);
        } catch (IOException e) {
            throw AtomicFiles.writeError(outDir.resolve("metrics.csv"), e);
        }
    }

    private void flushMetricsLog() {
        if (metricsLog == null) return;
        try {
            metricsLog.flush();
        } catch (IOException e) {
            throw AtomicFiles.writeError(outDir.resolve("metrics.csv"), e);
        }
    }

    private void closeMetricsLog() {
        if (metricsLog == null) return;
        java.io.Writer w = metricsLog;
        metricsLog = null;
        try {
            w.close();
        } catch (IOException ignored) {
            // the whole file is rewritten from the history right after (and a failure there is reported)
        }
    }
}
