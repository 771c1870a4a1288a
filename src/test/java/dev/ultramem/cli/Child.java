package dev.ultramem.cli;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.*;

/** A child JVM running the CLI, its output (stdout and stderr) going to a file. */
record Child(Process process, Path log) {

    /** Starts the CLI with args in folder dir; its output goes to dir/name.log. */
    static Child start(Path dir, String name, String... args) throws IOException {
        return start(dir, name, List.of("-Xmx1g"), args);
    }

    /** As {@link #start(Path, String, String...)} with the given JVM options (memory limits). */
    static Child start(Path dir, String name, List<String> jvmOptions, String... args) throws IOException {
        List<String> cmd = new ArrayList<>();
        // a non-interactive parent may start us with SIGINT ignored, and children inherit that: reset it
        if (envResetsSignals()) cmd.addAll(List.of("env", "--default-signal=INT,TERM"));
        cmd.addAll(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "--add-modules", "jdk.incubator.vector"));
        cmd.addAll(jvmOptions);
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName()));
        cmd.addAll(List.of(args));
        Path log = dir.resolve(name + ".log");
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(log.toFile()).start();
        return new Child(p, log);
    }

    private static Boolean envResets;

    private static synchronized boolean envResetsSignals() {
        if (envResets == null) {
            try {
                Process p = new ProcessBuilder("env", "--default-signal=INT", "true").redirectErrorStream(true).start();
                p.getInputStream().readAllBytes();
                envResets = p.waitFor(10, TimeUnit.SECONDS) && p.exitValue() == 0;
            } catch (IOException | InterruptedException e) {
                envResets = false;
            }
        }
        return envResets;
    }

    String output() {
        try {
            return Files.readString(log, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "";
        }
    }

    int waitExit() throws InterruptedException {
        assertTrue(process.waitFor(120, TimeUnit.SECONDS), "child did not end:\n" + output());
        return process.exitValue();
    }

    void signal(String name) throws Exception {
        new ProcessBuilder("kill", "-" + name, Long.toString(process.pid())).inheritIO().start().waitFor();
    }

    /** Waits (up to 90 s) until cond holds; fails if the child ends first. */
    void await(BooleanSupplier cond, String what) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
        while (!cond.getAsBoolean()) {
            if (!process.isAlive()) fail("child ended before " + what + ":\n" + output());
            if (System.nanoTime() > end) fail("timed out waiting for " + what + ":\n" + output());
            Thread.sleep(20);
        }
    }
}
