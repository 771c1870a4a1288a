package dev.ultramem.bench;

import dev.ultramem.core.Parallel;
import dev.ultramem.core.Rng;
import dev.ultramem.core.StepProfile;
import dev.ultramem.model.Model;
import dev.ultramem.model.ModelConfig;
import dev.ultramem.model.ModelCosts;
import dev.ultramem.train.AdamW;
import dev.ultramem.train.LrSchedule;
import dev.ultramem.train.TrainConfig;

/**
 * Training throughput on random tokens: forward, backward and an AdamW step per iteration, with the
 * per-operation profile. {@code main} runs the reference dense configuration (d 256, 4 layers,
 * 4 heads, SwiGLU inner 1024, vocab 256, B 16, T 256).
 */
public final class TrainBench {
    private TrainBench() {}

    /** cpuMsPerStep: CPU time of the calling thread per step (all the work when ultramem.threads=1). */
    public record Result(double tokensPerSecond, double msPerStep, double cpuMsPerStep, float lastLoss, String profile) {}

    public static Result run(ModelConfig cfg, int B, int T, int warmup, int steps) {
        Model m = new Model(cfg);
        m.initialize(1);
        TrainConfig tc = new TrainConfig();
        tc.steps = warmup + steps;
        tc.warmupSteps = 1;
        AdamW opt = new AdamW(m.params(), tc);
        LrSchedule sched = new LrSchedule(tc, cfg.memType);
        Rng rng = new Rng(2);
        int[] in = new int[B * T], tg = new int[B * T];
        for (int i = 0; i < in.length; i++) { in[i] = rng.nextInt(cfg.vocabSize); tg[i] = rng.nextInt(cfg.vocabSize); }
        float loss = 0;
        for (int s = 0; s < warmup; s++) loss = step(m, opt, sched, in, tg, B, T);
        boolean wasOn = StepProfile.enabled();
        StepProfile.reset();
        StepProfile.setEnabled(true);
        var mx = java.lang.management.ManagementFactory.getThreadMXBean();
        long c0 = mx.getCurrentThreadCpuTime();
        long t0 = System.nanoTime();
        for (int s = 0; s < steps; s++) loss = step(m, opt, sched, in, tg, B, T);
        long dt = System.nanoTime() - t0;
        long cpu = mx.getCurrentThreadCpuTime() - c0;
        StepProfile.setEnabled(wasOn);
        double sec = dt / 1e9;
        return new Result((double) B * T * steps / sec, sec * 1e3 / steps, cpu / 1e6 / steps, loss, StepProfile.report());
    }

    private static float step(Model m, AdamW opt, LrSchedule sched, int[] in, int[] tg, int B, int T) {
        opt.zeroGrad();
        float l = m.forwardBackward(in, tg, B, T);
        opt.step(sched);
        m.afterWeightsChanged();
        return l;
    }

    private static Model m(ModelConfig c) { return new Model(c); }

    public static void main(String[] args) {
        ModelConfig c = new ModelConfig();
        c.vocabSize = 256; c.dModel = 256; c.nLayers = 4; c.nHeads = 4; c.mlpHiddenSize = 2048; c.maxSeqLen = 256;
        int B = args.length > 0 ? Integer.parseInt(args[0]) : 16;
        int T = args.length > 1 ? Integer.parseInt(args[1]) : 256;
        int steps = args.length > 2 ? Integer.parseInt(args[2]) : 5;
        double ceiling = FmaPeak.measure(Parallel.threads(), 40, 7);
        Result r = run(c, B, T, 2, steps);
        long macs = ModelCosts.of(m(c), T).forwardMacsPerToken();
        double gflops = 6.0 * macs * r.tokensPerSecond() / 1e9;
        System.out.printf("threads %d, B %d, T %d: %.0f tokens/s, %.1f ms/step (main thread CPU %.1f ms/step), loss %.4f%n"
                        + "training ≈ 3 × %d MACs/token: %.1f GFLOP/s, model-FLOP utilisation %.1f%% of the FMA ceiling %.1f%n%s",
                Parallel.threads(), B, T, r.tokensPerSecond(), r.msPerStep(), r.cpuMsPerStep(), r.lastLoss(),
                macs, gflops, 100 * gflops / ceiling, ceiling, r.profile());
    }
}
