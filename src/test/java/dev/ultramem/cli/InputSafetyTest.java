package dev.ultramem.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static dev.ultramem.cli.MainTest.assertUserError;
import static dev.ultramem.cli.MainTest.run;
import static org.junit.jupiter.api.Assertions.*;

/** Inputs that used to hang or be changed silently: pipes given as files, prompts that are not UTF-8. */
class InputSafetyTest {
    @TempDir Path dir;

    private Path trainedRun() throws Exception {
        Path cfg = MainTest.tinyConfig(dir, 2);
        Path out = dir.resolve("run");
        assertEquals(0, run("train", "--config", cfg.toString(), "--out", out.toString(), "--quiet", "--no-sample").code());
        return out;
    }

    @Test
    void aPipeGivenAsAFileIsRefusedInsteadOfBlocking() throws Exception {
        Path fifo = dir.resolve("pipe");
        Process mk = new ProcessBuilder("mkfifo", fifo.toString()).inheritIO().start();
        assertTrue(mk.waitFor(10, TimeUnit.SECONDS) && mk.exitValue() == 0, "mkfifo");
        // each of these blocked forever on open() before
        assertUserError(run("train", fifo.toString(), "--quiet", "--no-sample", "--out", dir.resolve("a").toString()), "not a regular file");
        assertUserError(run("train", "--config", fifo.toString(), "--quiet", "--out", dir.resolve("b").toString()), "not a regular file");
        assertUserError(run("eval", fifo.toString()), "not a regular file");
        assertUserError(run("generate", fifo.toString()), "not a regular file");
        assertFalse(Files.exists(dir.resolve("a")), "no empty run folder left behind");
    }

    @Test
    void aPromptWhoseBytesWereReplacedIsRefusedAndAPromptFilePassesBytesThrough() throws Exception {
        Path out = trainedRun();
        // what the JVM makes of the bytes "ab\xFFc" in argv under a UTF-8 locale
        assertUserError(run("generate", out.toString(), "--prompt", "ab\uFFFDc", "--max-tokens", "3"), "byte offset 2");
        assertUserError(run("generate", out.toString(), "--prompt", "é\uFFFD", "--max-tokens", "3"), "byte offset 2");
        Path raw = dir.resolve("prompt.bin");
        Files.write(raw, new byte[]{'a', 'b', (byte) 0xFF, 'c'});
        var r = run("generate", out.toString(), "--prompt-file", raw.toString(), "--max-tokens", "3", "--temperature", "0");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("ab\uFFFDc"), "the prompt is echoed (an invalid byte shown as U+FFFD): " + r.out());
        assertUserError(run("generate", out.toString(), "--prompt", "x", "--prompt-file", raw.toString()), "not both");
        assertUserError(run("generate", out.toString(), "--prompt-file", dir.resolve("none").toString()), "not found");
    }
}
