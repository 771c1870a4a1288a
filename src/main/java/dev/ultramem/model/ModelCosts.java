package dev.ultramem.model;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.core.UserError;
import dev.ultramem.layer.TokenLayer;
import dev.ultramem.memory.MemoryPlus;
import dev.ultramem.memory.SharedMemory;

import java.util.Collections;

import static dev.ultramem.model.MemoryPlan.add;
import static dev.ultramem.model.MemoryPlan.mul;
import java.util.IdentityHashMap;
import java.util.Set;

/**
 * Size and cost of a model per token, the figures {@code info} and {@code bench} print and the
 * preset families are matched on.
 *
 * <ul>
 *   <li>{@code totalParams}: trainable elements of every tensor, shared tables and the tied
 *       embedding counted once (float buffers such as the Tucker u, v are not parameters).</li>
 *   <li>{@code activatedParamsPerToken}: dense part (embedding/output table, attention, norms) plus
 *       each FFN slot's and memory layer's {@link TokenLayer#activatedParamsPerToken()}, plus the
 *       shared-table rows a Memory+ layer reads ({@link MemoryPlus#sharedTableParamsPerToken()};
 *       UltraMemV2 already counts its shared rows). The whole embedding counts because the tied
 *       output projection reads every row for every token.</li>
 *   <li>{@code forwardMacsPerToken} at context length ctx: per block the attention projections
 *       {@code 4·d²} (qkv and output) plus scores and weighted values {@code 2·d·⌊(ctx+1)/2⌋} (a causal
 *       token sees (ctx+1)/2 keys on average), the FFN slot and memory layers from
 *       {@link TokenLayer#forwardMacsPerToken()}, the output logits {@code d·vocab}; the embedding
 *       lookup, norms, RoPE, softmax and top-k selections count 0.</li>
 *   <li>{@code trainingFlopsPerToken = 6 · forwardMacsPerToken} (2 FLOPs per multiply-add, backward
 *       ≈ 2× forward).</li>
 * </ul>
 */
