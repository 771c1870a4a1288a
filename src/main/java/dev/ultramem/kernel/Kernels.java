package dev.ultramem.kernel;

/**
 * The hot loops of the engine. Model code calls only these; it never contains SIMD code.
 *
 * <p>Two implementations: {@link ScalarKernels}, plain loops used as the reference by tests, and
 * {@link VectorKernels}, the Vector API fast path used by default. The system property
 * {@code ultramem.kernels=scalar|vector} selects one at start-up.
 *
 * <p>All matrices are row-major float32 with explicit offsets; weights use the PyTorch layout
 * {@code W[out, in]}. "accumulate" means C += result, otherwise C = result.
 */
public interface Kernels {

    /** C[M,N] (+)= A[M,K] · B[N,K]ᵀ — a linear layer's forward, y = x·Wᵀ. */
    void gemmNT(int M, int N, int K, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff, boolean accumulate);

    /**
     * Declares weight arrays (the B of {@link #gemmNT}) unchanged until {@link #thawWeights}: an implementation may
     * then keep them in a form prepared once for repeated products (decoding). Results stay bit-identical.
     */
    default void freezeWeights(java.util.Collection<float[]> weights) {}

    /** Ends {@link #freezeWeights} for these arrays (their weights are about to change) and drops what it kept. */
    default void thawWeights(java.util.Collection<float[]> weights) {}

    /** C[M,N] (+)= A[M,K] · B[K,N] — the input gradient of a linear layer, dx = dy·W. */
    void gemmNN(int M, int N, int K, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff, boolean accumulate);

    /** C[M,N] (+)= A[K,M]ᵀ · B[K,N] — the weight gradient of a linear layer, dW += dyᵀ·x. */
    void gemmTN(int M, int N, int K, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff, boolean accumulate);

    /** Σ a[aOff+i]·b[bOff+i], i < n. */
    float dot(int n, float[] a, int aOff, float[] b, int bOff);

    /**
     * out[oOff+j] = Σₖ q[qOff+k]·rows[rOff + j·K + k] for j < n, the rows stored as bfloat16 bits: one query
     * against n cached keys of a bf16 KV cache.
     */
    void dotsBf16(int n, int K, float[] q, int qOff, short[] rows, int rOff, float[] out, int oOff);

    /**
     * out[oOff+k] = Σⱼ w[wOff+j]·rows[rOff + j·K + k] for k < K (overwrites out), the rows stored as bfloat16 bits:
     * the attention-weighted sum of n cached values of a bf16 KV cache.
     */
    void weightedSumBf16(int n, int K, float[] w, int wOff, short[] rows, int rOff, float[] out, int oOff);

    /** dst[dOff+i] = x[xOff+i] as bfloat16 bits, rounded to nearest even (a NaN stays a quiet NaN), i < n. */
    void roundToBf16(int n, float[] x, int xOff, short[] dst, int dOff);

    /** dst[dOff+i] = the bfloat16 src[sOff+i] widened to float32 (exact), i < n. */
    void widenBf16(int n, short[] src, int sOff, float[] dst, int dOff);

    /** y[yOff+i] += alpha·x[xOff+i], i < n. */
    void axpy(int n, float alpha, float[] x, int xOff, float[] y, int yOff);

    /**
     * RMSNorm over rows of length d: y = w ⊙ x / sqrt(mean(x²) + eps). Writes 1/sqrt(mean(x²)+eps)
     * per row into rstd (for the backward). w may be null (no affine weight).
     */
    void rmsnormForward(int rows, int d, float[] x, int xOff, float[] w, float eps, float[] y, int yOff, float[] rstd, int rOff);

    /**
     * Backward of {@link #rmsnormForward}: dx (+)= ∂/∂x, dw += ∂/∂w (dw may be null).
     * Uses the saved rstd.
     */
    void rmsnormBackward(int rows, int d, float[] x, int xOff, float[] w, float[] rstd, int rOff,
                         float[] dy, int dyOff, float[] dx, int dxOff, float[] dw, boolean accumulateDx);

    /** Softmax of each of `rows` rows of length n, in place, computed in a numerically stable way. */
    void softmaxRows(int rows, int n, float[] x, int off, int stride);

    /** max of x[off+i], i < n (n ≥ 1). */
    float max(int n, float[] x, int off);

    /**
     * x[off+i] = exp(scale·x[off+i] − shift) in place for i < n; returns their sum. The step of an online
     * (flash-style) softmax: shift is the running row maximum, or the row's log-sum-exp to recompute
     * normalised probabilities.
     */
    float expScaled(int n, float[] x, int off, float scale, float shift);

    /** SwiGLU: out[i] = silu(g[i]) · a[i] for i < n (a, g, out with separate offsets). */
    void swigluForward(int n, float[] a, int aOff, float[] g, int gOff, float[] out, int outOff);

    /** Backward of SwiGLU: da = dout·silu(g), dg = dout·a·silu'(g) (overwrites da, dg). */
    void swigluBackward(int n, float[] a, int aOff, float[] g, int gOff, float[] dout, int dOff,
                        float[] da, int daOff, float[] dg, int dgOff);

    /** The implementation chosen for this JVM (system property {@code ultramem.kernels}, default vector). */
    static Kernels get() { return KernelsHolder.INSTANCE; }

    /** Name of this implementation, for logs and tests. */
    String name();
}
