package dev.ultramem.model;

import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import dev.ultramem.core.UserError;

/**
 * Model hyper-parameters. JSON/YAML keys are snake_case and follow the official config names
 * ({@code d_model}, {@code mlp_hidden_size}, {@code mem_knum}, ...). Unknown keys are errors.
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
public final class ModelConfig {
    // ---- dense transformer (OLMo) ----
    public int vocabSize = 256;
    /**
     * Engine key, not an official one: byte (default), r50k_base, cl100k_base or hf:PATH (a Hugging Face
     * tokenizer.json, embedded in the checkpoint); vocab_size must cover its ids (see dev.ultramem.data.Tokenizers).
     */
    public String tokenizer = dev.ultramem.data.ByteTokenizer.NAME;
    public int dModel = 256;
    public int nLayers = 4;
    public int nHeads = 4;
    /** ff_proj output size; the SwiGLU inner width is half of it (official convention). */
    public int mlpHiddenSize = 2048;
    public int maxSeqLen = 256;
    public double ropeTheta = 10000;
    public double normEps = 1e-5;
    /** std of the full_megatron init; 0 means sqrt(2 / (5·d_model)). */
    public double initStd = 0;
    public double initCutoffFactor = 3;

    // ---- FFN slot: "dense" (SwiGLU) or "moe" (OLMoE) ----
    public String ffnType = "dense";
    public int moeNumExperts = 16;
    public int moeTopK = 2;
    /** SwiGLU inner width of one expert. */
    public int moeExpertHidden = 256;
    public double moeLbWeight = 0.01;
    public double moeZWeight = 0.001;

    // ---- memory layer beside the FFN ----
    /** none | ultramem_v1 | ultramem_v2 | pkm | memory_plus */
    public String memType = "none";
    /** "full" (every block) or "a:b/c:d/..." (reads block a's FFN input, adds after block b). */
    public String memInsertWay = "full";
    public int memKnum = 16;
    public int memKdim = 32;
    public int memVdim = 32;
    public int memPreVdim = 16;
    public int memKnn = 16;
    /** Stage-1 (row/column) top-k; 0 means equal to mem_knn. */
    public int memStage1Knn = 0;
    public int memHead = 1;
    public double memShareRatio = 1.0;
    public int memKeyExpandTime = 1;
    public int memValueExpandTime = 1;
    /** UltraMem v1 implicit value expansion E (a perfect square). */
    public int memV1ValueExpandTime = 4;
    public int memTuckerRank = 2;
    public int memTuckerCores = 2;
    /**
     * UltraMemV2 query: "released" (shared row/column query, 2·r·kdim projection), "paper" (a query per side and
     * rank) or "shared" (shared row/column query, 2·kdim projection: the official mem_q_for_each_tucker_rank false).
     * The default is the released query: the {@code recipe} experiment found the released recipe better than the
     * paper's at our scale, as a held-back real-text run had (docs/memory-layers.md), and the official code can
     * load it ({@code export} refuses per-rank queries).
     */
    public String memQueryMode = "released";
    /**
     * "released" (official constants, the default, for the same evidence as the query), "paper" (variance
     * matching) or "auto" (paper for UltraMemV2, released for everything else: the earlier default, kept so that
     * configs naming it mean what they meant).
     */
    public String memInit = "released";
    /** Tucker-core penalty weight α (0 = off; unset = 0.001 for UltraMem v1, off for V2, as decided in the spec) and margin τ. */
    public Double memTuckerPenalty = null;
    public double memTuckerTau = 0.15;
    public double memKeyBalanceCoef = 0;
    public double memOutputDropout = 0;
    public boolean memUseGluAct = false;
    /** Memory+ / PKM: normalise keys (the official Memory+ code does not: set false to reproduce it). */
    public boolean memKeyNorm = true;

    public ModelConfig copy() {
        try {
            return Configs.JSON.readValue(Configs.JSON.writeValueAsBytes(this), ModelConfig.class);
        } catch (java.io.IOException e) {
            throw new IllegalStateException(e);
        }
    }

    public int headDim() { return dModel / nHeads; }

    public double effectiveInitStd() { return initStd > 0 ? initStd : Math.sqrt(2.0 / (5.0 * dModel)); }

    public boolean hasMemory() { return !"none".equals(memType); }

    /** Whether the memory layers use the papers' variance-matching init ({@code mem_init}, "auto" resolved). */
    public boolean paperInit() {
        return memInit.equals("paper") || (memInit.equals("auto") && memType.equals("ultramem_v2"));
    }

    /** The Tucker-core penalty weight α in force ({@code mem_tucker_penalty}, unset resolved by type). */
    public double tuckerPenalty() {
        if (memTuckerPenalty != null) return memTuckerPenalty;
        return memType.equals("ultramem_v1") ? 0.001 : 0.0;
    }

    /**
     * Checks every value and their combination, and that the arrays and tables of the model stay within
     * the engine's limits ({@link MemoryPlan#checkLimits()}); throws a one-line {@link UserError} naming the key.
     */
    public ModelConfig validate() {
        validateValues();
        validateCombination();
        MemoryPlan.of(MemoryPlan.Use.MODEL, this, null, 1).checkLimits();
        return this;
    }

    /**
     * Checks each value on its own (type-specific keys when their ffn_type or mem_type is selected): what
     * every layer of a config (preset, file, each override) must satisfy as it is read.
     */
    public ModelConfig validateValues() {
        Configs.requireFinite("rope_theta", ropeTheta); Configs.requireFinite("norm_eps", normEps);
        Configs.requireFinite("init_std", initStd); Configs.requireFinite("init_cutoff_factor", initCutoffFactor);
        Configs.requireFinite("moe_lb_weight", moeLbWeight); Configs.requireFinite("moe_zweight", moeZWeight);
        Configs.requireFinite("mem_share_ratio", memShareRatio); Configs.requireFinite("mem_tucker_tau", memTuckerTau);
        Configs.requireFinite("mem_key_balance_coef", memKeyBalanceCoef); Configs.requireFinite("mem_output_dropout", memOutputDropout);
        if (memTuckerPenalty != null) Configs.requireFinite("mem_tucker_penalty", memTuckerPenalty);
        positive("vocab_size", vocabSize);
        dev.ultramem.data.Tokenizers.checkName(tokenizer);
        positive("d_model", dModel);
        positive("n_layers", nLayers);
        positive("n_heads", nHeads);
        positive("max_seq_len", maxSeqLen);
        if (!(normEps > 0)) throw new UserError("config: norm_eps must be > 0");
        if (!(ropeTheta > 0)) throw new UserError("config: rope_theta must be > 0");
        if (initStd < 0) throw new UserError("config: init_std must be >= 0");
        if (!(initCutoffFactor > 0)) throw new UserError("config: init_cutoff_factor must be > 0");
        switch (ffnType) {
            case "dense" -> {
                positive("mlp_hidden_size", mlpHiddenSize);
                if (mlpHiddenSize % 2 != 0) throw new UserError("config: mlp_hidden_size must be even (it holds the SwiGLU value and gate halves)");
            }
            case "moe" -> {
                positive("moe_num_experts", moeNumExperts);
                positive("moe_top_k", moeTopK);
                positive("moe_expert_hidden", moeExpertHidden);
                if (moeLbWeight < 0 || moeZWeight < 0) throw new UserError("config: moe_lb_weight and moe_zweight must be >= 0");
            }
            case null, default -> throw new UserError("config: ffn_type must be dense or moe, got '" + ffnType + "'");
        }
        switch (memType) {
            case "none" -> {}
            case "ultramem_v1", "ultramem_v2", "pkm", "memory_plus" -> validateMemoryValues();
            case null, default -> throw new UserError("config: mem_type must be none, ultramem_v1, ultramem_v2, pkm or memory_plus, got '" + memType + "'");
        }
        return this;
    }

    private void validateMemoryValues() {
        positive("mem_knum", memKnum);
        positive("mem_kdim", memKdim);
        positive("mem_vdim", memVdim);
        positive("mem_knn", memKnn);
        positive("mem_head", memHead);
        if (memPreVdim < 0) throw new UserError("config: mem_pre_vdim must be >= 0");
        if (memStage1Knn < 0) throw new UserError("config: mem_stage1_knn must be >= 0");
        if (!(memShareRatio > 0 && memShareRatio <= 1)) throw new UserError("config: mem_share_ratio must be in (0, 1]");
        positive("mem_key_expand_time", memKeyExpandTime);
        positive("mem_tucker_rank", memTuckerRank);
        positive("mem_tucker_cores", memTuckerCores);
        int e = (int) Math.round(Math.sqrt(memV1ValueExpandTime));
        if (memV1ValueExpandTime < 1 || e * e != memV1ValueExpandTime) throw new UserError("config: mem_v1_value_expand_time must be a perfect square");
        if (!"released".equals(memQueryMode) && !"paper".equals(memQueryMode) && !"shared".equals(memQueryMode))
            throw new UserError("config: mem_query_mode must be released, paper or shared");
        if (!"released".equals(memInit) && !"paper".equals(memInit) && !"auto".equals(memInit)) throw new UserError("config: mem_init must be auto, released or paper");
        if (memOutputDropout < 0 || memOutputDropout >= 1) throw new UserError("config: mem_output_dropout must be in [0, 1)");
        if ((memTuckerPenalty != null && memTuckerPenalty < 0) || memKeyBalanceCoef < 0) throw new UserError("config: loss coefficients must be >= 0");
        if (memInsertWay == null || memInsertWay.isBlank()) throw new UserError("config: mem_insert_way is empty (use full, no_mem or a:b/c:d/...)");
    }

    /** The checks that involve several keys (a later layer may still change one of them). */
    private void validateCombination() {
        if (dModel % nHeads != 0) throw new UserError("config: n_heads (" + nHeads + ") must divide d_model (" + dModel + ")");
        if (headDim() % 2 != 0) throw new UserError("config: head dimension d_model/n_heads must be even for RoPE, got " + headDim());
        if (ffnType.equals("moe") && moeTopK > moeNumExperts)
            throw new UserError("config: moe_top_k (" + moeTopK + ") exceeds moe_num_experts (" + moeNumExperts + ")");
        if (!hasMemory()) return;
        if (memValueExpandTime != 1 && memValueExpandTime != (long) memKeyExpandTime * memKeyExpandTime)
            throw new UserError("config: mem_value_expand_time must be 1 or mem_key_expand_time² (" + (long) memKeyExpandTime * memKeyExpandTime + ")");
        if (memVdim % memTuckerCores != 0) throw new UserError("config: mem_vdim must be divisible by mem_tucker_cores");
        if (memType.equals("memory_plus") && memVdim != dModel) throw new UserError("config: memory_plus needs mem_vdim == d_model");
        MemoryPlacement.parse(memInsertWay, nLayers); // validates
    }

    private static void positive(String key, int v) {
        if (v <= 0) throw new UserError("config: " + key + " must be > 0, got " + v);
    }
}
