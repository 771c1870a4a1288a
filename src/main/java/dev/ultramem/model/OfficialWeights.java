package dev.ultramem.model;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;
import dev.ultramem.core.UserError;
import dev.ultramem.io.Safetensors;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Loads weights that use the official PyTorch names and layouts (OLMo + UltraMem/UltraMemV2/Memory+),
 * e.g. a state dict exported to safetensors, including the V2 {@code transformer.full_memory_layer.}
 * table and the released {@code 2·r·kdim} query layout.
 *
 * <p>The official {@code ModelConfig} (JSON object with {@code d_model}, {@code mem_*}, ...) maps onto
 * ours in released mode, so a loaded model computes what the official code computes.
 */
public final class OfficialWeights {
    private OfficialWeights() {}

    /** Translates an official OLMo {@code ModelConfig} JSON object into a released-mode config. */
    public static ModelConfig configFromOfficial(JsonNode c) {
        require(c, "weight_tying", true, "untied embeddings are not supported");
        require(c, "include_bias", false, "biases are not supported");
        requireText(c, "layer_norm_type", "rms");
        require(c, "rope", true, "only RoPE positions are supported");
        require(c, "alibi", false, "ALiBi is not supported");
        require(c, "attention_layer_norm", true, "models without QK-norm are not supported");
        require(c, "scale_logits", false, "logit scaling is not supported");
        if (c.hasNonNull("n_kv_heads") && c.get("n_kv_heads").asInt() != c.get("n_heads").asInt())
            throw new UserError("official config: grouped-query attention (n_kv_heads != n_heads) is not supported");
        ModelConfig m = new ModelConfig();
        m.dModel = intOf(c, "d_model");
        m.nLayers = intOf(c, "n_layers");
        m.nHeads = intOf(c, "n_heads");
        m.vocabSize = c.hasNonNull("embedding_size") ? c.get("embedding_size").asInt() : intOf(c, "vocab_size");
        m.maxSeqLen = intOf(c, "max_sequence_length");
        if (c.hasNonNull("rope_theta")) m.ropeTheta = c.get("rope_theta").asDouble();
        if (c.hasNonNull("layer_norm_eps")) m.normEps = c.get("layer_norm_eps").asDouble();
        if (c.hasNonNull("init_std")) m.initStd = c.get("init_std").asDouble();
        if (c.hasNonNull("init_cutoff_factor")) m.initCutoffFactor = c.get("init_cutoff_factor").asDouble();
        String block = c.path("block_type").asText("sequential");
        if (block.equals("moe")) {
            m.ffnType = "moe";
            m.moeNumExperts = intOf(c, "moe_num_experts");
            m.moeTopK = intOf(c, "moe_top_k");
            double ratio = c.path("mlp_ratio").asDouble(1);
            m.moeExpertHidden = (int) (0.5 * ratio * m.dModel);
        } else if (block.equals("sequential")) {
            m.ffnType = "dense";
            m.mlpHiddenSize = c.hasNonNull("mlp_hidden_size") ? c.get("mlp_hidden_size").asInt()
                    : (int) (c.path("mlp_ratio").asDouble(4) * m.dModel);
        } else {
            throw new UserError("official config: block_type '" + block + "' is not supported");
        }
        String way = c.path("mem_insert_way").asText("full");
        String type = c.path("mem_type").asText("ultramem_v2");
        if (way.equals("no_mem") || block.equals("moe")) {
            m.memType = "none";
        } else {
            m.memType = type;
            m.memInsertWay = way;
            m.memKnum = intOf(c, "mem_knum");
            m.memKdim = intOf(c, "mem_kdim");
            m.memVdim = intOf(c, "mem_vdim");
            m.memKnn = intOf(c, "mem_knn");
            m.memHead = intOf(c, "mem_head");
            m.memPreVdim = c.path("mem_pre_vdim").asInt(0);
            m.memShareRatio = c.path("mem_share_ratio").asDouble(1.0);
            m.memKeyExpandTime = c.path("mem_key_expand_time").asInt(1);
            m.memValueExpandTime = c.path("mem_value_expand_time").asInt(1);
            m.memKeyBalanceCoef = c.path("mem_key_balance_reg_coef").asDouble(0);
            m.memOutputDropout = c.path("mem_output_dropout_rate").asDouble(0);
            m.memUseGluAct = c.path("mem_use_glu_act").asBoolean(false);
            // released semantics: shared row/column query, official init constants, no Tucker penalty,
            // Memory+ keys left unnormalised as the official code does
            m.memQueryMode = "released";
            m.memInit = "released";
            m.memTuckerPenalty = 0.0;
            m.memKeyNorm = !type.equals("memory_plus");
            if (type.equals("ultramem_v2") && !c.path("mem_q_for_each_tucker_rank").asBoolean(false))
                throw new UserError("official config: ultramem_v2 with mem_q_for_each_tucker_rank=false cannot run in the official code; "
                        + "set it to true (weights then have a 4·kdim query projection)");
        }
        return m.validate();
    }

