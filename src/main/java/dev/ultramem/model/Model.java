package dev.ultramem.model;

import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;

import java.util.List;

/**
 * A decoder-only language model (OLMo layout): embedding, pre-norm blocks (attention, FFN slot,
 * optional memory layer beside the FFN), final RMSNorm, tied output projection.
 *
 * <p>API contract (implemented by the model package; used by training, inference and the CLI).
 * This build holds a bigram stand-in (logits = wte[x] · lm_headᵀ) so the tooling can run end to end.
 */
public final class Model {

    private final ModelConfig config;
    private final Param wte, head;
    private float[] logits = new float[0], h = new float[0];

    /** Allocates all tensors (zero). Call {@link #initialize(long)} or load weights next. */
    public Model(ModelConfig config) {
        this.config = config.validate();
        wte = Param.of("transformer.wte.weight", Param.Group.DECAY, config.vocabSize, config.dModel);
        head = Param.of("lm_head.weight", Param.Group.DECAY, config.vocabSize, config.dModel);
    }

    public ModelConfig config() { return config; }

    /** Draws every weight from the configured initialisation, deterministically from the seed. */
    public void initialize(long seed) {
        Rng r = new Rng(seed);
        r.fillNormal(wte.data(), 1.0);
        r.fillNormal(head.data(), config.effectiveInitStd());
    }

    /** Every tensor under its official name (weights and float buffers), in a stable order. */
    public List<Param> params() { return List.of(wte, head); }

    /** Integer buffers (shuffle indices). */
    public List<IndexBuffer> indexBuffers() { return List.of(); }

    private void forward(int[] inputs, int n) {
        int V = config.vocabSize, d = config.dModel;
        if (logits.length < n * V) logits = new float[n * V];
        float[] E = wte.data(), H = head.data();
        for (int i = 0; i < n; i++) {
            int x = inputs[i];
            for (int v = 0; v < V; v++) {
                float s = 0;
                for (int k = 0; k < d; k++) s += E[x * d + k] * H[v * d + k];
                logits[i * V + v] = s;
            }
        }
    }

    private double ce(int[] targets, int n, boolean grad) {
        int V = config.vocabSize;
        double loss = 0;
        for (int i = 0; i < n; i++) {
            float max = Float.NEGATIVE_INFINITY;
            for (int v = 0; v < V; v++) max = Math.max(max, logits[i * V + v]);
            double sum = 0;
            for (int v = 0; v < V; v++) sum += Math.exp(logits[i * V + v] - max);
            loss += Math.log(sum) + max - logits[i * V + targets[i]];
            if (grad) {
                for (int v = 0; v < V; v++) logits[i * V + v] = (float) (Math.exp(logits[i * V + v] - max) / sum / n);
                logits[i * V + targets[i]] -= 1f / n;
            }
        }
        return loss / n;
    }

    /**
     * Forward and backward on a batch: inputs and targets are [B, T] token ids (targets[b,t] is the
     * token after inputs[b,t]). Accumulates gradients into the params (the caller zeroes them).
     * Returns the mean cross-entropy over the B·T positions (aux losses excluded, see {@link #lastAuxLoss()}).
     */
    public float forwardBackward(int[] inputs, int[] targets, int B, int T) {
        int n = B * T, V = config.vocabSize, d = config.dModel;
        forward(inputs, n);
        float loss = (float) ce(targets, n, true);
        float[] E = wte.data(), H = head.data(), dE = wte.grad(), dH = head.grad();
        for (int i = 0; i < n; i++) {
            int x = inputs[i];
            for (int v = 0; v < V; v++) {
                float g = logits[i * V + v];
                for (int k = 0; k < d; k++) {
                    dH[v * d + k] += g * E[x * d + k];
                    dE[x * d + k] += g * H[v * d + k];
                }
            }
        }
        return loss;
    }

    /** Forward only: mean cross-entropy over B·T positions. */
    public float loss(int[] inputs, int[] targets, int B, int T) {
        forward(inputs, B * T);
        return (float) ce(targets, B * T, false);
    }

    /** Forward only: logits [B·T, vocab] (a view of an internal buffer, valid until the next call). */
    public float[] logits(int[] inputs, int B, int T) { forward(inputs, B * T); return logits; }

    /** Sum of the auxiliary losses (MoE balance, memory penalties) of the last forward. */
    public double lastAuxLoss() { return 0; }

    /** To call after each optimizer step and after loading weights (refreshes derived state such as Tucker u, v). */
    public void afterWeightsChanged() {}

    public void setTraining(boolean training) {}

    /** A KV-cache decoding session for generation (batch 1). */
    public Decoder newDecoder(int maxTokens) {
        return new Decoder() {
            int pos;
            public float[] step(int token) {
                pos++;
                float[] l = logits(new int[]{token}, 1, 1);
                return java.util.Arrays.copyOf(l, config.vocabSize);
            }
            public int position() { return pos; }
        };
    }

    /** Incremental decoding with a KV cache. */
    public interface Decoder {
        /** Feeds one token at the next position and returns the logits [vocab] for the following token. */
        float[] step(int token);
        int position();
    }
}
