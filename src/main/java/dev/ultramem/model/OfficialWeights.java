package dev.ultramem.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;
import dev.ultramem.core.UserError;
import dev.ultramem.io.Safetensors;
import dev.ultramem.layer.MoeFfn;
import dev.ultramem.layer.TokenLayer;
import dev.ultramem.memory.UltraMemV2;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Loads weights that use the official PyTorch names and layouts (OLMo + UltraMem/UltraMemV2/Memory+),
 * e.g. a state dict exported to safetensors, including the V2 {@code transformer.full_memory_layer.}
 * table and the released {@code 2·r·kdim} query layout.
 *
 * <p>The official {@code ModelConfig} (JSON object with {@code d_model}, {@code mem_*}, ...) maps onto
 * ours in released mode, so a loaded model computes what the official code computes.
 *
 * <p>Both directions: {@link #load} reads official tensors (F32, BF16 or F16) into a model,
 * {@link #officialTensors} and {@link #officialConfig} write a model back in the official layout. The
 * names are the engine's own except for the MoE FFN, which the official code holds in the megablocks
 * dMoE layout ({@code ffn.router.layer.weight [E, d]}, {@code ffn.experts.mlp.w1}, {@code .v1},
 * {@code .w2}, each {@code [E·f, d]} with expert e in rows {@code [e·f, (e+1)·f)}:
 * {@code y_e = (SiLU(x·w1_eᵀ) ⊙ (x·v1_eᵀ))·w2_e}), so w1 is the gate half of our {@code ff_proj},
 * v1 its linear half and w2 our {@code ff_out} transposed.
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
        requireText(c, "activation_type", "swiglu");
        require(c, "norm_after", false, "norm_after (post-norm blocks) is not supported");
        require(c, "embedding_layer_norm", false, "embedding_layer_norm is not supported");
        if (c.hasNonNull("clip_qkv")) throw new UserError("official config: clip_qkv is not supported");
        if (c.path("block_group_size").asInt(1) != 1) throw new UserError("official config: block_group_size other than 1 is not supported");
        String block = c.path("block_type").asText("sequential");
        if (block.equals("moe")) {
            // megablocks dMoE as OLMo configures it (config_to_moe_args): expert width = ½·(mlp_hidden_size or mlp_ratio·d)
            require(c, "moe_dropless", true, "MoE with token dropping (moe_dropless false) is not supported");
            require(c, "moe_shared_expert", false, "MoE with a shared expert is not supported");
            require(c, "moe_interleave", false, "interleaved dense and MoE blocks are not supported");
            m.ffnType = "moe";
            m.moeNumExperts = intOf(c, "moe_num_experts");
            m.moeTopK = intOf(c, "moe_top_k");
            m.moeExpertHidden = c.hasNonNull("mlp_hidden_size") ? intOf(c, "mlp_hidden_size") / 2
                    : (int) (0.5 * c.path("mlp_ratio").asDouble(4) * m.dModel);
            if (c.hasNonNull("moe_loss_weight")) m.moeLbWeight = c.get("moe_loss_weight").asDouble();
            m.moeZWeight = c.hasNonNull("moe_zloss_weight") ? c.get("moe_zloss_weight").asDouble() : 0;
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
            m.memQueryMode = c.path("mem_q_for_each_tucker_rank").asBoolean(false) ? "released" : "shared";
            m.memInit = "released";
            m.memTuckerPenalty = 0.0;
            m.memKeyNorm = !type.equals("memory_plus");
            // mem_q_for_each_tucker_rank false crashes the official V2; decided: a 2·kdim query shared by both ranks
        }
        return m.validate();
    }

    /**
     * Copies every tensor of the model from the file by official name, checking shapes and converting
     * BF16 and F16 exactly to float32, then refreshes derived state ({@link Model#afterWeightsChanged()}:
     * Tucker u, v with the stored ones as the sign reference).
     * A tensor in the file that is neither a tensor of the model nor on {@link #isReferenceRunTensor the
     * allow-list} is an error naming it: a name the config does not explain means a different model.
     */
    public static void load(Model model, Safetensors file) { load(model, file, false); }

    /**
     * As {@link #load(Model, Safetensors)}; with {@code storedTuckerVectors} the u, v buffers stored in
     * the file are kept ({@link #keepStoredTuckerVectors}), as the official code uses them at inference.
     */
    public static void load(Model model, Safetensors file, boolean storedTuckerVectors) {
        Layout lay = new Layout(model);
        file.requireNoUnknownTensors(n -> lay.officialNames.contains(n) || isReferenceRunTensor(n),
                "not a weight or buffer of the official model its config describes");
        List<String> missing = new ArrayList<>();
        for (String n : lay.officialNames) if (!file.has(n) && lay.required(n)) missing.add(n);
        if (!missing.isEmpty())
            throw new UserError(file.path() + ": missing " + missing.size() + " tensor(s), e.g. " + missing.get(0));
        for (Param p : model.params()) {
            if (lay.moeParts.contains(p) || !file.has(p.name)) continue; // u, v may be absent: derived from the cores
            entry(file, p.name, p.shape).copyAsFloat32(p.segment());
        }
        for (var m : lay.moe.entrySet()) readMoe(file, m.getValue(), m.getKey());
        for (IndexBuffer b : model.indexBuffers()) {
            int[] v = file.get(b.name()).toInts();
            if (v.length != b.data().length)
                throw new UserError(file.path() + ": " + b.name() + " has " + v.length + " entries, the config needs " + b.data().length);
            System.arraycopy(v, 0, b.data(), 0, v.length);
        }
        model.afterWeightsChanged();
        if (storedTuckerVectors) keepStoredTuckerVectors(model, file);
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

    /**
     * Puts back the Tucker vectors u, v stored in the file after {@link Model#afterWeightsChanged()}
     * recomputed them, unless they are all zero (an official model before its first update). An official
     * checkpoint's u, v date from the start of its last step, before that step changed the cores, and its
     * inference uses them as they are; for this engine's checkpoints they equal the recomputed ones.
     */
    public static void keepStoredTuckerVectors(Model model, Safetensors file) {
        for (Param p : model.params()) {
            if (p.trainable || !file.has(p.name)) continue;
            Safetensors.Entry e = entry(file, p.name, p.shape);
            float[] v = new float[Math.toIntExact(p.numel())];
            e.copyAsFloat32(MemorySegment.ofArray(v));
            boolean any = false;
            for (float x : v) any |= x != 0;
            if (any) MemorySegment.copy(MemorySegment.ofArray(v), 0, p.segment(), 0, (long) v.length * Float.BYTES);
        }
    }

    // ------------------------------------------------------------------ export

    /**
     * Fails with a one-line error naming the setting when the official code cannot represent the model:
     * it would build different tensors or compute something else from the same ones.
     */
    public static void requireExportable(ModelConfig c) {
        if (c.ropeTheta != Math.rint(c.ropeTheta)) refuse("rope_theta " + c.ropeTheta + " (the official rope_theta is an integer)");
        if (!c.hasMemory()) return;
        if (c.ffnType.equals("moe")) refuse("memory layers beside an MoE FFN (the official MoE block has no memory layers)");
        switch (c.memType) {
            case "pkm" -> refuse("mem_type pkm (the official mem_type is ultramem_v1, ultramem_v2 or memory_plus)");
            case "memory_plus" -> {
                if (c.memKeyNorm) refuse("memory_plus with mem_key_norm true (the official Memory+ leaves its keys unnormalised)");
            }
            default -> {
                if (c.memTuckerRank != 2) refuse("mem_tucker_rank " + c.memTuckerRank + " (fixed at 2 in the official code)");
                if (c.memTuckerCores != 2) refuse("mem_tucker_cores " + c.memTuckerCores + " (fixed at 2 in the official code)");
                if (c.memHead > 2) refuse("mem_head " + c.memHead + " (the official UltraMem layers support 1 or 2 heads)");
                if (c.memType.equals("ultramem_v1") && c.memV1ValueExpandTime != 4)
                    refuse("mem_v1_value_expand_time " + c.memV1ValueExpandTime + " (fixed at 4 in the official UltraMem v1)");
                if (c.memType.equals("ultramem_v2") && c.memQueryMode.equals("paper"))
                    refuse("mem_query_mode paper: a query per Tucker rank (the official code reads only slots (side 0, rank 0) "
                            + "and (side 0, rank 1) of its 4·kdim projection and would misread it; models with mem_query_mode released or shared export)");
            }
        }
        if (c.memStage1Knn != 0 && c.memStage1Knn != c.memKnn)
            refuse("mem_stage1_knn " + c.memStage1Knn + " != mem_knn " + c.memKnn + " (the official code uses mem_knn for both stages)");
    }

    private static void refuse(String what) {
        throw new UserError("export: the official code cannot represent " + what);
    }

    /**
     * The official OLMo {@code ModelConfig} of a model (every field of the official class, in its
     * naming), for the {@code model:} section of an official YAML config. Models without memory say
     * {@code mem_insert_way: no_mem}, as the official MoE script does.
     */
    public static ObjectNode officialConfig(ModelConfig c) {
        requireExportable(c);
        ObjectNode o = Configs.JSON.createObjectNode();
        boolean moe = c.ffnType.equals("moe"), v2 = c.memType.equals("ultramem_v2");
        o.put("d_model", c.dModel);
        o.put("n_heads", c.nHeads);
        o.put("n_kv_heads", c.nHeads);
        o.putNull("clip_qkv");
        o.put("n_layers", c.nLayers);
        o.put("mlp_hidden_size", moe ? 2 * c.moeExpertHidden : c.mlpHiddenSize);
        o.put("activation_type", "swiglu");
        o.put("block_type", moe ? "moe" : "sequential");
        o.put("block_group_size", 1);
        o.put("alibi", false);
        o.put("rope", true);
        o.put("rope_full_precision", true);
        o.put("rope_theta", (long) c.ropeTheta);
        o.put("flash_attention", false);
        o.put("attention_dropout", 0.0);
        o.putNull("multi_query_attention");
        o.put("attention_layer_norm", true);
        o.put("residual_dropout", 0.0);
        o.put("embedding_dropout", 0.0);
        o.put("embedding_layer_norm", false);
        o.put("layer_norm_type", "rms");
        o.put("layer_norm_with_affine", true);
        o.put("layer_norm_eps", c.normEps);
        o.put("attention_layer_norm_with_affine", true);
        o.put("max_sequence_length", c.maxSeqLen);
        o.put("include_bias", false);
        o.put("bias_for_layer_norm", false);
        o.put("scale_logits", false);
        o.put("vocab_size", c.vocabSize);
        o.put("embedding_size", c.vocabSize);
        o.put("weight_tying", true);
        o.put("init_fn", "full_megatron");
        o.put("init_std", c.effectiveInitStd());
        o.put("init_cutoff_factor", c.initCutoffFactor);
        o.put("moe_num_experts", c.moeNumExperts);
        o.put("moe_top_k", c.moeTopK);
        o.put("moe_mlp_impl", "sparse");
        o.put("moe_shared_expert", false);
        o.put("moe_interleave", false);
        o.put("moe_loss_weight", c.moeLbWeight);
        o.put("moe_zloss_weight", c.moeZWeight);
        o.put("moe_dropless", true);
        o.put("norm_after", false);
        o.put("mem_knum", c.memKnum);
        o.put("mem_kdim", c.memKdim);
        o.put("mem_vdim", c.memVdim);
        o.put("mem_knn", c.memKnn);
        o.put("mem_head", c.memHead);
        o.put("mem_tucker_rank_penalty", c.hasMemory() ? c.tuckerPenalty() : 0.0);
        o.put("mem_insert_way", c.hasMemory() ? c.memInsertWay : "no_mem");
        o.put("mem_share_ratio", c.memShareRatio);
        o.put("mem_type", c.hasMemory() ? c.memType : "ultramem_v2");
        o.put("mem_value_expand_time", c.memValueExpandTime);
        o.put("mem_key_expand_time", c.memKeyExpandTime);
        o.put("mem_pre_vdim", c.memPreVdim);
        o.put("mem_key_balance_reg_coef", c.memKeyBalanceCoef);
        // V2 is written in the released 4·kdim query layout (a shared-query model with its unused rows zero)
        o.put("mem_q_for_each_tucker_rank", v2);
        o.put("mem_final_top_expand_time", 1);
        o.put("mem_output_dropout_rate", c.memOutputDropout);
        o.put("mem_use_glu_act", c.memUseGluAct);
        o.put("vertical_parallel", false);
        o.put("mem_parallel_size", 1);
        return o;
    }

    /**
     * Every weight and buffer of the model under its official name, shape and layout, in model order:
     * the MoE FFN in the dMoE layout, a shared-query V2 projection ({@code 2·kdim}) widened to the
     * released {@code 4·kdim} layout with zero rows the official code never reads, shuffle indices as I64.
     * No optimizer or training state. Tensors share the model's memory where the layouts agree.
     */
    public static List<Safetensors.Out> officialTensors(Model model) {
        requireExportable(model.config());
        Layout lay = new Layout(model);
        List<Safetensors.Out> out = new ArrayList<>();
        for (Param p : model.params()) {
            MoeFfn f = lay.moeOfRouter.get(p);
            if (f != null) {
                out.addAll(moeTensors(lay.moe.get(f), f));
            } else if (lay.sharedQueries.contains(p)) {
                float[] w = new float[Math.toIntExact(2 * p.numel())];
                System.arraycopy(p.data(), 0, w, 0, p.data().length);
                out.add(Safetensors.Out.f32(p.name, new long[]{2 * p.shape[0], p.shape[1]}, w));
            } else if (p.isBf16()) {
                // the official layout is float32; widened exactly, so importing the export gives the same bf16 bits
                out.add(Safetensors.Out.f32FromBf16(p.name, p.shape, p.segment()));
            } else if (!lay.moeParts.contains(p)) {
                out.add(Safetensors.Out.f32(p.name, p.shape, p.segment()));
            }
        }
        for (IndexBuffer b : model.indexBuffers()) out.add(Safetensors.Out.i64(b.name(), new long[]{b.data().length}, b.data()));
        return out;
    }

    /** Where the official tensors of a model come from: its params by name, except the MoE FFNs. */
    private static final class Layout {
        final Set<String> officialNames = new HashSet<>();
        final Set<String> optional = new HashSet<>();
        /** each MoE FFN and its block's official prefix */
        final Map<MoeFfn, String> moe = new LinkedHashMap<>();
        final Map<Param, MoeFfn> moeOfRouter = new HashMap<>();
        final Set<Param> moeParts = new HashSet<>();
        final Set<Param> sharedQueries = new HashSet<>();

        Layout(Model model) {
            for (int l = 0; l < model.config().nLayers; l++) {
                if (!(model.ffn(l) instanceof MoeFfn f)) continue;
                String prefix = f.router.name.substring(0, f.router.name.length() - "ffn.router.weight".length());
                moe.put(f, prefix);
                moeOfRouter.put(f.router, f);
                moeParts.add(f.router);
                moeParts.addAll(List.of(f.ffProj));
                moeParts.addAll(List.of(f.ffOut));
                for (String n : MOE_NAMES) officialNames.add(prefix + n);
            }
            if (model.config().memQueryMode.equals("shared"))
                for (TokenLayer m : model.memoryLayers())
                    if (m instanceof UltraMemV2 v2) sharedQueries.add(v2.retrieval.queryProj);
            for (Param p : model.params()) {
                if (moeParts.contains(p)) continue;
                officialNames.add(p.name);
                if (!p.trainable) optional.add(p.name);
            }
            for (IndexBuffer b : model.indexBuffers()) officialNames.add(b.name());
        }

        boolean required(String name) { return !optional.contains(name); }
    }

    private static final List<String> MOE_NAMES = List.of("ffn.router.layer.weight", "ffn.experts.mlp.w1", "ffn.experts.mlp.v1", "ffn.experts.mlp.w2");

    /** router, w1 (gate halves), v1 (linear halves), w2 (ff_out transposed), experts stacked along rows. */
    private static List<Safetensors.Out> moeTensors(String prefix, MoeFfn f) {
        int E = f.ffProj.length, h = f.ffOut[0].dim(1), d = f.ffOut[0].dim(0), n = Math.toIntExact((long) E * h * d);
        float[] w1 = new float[n], v1 = new float[n], w2 = new float[n];
        for (int e = 0; e < E; e++) {
            float[] proj = f.ffProj[e].data(), fo = f.ffOut[e].data();
            System.arraycopy(proj, h * d, w1, e * h * d, h * d);
            System.arraycopy(proj, 0, v1, e * h * d, h * d);
            for (int j = 0; j < h; j++)
                for (int i = 0; i < d; i++) w2[(e * h + j) * d + i] = fo[i * h + j];
        }
        long[] shape = {(long) E * h, d};
        return List.of(Safetensors.Out.f32(prefix + MOE_NAMES.get(0), f.router.shape, f.router.segment()),
                Safetensors.Out.f32(prefix + MOE_NAMES.get(1), shape, w1),
                Safetensors.Out.f32(prefix + MOE_NAMES.get(2), shape, v1),
                Safetensors.Out.f32(prefix + MOE_NAMES.get(3), shape, w2));
    }

    /** The inverse of {@link #moeTensors}. */
    private static void readMoe(Safetensors file, String prefix, MoeFfn f) {
        int E = f.ffProj.length, h = f.ffOut[0].dim(1), d = f.ffOut[0].dim(0);
        long[] shape = {(long) E * h, d};
        entry(file, prefix + MOE_NAMES.get(0), f.router.shape).copyAsFloat32(f.router.segment());
        float[] w1 = floats(file, prefix + MOE_NAMES.get(1), shape), v1 = floats(file, prefix + MOE_NAMES.get(2), shape),
                w2 = floats(file, prefix + MOE_NAMES.get(3), shape);
        for (int e = 0; e < E; e++) {
            float[] proj = f.ffProj[e].data(), fo = f.ffOut[e].data();
            System.arraycopy(w1, e * h * d, proj, h * d, h * d);
            System.arraycopy(v1, e * h * d, proj, 0, h * d);
            for (int j = 0; j < h; j++)
                for (int i = 0; i < d; i++) fo[i * h + j] = w2[(e * h + j) * d + i];
        }
    }

    private static float[] floats(Safetensors file, String name, long[] shape) {
        Safetensors.Entry e = entry(file, name, shape);
        float[] a = new float[Math.toIntExact(e.numel())];
        e.copyAsFloat32(MemorySegment.ofArray(a));
        return a;
    }

    /** The file's tensor of that name, which must have that shape. */
    private static Safetensors.Entry entry(Safetensors file, String name, long[] shape) {
        Safetensors.Entry e = file.get(name);
        if (!Arrays.equals(e.shape(), shape))
            throw new UserError(file.path() + ": tensor " + name + " has shape " + Arrays.toString(e.shape())
                    + " but the config needs " + Arrays.toString(shape));
        return e;
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
