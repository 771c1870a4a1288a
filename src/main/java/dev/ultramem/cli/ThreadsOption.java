package dev.ultramem.cli;

import dev.ultramem.core.Parallel;
import dev.ultramem.core.UserError;
import picocli.CommandLine.Option;

/** The {@code --threads} option every computing command shares (a picocli mixin). */
final class ThreadsOption {
    /** No more worker threads than this, whatever the machine (each has its scratch buffers and stack). */
    static final int HARD_MAX = 1024;

    @Option(names = "--threads", description = "worker threads (default: all cores; at most 4 x the available processors)")
    Integer threads;

    /** The largest --threads value: 4 × the available processors, at most {@value #HARD_MAX}. */
    static int max() { return Math.min(HARD_MAX, 4 * Runtime.getRuntime().availableProcessors()); }

    /** Sets the worker pool size when the option was given. */
    void apply() {
        if (threads == null) return;
        if (threads < 1) throw new UserError("--threads must be >= 1, got " + threads);
        if (threads > max())
            throw new UserError("--threads " + threads + " is more than this machine can use: at most " + max()
                    + " (4 x " + Runtime.getRuntime().availableProcessors() + " available processors, never above " + HARD_MAX + ")");
        Parallel.setThreads(threads);
    }
}
