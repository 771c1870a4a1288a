package dev.ultramem.layer;

import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;

import java.util.List;

/**
 * A per-token layer that maps normalised hidden states {@code x [n, d]} to {@code y [n, d]}: the
 * slot a block's FFN sits in, and the slot a memory layer sits in beside it (dense SwiGLU, MoE,
 * PKM, Memory+, UltraMem, UltraMemV2). Adding a new sparse layer means implementing this interface
 * (forward, backward, init) and nothing else.
 *
 * <p>Contract: {@link #forward} overwrites y and keeps whatever {@link #backward} needs (sized for
 * the largest n seen so far, reused across calls). {@link #backward} is called with the same x,
 * accumulates every parameter gradient into {@link Param#grad()} / {@link Param#gradSegment()} and
 * ADDS ∂L/∂x into dx (several layers read the same x).
 */
public interface TokenLayer {

    void forward(float[] x, float[] y, int n);

    void backward(float[] x, float[] dy, float[] dx, int n);

    /** Every tensor of the layer under its full official name, including float buffers (trainable = false). */
    List<Param> params();

    /** Integer buffers saved with the layer (e.g. {@code shuffle_index}). */
    default List<IndexBuffer> indexBuffers() { return List.of(); }

    /** Draws the layer's initial weights. Tensors owned by another module (a shared table) are not touched. */
    void initialize(Rng rng);

    /**
     * Auxiliary loss of the last forward (already multiplied by its coefficient), e.g. MoE load
     * balancing. Its gradient is included by {@link #backward}.
     */
    default double auxLoss() { return 0; }

    /** Called after every optimizer step and after weights are loaded (UltraMem: refresh the Tucker rank-1 u, v). */
    default void afterWeightsChanged() {}

    /**
     * Named diagnostics accumulated since {@link #resetDiagnostics()} (memory layers: value-row
     * coverage, usage skew, mean top-1 / top-k score, output std, Tucker singular values). Empty by default.
     */
    default java.util.Map<String, Double> diagnostics() { return java.util.Map.of(); }

    default void resetDiagnostics() {}

    /** Training mode enables dropout (default on). */
    default void setTraining(boolean training) {}

    /** Parameters read per token in the forward, excluding tables shared with other layers (for {@code info}). */
    long activatedParamsPerToken();

    /** Multiply-adds per token of the forward pass (training FLOPs ≈ 6× this, for {@code info}). */
    long forwardMacsPerToken();

    /**
     * Parameter bytes read by the last forward, counted by the layer: dense weights once per call plus
     * every distinct table row touched. Divided by n this is "bytes read per token" at that batch size.
     */
    long lastForwardParamBytes();
}
