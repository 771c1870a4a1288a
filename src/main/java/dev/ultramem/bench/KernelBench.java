package dev.ultramem.bench;

import dev.ultramem.core.Parallel;
import dev.ultramem.kernel.Kernels;
import dev.ultramem.kernel.VectorKernels;

import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Random;

/**
 * In-process GEMM benchmark: GFLOP/s of {@link Kernels#get()} on 1024³ in the three layouts, on the
 * shapes of a training step (d = 256, 4096 tokens) and on decode GEMVs, with 1 thread and with N threads, each also
 * as a fraction of the machine's ceiling in the same run (a register-only FMA loop, {@link FmaPeak}), after the
 * streaming read bandwidth ({@link StreamBandwidth}).
 * Each figure is the best of several timed samples after a warm-up (the best sample is the least disturbed
 * by other processes sharing the cores).
 */
public final class KernelBench {

    private KernelBench() {}

    /** One benchmarked call: layout and shape. */
    record Shape(String layout, int m, int n, int k, String what) {
        long flops() { return 2L * m * n * k; }
    }

    static final Shape[] SHAPES = {
        new Shape("NT", 1024, 1024, 1024, "square"),
        new Shape("NN", 1024, 1024, 1024, "square"),
        new Shape("TN", 1024, 1024, 1024, "square"),
        new Shape("NT", 4096, 768, 256, "qkv forward"),
        new Shape("NT", 4096, 2048, 256, "ffn up forward"),
        new Shape("NT", 4096, 256, 1024, "ffn down forward"),
        new Shape("NN", 4096, 256, 768, "qkv input grad"),
        new Shape("TN", 768, 256, 4096, "qkv weight grad"),
        new Shape("TN", 256, 1024, 4096, "ffn weight grad"),
        new Shape("NT", 1, 2048, 256, "decode gemv"),
        new Shape("NT", 1, 256, 1024, "decode gemv"),
    };

    /** The FMA ceiling (GFLOP/s) with 1 and with N threads, the better of a measurement before and after the shapes. */
    public record Ceiling(double oneThread, double nThreads) {}

    /**
     * Prints the FMA ceiling, the streaming read bandwidth, then one line per shape: GFLOP/s and the fraction of
     * the ceiling with 1 thread and with {@code threads} threads. The ceiling is measured before and after the
     * shapes and the higher figure is used, so on a busy machine the fractions err low, not high.
     * quick = shorter samples (for smoke runs); the thread count of {@link Parallel} is restored afterwards.
     */
    public static Ceiling run(PrintStream out, int threads, boolean quick) {
        Kernels kn = Kernels.get();
        int saved = Parallel.threads();
        double sampleSec = quick ? 0.03 : 0.12;
        int samples = quick ? 3 : 7;
        out.printf("kernels=%s threads=%d samples=%d (best of, %.0f ms each); %s%n", kn.name(), threads, samples,
                sampleSec * 1000, VectorKernels.gemmDescription());
        Random rnd = new Random(1);
        try {
            int loops = quick ? 10 : 40;
            double p1 = FmaPeak.measure(1, loops, samples), pn = threads == 1 ? p1 : FmaPeak.measure(threads, loops, samples);
            double bw1 = StreamBandwidth.readGBs(1, samples), bwn = threads == 1 ? bw1 : StreamBandwidth.readGBs(threads, samples);
            out.printf("stream read (256 MB array): %.1f GB/s on 1 thread, %.1f GB/s on %d threads%n", bw1, bwn, threads);
            double[][] g = new double[SHAPES.length][];
            for (int i = 0; i < SHAPES.length; i++) {
                Shape s = SHAPES[i];
                float[] a = rand(rnd, (long) s.m * s.k), b = rand(rnd, (long) s.n * s.k), c = new float[s.m * s.n];
                double[] g1 = measure(kn, s, a, b, c, 1, sampleSec, samples);
                double gn = threads == 1 ? g1[0] : measure(kn, s, a, b, c, threads, sampleSec, samples)[0];
                g[i] = new double[] {g1[0], g1[1], gn, g1[2]};
            }
            double q1 = FmaPeak.measure(1, loops, samples), qn = threads == 1 ? q1 : FmaPeak.measure(threads, loops, samples);
            Ceiling ceil = new Ceiling(Math.max(p1, q1), Math.max(pn, qn));
            out.printf("FMA ceiling (register-only loop), GFLOP/s: 1 thread %.1f before, %.1f after the shapes; %d threads %.1f, %.1f%n",
                    p1, q1, threads, pn, qn);
            out.printf("%-4s %6s %6s %6s  %-18s %10s %6s %10s %10s %6s %12s%n", "op", "M", "N", "K", "use", "1 thr", "ceil", "1 thr cpu",
                    threads + " thr", "ceil", "alloc B/call");
            for (int i = 0; i < SHAPES.length; i++) {
                Shape s = SHAPES[i];
                out.printf("%-4s %6d %6d %6d  %-18s %10.1f %5.0f%% %10.1f %10.1f %5.0f%% %12.0f%n", s.layout, s.m, s.n, s.k, s.what,
                        g[i][0], 100 * g[i][0] / ceil.oneThread, g[i][1], g[i][2], 100 * g[i][2] / ceil.nThreads, g[i][3]);
            }
            out.println("GFLOP/s = 2·M·N·K / best sample time; ceil = GFLOP/s ÷ the higher FMA ceiling of the same thread count;"
                    + " '1 thr cpu' divides by the CPU time of the calling thread instead of wall time;"
                    + " alloc = heap bytes the 1-thread calls allocated per call after the warm-up (0 when the JIT keeps every"
                    + " vector in registers; boxed vectors show here first)");
            return ceil;
        } finally {
            Parallel.setThreads(saved);
        }
    }

