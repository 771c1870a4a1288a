package dev.ultramem.memory;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.core.UserError;
import dev.ultramem.kernel.Kernels;
import dev.ultramem.layer.TokenLayer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Memory+ (official {@code MemoryLayerPlus}, a reimplementation of Meta's "Memory Layers at Scale"):
 * <pre>
 *   q      = query_proj(x)                     viewed [H][2 sides][kdim], RMSNorm(query_norm) per kdim slot
 *   K̂      = keys  (or keys_norm(keys) when mem_key_norm is true; the official code uses raw keys)
 *   s_row  = q_row·K̂[h,0]ᵀ, s_col = q_col·K̂[h,1]ᵀ; top-k1 each; grid s_row[i] + s_col[j]; top-knn
 *   w      = softmax over the knn grid scores of each head; idx = i·knum + j
 *   o      = Σ_heads Σ_k w · V[idx]            V = full_memory_layer.values_for_look_up [knum², vdim]
 *   y      = values_proj(o ⊙ SiLU(swilu_projection(x)))
 * </pre>
 * The value table belongs to {@link SharedMemory} (every Memory+ layer reads all of it), so it is not
 * in {@link #params()} and {@link #initialize} does not touch it; its gradient is still accumulated
 * here (touched rows only).
 */
public final class MemoryPlus implements TokenLayer {

    private static final float EPS = 1e-5f;

    private final int d, heads, knum, kdim, knn, vdim;
    private final boolean keyNorm;
    private final ProductKeys pk;
    private final ValueLookup lookup;
    private final MemoryStats stats;

    public final Param queryProj, queryNorm, keys, keysNorm, swiluProjection, valuesProj;
    private final Param values;

    private float[] keysEff, keysRstd;
    private float[] dKeysEff;
    private int cap;
    private StepState st = new StepState(0, 0, 0, 0, 0);

    /**
     * What a step keeps per token: the raw and normalised query with its norm factors and gradients, the
     * lookup output, gate input and gated hidden state with their gradients, and the lookup-weight gradient.
     */
    public static final class StepState {
        final float[] qRaw, qNorm, qRstd, dqNorm, dqRaw, lookupOut, gatePre, hidden, dHidden, dLookup, dGate, dWeights;

        StepState(int tokens, int queryWidth, int querySlots, int vdim, int entries) {
            int q = tokens * queryWidth, v = tokens * vdim;
            qRaw = new float[q]; qNorm = new float[q]; qRstd = new float[tokens * querySlots]; dqNorm = new float[q]; dqRaw = new float[q];
            lookupOut = new float[v]; gatePre = new float[v]; hidden = new float[v];
            dHidden = new float[v]; dLookup = new float[v]; dGate = new float[v];
            dWeights = new float[tokens * entries];
        }

        /** floats per token, as allocated above. */
        public static long floatsPerToken(long queryWidth, long querySlots, long vdim, long entries) {
            return 4 * queryWidth + querySlots + 6 * vdim + entries;
        }
    }

    public MemoryPlus(MemoryConfig cfg, SharedMemory shared, String prefix) {
        if (shared == null || shared.values == null) throw new UserError("memory_plus: the shared value table full_memory_layer.values_for_look_up is missing");
        this.d = cfg.dModel(); this.heads = cfg.heads(); this.knum = cfg.knum(); this.kdim = cfg.kdim();
        this.knn = cfg.knn(); this.vdim = cfg.vdim(); this.keyNorm = cfg.keyNorm();
        if (vdim != d) throw new UserError("config: memory_plus needs mem_vdim == d_model (" + vdim + " != " + d + ")");
        if (shared.values.shape[0] != (long) knum * knum || shared.values.shape[1] != vdim)
            throw new UserError("memory_plus: shared value table has shape " + shared.values.shapeString() + ", expected [" + (long) knum * knum + ", " + vdim + "]");
        int k1 = cfg.stage1Knn() > 0 ? cfg.stage1Knn() : knn;
        this.pk = new ProductKeys(heads, knum, kdim, k1, knn);
        long rows = (long) knum * knum;
        lookup = new ValueLookup(null, rows, rows, 0, vdim, 1, false);
        stats = new MemoryStats(rows);
        queryProj = Param.of(prefix + "query_proj.weight", Param.Group.DECAY, 2 * kdim * heads, d);
        queryNorm = Param.of(prefix + "query_norm.weight", Param.Group.DECAY, kdim);
        keys = Param.of(prefix + "keys", Param.Group.DECAY, heads, 2, knum, kdim);
        keysNorm = Param.of(prefix + "keys_norm.weight", Param.Group.DECAY, kdim);
        swiluProjection = Param.of(prefix + "swilu_projection.weight", Param.Group.DECAY, vdim, d);
        valuesProj = Param.of(prefix + "values_proj.weight", Param.Group.DECAY, d, vdim);
        values = shared.values;
        int nk = heads * 2 * knum;
        keysEff = keyNorm ? new float[nk * kdim] : keys.data();
        keysRstd = new float[nk];
        dKeysEff = keyNorm ? new float[nk * kdim] : null;
        java.util.Arrays.fill(queryNorm.data(), 1f);
        java.util.Arrays.fill(keysNorm.data(), 1f);
    }

    private void ensure(int n) {
        if (n <= cap) return;
        cap = n;
        st = new StepState(n, heads * 2 * kdim, heads * 2, vdim, heads * knn);
    }

    @Override
    public void forward(float[] x, float[] y, int n) {
        ensure(n);
        Kernels K = Kernels.get();
        int qd = 2 * kdim * heads;
        // query: linear, then RMSNorm over each kdim slot (shared norm weight for heads and sides)
        K.gemmNT(n, qd, d, x, 0, queryProj.data(), 0, st.qRaw, 0, false);
        K.rmsnormForward(n * heads * 2, kdim, st.qRaw, 0, queryNorm.data(), EPS, st.qNorm, 0, st.qRstd, 0);
        if (keyNorm)
            K.rmsnormForward(heads * 2 * knum, kdim, keys.data(), 0, keysNorm.data(), EPS, keysEff, 0, keysRstd, 0);
        else
            keysEff = keys.data();
        pk.forward(n, st.qNorm, keysEff);
        // o = Σ_heads Σ_k w · V[idx], one fused gather in row order
        lookup.address(pk.bestIndices, n * pk.entriesPerToken());
        Arrays.fill(st.lookupOut, 0, n * vdim, 0f);
        lookup.gather(n, pk.entriesPerToken(), 1, vdim, values, pk.weights(), st.lookupOut, vdim, false);
        // output gate: o ⊙ SiLU(swilu_projection(x)), then values_proj
        K.gemmNT(n, vdim, d, x, 0, swiluProjection.data(), 0, st.gatePre, 0, false);
        K.swigluForward(n * vdim, st.lookupOut, 0, st.gatePre, 0, st.hidden, 0);
        K.gemmNT(n, d, vdim, st.hidden, 0, valuesProj.data(), 0, y, 0, false);
        stats.record(lookup, pk, y, n, d);
    }

    @Override
    public void backward(float[] x, float[] dy, float[] dx, int n) {
        Kernels K = Kernels.get();
        int qd = 2 * kdim * heads;
        K.gemmTN(d, vdim, n, dy, 0, st.hidden, 0, valuesProj.grad(), 0, true);
        K.gemmNN(n, vdim, d, dy, 0, valuesProj.data(), 0, st.dHidden, 0, false);
        K.swigluBackward(n * vdim, st.lookupOut, 0, st.gatePre, 0, st.dHidden, 0, st.dLookup, 0, st.dGate, 0);
        K.gemmTN(vdim, d, n, st.dGate, 0, x, 0, swiluProjection.grad(), 0, true);
        K.gemmNN(n, d, vdim, st.dGate, 0, swiluProjection.data(), 0, dx, 0, true);
        // value lookup: gradient of the weights, scatter-add into the touched value rows
        int R = pk.entriesPerToken();
        lookup.dots(R, 1, vdim, values, st.dLookup, vdim, false, st.dWeights);
        lookup.scatterAdd(R, 1, vdim, pk.weights(), st.dLookup, vdim, false, values);
        // softmax, grid and key scoring
        if (keyNorm) {
            java.util.Arrays.fill(dKeysEff, 0f);
            pk.backward(n, st.dWeights, st.qNorm, keysEff, st.dqNorm, dKeysEff);
            K.rmsnormBackward(heads * 2 * knum, kdim, keys.data(), 0, keysNorm.data(), keysRstd, 0,
                    dKeysEff, 0, keys.grad(), 0, keysNorm.grad(), true);
        } else {
            pk.backward(n, st.dWeights, st.qNorm, keysEff, st.dqNorm, keys.grad());
        }
        K.rmsnormBackward(n * heads * 2, kdim, st.qRaw, 0, queryNorm.data(), st.qRstd, 0, st.dqNorm, 0, st.dqRaw, 0, queryNorm.grad(), false);
        K.gemmTN(qd, d, n, st.dqRaw, 0, x, 0, queryProj.grad(), 0, true);
        K.gemmNN(n, d, qd, st.dqRaw, 0, queryProj.data(), 0, dx, 0, true);
    }

    /** Selected value rows {@code i·knum + j} of the last forward, {@code [n][H·knn]}, heads concatenated. */
    public int[] lastIndices() { return pk.bestIndices; }

    /** Additive grid scores of the selected entries, {@code [n][H·knn]}. */
    public float[] lastRawScores() { return pk.sumScores; }

    /** Softmax weights of the selected entries, {@code [n][H·knn]}. */
    public float[] lastWeights() { return pk.weights(); }

    /** Pooled lookup output before the gate, {@code [n][vdim]}. */
    public float[] lastLookupOutput() { return st.lookupOut; }

    /** The shared value table this layer reads. */
    public Param values() { return values; }

    @Override
    public List<Param> params() {
        List<Param> out = new ArrayList<>();
        out.add(queryProj); out.add(queryNorm); out.add(keys); out.add(keysNorm);
        out.add(swiluProjection); out.add(valuesProj);
        return out;
    }

    @Override public java.util.Map<String, Double> diagnostics() { return stats.toMap(); }

    @Override public void resetDiagnostics() { stats.reset(); }

    /** Diagnostics count training forwards only ({@link MemoryStats}). */
    @Override public void setTraining(boolean training) { stats.setRecording(training); }

    /**
     * Official init: query_proj Xavier-uniform, keys U(±1/sqrt(2·kdim)), swilu_projection and
     * values_proj N(0, 1/vdim), norm weights 1. The shared table is initialised by {@link SharedMemory}.
     */
    @Override
    public void initialize(Rng rng) {
        double a = Math.sqrt(6.0 / (d + 2.0 * kdim * heads));
        rng.fillUniform(queryProj.data(), -a, a);
        double kb = 1.0 / Math.sqrt(2.0 * kdim);
        rng.fillUniform(keys.data(), -kb, kb);
        double vs = 1.0 / Math.sqrt(vdim);
        rng.fillNormal(swiluProjection.data(), vs);
        rng.fillNormal(valuesProj.data(), vs);
        java.util.Arrays.fill(queryNorm.data(), 1f);
        java.util.Arrays.fill(keysNorm.data(), 1f);
    }

    /** Dense weights read per token; key scoring reads every key. */
    private long denseParams() {
        long p = (long) 2 * kdim * heads * d + kdim + (long) heads * 2 * knum * kdim + (long) 2 * vdim * d;
        if (keyNorm) p += kdim;
        return p;
    }

    /** Excludes the shared table (see {@link #sharedTableParamsPerToken()}). */
    @Override
    public long activatedParamsPerToken() { return denseParams(); }

    /** Value-table parameters this layer reads per token from the shared table: H·knn rows of vdim. */
    public long sharedTableParamsPerToken() { return (long) heads * knn * vdim; }

    @Override
    public long forwardMacsPerToken() {
        long k1 = pk.knn1;
        return (long) 2 * kdim * heads * d             // query projection
                + (long) heads * 2 * knum * kdim       // row and column key scores
                + (long) heads * k1 * k1               // additive grid
                + (long) heads * knn * vdim            // weighted value sum
                + (long) 2 * vdim * d;                 // swilu_projection and values_proj
    }

    @Override
    public long lastForwardParamBytes() {
        return denseParams() * Float.BYTES + lookup.rowBytes(vdim, values);
    }
}
