package dev.ultramem.cli;

import dev.ultramem.core.Parallel;
import dev.ultramem.core.UserError;
import picocli.CommandLine.Option;

/** The {@code --threads} option every computing command shares (a picocli mixin). */
final class ThreadsOption {
    @Option(names = "--threads", description = "worker threads (default: all cores)")
    Integer threads;

    /** Sets the worker pool size when the option was given. */
    void apply() {
        if (threads == null) return;
        if (threads < 1) throw new UserError("--threads must be >= 1, got " + threads);
        Parallel.setThreads(threads);
    }
}
