package dev.ultramem.bench;

import dev.ultramem.core.Param;
import dev.ultramem.core.Parallel;
import dev.ultramem.core.Rng;
import dev.ultramem.layer.TokenLayer;
import dev.ultramem.memory.SharedMemory;
import dev.ultramem.model.FeedForwards;
import dev.ultramem.model.LayerConfigs;
import dev.ultramem.model.MemoryLayers;
import dev.ultramem.model.MemoryPlacement;
import dev.ultramem.model.ModelConfig;
import dev.ultramem.model.PresetFamily;

import java.io.PrintStream;
import java.util.Arrays;

/**
 * One FFN-slot or memory layer of each preset-family model, alone on random unit-variance input:
 * tokens/s of the forward and of forward+backward at n = 4096 tokens (best sample after a warm-up)
 * with 1 and N threads, and the parameter bytes a forward reads per token at batch sizes 1, 8, 64,
 * 512 ({@link TokenLayer#lastForwardParamBytes()} / B after a forward over B tokens). Ends with the
 * UltraMemV2 preset's memory layer against the FFN it sits beside.
 */
public final class LayerBench {
    private LayerBench() {}

    static final int[] BATCHES = {1, 8, 64, 512};

    /** A layer under test with its input/output buffers. */
    static final class Case {
        final String label;
        final TokenLayer layer;
        final int d, n;
        final float[] x, y, dy, dx;
        final long params;

        Case(String label, TokenLayer layer, SharedMemory shared, int d, int n, Rng rng) {
            this.label = label;
            this.layer = layer;
            this.d = d;
            this.n = n;
            x = gaussian(rng, n * d);
            y = new float[n * d];
            dy = gaussian(rng, n * d);
            dx = new float[n * d];
            long p = 0;
            for (Param q : layer.params()) if (q.trainable) p += q.numel();
            if (shared != null) for (Param q : shared.params()) p += q.numel();
            params = p;
        }

        void forward() { layer.forward(x, y, n); }

        void forwardBackward() {
            layer.forward(x, y, n);
            Arrays.fill(dx, 0f);
            layer.backward(x, dy, dx, n);
        }
    }

    static float[] gaussian(Rng rng, int n) {
        float[] a = new float[n];
        rng.fillNormal(a, 1.0);
        return a;
    }

    /** The FFN-slot layer of a preset (its {@code ffn_type} and width). */
    static Case ffnCase(String label, ModelConfig cfg, int n, Rng rng) {
        TokenLayer l = FeedForwards.create(cfg, "bench.");
        l.initialize(rng);
        return new Case(label, l, null, cfg.dModel, n, rng);
    }

    /** Memory layer 0 of a preset, with the shared tables sized for all of the preset's memory layers. */
    static Case memoryCase(String label, ModelConfig cfg, int n, Rng rng) {
        int layers = MemoryPlacement.parse(cfg.memInsertWay, cfg.nLayers).size();
        SharedMemory shared = MemoryLayers.shared(cfg, layers, "bench.full_memory_layer.");
        TokenLayer l = MemoryLayers.create(cfg, 0, layers, shared, "bench.mem.");
        l.initialize(rng);
        shared.initialize(LayerConfigs.memory(cfg), rng);
        return new Case(label, l, shared.values == null ? null : shared, cfg.dModel, n, rng);
    }

    /** Best seconds per call over {@code samples} after {@code warm} untimed calls. */
    static double best(Runnable r, int warm, int samples) {
        for (int i = 0; i < warm; i++) r.run();
        double best = Double.MAX_VALUE;
        for (int i = 0; i < samples; i++) {
            long t = System.nanoTime();
            r.run();
            best = Math.min(best, (System.nanoTime() - t) / 1e9);
        }
        return best;
    }

    /** Timed with 1 thread and with {@code threads} threads. */
    public static void run(PrintStream out, boolean quick, int threads) { run(out, quick, 4096, threads); }

