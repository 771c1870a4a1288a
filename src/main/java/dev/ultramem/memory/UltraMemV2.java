package dev.ultramem.memory;

import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.core.UserError;
import dev.ultramem.kernel.Kernels;
import dev.ultramem.kernel.MemoryKernels;
import dev.ultramem.layer.TokenLayer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * UltraMemV2 memory layer, official {@code UltraMemLayerV2}: TDQKR retrieval, the layer's ring
 * window of the shared value table ({@code offset = layer_id·knum²}, {@code knum_l =
 * floor(sqrt(all·share_ratio))}), PEER-style pre-values (score × ⟨pre_value, pre_values_proj(x)⟩,
 * optional GELU), multi-core pooled lookup, virtual blocks summed ("single linear projector") or
 * concatenated, {@code values_proj}, output dropout.
 *
 * <p>Query modes: "released" reproduces the official code (a {@code 2·r·kdim} projection viewed as
 * [2 sides][r ranks][kdim]; head h uses row slot 2·(h div 2) and column slot 2·(h div 2)+1 for every
 * rank, i.e. for h &lt; 2 slot (side 0, rank 0) and (side 0, rank 1); the other slots are unused but
 * kept so official weights load). "paper" gives every rank its own row and column query: slots laid
 * out [h div 2][side][rank][kdim], row query of rank ρ = (side 0, ρ), column query = (side 1, ρ).
 * "shared" is the official {@code mem_q_for_each_tucker_rank = false}: a {@code 2·kdim} projection per
 * pair of heads, [row, column], both used by every rank (as UltraMem v1).
 */
public final class UltraMemV2 implements TokenLayer {

    final MemoryConfig cfg;
    public final int d, vdim, preVdim, knn, heads, cores, keyExpand, valueExpand, keyNum, layerId;
    public final long valueNum, allValueNum, offset;
    public final TuckerRetrieval retrieval;
    public final SharedMemory shared;
    public final Param valuesProj, preValuesProj;
    public final IndexBuffer shuffleIndex;
    public final ValueLookup lookup;
    public final MemoryStats stats;
    private final int memLayerNum;

    private final Kernels K = Kernels.get();
    private final MemoryKernels MK = MemoryKernels.get();

    private boolean training = true;
    private Rng dropoutRng;
    private int cap = -1, n;
    private float[] o, dO, preIn, dPreIn, preRaw, pre, w, dW, dScores, dPre, mask, dyMasked;
    private long lastBytes;

    public UltraMemV2(MemoryConfig cfg, int layerId, int memLayerNum, SharedMemory shared, String prefix) {
        this.cfg = cfg; this.layerId = layerId; this.memLayerNum = memLayerNum; this.shared = shared;
        d = cfg.dModel(); vdim = cfg.vdim(); preVdim = cfg.preVdim(); knn = cfg.knn(); heads = cfg.heads();
        cores = cfg.tuckerCores(); keyExpand = cfg.keyExpandTime(); valueExpand = cfg.valueExpandTime();
        int r = cfg.tuckerRank();
        if (vdim % cores != 0) throw new UserError("config: mem_vdim must be divisible by mem_tucker_cores");
        if (valueExpand != 1 && valueExpand != keyExpand * keyExpand)
            throw new UserError("config: mem_value_expand_time must be 1 or mem_key_expand_time²");
        long knumSq = (long) cfg.knum() * cfg.knum();
        allValueNum = knumSq * memLayerNum;
        if (shared == null || shared.values == null || shared.allValueNum != allValueNum)
            throw new UserError("ultramem_v2: the shared value table must have knum²·mem_layer_num = " + allValueNum + " rows");
        if (preVdim > 0 && (shared.preValues == null || shared.preValues.dim(1) != preVdim))
            throw new UserError("ultramem_v2: the shared pre-value table is missing or has the wrong width");
        if (shared.values.dim(1) != vdim) throw new UserError("ultramem_v2: the shared value table width differs from mem_vdim");
        long knumL = (long) Math.floor(Math.sqrt(allValueNum * cfg.shareRatio()));
        while ((knumL + 1) * (knumL + 1) <= allValueNum * cfg.shareRatio()) knumL++;
        while (knumL > 0 && knumL * knumL > allValueNum * cfg.shareRatio()) knumL--;
        if (knumL < 1) throw new UserError("config: mem_share_ratio too small: no value rows per layer");
        valueNum = knumL * knumL;
        offset = (long) layerId * knumSq;
        keyNum = Math.toIntExact(keyExpand * knumL);
        int k1 = cfg.stage1Knn() == 0 ? knn : cfg.stage1Knn();
        int groups = (heads + 1) / 2;
        int[][][] slots;
        int nSlots;
        switch (cfg.queryMode()) {
            case "released" -> {
                if (2 * groups > 2 * r)
                    throw new UserError("config: mem_query_mode released supports at most 2·mem_tucker_rank heads (" + 2 * r + "), got " + heads);
                slots = TuckerRetrieval.sharedQuerySlots(heads, r);
                nSlots = 2 * r;
            }
            // the official mem_q_for_each_tucker_rank = false, decided as v1's query: one row and one
            // column slot per pair of heads, read by every rank (the official code crashes instead)
            case "shared" -> {
                slots = TuckerRetrieval.sharedQuerySlots(heads, r);
                nSlots = 2 * groups;
            }
            default -> {
                slots = TuckerRetrieval.perRankQuerySlots(heads, r);
                nSlots = 2 * r * groups;
            }
        }
        retrieval = new TuckerRetrieval(prefix, d, cfg.kdim(), heads, keyNum, r, cores, k1, knn, nSlots, slots[0], slots[1]);
        retrieval.setAuxLosses(cfg.tuckerPenalty(), cfg.tuckerTau(), cfg.keyBalanceCoef());
        preValuesProj = preVdim > 0 ? Param.of(prefix + "pre_values_proj.weight", Param.Group.DECAY, preVdim, d) : null;
        valuesProj = Param.of(prefix + "values_proj.weight", Param.Group.DECAY, d, valueExpand * vdim);
        long virtual = (long) keyNum * keyNum;
        int[] perm = new int[Math.toIntExact(virtual)];
        for (int i = 0; i < perm.length; i++) perm[i] = i;
        shuffleIndex = new IndexBuffer(prefix + "shuffle_index", perm);
        int g = keyExpand * keyExpand;
        lookup = new ValueLookup(perm, valueNum, allValueNum, offset, vdim, g, valueExpand == g);
        stats = new MemoryStats(valueNum);
        dropoutRng = new Rng(0x6d656d6f72794cL + layerId);
    }

