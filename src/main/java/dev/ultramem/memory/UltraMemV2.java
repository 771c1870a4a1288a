package dev.ultramem.memory;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.core.UserError;

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
public final class UltraMemV2 extends TuckerMemoryLayer<UltraMemV2.StepState> {

    public final int preVdim, keyExpand, valueExpand, layerId;
    public final long valueNum, allValueNum, offset;
    public final SharedMemory shared;
    public final Param valuesProj, preValuesProj;
    public final ValueLookup lookup;

    private boolean training = true;
    private Rng dropoutRng;

    /**
     * What a step keeps per token: the pooled lookup o and its gradient, pre_values_proj(x) and its
     * gradient, the pre-value scores π (raw, activated, gradient), the lookup weights score_c·π with
     * their gradient and the score gradients, and the dropout mask with the masked output gradient.
     */
    public static final class StepState {
        final float[] o, dO, preIn, dPreIn, preRaw, pre, dPre, w, dW, dScores, mask, dyMasked;

        StepState(int tokens, int width, int preVdim, int entries, int cores, int d) {
            o = new float[tokens * width]; dO = new float[tokens * width];
            preIn = new float[tokens * preVdim]; dPreIn = new float[tokens * preVdim];
            preRaw = new float[tokens * entries]; pre = new float[tokens * entries]; dPre = new float[tokens * entries];
            w = new float[tokens * entries * cores]; dW = new float[tokens * entries * cores]; dScores = new float[tokens * entries * cores];
            mask = new float[tokens * d]; dyMasked = new float[tokens * d];
        }

        /** floats per token, as allocated above. */
        public static long floatsPerToken(long width, long preVdim, long entries, long cores, long d) {
            return 2 * width + 2 * preVdim + 3 * entries + 3 * entries * cores + 2 * d;
        }
    }

    public UltraMemV2(MemoryConfig cfg, int layerId, int memLayerNum, SharedMemory shared, String prefix) {
        int heads = cfg.heads(), keyExpand = cfg.keyExpandTime(), valueExpand = cfg.valueExpandTime(), r = cfg.tuckerRank();
        if (cfg.vdim() % cfg.tuckerCores() != 0) throw new UserError("config: mem_vdim must be divisible by mem_tucker_cores");
        if (valueExpand != 1 && valueExpand != keyExpand * keyExpand)
            throw new UserError("config: mem_value_expand_time must be 1 or mem_key_expand_time²");
        long knumSq = (long) cfg.knum() * cfg.knum(), allValueNum = knumSq * memLayerNum;
        if (shared == null || shared.values == null || shared.allValueNum != allValueNum)
            throw new UserError("ultramem_v2: the shared value table must have knum²·mem_layer_num = " + allValueNum + " rows");
        if (cfg.preVdim() > 0 && (shared.preValues == null || shared.preValues.dim(1) != cfg.preVdim()))
            throw new UserError("ultramem_v2: the shared pre-value table is missing or has the wrong width");
        if (shared.values.dim(1) != cfg.vdim()) throw new UserError("ultramem_v2: the shared value table width differs from mem_vdim");
        // the layer's window of the shared table: knum_l = floor(sqrt(all · share_ratio)) rows per side
        long knumL = (long) Math.floor(Math.sqrt(allValueNum * cfg.shareRatio()));
        while ((knumL + 1) * (knumL + 1) <= allValueNum * cfg.shareRatio()) knumL++;
        while (knumL > 0 && knumL * knumL > allValueNum * cfg.shareRatio()) knumL--;
        if (knumL < 1) throw new UserError("config: mem_share_ratio too small: no value rows per layer");
        int keyNum = Math.toIntExact(keyExpand * knumL);
        int k1 = cfg.stage1Knn() == 0 ? cfg.knn() : cfg.stage1Knn();
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
        super(cfg, memLayerNum, prefix, keyNum, knumL * knumL, new TuckerRetrieval(prefix, cfg.dModel(), cfg.kdim(), heads, keyNum, r,
                cfg.tuckerCores(), k1, cfg.knn(), nSlots, slots[0], slots[1]));
        this.layerId = layerId; this.shared = shared;
        this.preVdim = cfg.preVdim(); this.keyExpand = keyExpand; this.valueExpand = valueExpand;
        this.allValueNum = allValueNum;
        valueNum = knumL * knumL;
        offset = (long) layerId * knumSq;
        retrieval.setAuxLosses(cfg.tuckerPenalty(), cfg.tuckerTau(), cfg.keyBalanceCoef());
        preValuesProj = preVdim > 0 ? Param.of(prefix + "pre_values_proj.weight", Param.Group.DECAY, preVdim, d) : null;
        valuesProj = Param.of(prefix + "values_proj.weight", Param.Group.DECAY, d, valueExpand * vdim);
        int g = keyExpand * keyExpand;
        lookup = new ValueLookup(shuffleIndex.data(), valueNum, allValueNum, offset, vdim, g, valueExpand == g);
        dropoutRng = new Rng(0x6d656d6f72794cL + layerId);
    }

