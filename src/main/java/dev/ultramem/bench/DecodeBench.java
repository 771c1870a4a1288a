package dev.ultramem.bench;

import dev.ultramem.core.Parallel;
import dev.ultramem.core.Rng;
import dev.ultramem.core.UserError;
import dev.ultramem.layer.TokenLayer;
import dev.ultramem.model.MemoryPlacement;
import dev.ultramem.model.Model;
import dev.ultramem.model.ModelConfig;
import dev.ultramem.model.ModelCosts;
import dev.ultramem.model.PresetFamily;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntFunction;

/**
 * UltraMem Fig. 1 on a CPU: decode-step latency against batch size for a dense model, two MoE models
 * and two memory-layer models at one scale, all at matched activated compute per token and the sparse
 * ones at matched total parameters (a multiple of the dense model's). Beside each step: the parameter
 * bytes the layers say they read, the cached keys and values read, the memory bandwidth measured in the
 * same run, and the step's floor (bytes ÷ bandwidth), so a reader sees how close each model is to being
 * memory-bound. A second table repeats the official layer-level decode comparison (one UltraMemV2 layer
 * against a MoE layer of equal parameters).
 */
public final class DecodeBench {
    private DecodeBench() {}

    /** One model of the comparison: its family name and config, and whether its tables are stored as bf16. */
    public record Entry(String name, ModelConfig config, ModelCosts costs, boolean bf16Tables) {
        public Entry(String name, ModelConfig config, ModelCosts costs) { this(name, config, costs, false); }
    }

    /** One measured point; page faults per token over the timed steps (they matter when tables are mapped from a file). */
    public record Point(String model, int batch, double stepMs, double tokensPerSec, long paramBytes, long kvBytes,
                        double floorMs, double computeFloorMs, double minorFaultsPerToken, double majorFaultsPerToken) {
        /** The larger floor: a step can be no faster than its bytes at the bandwidth nor its multiply-adds at the FMA peak. */
        public double boundMs() { return Math.max(floorMs, computeFloorMs); }
    }

    /** A timed decode step: the median seconds, and this process's page faults over all timed steps. */
    record Step(double seconds, long minorFaults, long majorFaults) {}

    /**
     * The models at width d and depth layers: dense SwiGLU (inner 2d), MoE top-2 and top-8 (experts of
     * inner 2d/k, expert count chosen for the parameter target), UltraMem (two skip layers) and UltraMemV2
     * (every block) with the table size chosen for the target and the FFN narrowed so that their forward
     * multiply-adds per token match the dense model's. Shapes other than width, depth and the searched
     * sizes follow the shipped family presets.
     */
    public static List<Entry> family(int d, int layers, int heads, double sparseRatio) {
        List<Entry> out = new ArrayList<>();
        ModelConfig dense = scaled("family-dense", d, layers, heads);
        dense.mlpHiddenSize = 4 * d;
        ModelCosts denseCosts = ModelCosts.of(dense.validate(), dense.maxSeqLen);
        long target = Math.round(sparseRatio * denseCosts.totalParams());
        long macs = denseCosts.forwardMacsPerToken();
        out.add(new Entry("dense", dense, denseCosts));
        for (int k : new int[]{2, 8}) {
            ModelConfig moe = scaled(k == 2 ? "family-moe-2of16" : "family-moe-8of64", d, layers, heads);
            moe.moeTopK = k;
            moe.moeExpertHidden = 2 * d / k;
            moe.moeNumExperts = search(k, 4096, e -> { moe.moeNumExperts = e; return moe; }, target);
            ModelCosts c = ModelCosts.of(moe.validate(), moe.maxSeqLen);
            out.add(new Entry("moe-" + k + "of" + moe.moeNumExperts, moe, c));
        }
        for (String preset : new String[]{"family-ultramem", "family-ultramem-v2"}) {
            ModelConfig mem = scaled(preset, d, layers, heads);
            if (preset.equals("family-ultramem")) mem.memInsertWay = skipPlacement(layers);
            mem.mlpHiddenSize = 4 * d;
            mem.memKnum = search(8, 1 << 14, kn -> { mem.memKnum = kn; return mem; }, target);
            // narrow the FFN by the memory layers' compute (steps of 16 in mlp_hidden_size, i.e. 8 in the inner width)
            int bestH = mem.mlpHiddenSize;
            long bestGap = Long.MAX_VALUE;
            for (int h = 4 * d; h >= 2 * d; h -= 16) {
                mem.mlpHiddenSize = h;
                long gap = Math.abs(ModelCosts.of(mem.validate(), mem.maxSeqLen).forwardMacsPerToken() - macs);
                if (gap < bestGap) { bestGap = gap; bestH = h; }
            }
            mem.mlpHiddenSize = bestH;
            mem.memKnum = search(8, 1 << 14, kn -> { mem.memKnum = kn; return mem; }, target);
            out.add(new Entry(preset.substring("family-".length()), mem, ModelCosts.of(mem.validate(), mem.maxSeqLen)));
        }
        // the same memory models with bf16 tables: half the table bytes per step, the same compute
        for (Entry e : List.copyOf(out))
            if (e.config().memType != null && !e.config().memType.equals("none"))
                out.add(new Entry(e.name() + "-bf16", e.config(), e.costs(), true));
        return out;
    }

