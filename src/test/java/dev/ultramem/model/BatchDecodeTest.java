package dev.ultramem.model;

import dev.ultramem.core.Rng;
import dev.ultramem.core.UserError;
import dev.ultramem.train.JobConfig;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The batch decoder against the training forward, which computes every position of a sequence at
 * once through a different attention path (causal blocks over the whole sequence, no cache): for every
 * layer type, prefill, chunked prefill and token-by-token decode give the training forward's logits at
 * every position; a batch of prompts of different lengths gives what each gives alone; and a sliding
 * window equals a fresh forward over the window (one layer, where the cached keys depend only on the
 * token and its position, so the reference is exact up to rounding).
 *
 * <p>Tolerance: both sides are float32 with sums in different orders (GEMM over blocks of keys vs
 * over the cache, softmax over different spans); logits here are O(1) with d = 64, so rounding stays
 * below 1e-4 and 2e-4 leaves a margin while a wrong position, mask or RoPE angle moves logits by 1e-2
 * or more.
 */
class BatchDecodeTest {

    static final String[] FAMILIES = {"family-dense", "family-moe-2of16", "family-moe-8of64", "family-pkm",
            "family-memory-plus", "family-ultramem", "family-ultramem-v2"};
    static final double TOL = 2e-4;

    static Model model(String preset, int layers, int ctx) {
        List<String> set = new java.util.ArrayList<>(List.of("model.n_layers=" + layers, "model.d_model=64",
                "model.n_heads=2", "model.max_seq_len=" + ctx, "model.mlp_hidden_size=96", "train.seq_len=" + ctx));
        // memory shapes scaled down with d; memory from block 0 into the last block (or the same block)
        if (!preset.equals("family-dense") && !preset.startsWith("family-moe")) {
            set.addAll(List.of("model.mem_knum=24", "model.mem_kdim=16", "model.mem_knn=8",
                    "model.mem_insert_way=" + (preset.equals("family-ultramem-v2") ? "full" : "0:" + (layers - 1))));
            set.add("model.mem_vdim=" + (preset.equals("family-ultramem") || preset.equals("family-ultramem-v2") ? 32 : 64));
            if (preset.equals("family-ultramem-v2")) set.add("model.mem_pre_vdim=32");
        }
        JobConfig job = JobConfig.build(preset, null, set);
        Model m = new Model(job.model);
        m.initialize(3);
        m.setTraining(false);
        return m;
    }

    /** A 2-layer model of the preset with a context of 32, T random tokens and the training forward's logits. */
    record Sequence(Model m, int V, int[] seq, float[] full) {}

    static Sequence sequence(String preset, int T, long seed) {
        Model m = model(preset, 2, 32);
        int V = m.config().vocabSize;
        int[] seq = ModelTest.randomTokens(new Rng(seed), T, V);
        return new Sequence(m, V, seq, m.logits(seq, 1, T).clone());
    }

    static void close(float[] want, int wOff, float[] got, int gOff, int V, String what) {
        for (int j = 0; j < V; j++) {
            float w = want[wOff + j], g = got[gOff + j];
            if (!(Math.abs(w - g) <= TOL * (1 + Math.abs(w))))
                fail(what + ": logit " + j + " is " + g + ", the training forward gives " + w);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"family-dense", "family-moe-2of16", "family-moe-8of64", "family-pkm",
            "family-memory-plus", "family-ultramem", "family-ultramem-v2"})
    void prefillAndDecodeGiveTheTrainingLogitsAtEveryPosition(String preset) {
        int T = 24;
        Sequence sq = sequence(preset, T, 11);
        Model m = sq.m;
        int V = sq.V;
        int[] seq = sq.seq;
        float[] full = sq.full;

        Model.BatchDecoder dec = m.newBatchDecoder(3, 32);
        int[] slot = {1};
        // token by token
        for (int t = 0; t < T; t++) {
            float[] l = dec.step(slot, new int[]{seq[t]}, 1);
            close(full, t * V, l, 0, V, preset + " decode, position " + t);
        }
        assertEquals(T, dec.position(1));
        // one prefill of the whole sequence, in another slot
        float[] l = dec.forward(new int[]{2}, new int[][]{seq}, 1);
        close(full, (T - 1) * V, l, 0, V, preset + " prefill");
        // chunks of 5, 1 and the rest, after a reset
        dec.reset(1);
        int[] cuts = {0, 5, 6, T};
        for (int c = 0; c + 1 < cuts.length; c++) {
            l = dec.forward(slot, new int[][]{Arrays.copyOfRange(seq, cuts[c], cuts[c + 1])}, 1);
            close(full, (cuts[c + 1] - 1) * V, l, 0, V, preset + " chunk ending at " + cuts[c + 1]);
        }
    }

