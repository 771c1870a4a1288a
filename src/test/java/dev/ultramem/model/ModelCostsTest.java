package dev.ultramem.model;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Cost accounting against hand counts of small dense and MoE models. */
class ModelCostsTest {

    static ModelConfig small(String ffn) {
        ModelConfig c = new ModelConfig();
        c.vocabSize = 64; c.dModel = 32; c.nLayers = 2; c.nHeads = 4; c.maxSeqLen = 16; c.mlpHiddenSize = 96;
        c.ffnType = ffn; c.moeNumExperts = 8; c.moeTopK = 2; c.moeExpertHidden = 24;
        return c;
    }

    /** Embedding, per block: attn_norm, att_proj, q_norm, k_norm, attn_out, ff_norm; ln_f. */
    static long denseHand(int V, int d, int L, int hd) {
        return (long) V * d + (long) L * (d + 3L * d * d + 2L * hd + (long) d * d + d) + d;
    }

    @Test
    void denseModelCounts() {
        ModelConfig c = small("dense");
        Model m = new Model(c);
        m.initialize(3);
        int d = 32, V = 64, L = 2, f = 48, ctx = 10;
        long dense = denseHand(V, d, L, d / 4);
        long ffn = 3L * f * d;
        ModelCosts k = ModelCosts.of(m, ctx);
        assertEquals(dense + L * ffn, k.totalParams());
        assertEquals(dense, k.denseParams());
        assertEquals(0, k.tableParams());
        assertEquals(dense + L * ffn, k.activatedParamsPerToken());
        long fwd = L * (4L * d * d + 2L * d * ((ctx + 1) / 2) + ffn) + (long) d * V;
        assertEquals(fwd, k.forwardMacsPerToken());
        assertEquals(6 * fwd, k.trainingFlopsPerToken());
        // a dense model reads every weight once per forward call
        assertEquals(4 * k.totalParams(), ModelCosts.measuredParamBytesPerToken(m, 1));
        assertEquals(Math.round(4.0 * k.totalParams() / 8), ModelCosts.measuredParamBytesPerToken(m, 8));
        // more tokens than max_seq_len: several sequences
        assertEquals(Math.round(4.0 * k.totalParams() / 48), ModelCosts.measuredParamBytesPerToken(m, 48));
    }

    @Test
    void moeModelCounts() {
        ModelConfig c = small("moe");
        Model m = new Model(c);
        m.initialize(5);
        int d = 32, V = 64, L = 2, E = 8, topK = 2, h = 24;
        long dense = denseHand(V, d, L, d / 4);
        long expert = 3L * h * d, router = (long) E * d;
        ModelCosts k = ModelCosts.of(m, 16);
        assertEquals(dense + L * (router + E * expert), k.totalParams());
        assertEquals(dense + L * (router + topK * expert), k.activatedParamsPerToken());
        // one token: the router and exactly top-k experts per layer are read
        assertEquals(4 * (dense + L * (router + topK * expert)), ModelCosts.measuredParamBytesPerToken(m, 1));
        // many tokens: at most every expert, at least top-k, per layer
        long b = ModelCosts.measuredParamBytesPerToken(m, 16) * 16;
        assertTrue(b <= 4 * k.totalParams() && b >= 4 * (dense + L * (router + topK * expert)), "bytes " + b);
    }

    /**
     * With one token and one head no two selections share a value row, so the bytes counted from the
     * rows a forward really touched equal 4 × the activated-parameter formula (incl. Memory+'s shared rows).
     */
    @Test
    void memoryModelsAtBatchOneReadTheirActivatedParameters() {
        ModelConfig v2 = small("dense");
        v2.memType = "ultramem_v2"; v2.memInsertWay = "full"; v2.memKnum = 8; v2.memKdim = 8; v2.memVdim = 8;
        v2.memPreVdim = 8; v2.memKnn = 4; v2.memHead = 1; v2.memShareRatio = 0.5;
        ModelConfig mp = small("dense");
        mp.memType = "memory_plus"; mp.memInsertWay = "0:0/1:1"; mp.memKnum = 16; mp.memKdim = 8; mp.memVdim = 32;
        mp.memKnn = 4; mp.memHead = 1;
        for (ModelConfig c : new ModelConfig[]{v2, mp}) {
            Model m = new Model(c);
            m.initialize(11);
            ModelCosts k = ModelCosts.of(m, 16);
            assertEquals(4 * k.activatedParamsPerToken(), ModelCosts.measuredParamBytesPerToken(m, 1), c.memType);
            assertTrue(k.tableParams() > 0 && k.tableParams() < k.totalParams(), c.memType);
            // the memory layers' value rows are part of the activated count: knn rows per layer and head
            long rows = (long) MemoryPlacement.parse(c.memInsertWay, c.nLayers).size() * c.memHead * c.memKnn;
            long withoutRows = k.denseParams() + 2L * 3 * 48 * 32;
            for (var t : m.memoryLayers()) withoutRows += t.activatedParamsPerToken();
            long rowWidth = c.memType.equals("memory_plus") ? c.memVdim : 0;
            assertEquals(withoutRows + rows * rowWidth, k.activatedParamsPerToken(), c.memType);
        }
    }

    @Test
    void rejectsBadArguments() {
        Model m = new Model(small("dense"));
        assertThrows(dev.ultramem.core.UserError.class, () -> ModelCosts.of(m, 0));
        assertThrows(dev.ultramem.core.UserError.class, () -> ModelCosts.measuredParamBytesPerToken(m, 0));
    }
}