    /**
     * Copies every tensor of the model from the file by official name, checking shapes, then refreshes
     * derived state ({@link Model#afterWeightsChanged()}: Tucker u, v with the stored ones as the sign reference).
     * A tensor in the file that is neither a tensor of the model nor on {@link #isReferenceRunTensor the
     * allow-list} is an error naming it: a name the config does not explain means a different model.
     */
    public static void load(Model model, Safetensors file) {
        Set<String> known = new HashSet<>();
        model.params().forEach(p -> known.add(p.name));
        model.indexBuffers().forEach(b -> known.add(b.name()));
        file.requireNoUnknownTensors(n -> known.contains(n) || isReferenceRunTensor(n),
                "not a weight or buffer of the official model its config describes");
        List<String> missing = new ArrayList<>();
        for (Param p : model.params()) {
            if (!file.has(p.name)) {
                // u, v are derived from the cores; everything else must be present
                if (!p.trainable) continue;
                missing.add(p.name);
                continue;
            }
            Safetensors.Entry e = file.get(p.name);
            e.requireDtype("F32");
            if (!java.util.Arrays.equals(e.shape(), p.shape))
                throw new UserError(file.path() + ": tensor " + p.name + " has shape " + java.util.Arrays.toString(e.shape())
                        + " but the config needs " + p.shapeString());
            MemorySegment.copy(e.data(), Safetensors.LE_FLOAT, 0, p.segment(), ValueLayout.JAVA_FLOAT, 0, p.numel());
        }
        if (!missing.isEmpty())
            throw new UserError(file.path() + ": missing " + missing.size() + " tensor(s), e.g. " + missing.get(0));
        for (IndexBuffer b : model.indexBuffers()) {
            int[] v = file.get(b.name()).toInts();
            if (v.length != b.data().length)
                throw new UserError(file.path() + ": " + b.name() + " has " + v.length + " entries, the config needs " + b.data().length);
            System.arraycopy(v, 0, b.data(), 0, v.length);
        }
        model.afterWeightsChanged();
    }

    /**
     * The allow-list of tensors an import skips on purpose: what a reference run stores beside the
     * state dict (the layout of the golden files, ../shared/golden/README.md) — its input
     * {@code input_ids}, its outputs {@code logits} and {@code loss}, gradients {@code grad.*} and
     * intermediates {@code debug.*}. They are data, not weights.
     */
    public static boolean isReferenceRunTensor(String name) {
        return name.equals("input_ids") || name.equals("logits") || name.equals("loss")
                || name.startsWith("grad.") || name.startsWith("debug.");
    }

    private static int intOf(JsonNode c, String key) {
        JsonNode n = c.get(key);
        if (n == null || !n.canConvertToInt()) throw new UserError("official config: missing or invalid " + key);
        return n.asInt();
    }

    private static void require(JsonNode c, String key, boolean expected, String msg) {
        if (c.hasNonNull(key) && c.get(key).asBoolean() != expected) throw new UserError("official config: " + msg);
    }

    private static void requireText(JsonNode c, String key, String expected) {
        if (c.hasNonNull(key) && !c.get(key).asText().equals(expected))
            throw new UserError("official config: " + key + " must be '" + expected + "', got '" + c.get(key).asText() + "'");
    }
}
