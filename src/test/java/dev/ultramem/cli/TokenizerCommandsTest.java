package dev.ultramem.cli;

import dev.ultramem.data.HfBpeTokenizerTest;
import dev.ultramem.memory.GoldenFiles;
import dev.ultramem.train.Checkpoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static dev.ultramem.cli.MainTest.assertUserError;
import static dev.ultramem.cli.MainTest.run;
import static org.junit.jupiter.api.Assertions.*;

/** model.tokenizer through the commands: train, eval (bits per byte), generate and import. */
class TokenizerCommandsTest {
    @TempDir Path dir;

    @Test
    void trainEvalAndGenerateWithAnHfTokenizerFromTheCheckpointAlone() throws Exception {
        Path cfg = MainTest.tinyConfig(dir, 4);
        Path tok = HfBpeTokenizerTest.writeTiny(dir);
        Path out = dir.resolve("run");
        MainTest.Result t = run("train", "--config", cfg.toString(), "--out", out.toString(), "--quiet",
                "--set", "model.tokenizer=hf:" + tok, "--set", "model.vocab_size=" + HfBpeTokenizerTest.TINY_VOCAB);
        assertEquals(0, t.code(), t.err());
        assertTrue(t.out().contains("tokenizer: hf:" + tok), t.out());
        Files.delete(tok);  // the run folder holds everything

        MainTest.Result e = run("eval", out.toString(), "--max-batches", "2");
        assertEquals(0, e.code(), e.err());
        assertTrue(e.out().contains("nats/token") && e.out().contains("tokenizer hf:"), e.out());
        Matcher m = Pattern.compile("loss ([0-9.]+) nats/token\\s+bits per byte ([0-9.]+)").matcher(e.out());
        assertTrue(m.find(), e.out());
        // the tiny vocabulary's tokens are mostly single bytes: a few merges, so a little over a byte each
        double loss = Double.parseDouble(m.group(1)), bpb = Double.parseDouble(m.group(2));
        assertTrue(bpb < loss / Math.log(2) && bpb > loss / Math.log(2) / 2, e.out());

        MainTest.Result g = run("generate", out.toString(), "--prompt", "hello ", "--max-tokens", "10", "--temperature", "0");
        assertEquals(0, g.code(), g.err());
        assertTrue(g.out().startsWith("hello "), g.out());
        MainTest.Result g0 = run("generate", out.toString(), "--max-tokens", "5", "--seed", "3");
        assertEquals(0, g0.code(), g0.err());
        MainTest.Result info = run("info", out.toString());
        assertEquals(0, info.code(), info.err());
        assertTrue(info.out().contains("tokenizer: hf:" + tok), info.out());
    }

    @Test
    void byteRunsReportBitsPerByteAsLossOverLnTwo() throws Exception {
        Path out = dir.resolve("bytes");
        assertEquals(0, run("train", "--config", MainTest.tinyConfig(dir, 2).toString(), "--out", out.toString(), "--quiet", "--no-sample").code());
        MainTest.Result e = run("eval", out.toString(), "--max-batches", "2");
        Matcher m = Pattern.compile("loss ([0-9.]+) nats/byte\\s+bits per byte ([0-9.]+)").matcher(e.out());
        assertTrue(m.find(), e.out());
        assertEquals(Double.parseDouble(m.group(1)) / Math.log(2), Double.parseDouble(m.group(2)), 1e-4);
    }

    @Test
    void badTokenizerSettingsAreOneLineErrors() throws Exception {
        Path cfg = MainTest.tinyConfig(dir, 2);
        assertUserError(run("train", "--config", cfg.toString(), "--out", dir.resolve("a").toString(), "--quiet",
                "--set", "model.tokenizer=gpt2"), "tokenizer must be byte, r50k_base, cl100k_base or hf:PATH");
        assertUserError(run("train", "--config", cfg.toString(), "--out", dir.resolve("b").toString(), "--quiet",
                "--set", "model.tokenizer=r50k_base"), "model.vocab_size (256) is below the 50257 token ids of tokenizer r50k_base");
        assertUserError(run("train", "--config", cfg.toString(), "--out", dir.resolve("c").toString(), "--quiet",
                "--set", "model.tokenizer=hf:" + dir.resolve("missing.json")), "file not found");
        assertFalse(Files.exists(dir.resolve("b").resolve(Checkpoint.LATEST)));

        // import: the official golden model has 96 token ids, fewer than any BPE tokenizer's
        Path golden = GoldenFiles.filesOfType("olmo_model").get(0);
        assertUserError(run("import", golden.toString(), "--out", dir.resolve("imp").toString(), "--tokenizer", "cl100k_base"),
                "model.vocab_size (96) is below the 100277 token ids of tokenizer cl100k_base");
        assertUserError(run("import", golden.toString(), "--out", dir.resolve("imp").toString(), "--tokenizer", "bpe"), "tokenizer must be");
        assertFalse(Files.exists(dir.resolve("imp").resolve(Checkpoint.LATEST)));
        MainTest.Result ok = run("import", golden.toString(), "--out", dir.resolve("imp").toString(), "--tokenizer", "byte");
        assertEquals(0, ok.code(), ok.err());
        assertEquals("byte", Checkpoint.load(dir.resolve("imp"), false).tokenizer().name());
    }
}
