package dev.ultramem.cli;

import dev.ultramem.bench.DecodeBench;
import dev.ultramem.bench.ProcessStats;
import dev.ultramem.model.MemoryPlan;
import dev.ultramem.model.Model;
import dev.ultramem.model.ModelCosts;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.core.Parallel;
import dev.ultramem.core.UserError;
import dev.ultramem.io.AtomicFiles;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.Styler;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;

@Command(name = "decode", mixinStandardHelpOptions = true,
        description = {"Decode latency against batch size (UltraMem Fig. 1 on a CPU): dense, MoE top-2 and top-8, UltraMem and",
                "UltraMemV2 at matched activated compute, the sparse ones at matched total parameters; with bytes read per",
                "step and each step's two floors, bytes ÷ memory bandwidth and multiply-adds ÷ FMA peak (both measured in the",
                "same run); bf16-table variants of the memory models. Then one UltraMemV2 layer and a MoE layer of equal",
                "parameters at the official decode settings. With --checkpoint, the model of a checkpoint instead, its",
                "tables mapped from the file (e.g. one written by init, larger than RAM): the page faults per token and the",
                "peak resident set show what decoding it keeps in memory."})
final class BenchDecodeCommand implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Option(names = "--d", description = "model width (default: ${DEFAULT-VALUE})") int d = 512;
    @Option(names = "--layers", description = "blocks (default: ${DEFAULT-VALUE})") int layers = 8;
    @Option(names = "--heads", description = "attention heads (default: ${DEFAULT-VALUE})") int heads = 8;
    @Option(names = "--sparse-ratio", description = "total parameters of the sparse models ÷ the dense model's (default: ${DEFAULT-VALUE})")
    double ratio = 12;
    @Option(names = "--batches", split = ",", description = "batch sizes (default: 1,4,16,64,256,1024)")
    int[] batches = {1, 4, 16, 64, 256, 1024};
    @Option(names = "--context", description = "cached positions per sequence (default: ${DEFAULT-VALUE})") int context = 128;
    @Option(names = "--max-kv-gb", description = "skip a batch whose KV cache exceeds this (default: ${DEFAULT-VALUE})")
    double maxKvGb = 6;
    @Option(names = "--models", split = ",", description = "only these models (names as printed)") List<String> only;
    @Option(names = "--samples", description = "timed steps per point, the median reported (default: ${DEFAULT-VALUE})") int samples = 5;
    @Option(names = "--kv-bf16", description = "every decoder keeps its KV cache as bfloat16 (half the KV bytes per step)") boolean kvBf16;
    @Option(names = "--skip-layer-level", description = "skip the official layer-level comparison") boolean skipLayerLevel;
    @Option(names = "--out", description = "folder for decode.md, decode.csv and decode.png") Path out;
    @Option(names = "--checkpoint", paramLabel = "RUN", description = "bench this checkpoint's model (a run folder or file), tables mapped, "
            + "instead of the built-in family; --d, --layers, --heads and --sparse-ratio do not apply")
    Path checkpoint;
    @CommandLine.Mixin ThreadsOption threads = new ThreadsOption();

    @Override
    public Integer call() throws IOException {
        threads.apply();
        DecodeBench.check(d, layers, heads, context, batches);
        if (samples < 1) throw new UserError("--samples must be >= 1");
        if (out != null && Files.exists(out) && !Files.isDirectory(out)) throw new UserError("--out " + out + " is not a folder");
        ByteArrayOutputStream copy = new ByteArrayOutputStream();
        PrintStream both = new PrintStream(new TeeStream(System.out, copy), true, StandardCharsets.UTF_8);
        if (checkpoint != null) return benchCheckpoint(both, copy);
        both.printf("bench decode: d %d, %d layers, %d heads, sparse models at %.1f× the dense model's parameters, %d threads, %s%n",
                d, layers, heads, ratio, Parallel.threads(), System.getProperty("os.arch"));
        List<DecodeBench.Entry> models = DecodeBench.family(d, layers, heads, ratio);
        if (only != null) {
            models = models.stream().filter(e -> only.contains(e.name())).toList();
            if (models.isEmpty()) throw new UserError("--models: none of " + only + " is a model of the bench");
        }
        java.util.Map<String, Double> prefill = new java.util.LinkedHashMap<>();
        if (kvBf16) both.println("KV cache: bfloat16");
        List<DecodeBench.Point> points = DecodeBench.run(both, models, batches, context, maxKvGb, bandwidth(), fmaPeak(), samples,
                prefill, kvBf16);
        both.println("prefill (4 prompts of " + context + " tokens in one call):");
        prefill.forEach((name, tps) -> both.printf("  %s: %,.0f tokens/s%n", name, tps));
        if (!skipLayerLevel) DecodeBench.layerLevel(both, samples);
        if (out != null) write(points, copy.toString(StandardCharsets.UTF_8));
        return 0;
    }

    /** The decode table for one checkpoint's model with its tables mapped (no layer-level comparison). */
    private int benchCheckpoint(PrintStream both, ByteArrayOutputStream copy) throws IOException {
        Capacity.requireForCheckpoint(checkpoint, MemoryPlan.Use.GENERATE, j -> {});
        ProcessStats before = ProcessStats.now();
        Checkpoint.Loaded ck = Checkpoint.load(checkpoint, false, true);
        Model m = ck.model();
        m.setTraining(false);
        if (context > m.config().maxSeqLen)
            throw new UserError("--context " + context + " exceeds the checkpoint's max_seq_len " + m.config().maxSeqLen);
        long mapped = 0;
        for (var p : m.params()) if (p.isMapped()) mapped += p.numel() * p.elementBytes();
        ProcessStats loaded = ProcessStats.now();
        both.printf("checkpoint %s: tables mapped from the file: %s; loading took %,d minor and %,d major page faults, peak RSS %s%n",
                ck.file(), MemoryPlan.human(mapped), loaded.minorFaults() - before.minorFaults(), loaded.majorFaults() - before.majorFaults(),
                MemoryPlan.human(loaded.peakRssBytes()));
        String name = ck.file().toAbsolutePath().getParent().getFileName().toString();
        DecodeBench.Entry e = new DecodeBench.Entry(name, m.config(), ModelCosts.of(m, m.config().maxSeqLen));
        java.util.Map<String, Double> prefill = new java.util.LinkedHashMap<>();
        m.useBf16KvCache(kvBf16);
        List<DecodeBench.Point> points = DecodeBench.run(both, List.of(e), x -> m, batches, context, maxKvGb, bandwidth(), fmaPeak(),
                samples, prefill);
        both.printf("prefill (4 prompts of %d tokens in one call): %,.0f tokens/s%n", context, prefill.get(name));
        if (out != null) write(points, copy.toString(StandardCharsets.UTF_8));
        return 0;
    }

    /** The in-run references of the floors: streaming read bandwidth (bytes/s) and FMA peak (FLOP/s), all threads. */
    private static double bandwidth() { return dev.ultramem.bench.StreamBandwidth.readGBs(Parallel.threads(), 4) * 1e9; }

    private static double fmaPeak() { return dev.ultramem.bench.FmaPeak.measure(Parallel.threads(), 40, 5) * 1e9; }

    private void write(List<DecodeBench.Point> points, String report) throws IOException {
        Files.createDirectories(out);
        StringBuilder csv = new StringBuilder("model,batch,step_ms,tokens_per_s,param_bytes,kv_bytes,floor_ms,compute_floor_ms,"
                + "minor_faults_per_token,major_faults_per_token\n");
        for (DecodeBench.Point p : points)
            csv.append(String.format("%s,%d,%.4f,%.1f,%d,%d,%.4f,%.4f,%.3f,%.3f%n", p.model(), p.batch(), p.stepMs(), p.tokensPerSec(),
                    p.paramBytes(), p.kvBytes(), p.floorMs(), p.computeFloorMs(), p.minorFaultsPerToken(), p.majorFaultsPerToken()));
        AtomicFiles.write(out.resolve("decode.csv"), csv);
        AtomicFiles.write(out.resolve("decode.md"), report);
        System.setProperty("java.awt.headless", "true");
        XYChart chart = new XYChartBuilder().width(900).height(560).title("decode step latency")
                .xAxisTitle("batch size").yAxisTitle("ms per step").build();
        chart.getStyler().setXAxisLogarithmic(true).setYAxisLogarithmic(true).setLegendPosition(Styler.LegendPosition.InsideNW);
        for (String m : points.stream().map(DecodeBench.Point::model).distinct().toList()) {
            List<DecodeBench.Point> ps = points.stream().filter(p -> p.model().equals(m)).toList();
            chart.addSeries(m, ps.stream().mapToDouble(DecodeBench.Point::batch).toArray(),
                    ps.stream().mapToDouble(DecodeBench.Point::stepMs).toArray());
        }
        try {
            AtomicFiles.write(out.resolve("decode.png"), BitmapEncoder.getBitmapBytes(chart, BitmapEncoder.BitmapFormat.PNG));
        } catch (Exception | LinkageError e) {
            System.err.println("warning: could not render decode.png (" + e + ")");
        }
        System.out.println("wrote " + out.resolve("decode.md") + ", decode.csv and decode.png");
    }

    /** Writes to two streams (the console and the report). */
    private static final class TeeStream extends java.io.OutputStream {
        private final java.io.OutputStream a, b;
        TeeStream(java.io.OutputStream a, java.io.OutputStream b) { this.a = a; this.b = b; }
        @Override public void write(int c) throws IOException { a.write(c); b.write(c); }
        @Override public void write(byte[] buf, int off, int len) throws IOException { a.write(buf, off, len); b.write(buf, off, len); }
        @Override public void flush() throws IOException { a.flush(); b.flush(); }
    }
}