    private static float[] rand(Random r, long n) {
        float[] x = new float[Math.toIntExact(n)];
        for (int i = 0; i < x.length; i++) x[i] = r.nextFloat() - 0.5f;
        return x;
    }

    private static void call(Kernels kn, Shape s, float[] a, float[] b, float[] c) {
        switch (s.layout) {
            case "NT" -> kn.gemmNT(s.m, s.n, s.k, a, 0, b, 0, c, 0, false);
            case "NN" -> kn.gemmNN(s.m, s.n, s.k, a, 0, b, 0, c, 0, false);
            default -> kn.gemmTN(s.m, s.n, s.k, a, 0, b, 0, c, 0, false);
        }
    }

    /** Returns {best wall-clock GFLOP/s, best GFLOP/s per CPU-second of this thread, heap bytes allocated per call (1 thread; NaN otherwise)}. */
    private static double[] measure(Kernels kn, Shape s, float[] a, float[] b, float[] c, int threads, double sampleSec, int samples) {
        Parallel.setThreads(threads);
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        boolean cpuOk = mx.isCurrentThreadCpuTimeSupported();
        // Warm up until the per-call time stops improving: the first calls run interpreted or C1-compiled
        // vector code, which is orders of magnitude slower, and C2 may take a while on a busy machine.
        long start = System.nanoTime();
        int reps = 1;
        double prev = Double.MAX_VALUE;
        while (true) {
            long st = System.nanoTime();
            for (int r = 0; r < reps; r++) call(kn, s, a, b, c);
            double perCall = (System.nanoTime() - st) / 1e9 / reps;
            reps = Math.max(1, (int) (sampleSec / perCall));
            double elapsed = (System.nanoTime() - start) / 1e9;
            if ((perCall > 0.95 * prev && elapsed > 15 * sampleSec) || elapsed > 80 * sampleSec) break;
            prev = Math.min(prev, perCall);
        }
        double best = Double.MAX_VALUE, bestCpu = Double.MAX_VALUE;
        for (int i = 0; i < samples; i++) {
            long cpu = cpuOk ? mx.getCurrentThreadCpuTime() : 0;
            long st = System.nanoTime();
            for (int r = 0; r < reps; r++) call(kn, s, a, b, c);
            best = Math.min(best, (System.nanoTime() - st) / 1e9 / reps);
            if (cpuOk) bestCpu = Math.min(bestCpu, (mx.getCurrentThreadCpuTime() - cpu) / 1e9 / reps);
        }
        // On 1 thread only (worker threads allocate on their own counters): a separate pass, bracketed by two
        // readings of the counter, whose own allocation is measured and taken off.
        double allocPerCall = Double.NaN;
        if (threads == 1 && mx instanceof com.sun.management.ThreadMXBean t && t.isThreadAllocatedMemoryEnabled()) {
            long empty0 = t.getCurrentThreadAllocatedBytes(), empty1 = t.getCurrentThreadAllocatedBytes();
            long alloc0 = t.getCurrentThreadAllocatedBytes();
            for (int r = 0; r < reps; r++) call(kn, s, a, b, c);
            long alloc1 = t.getCurrentThreadAllocatedBytes();
            allocPerCall = Math.max(0, (alloc1 - alloc0) - (empty1 - empty0)) / (double) reps;
        }
        return new double[] {s.flops() / best / 1e9, cpuOk ? s.flops() / bestCpu / 1e9 : Double.NaN, allocPerCall};
    }

    public static void main(String[] args) {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : Runtime.getRuntime().availableProcessors();
        boolean quick = args.length > 1 && args[1].equals("quick");
        run(System.out, threads, quick);
    }
}