    /** UltraMem v1's skip placement for any depth: two layers, each reading block i and adding after block i + 2. */
    static String skipPlacement(int layers) {
        if (layers < 6) return "0:" + (layers - 1);
        int a = layers / 8, b = layers / 2;
        return a + ":" + (a + 2) + "/" + b + ":" + (b + 2);
    }

    private static ModelConfig scaled(String preset, int d, int layers, int heads) {
        ModelConfig c = PresetFamily.modelConfig(preset).copy();
        c.dModel = d;
        c.nLayers = layers;
        c.nHeads = heads;
        if (c.memType != null && !c.memType.equals("none") && c.memVdim == 256) c.memVdim = d; // Memory+/PKM: vdim = d
        return c;
    }

    /** The value in [lo, hi] whose model's total parameters are closest to target (totals grow with the value). */
    private static int search(int min, int hi, IntFunction<ModelConfig> at, long target) {
        int lo = min;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (ModelCosts.of(at.apply(mid).validate(), 16).totalParams() < target) lo = mid + 1; else hi = mid;
        }
        int best = lo;
        if (lo > min) {
            long above = ModelCosts.of(at.apply(lo).validate(), 16).totalParams() - target;
            long below = target - ModelCosts.of(at.apply(lo - 1).validate(), 16).totalParams();
            if (below < above) best = lo - 1;
        }
        at.apply(best);
        return best;
    }

    /**
     * Median seconds of one decode step of every slot at a full context, after warm-up steps, and the
     * page faults of the timed steps (read from /proc before and after them).
     */
    static Step step(Model.BatchDecoder dec, int batch, int context, int samples, Rng rng) {
        int[] slots = new int[batch], tokens = new int[batch];
        for (int b = 0; b < batch; b++) { slots[b] = b; dec.seek(b, context - 1); }
        double[] t = new double[samples];
        SteadyState.warmUp(() -> {
            for (int b = 0; b < batch; b++) dec.seek(b, context - 1);
            return SteadyState.timed(() -> dec.step(slots, tokens, batch));
        });
        ProcessStats before = ProcessStats.now();
        for (int s = 0; s < samples; s++) {
            for (int b = 0; b < batch; b++) { tokens[b] = rng.nextInt(dec.vocab()); dec.seek(b, context - 1); }
            long t0 = System.nanoTime();
            dec.step(slots, tokens, batch);
            if (s >= 0) t[s] = (System.nanoTime() - t0) / 1e9;
        }
        ProcessStats after = ProcessStats.now();
        java.util.Arrays.sort(t);
        return new Step(t[samples / 2], after.minorFaults() - before.minorFaults(), after.majorFaults() - before.majorFaults());
    }

    /**
     * Measures every model at every batch; prints the table as it goes and returns the points. Each model is
     * built once: its prefill tokens/s (4 prompts of the full context in one call) go into prefill by name.
     */
    public static List<Point> run(PrintStream out, List<Entry> models, int[] batches, int context, double kvBudgetGb,
                                  double bandwidth, double fmaFlops, int samples, java.util.Map<String, Double> prefill,
                                  boolean bf16Kv) {
        return run(out, models, e -> {
            Model m = build(e, context);
            m.useBf16KvCache(bf16Kv);
            return m;
        }, batches, context, kvBudgetGb, bandwidth, fmaFlops, samples, prefill);
    }

    /**
     * As {@link #run(PrintStream, List, int[], int, double, double, double, int, java.util.Map, boolean)} on the models that
     * model gives for the entries (for example one loaded from a checkpoint with its tables mapped); after
     * each model, this process's peak resident set so far.
     */
    public static List<Point> run(PrintStream out, List<Entry> models, java.util.function.Function<Entry, Model> model, int[] batches,
                                  int context, double kvBudgetGb, double bandwidth, double fmaFlops, int samples,
                                  java.util.Map<String, Double> prefill) {
        List<Point> points = new ArrayList<>();
        out.printf("memory bandwidth (streaming read, %d threads): %.1f GB/s; FMA peak %.0f GFLOP/s; context %d cached positions per sequence%n",
                Parallel.threads(), bandwidth / 1e9, fmaFlops / 1e9, context);
        out.println("| model | total params | decode MACs/token | batch | step ms | tokens/s | param MB/step | KV MB/step | bytes floor ms | compute floor ms | step/floor | minor faults/token | major faults/token |");
        out.println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        Rng rng = new Rng(7);
        for (Entry e : models) {
            Model m = model.apply(e);
            ModelConfig c = m.config();
            // a decode token attends to all context cached positions: the costs at 2·context − 1 count ⌊(ctx+1)/2⌋ = context
            long macs = ModelCosts.of(c, 2 * context - 1).forwardMacsPerToken();
            for (int B : batches) {
                long kv = Model.kvCacheBytes(c, B, context, m.usesBf16KvCache());
                Runtime rt = Runtime.getRuntime();
                System.gc();
                long free = rt.maxMemory() - (rt.totalMemory() - rt.freeMemory());
                if (kv > kvBudgetGb * (1L << 30) || kv > 0.85 * free) {
                    out.printf("| %s | | | %d | skipped: a KV cache of %.1f GB exceeds --max-kv-gb %.1f or the free heap (%.1f GB; raise -Xmx via ULTRAMEM_JAVA_OPTS) | | | | | | | | |%n",
                            e.name(), B, kv / (double) (1L << 30), kvBudgetGb, free / (double) (1L << 30));
                    continue;
                }
                Model.BatchDecoder dec = m.newBatchDecoder(B, context);
                Step st = step(dec, B, context, samples, rng);
                double sec = st.seconds();
                long pb = dec.lastParamBytes(), kb = dec.lastKvBytes();
                double floor = (pb + kb) / bandwidth, compute = 2.0 * B * macs / fmaFlops, tokens = (double) B * samples;
                Point p = new Point(e.name(), B, sec * 1e3, B / sec, pb, kb, floor * 1e3, compute * 1e3,
                        st.minorFaults() / tokens, st.majorFaults() / tokens);
                points.add(p);
                out.printf("| %s | %,d | %,d | %d | %.2f | %,.0f | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f |%n", e.name(),
                        e.costs().totalParams(), macs, B, p.stepMs(), p.tokensPerSec(), pb / 1e6, kb / 1e6, p.floorMs(),
                        p.computeFloorMs(), p.stepMs() / p.boundMs(), p.minorFaultsPerToken(), p.majorFaultsPerToken());
                out.flush();
            }
            prefill.put(e.name(), prefillTokensPerSec(m, 4, context));
            long peak = ProcessStats.now().peakRssBytes();
            if (peak >= 0) out.printf("after %s: peak RSS of this process so far %s%n", e.name(), dev.ultramem.model.MemoryPlan.human(peak));
        }
        return points;
    }

    /** An initialised model of the entry in inference mode, with room for context positions. */
    private static Model build(Entry e, int context) {
        ModelConfig c = e.config().copy();
        c.maxSeqLen = Math.max(c.maxSeqLen, context);
        Model m = new Model(c.validate());
        m.initialize(1);
        m.afterWeightsChanged();
        m.setTraining(false);
        if (e.bf16Tables()) m.storeTablesAsBf16();
        return m;
    }

    /** Prefill tokens/s of one model: a batch of prompts of the full context in one call. */
    static double prefillTokensPerSec(Model m, int batch, int context) {
        ModelConfig c = m.config();
        Rng rng = new Rng(3);
        int[][] prompts = new int[batch][context];
        int[] slots = new int[batch];
        for (int b = 0; b < batch; b++) {
            slots[b] = b;
            for (int t = 0; t < context; t++) prompts[b][t] = rng.nextInt(c.vocabSize);
        }
        Model.BatchDecoder dec = m.newBatchDecoder(batch, context);
        double best = Double.MAX_VALUE;
        for (int rep = 0; rep < 3; rep++) {
            for (int b = 0; b < batch; b++) dec.reset(b);
            long t0 = System.nanoTime();
            dec.forward(slots, prompts, batch);
            if (rep > 0) best = Math.min(best, (System.nanoTime() - t0) / 1e9);
        }
        return (double) batch * context / best;
    }

    /** Official layer-level decode figures (PyTorch 1.13, 2 threads, AVX-512 Ice Lake, 2026-12-03), ms per step. */
    static final int[] OFFICIAL_BATCHES = {1, 8, 64, 256, 1024};
    static final double[] OFFICIAL_V2_MS = {2.03, 6.94, 18.15, 39.47, 133.9};
    static final double[] OFFICIAL_MOE_MS = {3.36, 36.0, 197, 297, 415};

    /**
     * One UltraMemV2 layer at the official decode settings (d 1024, knum 627, kdim/vdim/pre_vdim 64, knn 32,
     * 1 head: 50.3M table parameters) and a MoE layer of equal parameters (64 experts of SwiGLU width 256,
     * top-8), one new token per sequence, against the official PyTorch figures.
     */
    public static void layerLevel(PrintStream out, int samples) {
        ModelConfig v2 = PresetFamily.modelConfig("family-ultramem-v2").copy();
        v2.dModel = 1024; v2.nLayers = 1; v2.nHeads = 8; v2.memInsertWay = "full";
        v2.memKnum = 627; v2.memKdim = 64; v2.memVdim = 64; v2.memPreVdim = 64; v2.memKnn = 32; v2.memHead = 1;
        v2.memShareRatio = 1.0;
        ModelConfig moe = PresetFamily.modelConfig("family-moe-8of64").copy();
        moe.dModel = 1024; moe.nLayers = 1; moe.nHeads = 8;
        moe.moeNumExperts = 64; moe.moeTopK = 8; moe.moeExpertHidden = 256;
        int maxB = OFFICIAL_BATCHES[OFFICIAL_BATCHES.length - 1];
        Rng rng = new Rng(5);
        LayerBench.Case mem = LayerBench.memoryCase("ultramem_v2", v2.validate(), maxB, rng);
        LayerBench.Case ffn = LayerBench.ffnCase("moe 8/64", moe.validate(), maxB, rng);
        mem.layer.setTraining(false);
        ffn.layer.setTraining(false);
        // as in a decoder: the layers' dense weights are frozen, so products with more than a few rows read them packed
        java.util.List<float[]> weights = new java.util.ArrayList<>();
        for (TokenLayer l : new TokenLayer[] {mem.layer, ffn.layer})
            for (dev.ultramem.core.Param p : l.params()) if (p.isHeap()) weights.add(p.data());
        dev.ultramem.kernel.Kernels.get().freezeWeights(weights);
        out.printf("layer level: UltraMemV2 (%,d parameters) and MoE 8/64 (%,d parameters), d 1024, one token per sequence%n",
                mem.params, ffn.params);
        out.println("| batch | UltraMemV2 ms | official UltraMemV2 ms | speed-up | MoE 8/64 ms | official MoE ms | speed-up |");
        out.println("|---:|---:|---:|---:|---:|---:|---:|");
        for (int i = 0; i < OFFICIAL_BATCHES.length; i++) {
            int B = OFFICIAL_BATCHES[i];
            SteadyState.warmUp(() -> SteadyState.timed(() -> mem.layer.forward(mem.x, mem.y, B)));
            double a = LayerBench.best(() -> mem.layer.forward(mem.x, mem.y, B), 0, samples) * 1e3;
            SteadyState.warmUp(() -> SteadyState.timed(() -> ffn.layer.forward(ffn.x, ffn.y, B)));
            double b = LayerBench.best(() -> ffn.layer.forward(ffn.x, ffn.y, B), 0, samples) * 1e3;
            out.printf("| %d | %.2f | %.2f | %.1f× | %.2f | %.1f | %.1f× |%n", B, a, OFFICIAL_V2_MS[i],
                    OFFICIAL_V2_MS[i] / a, b, OFFICIAL_MOE_MS[i], OFFICIAL_MOE_MS[i] / b);
            out.flush();
        }
        dev.ultramem.kernel.Kernels.get().thawWeights(weights);
    }

    /** Checks the bench's arguments. */
    public static void check(int d, int layers, int heads, int context, int[] batches) {
        if (d <= 0 || layers <= 0 || heads <= 0 || d % heads != 0 || (d / heads) % 2 != 0)
            throw new UserError("bench decode: --d must be a positive multiple of 2·--heads, got d " + d + ", heads " + heads);
        if (context <= 0) throw new UserError("bench decode: --context must be > 0");
        for (int b : batches) if (b <= 0) throw new UserError("bench decode: batch sizes must be > 0, got " + b);
        MemoryPlacement.parse(skipPlacement(layers), layers);
    }
}