    @Override public List<Param> params() { return params(preValuesProj, valuesProj); }

    @Override public void setTraining(boolean training) {
        this.training = training;
        super.setTraining(training);
    }

    @Override public void initialize(Rng rng) {
        boolean paper = cfg.paperInit();
        int kdim = cfg.kdim();
        double linStd = PaperInit.linearStd(cfg);
        retrieval.initialize(rng, Math.pow(kdim, -0.4), paper ? linStd : 1.0 / Math.sqrt(kdim));
        rng.fillNormal(valuesProj.data(), paper ? linStd : 1.0 / Math.sqrt(valueExpand * vdim));
        if (preValuesProj != null) rng.fillNormal(preValuesProj.data(), paper ? linStd : 1.0 / Math.sqrt(d));
        shuffle(rng);
        if (paper) retrieval.calibrateNorms(rng, 256);
        dropoutRng = new Rng(rng.nextLong());
        afterWeightsChanged();
    }

    @Override StepState newState(int c) { return new StepState(c, lookup.outWidth(), preVdim, entriesPerToken(), cores, d); }

    private boolean dropoutOn() { return training && cfg.outputDropout() > 0; }

    @Override
    public void forward(float[] x, float[] y, int n) {
        ensure(n);
        StepState st = state;
        int R = entriesPerToken(), W = lookup.outWidth(), m = n * R;
        // 1–7. TDQKR
        retrieval.forward(x, n);
        // shuffle, value expansion, ring window of the shared table
        lookup.address(retrieval.bestIndices, m);
        float[] sc = retrieval.scores, w = st.w;
        if (preVdim > 0) {
            // pre-values: π = ⟨P[p], pre_values_proj(x)⟩ (optionally GELU), weights = score_c · π
            K.gemmNT(n, preVdim, d, x, 0, preValuesProj.data(), 0, st.preIn, 0, false);
            lookup.dots(R, 1, preVdim, shared.preValues, st.preIn, preVdim, false, st.preRaw);
            for (int e = 0; e < m; e++) {
                st.pre[e] = cfg.useGluAct() ? (float) Gelu.f(st.preRaw[e]) : st.preRaw[e];
                for (int c = 0; c < cores; c++) w[e * cores + c] = sc[e * cores + c] * st.pre[e];
            }
        } else {
            System.arraycopy(sc, 0, w, 0, m * cores);
        }
        // multi-core pooled lookup (groups summed or concatenated)
        Arrays.fill(st.o, 0, n * W, 0f);
        lookup.gather(n, R, cores, vdim, shared.values, w, st.o, W, true);
        K.gemmNT(n, d, W, st.o, 0, valuesProj.data(), 0, y, 0, false);
        // output dropout (training only)
        if (dropoutOn()) {
            float keep = (float) (1 / (1 - cfg.outputDropout()));
            for (int i = 0; i < n * d; i++) {
                st.mask[i] = dropoutRng.nextDouble() < cfg.outputDropout() ? 0f : keep;
                y[i] *= st.mask[i];
            }
        }
        lastBytes = Float.BYTES * (retrieval.denseParams() + valuesProj.numel() + (preValuesProj == null ? 0 : preValuesProj.numel()))
                + lookup.rowBytes(vdim, shared.values) + (preVdim == 0 ? 0 : lookup.rowBytes(preVdim, shared.preValues));
        stats.record(lookup, retrieval, y, n, d);
    }