    /** As {@link #run(PrintStream, boolean, int)} with n tokens per timed call (small n for smoke tests). */
    static void run(PrintStream out, boolean quick, int tokens, int threads) {
        int saved = Parallel.threads();
        int warm = quick ? 1 : 2, samples = quick ? 2 : 5;
        Rng rng = new Rng(42);
        String[][] rows = {
            {"dense FFN", "family-dense"}, {"MoE 2/16", "family-moe-2of16"}, {"MoE 8/64", "family-moe-8of64"},
            {"PKM", "family-pkm"}, {"Memory+", "family-memory-plus"}, {"UltraMem v1", "family-ultramem"},
            {"UltraMemV2", "family-ultramem-v2"}};
        out.printf("one layer at the preset-family settings (d 256), n = %d tokens, best of %d after %d warm-up; threads 1 / %d%n",
                tokens, samples, warm, threads);
        out.printf("%-12s %11s %9s %11s %11s %11s %11s %9s %9s %9s %9s%n", "layer", "params", "MACs/tok",
                "fwd tok/s 1", "fwd tok/s " + threads, "f+b tok/s 1", "f+b tok/s " + threads,
                "B/tok@1", "B/tok@8", "B/tok@64", "B/tok@512");
        Case v2mem = null;
        try {
            for (String[] r : rows) {
                ModelConfig cfg = PresetFamily.modelConfig(r[1]);
                Case c = cfg.hasMemory() ? memoryCase(r[0], cfg, tokens, rng) : ffnCase(r[0], cfg, tokens, rng);
                if (cfg.memType.equals("ultramem_v2")) v2mem = c;
                double[] fwd = new double[2], fb = new double[2];
                int[] thr = {1, threads};
                for (int t = 0; t < 2; t++) {
                    Parallel.setThreads(thr[t]);
                    fwd[t] = best(c::forward, warm, samples);
                    fb[t] = best(c::forwardBackward, warm, samples);
                }
                long[] bytes = bytesPerToken(c, rng);
                out.printf("%-12s %,11d %,9d %11.0f %11.0f %11.0f %11.0f %,9d %,9d %,9d %,9d%n", c.label, c.params,
                        c.layer.forwardMacsPerToken(), tokens / fwd[0], tokens / fwd[1], tokens / fb[0], tokens / fb[1],
                        bytes[0], bytes[1], bytes[2], bytes[3]);
            }
            // The memory layer must cost less time than the FFN beside it (UltraMemV2 preset, every block).
            ModelConfig v2 = PresetFamily.modelConfig("family-ultramem-v2");
            Case mem = v2mem != null ? v2mem : memoryCase("UltraMemV2 memory", v2, tokens, rng);
            Case ffn = ffnCase("UltraMemV2 FFN", v2, tokens, rng);
            Parallel.setThreads(threads);
            // samples alternate between the two layers so both see the same background load
            double tm = Double.MAX_VALUE, tf = Double.MAX_VALUE, fm = Double.MAX_VALUE, ff = Double.MAX_VALUE;
            for (int i = 0; i < warm; i++) { mem.forwardBackward(); ffn.forwardBackward(); }
            for (int i = 0; i < Math.max(5, samples); i++) {
                tm = Math.min(tm, best(mem::forwardBackward, 0, 1));
                tf = Math.min(tf, best(ffn::forwardBackward, 0, 1));
                fm = Math.min(fm, best(mem::forward, 0, 1));
                ff = Math.min(ff, best(ffn::forward, 0, 1));
            }
            out.printf("UltraMemV2 preset, n = %d, %d threads: memory layer f+b %.1f ms vs its FFN (inner %d) f+b %.1f ms -> ratio %.2f"
                            + " (forward %.1f vs %.1f ms, ratio %.2f); MACs/token %,d vs %,d%n",
                    tokens, threads, tm * 1e3, v2.mlpHiddenSize / 2, tf * 1e3, tm / tf, fm * 1e3, ff * 1e3, fm / ff,
                    mem.layer.forwardMacsPerToken(), ffn.layer.forwardMacsPerToken());
        } finally {
            Parallel.setThreads(saved);
        }
    }

    /** Parameter bytes per token of a forward over B tokens, for each B in {@link #BATCHES}. */
    static long[] bytesPerToken(Case c, Rng rng) {
        long[] out = new long[BATCHES.length];
        for (int i = 0; i < BATCHES.length; i++) {
            int b = BATCHES[i];
            float[] x = gaussian(rng, b * c.d), y = new float[b * c.d];
            c.layer.forward(x, y, b);
            out[i] = Math.round((double) c.layer.lastForwardParamBytes() / b);
        }
        return out;
    }

    public static void main(String[] args) {
        run(System.out, args.length > 0 && args[0].equals("quick"), Runtime.getRuntime().availableProcessors());
    }
}
