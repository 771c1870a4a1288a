package dev.ultramem.train;

import dev.ultramem.TestModels;
import dev.ultramem.core.UserError;
import dev.ultramem.data.Corpus;
import dev.ultramem.data.HfBpeTokenizerTest;
import dev.ultramem.data.Tokenizer;
import dev.ultramem.data.Tokenizers;
import dev.ultramem.data.Tokens;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

/** Training, checkpoints and evaluation with the BPE tokenizers. */
class TokenizerTrainingTest {
    @TempDir Path dir;

    static final Trainer.Listener NONE = new Trainer.Listener() {};

    static JobConfig job(String tokenizer, int vocab, int steps) {
        JobConfig job = TestModels.tinyJob(steps);
        job.model.tokenizer = tokenizer;
        job.model.vocabSize = vocab;
        job.model.validate();
        return job;
    }

    @Test
    void r50kBaseTrainsEndToEndOnTheBuiltinCorpus() {
        JobConfig job = job("r50k_base", 50257, 8);
        job.train.lr = 3e-2;
        job.train.checkpointEvery = job.train.evalEvery = 100;  // one checkpoint, at the end: each is 20 MB here
        Corpus corpus = Corpus.builtin(5, 20_000, job.train.valFraction);
        Trainer t = Trainer.fresh(job, corpus, dir.resolve("run"));
        float before = t.evaluate();
        assertEquals(Math.log(50257), before, 1.0, "an untrained model is near uniform over the vocabulary");
        t.run(0, NONE);
        float after = t.evaluate();
        assertTrue(after < before - 0.5, "validation loss " + before + " -> " + after);

        Checkpoint.Loaded ck = Checkpoint.load(dir.resolve("run"), true);
        assertEquals("r50k_base", ck.job().model.tokenizer);
        assertEquals("r50k_base", ck.tokenizer().name());
        assertArrayEquals(new int[]{31373, 995}, ck.tokenizer().encode("hello world"));
        // the same batches as the trainer's: eval on the checkpoint reproduces its validation loss
        Tokens val = corpus.encode(ck.tokenizer()).val();
        assertEquals(after, Trainer.evaluate(ck.model(), val, job.train.evalBatches, job.train.batchSize, job.train.seqLen), 1e-6);
        ck.job().train.steps = 9;
        Trainer resumed = Trainer.resume(ck, ck.job(), corpus, dir.resolve("run"));
        resumed.run(0, NONE);
        assertEquals(9, resumed.step());
    }

    @Test
    void aVocabularySmallerThanTheTokenizersIsRefused() {
        UserError e = assertThrows(UserError.class, () -> Trainer.fresh(job("r50k_base", 50000, 2), Corpus.builtin(5, 20_000, 0.1), null));
        assertTrue(e.getMessage().contains("model.vocab_size (50000)") && e.getMessage().contains("50257 token ids of tokenizer r50k_base"), e.getMessage());
        assertThrows(UserError.class, () -> Trainer.fresh(job("cl100k_base", 100276, 2), Corpus.builtin(5, 20_000, 0.1), null));
        JobConfig bad = TestModels.tinyJob(2);
        bad.model.tokenizer = "gpt2";
        assertTrue(assertThrows(UserError.class, bad.model::validate).getMessage().contains("tokenizer must be byte, r50k_base, cl100k_base or hf:PATH"));
    }

    @Test
    void theCheckpointCarriesAnHfTokenizerWithoutItsFile() throws Exception {
        Path file = HfBpeTokenizerTest.writeTiny(dir);
        JobConfig job = job("hf:" + file, HfBpeTokenizerTest.TINY_VOCAB, 4);
        Corpus corpus = Corpus.builtin(5, 20_000, job.train.valFraction);
        Trainer t = Trainer.fresh(job, corpus, dir.resolve("run"));
        t.run(0, NONE);
        int[] ids = t.tokenizer().encode("hello world, abc");
        Files.delete(file);

        Checkpoint.Loaded ck = Checkpoint.load(dir.resolve("run"), true);
        assertEquals("hf:" + file, ck.tokenizer().name());
        assertArrayEquals(ids, ck.tokenizer().encode("hello world, abc"));
        assertEquals("hello world, abc", ck.tokenizer().decode(ids));
        ck.job().train.steps = 6;
        Trainer resumed = Trainer.resume(ck, ck.job(), corpus, dir.resolve("run"));
        resumed.run(0, NONE);
        assertEquals(6, Checkpoint.load(dir.resolve("run"), false).progress().step());
        // a byte run's checkpoint embeds nothing and names the byte tokenizer
        Trainer b = Trainer.fresh(TestModels.tinyJob(2), corpus, dir.resolve("bytes"));
        b.run(0, NONE);
        assertEquals("byte", Checkpoint.load(dir.resolve("bytes"), false).tokenizer().name());
    }

    @Test
    void bitsPerByteDivideTheTotalByTheBytesOfTheScoredTokens() {
        Tokenizer tok = Tokenizers.builtin("r50k_base");
        JobConfig job = job("r50k_base", 50257, 1);
        int B = job.train.batchSize, T = job.train.seqLen, batches = 3;
        Trainer t = Trainer.fresh(job, Corpus.builtin(5, 20_000, job.train.valFraction), null);
        // exactly batches·B windows of T tokens: every target token is scored once
        int[] all = tok.encode(new String(dev.ultramem.data.SyntheticCorpus.generate(9, 8000), java.nio.charset.StandardCharsets.UTF_8));
        int[] ids = Arrays.copyOf(all, batches * B * T + 1);
        Trainer.Score s = Trainer.score(t.model, Tokens.of(ids), tok, batches, B, T);
        long bytes = tok.decodeBytes(Arrays.copyOfRange(ids, 1, ids.length)).length;
        assertEquals(bytes, s.bytes());
        assertEquals((long) batches * B * T, s.tokens());
        assertEquals(s.meanLoss() * s.tokens() / (Math.log(2) * bytes), s.bitsPerByte(), 1e-12);
        assertTrue(bytes > 2L * s.tokens(), "r50k tokens of English-like text average more than two bytes");
        assertEquals(Trainer.evaluate(t.model, Tokens.of(ids), batches, B, T), (float) s.meanLoss());
    }
}
