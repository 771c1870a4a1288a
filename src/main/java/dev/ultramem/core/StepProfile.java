package dev.ultramem.core;

/**
 * Accumulated wall time per operation kind, for {@code bench}. Off by default; when off the only
 * cost is one volatile read per timed region.
 */
public final class StepProfile {

    public enum Kind { EMBEDDING_LOSS, NORMS, ATTENTION, FFN, MEMORY, OPTIMIZER }

    private static volatile boolean enabled = false;
    private static final long[] NANOS = new long[Kind.values().length];
    private static final long[] CALLS = new long[Kind.values().length];

    private StepProfile() {}

    public static void setEnabled(boolean on) { enabled = on; }

    public static boolean enabled() { return enabled; }

    /** Start time for {@link #stop}, or 0 when profiling is off. */
    public static long start() { return enabled ? System.nanoTime() : 0L; }

    public static void stop(Kind kind, long start) {
        if (start == 0L) return;
        long dt = System.nanoTime() - start;
        synchronized (NANOS) {
            NANOS[kind.ordinal()] += dt;
            CALLS[kind.ordinal()]++;
        }
    }

    public static void reset() {
        synchronized (NANOS) {
            java.util.Arrays.fill(NANOS, 0);
            java.util.Arrays.fill(CALLS, 0);
        }
    }

    public static long nanos(Kind kind) { synchronized (NANOS) { return NANOS[kind.ordinal()]; } }

    /** One line per kind: total milliseconds and share of the profiled time. */
    public static String report() {
        StringBuilder sb = new StringBuilder();
        long total = 0;
        synchronized (NANOS) {
            for (long n : NANOS) total += n;
            for (Kind k : Kind.values()) {
                long n = NANOS[k.ordinal()];
                sb.append(String.format("%-15s %10.1f ms %5.1f%%  (%d calls)%n", k.name().toLowerCase(), n / 1e6,
                        total == 0 ? 0.0 : 100.0 * n / total, CALLS[k.ordinal()]));
            }
        }
        return sb.toString();
    }
}
