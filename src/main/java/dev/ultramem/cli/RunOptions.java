package dev.ultramem.cli;

import dev.ultramem.core.UserError;
import picocli.CommandLine.Option;

/** The options of a training run that {@code train} and {@code resume} share (a picocli mixin). */
final class RunOptions {
    @Option(names = "--max-minutes", description = "stop (with a checkpoint) after this many minutes; 0 = no limit")
    double maxMinutes = 0;

    @Option(names = "--stop-at", paramLabel = "STEP", description = "pause at this step (with a checkpoint); the schedule still targets --steps")
    Long stopAt;

    @Option(names = "--quiet", description = "no progress output")
    boolean quiet;

    /** The time limit in milliseconds (0 = none); a negative --max-minutes is an error. */
    long maxMillis() {
        return maxMillis(maxMinutes);
    }

    /** Milliseconds of a --max-minutes value; a negative or non-finite value is an error. */
    static long maxMillis(double maxMinutes) {
        if (!(maxMinutes >= 0) || Double.isInfinite(maxMinutes)) throw new UserError("--max-minutes must be a number >= 0, got " + maxMinutes);
        return (long) (maxMinutes * 60_000);
    }
}