    /**
     * A bf16 KV cache: chunked prefill and token-by-token decode both attend to the keys and values as the cache
     * holds them (rounded), so they agree to float32 rounding (TOL) while reading the cache through different code
     * (widening copies for prefill, the bf16 dot and weighted-sum kernels for decode). Against the float32 training
     * forward the logits move by the rounding of keys and values (relative 2⁻⁹ each), bounded here by 3e-2 of their
     * scale, and they do move (the cache really is bf16). The cache holds half the bytes.
     */
    @ParameterizedTest
    @ValueSource(strings = {"family-dense", "family-ultramem-v2"})
    void aBf16KvCacheDecodesLikeItsPrefillAndCloseToFloat32(String preset) {
        int T = 24;
        Sequence c = sequence(preset, T, 13);
        Model m = c.m;
        int V = c.V;
        long f32Bytes = m.newBatchDecoder(2, 32).kvCacheBytes();
        m.useBf16KvCache(true);
        Model.BatchDecoder dec = m.newBatchDecoder(2, 32);
        assertEquals(f32Bytes / 2, dec.kvCacheBytes());
        assertEquals(Model.kvCacheBytes(m.config(), 2, 32, true), dec.kvCacheBytes(), "the estimate serve and bench decode check");
        float[] stepwise = new float[T * V];
        for (int t = 0; t < T; t++) System.arraycopy(dec.step(new int[]{0}, new int[]{c.seq[t]}, 1), 0, stepwise, t * V, V);
        int[] cuts = {0, 7, 8, T};
        for (int i = 0; i + 1 < cuts.length; i++) {
            float[] l = dec.forward(new int[]{1}, new int[][]{Arrays.copyOfRange(c.seq, cuts[i], cuts[i + 1])}, 1);
            close(stepwise, (cuts[i + 1] - 1) * V, l, 0, V, preset + " bf16 cache, prefill chunk ending at " + cuts[i + 1]
                    + " against token-by-token decode");
        }
        double worst = 0;
        for (int i = 0; i < T * V; i++) {
            double rel = Math.abs(stepwise[i] - c.full[i]) / (1 + Math.abs(c.full[i]));
            worst = Math.max(worst, rel);
            assertTrue(rel <= 3e-2, preset + " bf16 logit " + i + ": " + stepwise[i] + " against " + c.full[i]);
        }
        assertTrue(worst > 1e-6, "a bf16 cache gave the float32 logits exactly: the cache is not rounded");
        System.out.printf("bf16 KV cache %s: worst logit difference %.2e of scale%n", preset, worst);
    }

    @ParameterizedTest
    @ValueSource(strings = {"family-dense", "family-moe-8of64", "family-ultramem-v2", "family-memory-plus"})
    void aBatchOfPromptsGivesWhatEachGivesAlone(String preset) {
        Model m = model(preset, 2, 32);
        int V = m.config().vocabSize;
        Rng rng = new Rng(5);
        int[] lens = {3, 17, 1, 9};
        int B = lens.length;
        int[][] prompts = new int[B][];
        for (int b = 0; b < B; b++) prompts[b] = ModelTest.randomTokens(rng, lens[b], V);
        int[][] next = new int[4][B];
        for (int[] row : next) for (int b = 0; b < B; b++) row[b] = rng.nextInt(V);

        // alone: one slot each
        float[][] alone = new float[B][];
        for (int b = 0; b < B; b++) {
            Model.BatchDecoder one = m.newBatchDecoder(1, 32);
            float[] acc = new float[5 * V];
            System.arraycopy(one.forward(new int[]{0}, new int[][]{prompts[b]}, 1), 0, acc, 0, V);
            for (int s = 0; s < 4; s++) System.arraycopy(one.step(new int[]{0}, new int[]{next[s][b]}, 1), 0, acc, (s + 1) * V, V);
            alone[b] = acc;
        }
        // together, in slots given in a scrambled order
        Model.BatchDecoder dec = m.newBatchDecoder(6, 32);
        int[] slots = {4, 0, 5, 2};
        float[] l = dec.forward(slots, prompts, B).clone();
        for (int b = 0; b < B; b++) close(alone[b], 0, l, b * V, V, preset + " prompt " + b + " prefilled in a batch");
        for (int s = 0; s < 4; s++) {
            l = dec.step(slots, next[s], B);
            for (int b = 0; b < B; b++) close(alone[b], (s + 1) * V, l, b * V, V, preset + " sequence " + b + " step " + s);
        }
        for (int b = 0; b < B; b++) assertEquals(lens[b] + 4, dec.position(slots[b]));
    }

