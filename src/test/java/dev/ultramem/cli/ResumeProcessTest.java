package dev.ultramem.cli;

import dev.ultramem.TestModels;
import dev.ultramem.io.Safetensors;
import dev.ultramem.model.Configs;
import dev.ultramem.model.ModelConfig;
import dev.ultramem.train.Checkpoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The user's scenario, bit for bit: a run paused with --stop-at and continued by {@code resume} in a
 * new process writes exactly the metrics and the final checkpoint of an uninterrupted run. Each
 * command runs in its own JVM with the default (vector) kernels, whose results do not depend on JIT state.
 */
class ResumeProcessTest {
    @TempDir Path dir;

    private String ultramem(Path cwd, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector",
                "-cp", System.getProperty("java.class.path"), Main.class.getName()));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).directory(cwd.toFile()).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "timed out");
        String s = new String(out, StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), String.join(" ", args) + "\n" + s);
        return s;
    }

    private void assertPausedRunMatches(String name, ModelConfig model) throws Exception {
        Path cfg = dir.resolve(name + ".json");
        var tree = Configs.JSON.createObjectNode();
        tree.set("model", Configs.toTree(model));
        var train = TestModels.tinyTrain(6);
        train.evalEvery = 2;
        tree.set("train", Configs.toTree(train));
        Files.writeString(cfg, tree.toString());
        Path a = dir.resolve(name + "-a"), b = dir.resolve(name + "-b");
        ultramem(dir, "train", "--config", cfg.toString(), "--out", a.toString(), "--quiet", "--no-sample");
        String paused = ultramem(dir, "train", "--config", cfg.toString(), "--out", b.toString(), "--stop-at", "3", "--quiet", "--no-sample");
        assertTrue(paused.contains("paused at step 3"), paused);
        ultramem(dir, "resume", b.toString(), "--quiet");

        List<String> ma = Files.readAllLines(a.resolve("metrics.csv")), mb = Files.readAllLines(b.resolve("metrics.csv"));
        assertEquals(7, ma.size());
        assertEquals(ma, mb, name + ": metrics.csv");
        try (Safetensors x = Safetensors.open(a.resolve(Checkpoint.LATEST)); Safetensors y = Safetensors.open(b.resolve(Checkpoint.LATEST))) {
            assertEquals(x.entries().keySet(), y.entries().keySet());
            for (var e : x.entries().values()) {
                var f = y.get(e.name());
                assertEquals(-1L, e.data().mismatch(f.data()), name + ": tensor " + e.name() + " differs");
            }
            assertEquals(x.metadata().get("data_rng"), y.metadata().get("data_rng"));
            assertEquals(x.metadata().get("optim_step"), y.metadata().get("optim_step"));
        }
    }

    @Test
    void denseModel() throws Exception {
        assertPausedRunMatches("dense", TestModels.tinyModel());
    }

    @Test
    void ultraMemV2Model() throws Exception {
        assertPausedRunMatches("ultramem_v2", TestModels.tinyUltraMemV2());
    }
}
