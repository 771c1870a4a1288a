package dev.ultramem.model;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.core.UserError;
import dev.ultramem.io.Safetensors;
import dev.ultramem.kernel.MemoryKernelsTest;
import dev.ultramem.train.AdamW;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.train.JobConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Value and pre-value tables stored as bf16. The reference is the float32 model whose tables hold the
 * bf16-rounded values (rounded here by comparing neighbours, not by the engine's bit trick): widening
 * is exact and the bf16 kernels sum in the float32 kernels' order, so the two must agree bit for bit,
 * in the training forward and in the batch decoder. Against the unrounded model the logits may move
 * only as far as a relative 2^-9 change of every table entry can move them.
 */
class Bf16TablesTest {
    @TempDir Path dir;

    static final String[] MEMORY = {"family-pkm", "family-memory-plus", "family-ultramem", "family-ultramem-v2"};

    /** The float32 model with every table entry replaced by its nearest bf16 value (kept in float32 storage). */
    static Model roundedCopy(String preset) {
        Model m = BatchDecodeTest.model(preset, 2, 32);
        for (Param p : m.params())
            if (!p.isHeap()) for (long j = 0; j < p.numel(); j++) p.set(j, MemoryKernelsTest.nearestBf16(p.get(j)));
        return m;
    }

    static List<Param> tables(Model m) {
        List<Param> t = new ArrayList<>();
        for (Param p : m.params()) if (!p.isHeap()) t.add(p);
        return t;
    }

    @ParameterizedTest
    @ValueSource(strings = {"family-pkm", "family-memory-plus", "family-ultramem", "family-ultramem-v2"})
    void bf16TablesComputeExactlyWhatTheRoundedFloat32TablesCompute(String preset) {
        Model exact = BatchDecodeTest.model(preset, 2, 32), rounded = roundedCopy(preset), half = BatchDecodeTest.model(preset, 2, 32);
        half.storeTablesAsBf16();
        assertFalse(tables(half).isEmpty());
        for (int i = 0; i < tables(half).size(); i++) {
            Param h = tables(half).get(i), r = tables(rounded).get(i);
            assertTrue(h.isBf16() && h.elementBytes() == 2, h.name);
            for (long j = 0; j < h.numel(); j++) if (h.get(j) != r.get(j)) fail(h.name + "[" + j + "]: " + h.get(j) + " vs " + r.get(j));
        }
        int V = exact.config().vocabSize, T = 20;
        int[] seq = ModelTest.randomTokens(new Rng(5), 2 * T, V);
        float[] lh = half.logits(seq, 2, T).clone(), lr = rounded.logits(seq, 2, T).clone(), le = exact.logits(seq, 2, T).clone();
        assertArrayEquals(lr, lh, preset + ": training forward, bf16 vs rounded float32 tables");

        // Against the unrounded tables: each entry moves by at most 2^-9 (0.2%) of itself, so each memory output
        // moves by at most 0.2% of the sum of |weight · value| it adds; through two blocks whose logits are O(1)
        // (largest about 3) that is about 0.1% of the largest logit (measured: 0.06–0.14%), so 1% leaves room, while
        // a misread table (wrong row, byte order, a missing widening shift) moves logits by O(1).
        double worst = 0, spread = 0;
        for (int i = 0; i < le.length; i++) { worst = Math.max(worst, Math.abs(le[i] - lh[i])); spread = Math.max(spread, Math.abs(le[i])); }
        assertTrue(worst <= 0.01 * Math.max(1, spread), preset + ": bf16 tables move a logit by " + worst + " (largest logit " + spread + ")");
        assertTrue(worst > 0, preset + ": the rounding changes something");

        // the batch decoder reads the same bits, and counts half the table bytes
        Model.BatchDecoder dh = half.newBatchDecoder(2, 32), dr = rounded.newBatchDecoder(2, 32);
        int[][] prompts = {java.util.Arrays.copyOf(seq, 7), java.util.Arrays.copyOfRange(seq, T, T + 11)};
        assertArrayEquals(dr.forward(new int[]{0, 1}, prompts, 2), dh.forward(new int[]{0, 1}, prompts, 2), preset + " prefill");
        long rBytes = dr.lastParamBytes(), hBytes = dh.lastParamBytes();
        for (int step = 0; step < 6; step++) {
            int[] toks = {seq[step], seq[T + step]};
            assertArrayEquals(dr.step(new int[]{0, 1}, toks, 2), dh.step(new int[]{0, 1}, toks, 2), preset + " decode step " + step);
        }
        assertTrue(hBytes < rBytes, preset + ": bf16 tables read fewer bytes (" + hBytes + " vs " + rBytes + ")");
    }

    @Test
    void checkpointsKeepBf16TablesMappedOrCopiedAndConvertBackExactly() throws Exception {
        List<String> set = List.of("model.n_layers=2", "model.d_model=64", "model.n_heads=2", "model.max_seq_len=32",
                "model.mlp_hidden_size=96", "train.seq_len=32", "model.mem_knum=24", "model.mem_kdim=16", "model.mem_knn=8",
                "model.mem_insert_way=full", "model.mem_vdim=32", "model.mem_pre_vdim=32");
        JobConfig job = JobConfig.build("family-ultramem-v2", null, set);
        Model half = new Model(job.model);
        half.initialize(3);
        half.afterWeightsChanged();
        half.setTraining(false);
        half.storeTablesAsBf16();
        Path file = dir.resolve("half.safetensors");
        Checkpoint.saveWeightsOnly(file, job, half);
        try (Safetensors st = Safetensors.open(file)) {
            for (Param p : half.params()) assertEquals(p.isHeap() ? "F32" : "BF16", st.get(p.name).dtype(), p.name);
        }
        int V = half.config().vocabSize;
        int[] seq = ModelTest.randomTokens(new Rng(8), 24, V);
        float[] want = half.logits(seq, 1, 24).clone();
        for (boolean map : new boolean[]{true, false}) {
            Model got = Checkpoint.load(file, false, map).model();
            got.setTraining(false);
            for (Param p : tables(got)) {
                assertTrue(p.isBf16(), p.name);
                assertEquals(map, p.isMapped(), p.name);
            }
            assertArrayEquals(want, got.logits(seq, 1, 24), "logits after loading " + (map ? "mapped" : "copied"));
        }
        // back to float32: the widened values, exactly
        Path back = dir.resolve("f32.safetensors");
        Checkpoint.save(back, job, half, null, new Checkpoint.Progress(0, new long[4], null, new float[0], new float[0], new float[0]),
                null, Param.Storage.F32);
        Model f32 = Checkpoint.load(back, false, false).model();
        for (int i = 0; i < tables(f32).size(); i++) {
            Param a = tables(f32).get(i), h = tables(half).get(i);
            assertFalse(a.isBf16());
            for (long j = 0; j < a.numel(); j++) if (a.get(j) != h.get(j)) fail(a.name + "[" + j + "]");
        }
        f32.setTraining(false);
        assertArrayEquals(want, f32.logits(seq, 1, 24));
        // bf16 tables are for inference
        assertThrows(UserError.class, () -> new AdamW(half.params(), job.train));
        assertThrows(IllegalStateException.class, () -> tables(half).get(0).gradSegment());
    }
}
