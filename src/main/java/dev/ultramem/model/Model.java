package dev.ultramem.model;

import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;

import java.util.List;

/**
 * A decoder-only language model (OLMo layout): embedding, pre-norm blocks (attention, FFN slot,
 * optional memory layer beside the FFN), final RMSNorm, tied output projection.
 *
 * <p>API contract (implemented by the model package; used by training, inference and the CLI).
 */
public final class Model {

    private final ModelConfig config;

    /** Allocates all tensors (zero). Call {@link #initialize(long)} or load weights next. */
    public Model(ModelConfig config) {
        this.config = config.validate();
        throw new UnsupportedOperationException("not implemented yet");
    }

    public ModelConfig config() { return config; }

    /** Draws every weight from the configured initialisation, deterministically from the seed. */
    public void initialize(long seed) { throw new UnsupportedOperationException(); }

    /** Every tensor under its official name (weights and float buffers), in a stable order. */
    public List<Param> params() { throw new UnsupportedOperationException(); }

    /** Integer buffers (shuffle indices). */
    public List<IndexBuffer> indexBuffers() { throw new UnsupportedOperationException(); }

    /**
     * Forward and backward on a batch: inputs and targets are [B, T] token ids (targets[b,t] is the
     * token after inputs[b,t]). Accumulates gradients into the params (the caller zeroes them).
     * Returns the mean cross-entropy over the B·T positions (aux losses excluded, see {@link #lastAuxLoss()}).
     */
    public float forwardBackward(int[] inputs, int[] targets, int B, int T) { throw new UnsupportedOperationException(); }

    /** Forward only: mean cross-entropy over B·T positions. */
    public float loss(int[] inputs, int[] targets, int B, int T) { throw new UnsupportedOperationException(); }

    /** Forward only: logits [B·T, vocab] (a view of an internal buffer, valid until the next call). */
    public float[] logits(int[] inputs, int B, int T) { throw new UnsupportedOperationException(); }

    /** Sum of the auxiliary losses (MoE balance, memory penalties) of the last forward. */
    public double lastAuxLoss() { throw new UnsupportedOperationException(); }

    /** To call after each optimizer step and after loading weights (refreshes derived state such as Tucker u, v). */
    public void afterWeightsChanged() { throw new UnsupportedOperationException(); }

    public void setTraining(boolean training) { throw new UnsupportedOperationException(); }

    /** A KV-cache decoding session for generation (batch 1). */
    public Decoder newDecoder(int maxTokens) { throw new UnsupportedOperationException(); }

    /** Incremental decoding with a KV cache. */
    public interface Decoder {
        /** Feeds one token at the next position and returns the logits [vocab] for the following token. */
        float[] step(int token);
        int position();
    }
}