public record ModelCosts(int contextLen, long totalParams, long denseParams, long tableParams,
                         long activatedParamsPerToken, long attentionMacsPerToken, long ffnMacsPerToken,
                         long memoryMacsPerToken, long logitMacsPerToken, long forwardMacsPerToken,
                         long trainingFlopsPerToken) {

    /**
     * A model to count costs on: which experts and table rows a token reads depends on the weights, so counts are
     * taken on an initialised model (seed 1), which makes them reproducible (docs/PRESETS.md).
     */
    public static Model forCounting(ModelConfig cfg) {
        Model m = new Model(cfg);
        m.initialize(1);
        m.setTraining(false);
        return m;
    }

    public static ModelCosts of(Model m, int contextLen) {
        if (contextLen <= 0) throw new UserError("costs: context length must be > 0, got " + contextLen);
        ModelConfig c = m.config();
        long d = c.dModel;
        long total = 0, tables = 0;
        for (Param p : m.params()) {
            if (!p.trainable) continue;
            total += p.numel();
            if (p.group == Param.Group.VALUE || p.group == Param.Group.VALUE_FIXED_LR) tables += p.numel();
        }
        long dense = denseParams(m);
        long activated = dense, ffnMacs = 0, memMacs = 0;
        for (int l = 0; l < c.nLayers; l++) {
            activated += m.ffn(l).activatedParamsPerToken();
            ffnMacs += m.ffn(l).forwardMacsPerToken();
        }
        for (TokenLayer t : m.memoryLayers()) {
            activated += t.activatedParamsPerToken();
            if (t instanceof MemoryPlus mp) activated += mp.sharedTableParamsPerToken();
            memMacs += t.forwardMacsPerToken();
        }
        long attn = c.nLayers * (4 * d * d + 2 * d * ((contextLen + 1) / 2));
        long logits = d * c.vocabSize;
        long fwd = attn + ffnMacs + memMacs + logits;
        return new ModelCosts(contextLen, total, dense, tables, activated, attn, ffnMacs, memMacs, logits, fwd, 6 * fwd);
    }

    /**
     * The same counts from the config alone, without building the model (for models too large to build):
     * the tensors of {@link MemoryPlan#tensors()} and the layers' per-token formulas. Equal to
     * {@link #of(Model, int)} on the built model (tested on every preset).
     */
    public static ModelCosts of(ModelConfig c, int contextLen) {
        if (contextLen <= 0) throw new UserError("costs: context length must be > 0, got " + contextLen);
        long total = 0, tables = 0, dense = 0;
        for (MemoryPlan.Tensor t : MemoryPlan.of(MemoryPlan.Use.MODEL, c, null, 1).tensors()) {
            if (!t.trainable()) continue;
            total = add(total, t.total());
            if (t.group() == Param.Group.VALUE || t.group() == Param.Group.VALUE_FIXED_LR) tables = add(tables, t.total());
            if (t.owner() == MemoryPlan.Owner.DENSE) dense = add(dense, t.total());
        }
        long d = c.dModel, L = c.nLayers;
        long[] ffn = ffnPerToken(c), mem = memoryPerToken(c);
        long M = MemoryPlan.memoryLayers(c);
        long ffnMacs = mul(L, ffn[1]), memMacs = mul(M, mem[1]);
        long activated = add(add(dense, mul(L, ffn[0])), mul(M, mem[0]));
        long attn = mul(L, add(mul(4, d, d), mul(2, d, (contextLen + 1L) / 2)));
        long logits = mul(d, c.vocabSize);
        long fwd = add(add(attn, ffnMacs), add(memMacs, logits));
        return new ModelCosts(contextLen, total, dense, tables, activated, attn, ffnMacs, memMacs, logits, fwd, mul(6, fwd));
    }

    /** {activated parameters, forward multiply-adds} per token of one FFN slot (DenseFfn, MoeFfn). */
    private static long[] ffnPerToken(ModelConfig c) {
        long d = c.dModel;
        if (c.ffnType.equals("moe")) {
            long p = add(mul(c.moeNumExperts, d), mul(c.moeTopK, 3, c.moeExpertHidden, d));
            return new long[]{p, p};
        }
        long p = mul(3, c.mlpHiddenSize / 2, d);
        return new long[]{p, p};
    }

    /**
     * {activated parameters, forward multiply-adds} per token of one memory layer: what UltraMemV1,
     * UltraMemV2, Pkm and MemoryPlus count (Memory+ with the shared-table rows it reads).
     */
    private static long[] memoryPerToken(ModelConfig c) {
        if (!c.hasMemory()) return new long[]{0, 0};
        MemoryPlan.MemoryShape s = MemoryPlan.memoryShape(c);
        long d = c.dModel, H = c.memHead, kd = c.memKdim, vd = c.memVdim, knn = c.memKnn, k1 = s.stage1();
        long rows = mul(H, knn, vd);  // value rows read per token
        switch (c.memType) {
            case "ultramem_v1", "ultramem_v2" -> {
                long r = c.memTuckerRank, C = c.memTuckerCores, kn = s.keyNum();
                long query = mul(s.querySlots(), kd, d);
                long retrievalParams = add(add(query, mul(2, kd)), add(mul(H, 2, kn, kd, r), mul(C, H, r, r)));
                long retrievalMacs = add(add(query, mul(H, 2, r, kn, kd)),
                        add(mul(H, 2, k1, r, kd), mul(H, C, add(mul(k1, r, r), mul(k1, k1, r)))));
                boolean v1 = c.memType.equals("ultramem_v1");
                long proj = mul(d, v1 ? c.memV1ValueExpandTime : c.memValueExpandTime, vd);
                long params = add(add(retrievalParams, proj), rows), macs = add(add(retrievalMacs, rows), proj);
                if (!v1 && c.memPreVdim > 0) {
                    long pre = mul(c.memPreVdim, d), preRows = mul(H, knn, c.memPreVdim);
                    params = add(params, add(pre, preRows));
                    macs = add(macs, add(pre, preRows));
                }
                return new long[]{params, macs};
            }
            case "pkm", "memory_plus" -> {
                long query = mul(2, kd, H, d), keys = mul(H, 2, c.memKnum, kd), grid = mul(H, k1, k1);
                if (c.memType.equals("pkm")) return new long[]{add(add(query, keys), rows), add(add(query, keys), add(grid, rows))};
                long gate = mul(2, vd, d), norms = c.memKeyNorm ? 2 * kd : kd;
                return new long[]{add(add(query, keys), add(add(gate, norms), rows)), add(add(query, keys), add(grid, add(rows, gate)))};
            }
            default -> throw new IllegalStateException("mem_type " + c.memType);
        }
    }

    /**
     * Trainable parameters outside the FFN slots, memory layers and shared tables: embedding (tied
     * output projection), attention, norms. Every forward call reads all of them once.
     */
    public static long denseParams(Model m) {
        Set<Param> sparse = Collections.newSetFromMap(new IdentityHashMap<>());
        for (int l = 0; l < m.config().nLayers; l++) sparse.addAll(m.ffn(l).params());
        for (TokenLayer t : m.memoryLayers()) sparse.addAll(t.params());
        SharedMemory sh = m.sharedMemory();
        if (sh != null) sparse.addAll(sh.params());
        long n = 0;
        for (Param p : m.params()) if (p.trainable && !sparse.contains(p)) n += p.numel();
        return n;
    }

    /**
     * Parameter bytes one forward call reads per token when it processes {@code batch} tokens
     * together: runs a real forward over {@code batch} random tokens (fixed seed), laid out as
     * {@code batch/T} sequences of T tokens with T the largest divisor of batch that is at most
     * max_seq_len (one sequence when batch ≤ max_seq_len, so every token has its own position and
     * hidden state), then adds the dense weights (read once) and every layer's
     * {@link TokenLayer#lastForwardParamBytes()} (weights once, distinct table rows, used experts),
     * divided by batch. Uses the model's current weights (initialise or load them first).
     */
    public static long measuredParamBytesPerToken(Model m, int batch) {
        if (batch <= 0) throw new UserError("costs: batch must be > 0, got " + batch);
        ModelConfig c = m.config();
        int T = Math.min(batch, c.maxSeqLen);
        while (batch % T != 0) T--;
        int B = batch / T;
        int[] tokens = new int[batch];
        Rng rng = new Rng(0x5eed_b17e5L + batch);
        for (int i = 0; i < batch; i++) tokens[i] = rng.nextInt(c.vocabSize);
        m.logits(tokens, B, T);
        long bytes = denseParams(m) * Float.BYTES;
        for (int l = 0; l < c.nLayers; l++) bytes += m.ffn(l).lastForwardParamBytes();
        for (TokenLayer t : m.memoryLayers()) bytes += t.lastForwardParamBytes();
        return Math.round((double) bytes / batch);
    }
}