    @ParameterizedTest
    @ValueSource(strings = {"family-dense", "family-ultramem-v2"})
    void aFullWindowSlidesInsteadOfRestarting(String preset) {
        int W = 8, T = 30;
        Model m = model(preset, 1, W);
        int V = m.config().vocabSize;
        int[] seq = ModelTest.randomTokens(new Rng(2), T, V);
        Model.BatchDecoder dec = m.newBatchDecoder(1, W);
        Model.BatchDecoder chunked = m.newBatchDecoder(1, W);
        // the long prompt in one call: rows past the window see only its last W positions
        float[] whole = chunked.forward(new int[]{0}, new int[][]{Arrays.copyOf(seq, 20)}, 1).clone();
        for (int p = 0; p < T; p++) {
            float[] l = dec.step(new int[]{0}, new int[]{seq[p]}, 1);
            int from = Math.max(0, p - W + 1);
            int[] window = Arrays.copyOfRange(seq, from, p + 1);
            float[] ref = m.logits(window, 1, window.length);
            close(ref, (window.length - 1) * V, l, 0, V, preset + " position " + p + " (window from " + from + ")");
            if (p == 19) close(l, 0, whole, 0, V, preset + " a 20-token prompt fed at once");
        }
        assertEquals(T, dec.position(0));
    }

    @ParameterizedTest
    @ValueSource(strings = {"family-dense", "family-moe-2of16", "family-moe-8of64", "family-pkm",
            "family-memory-plus", "family-ultramem", "family-ultramem-v2"})
    void greedyGenerationIsTheSameBatchedAndAlone(String preset) {
        Model m = model(preset, 2, 16);
        // larger weights than the init so that greedy choices are well separated
        for (var p : m.params()) if (p.trainable && p.isHeap() && !p.name.contains("norm"))
            for (int i = 0; i < p.data().length; i++) p.data()[i] *= 4;
        m.afterWeightsChanged();
        Rng rng = new Rng(9);
        int[][] prompts = {ModelTest.randomTokens(rng, 5, 256), ModelTest.randomTokens(rng, 1, 256),
                ModelTest.randomTokens(rng, 12, 256)};
        dev.ultramem.infer.Sampler[] greedy = new dev.ultramem.infer.Sampler[prompts.length];
        for (int b = 0; b < greedy.length; b++) greedy[b] = new dev.ultramem.infer.Sampler(0, 0, 1, b);
        // 30 tokens: past the 16-position window, so the batch also slides together
        int[][] batched = dev.ultramem.infer.Generator.generateBatch(m, prompts, 30, greedy);
        for (int b = 0; b < prompts.length; b++) {
            int[] alone = dev.ultramem.infer.Generator.generate(m, prompts[b], 30, new dev.ultramem.infer.Sampler(0, 0, 1, b), null);
            assertArrayEquals(alone, batched[b], preset + " prompt " + b);
        }
    }

    @Test
    void badCallsAreRefusedWithAReason() {
        Model m = model("family-dense", 1, 16);
        Model.BatchDecoder dec = m.newBatchDecoder(2, 16);
        assertThrows(UserError.class, () -> dec.step(new int[]{0, 0}, new int[]{1, 2}, 2), "same slot twice");
        assertThrows(UserError.class, () -> dec.step(new int[]{2}, new int[]{1}, 1), "slot out of range");
        assertThrows(UserError.class, () -> dec.step(new int[]{0}, new int[]{256}, 1), "token out of vocabulary");
        assertThrows(UserError.class, () -> dec.forward(new int[]{0}, new int[][]{{}}, 1), "empty chunk");
        assertThrows(UserError.class, () -> m.newBatchDecoder(1, 17), "context beyond max_seq_len");
        assertEquals(0, dec.position(0));
    }
}
