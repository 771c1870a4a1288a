package dev.ultramem.bench;

import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;

/**
 * The benches' warm-up rule: run a step for at least 1 s, until three consecutive runs agree within 20% and the JIT
 * has compiled nothing for the last 0.3 s (a compile running on the second core during timed runs halves a 2-thread
 * step), at most 15 s.
 */
final class SteadyState {

    private SteadyState() {}

    /** Runs step (which returns its own time in seconds) until the rule above holds. */
    static void warmUp(java.util.function.DoubleSupplier step) {
        double[] lastThree = {1e9, 2e9, 3e9};
        CompilationMXBean jit = ManagementFactory.getCompilationMXBean();
        boolean jitTimed = jit != null && jit.isCompilationTimeMonitoringSupported();
        long w0 = System.nanoTime(), jitMs = -1, jitQuietSince = w0;
        for (int warm = 0; System.nanoTime() - w0 < 15_000_000_000L; warm++) {
            lastThree[warm % 3] = step.getAsDouble();
            long now = System.nanoTime();
            long ms = jitTimed ? jit.getTotalCompilationTime() : 0;
            if (ms != jitMs) { jitMs = ms; jitQuietSince = now; }
            double lo = Math.min(lastThree[0], Math.min(lastThree[1], lastThree[2]));
            double hi = Math.max(lastThree[0], Math.max(lastThree[1], lastThree[2]));
            if (warm >= 5 && hi < 1.2 * lo && now - w0 > 1_000_000_000L && now - jitQuietSince > 300_000_000L) return;
        }
    }

    /** A runnable as a step that times itself. */
    static double timed(Runnable r) {
        long t0 = System.nanoTime();
        r.run();
        return (System.nanoTime() - t0) / 1e9;
    }
}
