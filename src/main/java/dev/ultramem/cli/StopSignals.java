package dev.ultramem.cli;

import sun.misc.Signal;
import sun.misc.SignalHandler;

import java.io.PrintStream;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Ctrl-C (SIGINT) and SIGTERM while a run trains: the first asks the trainer to stop after the
 * current step and save (checkpoint, metrics, plot), the second exits at once. The server uses the
 * same two stages (finish the running requests, then stop at once). Outside them the JVM's usual
 * handling applies again. {@code sun.misc.Signal} is the JDK's supported way to handle
 * signals (module jdk.unsupported); a shutdown hook cannot finish a training step, nor tell a first
 * signal from a second.
 */
final class StopSignals implements AutoCloseable {
    private static final String[] NAMES = {"INT", "TERM"};

    private final Map<Signal, SignalHandler> previous = new LinkedHashMap<>();
    private final PrintStream err;
    private final String stopping, atOnce;
    private volatile Signal received;

    private StopSignals(PrintStream err, String stopping, String atOnce) {
        this.err = err;
        this.stopping = stopping;
        this.atOnce = atOnce;
    }

    /** Installs the training handlers until {@link #close()}. */
    static StopSignals install(PrintStream err) {
        return install(err, "stopping after this step and saving a checkpoint", "the last checkpoint is kept");
    }

    /** Handlers saying what the first signal does (stopping) and what a second one leaves behind (atOnce). */
    static StopSignals install(PrintStream err, String stopping, String atOnce) {
        StopSignals s = new StopSignals(err, stopping, atOnce);
        for (String n : NAMES) {
            try {
                Signal sig = new Signal(n);
                s.previous.put(sig, Signal.handle(sig, s::handle));
            } catch (IllegalArgumentException e) {
                // the platform lacks this signal or the JVM reserved it (-Xrs): keep its default
            }
        }
        return s;
    }

    private void handle(Signal sig) {
        if (received != null) {
            err.println();
            err.println("error: stopped at once by a second SIG" + sig.getName() + " (" + atOnce + ")");
            err.flush();
            Runtime.getRuntime().halt(exitCode(sig));
        }
        received = sig;
        err.println();
        err.println("SIG" + sig.getName() + ": " + stopping + " (send it again to stop at once)");
        err.flush();
    }

    boolean requested() { return received != null; }

    /** The signal that stopped the run, e.g. "SIGINT", or null. */
    String signalName() { return received == null ? null : "SIG" + received.getName(); }

    /** The shell's status of a process ended by the signal: 128 + its number (130 for SIGINT, 143 for SIGTERM). */
    int exitCode() { return received == null ? 0 : exitCode(received); }

    private static int exitCode(Signal s) { return 128 + s.getNumber(); }

    @Override
    public void close() {
        previous.forEach((sig, h) -> {
            try {
                Signal.handle(sig, h);
            } catch (IllegalArgumentException ignored) {
                // nothing to restore
            }
        });
    }
}