    @Override public List<Param> params() {
        List<Param> l = new ArrayList<>(retrieval.params());
        if (preValuesProj != null) l.add(preValuesProj);
        l.add(valuesProj);
        return l;
    }

    @Override public List<IndexBuffer> indexBuffers() { return List.of(shuffleIndex); }

    @Override public void setTraining(boolean training) {
        this.training = training;
        retrieval.setCacheKeys(!training);
    }

    @Override public void initialize(Rng rng) {
        boolean paper = cfg.paperInit();
        int kdim = cfg.kdim();
        double linStd = PaperInit.linearStd(cfg);
        retrieval.initialize(rng, Math.pow(kdim, -0.4), paper ? linStd : 1.0 / Math.sqrt(kdim));
        rng.fillNormal(valuesProj.data(), paper ? linStd : 1.0 / Math.sqrt(valueExpand * vdim));
        if (preValuesProj != null) rng.fillNormal(preValuesProj.data(), paper ? linStd : 1.0 / Math.sqrt(d));
        int[] perm = rng.permutation(shuffleIndex.data().length);
        System.arraycopy(perm, 0, shuffleIndex.data(), 0, perm.length);
        if (paper) retrieval.calibrateNorms(rng, 256);
        dropoutRng = new Rng(rng.nextLong());
        afterWeightsChanged();
    }

    @Override public void afterWeightsChanged() {
        retrieval.updateTucker();
        stats.setSingular(retrieval.singular, retrieval.rank);
    }

    private void ensure(int n) {
        this.n = n;
        if (n <= cap) return;
        int c = Math.max(n, cap * 3 / 2);
        int R = heads * knn, W = lookup.outWidth();
        o = new float[c * W]; dO = new float[c * W];
        if (preVdim > 0) { preIn = new float[c * preVdim]; dPreIn = new float[c * preVdim]; }
        preRaw = new float[c * R]; pre = new float[c * R]; dPre = new float[c * R];
        w = new float[c * R * cores]; dW = new float[c * R * cores]; dScores = new float[c * R * cores];
        mask = new float[c * d]; dyMasked = new float[c * d];
        cap = c;
    }

    private boolean dropoutOn() { return training && cfg.outputDropout() > 0; }

