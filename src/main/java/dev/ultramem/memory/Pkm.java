package dev.ultramem.memory;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.core.UserError;
import dev.ultramem.kernel.Kernels;
import dev.ultramem.layer.TokenLayer;

import java.lang.foreign.Arena;
import java.util.List;

/**
 * Product Key Memory (Lample et al. 2019), the starting point of the memory-layer ablations:
 * <pre>
 *   q     = query_proj(x)                      viewed [H][2 halves][kdim], no query norm
 *   K̂     = keys, or RMS-normalised keys (no affine weight) when mem_key_norm is true
 *   s_row = q_row·K̂[h,0]ᵀ, s_col = q_col·K̂[h,1]ᵀ; top-k1 each; grid s_row[i] + s_col[j]; top-knn
 *   w     = softmax over the knn grid scores of each head; idx = i·knum + j
 *   y     = Σ_heads Σ_k w · V[idx]              V = values_for_look_up [knum², vdim], vdim == d
 * </pre>
 * Choices: the paper's query batch-norm is left out (a plain linear query); the heads' outputs are
 * summed and there is no output projection, so vdim must equal d. The value table is owned by the
 * layer (off-heap, group VALUE). Tensor names: {@code query_proj.weight [2·kdim·H, d]},
 * {@code keys [H, 2, knum, kdim]}, {@code values_for_look_up [knum², d]}.
 */
public final class Pkm implements TokenLayer {

    private final int d, heads, knum, kdim, knn, vdim;
    private final boolean keyNorm;
    private final ProductKeys pk;
    private final ValueLookup lookup;
    private final MemoryStats stats;

    public final Param queryProj, keys, values;

    private int cap;
    private StepState st = new StepState(0, 0, 0);
    private float[] keysEff, keysRstd, dKeysEff;

    /** What a step keeps per token: the query and its gradient, and the gradient of the lookup weights. */
    public static final class StepState {
        final float[] query, dQuery, dWeights;

        StepState(int tokens, int queryWidth, int entries) {
            query = new float[tokens * queryWidth]; dQuery = new float[tokens * queryWidth]; dWeights = new float[tokens * entries];
        }

        /** floats per token, as allocated above. */
        public static long floatsPerToken(long queryWidth, long entries) { return 2 * queryWidth + entries; }
    }

    public Pkm(MemoryConfig cfg, String prefix) {
        this.d = cfg.dModel(); this.heads = cfg.heads(); this.knum = cfg.knum(); this.kdim = cfg.kdim();
        this.knn = cfg.knn(); this.vdim = cfg.vdim(); this.keyNorm = cfg.keyNorm();
        if (vdim != d) throw new UserError("config: pkm has no output projection, so mem_vdim must equal d_model (" + vdim + " != " + d + ")");
        int k1 = cfg.stage1Knn() > 0 ? cfg.stage1Knn() : knn;
        this.pk = new ProductKeys(heads, knum, kdim, k1, knn);
        long rows = (long) knum * knum;
        lookup = new ValueLookup(null, rows, rows, 0, vdim, 1, false);
        stats = new MemoryStats(rows);
        queryProj = Param.of(prefix + "query_proj.weight", Param.Group.DECAY, 2 * kdim * heads, d);
        keys = Param.of(prefix + "keys", Param.Group.DECAY, heads, 2, knum, kdim);
        values = Param.offHeap(prefix + "values_for_look_up", Param.Group.VALUE, Arena.ofAuto(), (long) knum * knum, vdim);
        int nk = heads * 2 * knum;
        keysEff = keyNorm ? new float[nk * kdim] : keys.data();
        keysRstd = new float[nk];
        dKeysEff = keyNorm ? new float[nk * kdim] : null;
    }

    private void ensure(int n) {
        if (n <= cap) return;
        cap = n;
        st = new StepState(n, heads * 2 * kdim, heads * knn);
    }

    @Override
    public void forward(float[] x, float[] y, int n) {
        ensure(n);
        Kernels K = Kernels.get();
        K.gemmNT(n, 2 * kdim * heads, d, x, 0, queryProj.data(), 0, st.query, 0, false);
        if (keyNorm) K.rmsnormForward(heads * 2 * knum, kdim, keys.data(), 0, null, 1e-5f, keysEff, 0, keysRstd, 0);
        pk.forward(n, st.query, keysEff);
        // y = Σ_heads Σ_k w · V[idx], one fused gather in row order
        lookup.address(pk.bestIndices, n * pk.entriesPerToken());
        java.util.Arrays.fill(y, 0, n * d, 0f);
        lookup.gather(n, pk.entriesPerToken(), 1, vdim, values, pk.weights(), y, vdim, false);
        stats.record(lookup, pk, y, n, d);
    }

    @Override
    public void backward(float[] x, float[] dy, float[] dx, int n) {
        Kernels K = Kernels.get();
        int R = pk.entriesPerToken();
        lookup.dots(R, 1, vdim, values, dy, vdim, false, st.dWeights);
        lookup.scatterAdd(R, 1, vdim, pk.weights(), dy, vdim, false, values);
        if (keyNorm) {
            java.util.Arrays.fill(dKeysEff, 0f);
            pk.backward(n, st.dWeights, st.query, keysEff, st.dQuery, dKeysEff);
            K.rmsnormBackward(heads * 2 * knum, kdim, keys.data(), 0, null, keysRstd, 0, dKeysEff, 0, keys.grad(), 0, null, true);
        } else {
            pk.backward(n, st.dWeights, st.query, keysEff, st.dQuery, keys.grad());
        }
        int qd = 2 * kdim * heads;
        K.gemmTN(qd, d, n, st.dQuery, 0, x, 0, queryProj.grad(), 0, true);
        K.gemmNN(n, d, qd, st.dQuery, 0, queryProj.data(), 0, dx, 0, true);
    }

    public int[] lastIndices() { return pk.bestIndices; }

    public float[] lastWeights() { return pk.weights(); }

    @Override
    public List<Param> params() { return List.of(queryProj, keys, values); }

    @Override public java.util.Map<String, Double> diagnostics() { return stats.toMap(); }

    @Override public void resetDiagnostics() { stats.reset(); }

    /** Diagnostics count training forwards only ({@link MemoryStats}). */
    @Override public void setTraining(boolean training) { stats.setRecording(training); }

    /**
     * As the PKM reference code: keys U(±1/sqrt(kdim)), values N(0, 1/vdim); the query projection
     * N(0, 1/d) so that each query component has unit variance on unit-variance input.
     */
    @Override
    public void initialize(Rng rng) {
        rng.fillNormal(queryProj.data(), 1.0 / Math.sqrt(d));
        double kb = 1.0 / Math.sqrt(kdim);
        rng.fillUniform(keys.data(), -kb, kb);
        values.initNormal(rng, 1.0 / Math.sqrt(vdim));
    }

    private long denseParams() {
        return (long) 2 * kdim * heads * d + (long) heads * 2 * knum * kdim;
    }

    /** Query projection, every key, and the H·knn value rows read. */
    @Override
    public long activatedParamsPerToken() { return denseParams() + (long) heads * knn * vdim; }

    @Override
    public long forwardMacsPerToken() {
        long k1 = pk.knn1;
        return (long) 2 * kdim * heads * d + (long) heads * 2 * knum * kdim + (long) heads * k1 * k1 + (long) heads * knn * vdim;
    }

    @Override
    public long lastForwardParamBytes() {
        return denseParams() * Float.BYTES + lookup.rowBytes(vdim, values);
    }
}
