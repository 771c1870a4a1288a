package dev.ultramem.cli;

import dev.ultramem.bench.FmaPeak;
import dev.ultramem.bench.KernelBench;
import dev.ultramem.bench.LayerBench;
import dev.ultramem.core.Parallel;
import dev.ultramem.core.StepProfile;
import dev.ultramem.core.UserError;
import dev.ultramem.data.BatchSampler;
import dev.ultramem.data.SyntheticCorpus;
import dev.ultramem.model.Model;
import dev.ultramem.model.ModelCosts;
import dev.ultramem.train.AdamW;
import dev.ultramem.train.LrSchedule;
import dev.ultramem.train.JobConfig;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

@Command(name = "bench", mixinStandardHelpOptions = true, subcommands = {BenchDecodeCommand.class, BenchServeCommand.class},
        description = {"Benchmarks kernels, memory and FFN layers, training steps and batch-1 decoding.",
                "Training throughput is measured in full steps on a preset (default ref-256, B=16, T=256); decoding also reports the implied memory bandwidth."})
final class BenchCommand implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Option(names = "--preset", description = "model preset (default: ${DEFAULT-VALUE})")
    String preset = "ref-256";

    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "config override")
    List<String> overrides = new ArrayList<>();

    @Option(names = "--batch", description = "batch size (default: ${DEFAULT-VALUE})")
    int batch = 16;

    @Option(names = "--seq", description = "sequence length (default: ${DEFAULT-VALUE})")
    int seq = 256;

    @Option(names = "--steps", description = "measured training steps (default: 5, quick: 2)")
    Integer steps;

    @Option(names = "--decode-tokens", description = "decoded tokens (default: ${DEFAULT-VALUE})")
    int decodeTokens = 128;

    @CommandLine.Mixin ThreadsOption threads = new ThreadsOption();

    @Option(names = "--quick", description = "fewer repetitions")
    boolean quick;

    @Option(names = "--skip-kernels", description = "skip the kernel benchmark")
    boolean skipKernels;

    @Option(names = "--skip-layers", description = "skip the per-layer benchmark (tokens/s and bytes read per token of each layer type)")
    boolean skipLayers;

    @Override
    public Integer call() throws Exception {
        PrintWriter o = spec.commandLine().getOut();
        threads.apply();
        if (batch < 1 || seq < 1 || decodeTokens < 1) throw new UserError("--batch, --seq and --decode-tokens must be >= 1");
        int nThreads = Parallel.threads();
        // the FMA ceiling of this run: model-FLOP utilisation of the training step is measured against it
        double ceiling = skipKernels ? quickCeiling(o, nThreads) : kernelBench(o, nThreads).nThreads();
        if (!skipLayers) layerBench(o, nThreads);
        List<String> sets = new ArrayList<>(overrides);
        sets.add("train.batch_size=" + batch);
        sets.add("train.seq_len=" + seq);
        JobConfig job = JobConfig.build(preset, null, sets);
        Model model = new Model(job.model);
        model.initialize(1);
        model.afterWeightsChanged();
        o.printf("== training throughput: preset %s, B=%d, T=%d, %d threads, kernels %s%n", preset, batch, seq, nThreads,
                dev.ultramem.kernel.Kernels.get().name());
        int measured = steps != null ? steps : (quick ? 2 : 5);
        if (measured < 1) throw new UserError("--steps must be >= 1");
        byte[] text = SyntheticCorpus.generate(SyntheticCorpus.DEFAULT_SEED, Math.max(1 << 16, 4 * seq));
        BatchSampler sampler = new BatchSampler(text, 1);
        int[] in = new int[batch * seq], tg = new int[batch * seq];
        AdamW opt = new AdamW(model.params(), job.train);
        LrSchedule schedule = new LrSchedule(job.train, job.model.memType);
        int warm = quick ? 1 : 2;
        double sec = 0;
        for (int s = 0; s < warm + measured; s++) {
            sampler.next(in, tg, batch, seq);
            if (s == warm) { StepProfile.reset(); StepProfile.setEnabled(true); }
            long t0 = System.nanoTime();
            opt.zeroGrad();
            model.forwardBackward(in, tg, batch, seq);
            opt.step(schedule);
            model.afterWeightsChanged();
            if (s >= warm) sec += (System.nanoTime() - t0) / 1e9;
        }
        double tps = (double) measured * batch * seq / sec;
        long macs = ModelCosts.of(model, seq).forwardMacsPerToken();
        double gflops = tps * 6 * macs / 1e9;
        o.printf("step %.1f ms, %s tokens/s, %.1f GFLOP/s (6 x %,d multiply-adds per token)%n",
                sec / measured * 1e3, Runs.human(tps), gflops, macs);
        o.printf("model-FLOP utilisation %.1f%% (%.1f GFLOP/s of the %.1f GFLOP/s FMA ceiling on %d threads)%n",
                100 * gflops / ceiling, gflops, ceiling, nThreads);
        StepProfile.setEnabled(false);
        o.println("per-operation breakdown over the measured steps:");
        o.print(StepProfile.report());

        o.printf("== decode at batch 1 (%d tokens)%n", decodeTokens);
        model.setTraining(false);
        // positions 0 … n−1; the same tokens decoded first by warm-up decoders (at least 1 s) so that the timed
        // pass runs compiled code, not the JIT's first tiers
        int n = Math.min(decodeTokens, model.config().maxSeqLen);
        long w0 = System.nanoTime();
        do {
            Model.Decoder first = model.newDecoder(n);
            for (int i = 0; i < n; i++) first.step(text[i] & 0xFF);
        } while (System.nanoTime() - w0 < 1_000_000_000L);
        Model.Decoder dec = model.newDecoder(n);
        long t0 = System.nanoTime();
        for (int i = 0; i < n; i++) dec.step(text[i] & 0xFF);
        double dsec = (System.nanoTime() - t0) / 1e9;
        double dtps = n / dsec;
        long bytesPerToken = ModelCosts.measuredParamBytesPerToken(model, 1);
        o.printf("%s tokens/s, %,d parameter bytes read per token, implied bandwidth %.2f GB/s%n",
                Runs.human(dtps), bytesPerToken, bytesPerToken * dtps / 1e9);
        return 0;
    }

    private KernelBench.Ceiling kernelBench(PrintWriter o, int nThreads) {
        o.println("== kernels");
        o.flush();
        KernelBench.Ceiling c = KernelBench.run(System.out, nThreads, quick);
        System.out.flush();
        return c;
    }

    private double quickCeiling(PrintWriter o, int nThreads) {
        double c = FmaPeak.measure(nThreads, quick ? 10 : 40, quick ? 3 : 7);
        o.printf("== FMA ceiling (register-only loop): %.1f GFLOP/s on %d threads%n", c, nThreads);
        return c;
    }

    private void layerBench(PrintWriter o, int nThreads) {
        o.println("== memory and FFN layers at the matched family settings");
        o.flush();
        LayerBench.run(System.out, quick, nThreads);
        System.out.flush();
    }
}