    @Override
    public void forward(float[] x, float[] y, int n) {
        ensure(n);
        int R = heads * knn, W = lookup.outWidth(), m = n * R;
        // 1–7. TDQKR
        retrieval.forward(x, n);
        // shuffle, value expansion, ring window of the shared table
        lookup.address(retrieval.bestIndices, m);
        float[] sc = retrieval.scores;
        if (preVdim > 0) {
            // pre-values: π = ⟨P[p], pre_values_proj(x)⟩ (optionally GELU), weights = score_c · π
            K.gemmNT(n, preVdim, d, x, 0, preValuesProj.data(), 0, preIn, 0, false);
            MK.gatherDotRows(lookup.nSeg, lookup.segStart, lookup.segRow, lookup.order, R, 1, preVdim,
                    shared.preValues.segment(), null, preIn, preVdim, preRaw);
            for (int e = 0; e < m; e++) {
                pre[e] = cfg.useGluAct() ? (float) Gelu.f(preRaw[e]) : preRaw[e];
                for (int c = 0; c < cores; c++) w[e * cores + c] = sc[e * cores + c] * pre[e];
            }
        } else {
            System.arraycopy(sc, 0, w, 0, m * cores);
        }
        // multi-core pooled lookup (groups summed or concatenated)
        Arrays.fill(o, 0, n * W, 0f);
        MK.gatherWeightedSumRows(n, R, cores, vdim, shared.values.segment(), lookup.order, lookup.row, lookup.col, w, o, W);
        K.gemmNT(n, d, W, o, 0, valuesProj.data(), 0, y, 0, false);
        // output dropout (training only)
        if (dropoutOn()) {
            float keep = (float) (1 / (1 - cfg.outputDropout()));
            for (int i = 0; i < n * d; i++) {
                mask[i] = dropoutRng.nextDouble() < cfg.outputDropout() ? 0f : keep;
                y[i] *= mask[i];
            }
        }
        lastBytes = Float.BYTES * (retrieval.denseParams() + valuesProj.numel()
                + (preValuesProj == null ? 0 : preValuesProj.numel()) + (long) lookup.nSeg * (vdim + preVdim));
        stats.record(lookup, retrieval, y, n, d);
    }

    @Override
    public void backward(float[] x, float[] dy, float[] dx, int n) {
        if (n != this.n) throw new IllegalStateException("backward n differs from forward n");
        int R = heads * knn, W = lookup.outWidth(), m = n * R;
        float[] g = dy;
        if (dropoutOn()) {
            for (int i = 0; i < n * d; i++) dyMasked[i] = dy[i] * mask[i];
            g = dyMasked;
        }
        // values_proj
        K.gemmNN(n, W, d, g, 0, valuesProj.data(), 0, dO, 0, false);
        K.gemmTN(d, W, n, g, 0, o, 0, valuesProj.grad(), 0, true);
        // lookup: weight gradients and value rows
        MK.gatherDotRows(lookup.nSeg, lookup.segStart, lookup.segRow, lookup.order, R, cores, vdim,
                shared.values.segment(), lookup.col, dO, W, dW);
        MK.scatterAddRows(lookup.nSeg, lookup.segStart, lookup.segRow, lookup.order, R, cores, vdim,
                w, dO, W, lookup.col, shared.values.gradSegment());
        float[] sc = retrieval.scores;
        if (preVdim > 0) {
            // weights = score_c · π: split the gradient between the scores and the pre-value score
            for (int e = 0; e < m; e++) {
                float dp = 0;
                for (int c = 0; c < cores; c++) {
                    dScores[e * cores + c] = dW[e * cores + c] * pre[e];
                    dp += dW[e * cores + c] * sc[e * cores + c];
                }
                dPre[e] = cfg.useGluAct() ? (float) (dp * Gelu.df(preRaw[e])) : dp;
            }
            MK.scatterAddRows(lookup.nSeg, lookup.segStart, lookup.segRow, lookup.order, R, 1, preVdim,
                    dPre, preIn, preVdim, null, shared.preValues.gradSegment());
            Arrays.fill(dPreIn, 0, n * preVdim, 0f);
            MK.gatherWeightedSumRows(n, R, 1, preVdim, shared.preValues.segment(), lookup.order, lookup.row, null, dPre, dPreIn, preVdim);
            K.gemmTN(preVdim, d, n, dPreIn, 0, x, 0, preValuesProj.grad(), 0, true);
            K.gemmNN(n, d, preVdim, dPreIn, 0, preValuesProj.data(), 0, dx, 0, true);
        } else {
            System.arraycopy(dW, 0, dScores, 0, m * cores);
        }
        retrieval.backward(x, dScores, dx, n);
    }

    @Override public double auxLoss() { return retrieval.auxLoss(); }

    @Override public java.util.Map<String, Double> diagnostics() { return stats.toMap(); }

    @Override public void resetDiagnostics() { stats.reset(); }

    /** pre-value scores of the last forward (after the optional GELU), [e]. */
    public float[] preScores() { return pre; }

    /** pre_values_proj(x) of the last forward, [t][pre_vdim]. */
    public float[] preInput() { return preIn; }

    /** pooled lookup output before values_proj, [t][outWidth]. */
    public float[] lookupOutput() { return o; }

    @Override public long activatedParamsPerToken() {
        return retrieval.denseParams() + valuesProj.numel() + (preValuesProj == null ? 0 : preValuesProj.numel())
                + (long) knn * heads * (vdim + preVdim);
    }

    @Override public long forwardMacsPerToken() {
        long m = retrieval.forwardMacsPerToken() + (long) heads * knn * vdim + (long) valueExpand * vdim * d;
        if (preVdim > 0) m += (long) preVdim * d + (long) heads * knn * preVdim;
        return m;
    }

    @Override public long lastForwardParamBytes() { return lastBytes; }
}
