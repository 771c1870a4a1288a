package dev.ultramem.model;

import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;
import dev.ultramem.core.UserError;
import dev.ultramem.layer.Attention;
import dev.ultramem.train.JobConfig;
import dev.ultramem.train.TrainConfig;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** The memory plan and the analytic counts, computed from the config alone, against hand counts and built models. */
class MemoryPlanTest {

    /** Every shipped preset plus variants that reach the other branches of the layer formulas. */
    static List<ModelConfig> configs() {
        List<ModelConfig> out = new ArrayList<>();
        for (String n : JobConfig.presetNames()) out.add(JobConfig.build(n, null, List.of()).model);
        List<List<String>> variants = List.of(
                List.of("model.mem_type=ultramem_v2", "model.mem_query_mode=released", "model.mem_key_expand_time=2",
                        "model.mem_value_expand_time=4", "model.mem_pre_vdim=0", "model.mem_head=2", "model.mem_insert_way=0:1/2:3"),
                List.of("model.mem_type=ultramem_v2", "model.mem_stage1_knn=24", "model.mem_share_ratio=0.3", "model.mem_key_expand_time=2"),
                List.of("model.mem_type=ultramem_v1", "model.mem_head=3", "model.mem_v1_value_expand_time=9", "model.mem_insert_way=1:2"),
                List.of("model.mem_type=memory_plus", "model.mem_vdim=128", "model.mem_key_norm=false", "model.mem_stage1_knn=20"),
                List.of("model.mem_type=pkm", "model.mem_vdim=128", "model.mem_key_norm=false", "model.mem_head=3"),
                List.of("model.mem_type=none", "model.ffn_type=moe", "model.moe_num_experts=5", "model.moe_top_k=3", "model.moe_expert_hidden=40"));
        for (List<String> v : variants) out.add(JobConfig.build("ultramem-v2-tiny", null, v).model);
        return out;
    }

    @Test
    void analyticCountsEqualTheBuiltModelOnEveryPresetAndVariant() {
        for (ModelConfig c : configs()) {
            Model m = new Model(c);  // weights allocated, never initialised: the tables stay unallocated
            for (int ctx : new int[]{1, 64, c.maxSeqLen})
                assertEquals(ModelCosts.of(m, ctx), ModelCosts.of(c, ctx), c.memType + "/" + c.ffnType + " " + Configs.toJson(c));
        }
    }

    @Test
    void planTensorsAreTheModelsTensors() {
        for (ModelConfig c : configs()) {
            Model m = new Model(c);
            MemoryPlan plan = MemoryPlan.of(MemoryPlan.Use.MODEL, c, null, 1);
            assertEquals(sums(m.params()), sums(plan), Configs.toJson(c));
            long idx = 0;
            for (IndexBuffer b : m.indexBuffers()) idx += b.data().length;
            assertEquals(idx, plan.indexEntries());
            long heap = 0, off = 0;
            for (Param p : m.params()) if (p.isHeap()) heap += 4 * p.numel(); else off += 4 * p.numel();
            assertEquals(heap, plan.bytes(MemoryPlan.Part.WEIGHTS, true));
            assertEquals(off, plan.bytes(MemoryPlan.Part.TABLES, false));
        }
    }

    /** Elements per (group, trainable, heap). */
    private static Map<String, Long> sums(List<Param> params) {
        Map<String, Long> s = new java.util.TreeMap<>();
        for (Param p : params) s.merge(p.group + "/" + p.trainable + "/" + p.isHeap(), p.numel(), Long::sum);
        return s;
    }

    private static Map<String, Long> sums(MemoryPlan plan) {
        Map<String, Long> s = new java.util.TreeMap<>();
        for (MemoryPlan.Tensor t : plan.tensors()) s.merge(t.group() + "/" + t.trainable() + "/" + t.heap(), t.total(), Long::sum);
        return s;
    }