    @Override
    public void backward(float[] x, float[] dy, float[] dx, int n) {
        if (n != this.n) throw new IllegalStateException("backward n differs from forward n");
        StepState st = state;
        int R = entriesPerToken(), W = lookup.outWidth(), m = n * R;
        float[] g = dy;
        if (dropoutOn()) {
            for (int i = 0; i < n * d; i++) st.dyMasked[i] = dy[i] * st.mask[i];
            g = st.dyMasked;
        }
        // values_proj
        K.gemmNN(n, W, d, g, 0, valuesProj.data(), 0, st.dO, 0, false);
        K.gemmTN(d, W, n, g, 0, st.o, 0, valuesProj.grad(), 0, true);
        // lookup: weight gradients and value rows
        lookup.dots(R, cores, vdim, shared.values, st.dO, W, true, st.dW);
        lookup.scatterAdd(R, cores, vdim, st.w, st.dO, W, true, shared.values);
        float[] sc = retrieval.scores, dW = st.dW, dScores = st.dScores;
        if (preVdim > 0) {
            // weights = score_c · π: split the gradient between the scores and the pre-value score
            for (int e = 0; e < m; e++) {
                float dp = 0;
                for (int c = 0; c < cores; c++) {
                    dScores[e * cores + c] = dW[e * cores + c] * st.pre[e];
                    dp += dW[e * cores + c] * sc[e * cores + c];
                }
                st.dPre[e] = cfg.useGluAct() ? (float) (dp * Gelu.df(st.preRaw[e])) : dp;
            }
            lookup.scatterAdd(R, 1, preVdim, st.dPre, st.preIn, preVdim, false, shared.preValues);
            Arrays.fill(st.dPreIn, 0, n * preVdim, 0f);
            lookup.gather(n, R, 1, preVdim, shared.preValues, st.dPre, st.dPreIn, preVdim, false);
            K.gemmTN(preVdim, d, n, st.dPreIn, 0, x, 0, preValuesProj.grad(), 0, true);
            K.gemmNN(n, d, preVdim, st.dPreIn, 0, preValuesProj.data(), 0, dx, 0, true);
        } else {
            System.arraycopy(dW, 0, dScores, 0, m * cores);
        }
        retrieval.backward(x, dScores, dx, n);
    }

    /** pre-value scores of the last forward (after the optional GELU), [e]. */
    public float[] preScores() { return state.pre; }

    /** pre_values_proj(x) of the last forward, [t][pre_vdim]. */
    public float[] preInput() { return state.preIn; }

    /** pooled lookup output before values_proj, [t][outWidth]. */
    public float[] lookupOutput() { return state.o; }

    @Override public long activatedParamsPerToken() {
        return retrieval.denseParams() + valuesProj.numel() + (preValuesProj == null ? 0 : preValuesProj.numel())
                + (long) knn * heads * (vdim + preVdim);
    }

    @Override public long forwardMacsPerToken() {
        long m = retrieval.forwardMacsPerToken() + (long) heads * knn * vdim + (long) valueExpand * vdim * d;
        if (preVdim > 0) m += (long) preVdim * d + (long) heads * knn * preVdim;
        return m;
    }

}
