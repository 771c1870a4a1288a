package dev.ultramem.bench;

import dev.ultramem.core.Parallel;
import dev.ultramem.kernel.Kernels;

import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Random;

/**
 * In-process GEMM benchmark: GFLOP/s of {@link Kernels#get()} on 1024³ in the three layouts, on the
 * shapes of a training step (d = 256, 4096 tokens) and on decode GEMVs, with 1 thread and with N threads, after
 * the machine's ceiling (a register-only FMA loop, {@link FmaPeak}).
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

    /**
     * Prints one line per shape: GFLOP/s with 1 thread and with {@code threads} threads.
     * quick = shorter samples (for smoke runs); the thread count of {@link Parallel} is restored afterwards.
     */
    public static void run(PrintStream out, int threads, boolean quick) {
        Kernels kn = Kernels.get();
        int saved = Parallel.threads();
        double sampleSec = quick ? 0.03 : 0.12;
        int samples = quick ? 3 : 7;
        out.printf("kernels=%s threads=%d samples=%d (best of, %.0f ms each)%n", kn.name(), threads, samples, sampleSec * 1000);
        out.printf("%-4s %6s %6s %6s  %-18s %10s %10s %10s%n", "op", "M", "N", "K", "use", "1 thr", "1 thr cpu", threads + " thr");
        Random rnd = new Random(1);
        try {
            int loops = quick ? 10 : 40;
            double peak1 = FmaPeak.measure(1, loops, samples), peakN = threads == 1 ? peak1 : FmaPeak.measure(threads, loops, samples);
            out.printf("%-4s %6s %6s %6s  %-18s %10.1f %10s %10.1f%n", "FMA", "", "", "", "peak (no memory)", peak1, "", peakN);
            for (Shape s : SHAPES) {
                float[] a = rand(rnd, (long) s.m * s.k), b = rand(rnd, (long) s.n * s.k), c = new float[s.m * s.n];
                double[] g1 = measure(kn, s, a, b, c, 1, sampleSec, samples);
                double gn = threads == 1 ? g1[0] : measure(kn, s, a, b, c, threads, sampleSec, samples)[0];
                out.printf("%-4s %6d %6d %6d  %-18s %10.1f %10.1f %10.1f%n", s.layout, s.m, s.n, s.k, s.what, g1[0], g1[1], gn);
            }
        } finally {
            Parallel.setThreads(saved);
        }
        out.println("GFLOP/s = 2·M·N·K / best sample time; '1 thr cpu' divides by the CPU time of the calling thread"
                + " instead of wall time (insensitive to other processes taking the core)");
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

    /** Returns {best wall-clock GFLOP/s, best GFLOP/s per CPU-second of this thread}. */
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
        return new double[] {s.flops() / best / 1e9, cpuOk ? s.flops() / bestCpu / 1e9 : Double.NaN};
    }

    public static void main(String[] args) {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : Runtime.getRuntime().availableProcessors();
        boolean quick = args.length > 1 && args[1].equals("quick");
        run(System.out, threads, quick);
    }
}