    /** V 16, d 8, 1 layer, 2 heads (hd 4), SwiGLU inner 4, max_seq_len 4; batch 2 × 4 tokens, 1 thread. */
    @Test
    void tinyDensePlanByHand() {
        ModelConfig c = new ModelConfig();
        c.vocabSize = 16; c.dModel = 8; c.nLayers = 1; c.nHeads = 2; c.mlpHiddenSize = 8; c.maxSeqLen = 4;
        TrainConfig t = new TrainConfig();
        t.batchSize = 2; t.seqLen = 4; t.steps = 10;
        MemoryPlan p = MemoryPlan.of(MemoryPlan.Use.TRAIN, c.validate(), t, 1);
        // wte 128, attn_norm 8, att_proj 192, q_norm 4, k_norm 4, attn_out 64, ff_norm 8, ff_proj 64, ff_out 32, ln_f 8
        long weights = 512 * 4;
        assertEquals(weights, p.bytes(MemoryPlan.Part.WEIGHTS, true));
        assertEquals(2 * weights, p.bytes(MemoryPlan.Part.OPTIMIZER, true));
        assertEquals(weights, p.bytes(MemoryPlan.Part.GRADIENTS, true));
        assertEquals(0, p.offHeapBytes());
        // n = 8 tokens, n·d = 64: Model xs 2·64, xf/dX/dXf 3·64, rstd/loss 2·8, logits 8·16, token ids 4·8;
        // Block 7·64 + 2·8; Attention qkv/dqkv 2·192, 13·64 head tensors, QK-norm factors 2·16,
        // probabilities B·H·(4·4) = 64 (T ≤ 256 keeps them), row log-sum-exp n·H = 16, score-gradient block 1 thread × (64·T + 2·64), QK weight partials 2·(B·H·hd) = 32;
        // SwiGLU 6·(8·4) = 192
        long act = 2 * 64 + 3 * 64 + 2 * 8 + 128 + 32
                + 7 * 64 + 2 * 8
                + 2 * 192 + 13 * 64 + 2 * 16 + 64 + 16 + (64 * 4 + 2 * 64) + 32
                + 192;
        assertEquals(act * 4, p.bytes(MemoryPlan.Part.ACTIVATIONS, true));
        // RoPE cos and sin 2·(4·2), loss history max(16, steps) + 1 = 17
        assertEquals((16 + 17) * 4, p.bytes(MemoryPlan.Part.BUFFERS, true));
        // keys and values 2·(2·4·4) = 64, scores 4, token states 8·8, query projection 24, logits 16, sampler 2·16 longs/doubles, window 4
        assertEquals((64 + 4 + 64 + 24 + 16 + 4) * 4 + 2 * 16 * 8, p.bytes(MemoryPlan.Part.KV_CACHE, true));
        assertEquals(p.heapBytes(), weights * 4 + act * 4 + 33 * 4 + p.bytes(MemoryPlan.Part.KV_CACHE, true));
        // generation: weights, one token's activations, buffers and the KV cache; no optimizer, no gradients
        MemoryPlan g = MemoryPlan.of(MemoryPlan.Use.GENERATE, c, t, 1);
        assertEquals(0, g.bytes(MemoryPlan.Part.OPTIMIZER, true));
        assertEquals(p.bytes(MemoryPlan.Part.KV_CACHE, true), g.bytes(MemoryPlan.Part.KV_CACHE, true));
    }

    @Test
    void attentionProbabilitiesCoverTheCausalBlocks() {
        assertEquals(1, Attention.causalPairSize(1));
        assertEquals(64 * 64, Attention.causalPairSize(64));
        assertEquals(64 * 64 + 1 * 65, Attention.causalPairSize(65));
        assertEquals(64 * (64 + 128 + 192 + 256), Attention.causalPairSize(256));
    }

    @Test
    void arithmeticSaturatesInsteadOfOverflowing() {
        assertEquals(Long.MAX_VALUE, MemoryPlan.mul(1L << 40, 1L << 40));
        assertEquals(Long.MAX_VALUE, MemoryPlan.add(Long.MAX_VALUE - 1, 5));
        assertEquals(0, MemoryPlan.mul(Long.MAX_VALUE, 0));
        assertEquals("1.0 KB", MemoryPlan.human(1024));
        assertEquals("3.0 GB", MemoryPlan.human(3L << 30));
        assertEquals("more than 8 EB", MemoryPlan.human(Long.MAX_VALUE));
    }

    @Test
    void mappedTablesDoNotCountAgainstMemoryForInference() {
        JobConfig big = JobConfig.build("family-pkm", null, List.of("model.mem_knum=40000", "train.batch_size=1"));
        MemoryPlan train = MemoryPlan.of(MemoryPlan.Use.TRAIN, big.model, big.train, 2);
        long table = 40000L * 40000 * 256 * 4 * 2;  // two layers
        assertEquals(table, train.bytes(MemoryPlan.Part.TABLES, false));
        assertEquals(4 * table, train.offHeapBytes());  // values, two moments, gradient
        UserError e = assertThrows(UserError.class, train::requireFits);
        assertTrue(e.getMessage().startsWith("config: model.mem_knum=40000 needs"), e.getMessage());
        assertTrue(e.getMessage().contains("of off-heap memory for training"), e.getMessage());
        for (MemoryPlan.Use u : new MemoryPlan.Use[]{MemoryPlan.Use.GENERATE, MemoryPlan.Use.EVAL}) {
            MemoryPlan inf = MemoryPlan.of(u, big.model, big.train, 2);
            assertEquals(0, inf.offHeapBytes());
            assertEquals(table, inf.mappedBytes());
            inf.requireFits();  // the heap part is small
        }
    }

    @Test
    void limitsNameTheKeyThatMakesAnArrayTooLarge() {
        ModelConfig c = JobConfig.build("dense-tiny", null, List.of()).model;
        c.dModel = 1 << 26;
        UserError e = assertThrows(UserError.class, c::validate);
        assertTrue(e.getMessage().startsWith("config: model.d_model=67108864 makes "), e.getMessage());
        assertTrue(e.getMessage().contains("more than a Java array holds"), e.getMessage());
        ModelConfig v2 = JobConfig.build("ultramem-v2-tiny", null, List.of()).model;
        v2.memKnum = 30000;  // 9e8 rows × 4 layers
        e = assertThrows(UserError.class, v2::validate);
        assertTrue(e.getMessage().startsWith("config: model.mem_knum=30000 makes the rows of the shared value table"), e.getMessage());
    }
}
