package dev.ultramem.memory;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.core.UserError;

import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.List;

/**
 * UltraMem (v1) memory layer, official {@code UltraMemLayerV1}: TDQKR retrieval over
 * {@code key_num = √E·knum} keys per side, implicit value expansion (E virtual blocks of the
 * layer's own {@code knum² × vdim} table, addressed through a shuffle), multi-core scoring (core c
 * weights the c-th 1/C of each value row), the E pooled blocks concatenated and projected by
 * {@code values_proj}. Scores are raw (no softmax).
 */
public final class UltraMemV1 extends TuckerMemoryLayer<UltraMemV1.StepState> {

    public final int expand;
    public final long valueNum;
    public final Param values, valuesProj;
    public final ValueLookup lookup;

    /** What a step keeps per token: the pooled lookup o and its gradient, and the score gradients. */
    public static final class StepState {
        final float[] o, dO, dScores;

        StepState(int tokens, int width, int entries, int cores) {
            o = new float[tokens * width]; dO = new float[tokens * width]; dScores = new float[tokens * entries * cores];
        }

        /** floats per token, as allocated above. */
        public static long floatsPerToken(long width, long entries, long cores) { return 2 * width + entries * cores; }
    }

    public UltraMemV1(MemoryConfig cfg, int memLayerNum, String prefix) {
        int expand = cfg.v1ValueExpand(), ket = (int) Math.round(Math.sqrt(expand));
        if (ket * ket != expand) throw new UserError("config: mem_v1_value_expand_time must be a perfect square");
        if (cfg.vdim() % cfg.tuckerCores() != 0) throw new UserError("config: mem_vdim must be divisible by mem_tucker_cores");
        int keyNum = ket * cfg.knum(), heads = cfg.heads(), r = cfg.tuckerRank();
        long valueNum = (long) cfg.knum() * cfg.knum();
        int k1 = cfg.stage1Knn() == 0 ? cfg.knn() : cfg.stage1Knn();
        int[][][] slots = TuckerRetrieval.sharedQuerySlots(heads, r);
        super(cfg, memLayerNum, prefix, keyNum, valueNum, new TuckerRetrieval(prefix, cfg.dModel(), cfg.kdim(), heads, keyNum, r,
                cfg.tuckerCores(), k1, cfg.knn(), 2 * ((heads + 1) / 2), slots[0], slots[1]));
        this.expand = expand;
        this.valueNum = valueNum;
        retrieval.setAuxLosses(cfg.tuckerPenalty(), cfg.tuckerTau(), 0);
        values = Param.offHeap(prefix + "values_for_look_up", Param.Group.VALUE, Arena.ofAuto(), valueNum, vdim);
        valuesProj = Param.of(prefix + "values_proj.weight", Param.Group.DECAY, d, expand * vdim);
        lookup = new ValueLookup(shuffleIndex.data(), valueNum, valueNum, 0, vdim, expand, true);
    }

    @Override public List<Param> params() { return params(values, valuesProj); }

    @Override public void initialize(Rng rng) {
        boolean paper = cfg.paperInit();
        int kdim = cfg.kdim();
        double linStd = PaperInit.linearStd(cfg);
        retrieval.initialize(rng, Math.pow(kdim, -0.33), paper ? linStd : 1.0 / Math.sqrt(kdim));
        rng.fillNormal(valuesProj.data(), paper ? linStd : 1.0 / Math.sqrt(expand * vdim));
        shuffle(rng);
        double valueStd = 0.02;
        if (paper) {
            double sigmaS = retrieval.calibrateNorms(rng, 256);
            valueStd = PaperInit.valueStd(cfg, memLayerNum, sigmaS, 0);
        }
        values.initNormal(rng, valueStd);
        afterWeightsChanged();
    }

    @Override StepState newState(int c) { return new StepState(c, expand * vdim, entriesPerToken(), cores); }

    @Override
    public void forward(float[] x, float[] y, int n) {
        ensure(n);
        float[] o = state.o;
        int R = entriesPerToken(), W = expand * vdim;
        // 1–7. TDQKR: query, keys, row/col scores, stage-1 top-k with u, v, grid per core, stage-2 top-k
        retrieval.forward(x, n);
        // 8. shuffle and implicit value expansion: virtual index → (block g, physical row)
        lookup.address(retrieval.bestIndices, n * R);
        // 9. multi-core pooled lookup: o[n, g·vdim + chunk c] += score_c · V[p, chunk c]
        Arrays.fill(o, 0, n * W, 0f);
        lookup.gather(n, R, cores, vdim, values, retrieval.scores, o, W, true);
        // 10. y = values_proj(concat_g o_g)
        K.gemmNT(n, d, W, o, 0, valuesProj.data(), 0, y, 0, false);
        lastBytes = Float.BYTES * (retrieval.denseParams() + valuesProj.numel()) + lookup.rowBytes(vdim, values);
        stats.record(lookup, retrieval, y, n, d);
    }

    @Override
    public void backward(float[] x, float[] dy, float[] dx, int n) {
        if (n != this.n) throw new IllegalStateException("backward n differs from forward n");
        StepState s = state;
        int R = entriesPerToken(), W = expand * vdim;
        // 10'. values_proj
        K.gemmNN(n, W, d, dy, 0, valuesProj.data(), 0, s.dO, 0, false);
        K.gemmTN(d, W, n, dy, 0, s.o, 0, valuesProj.grad(), 0, true);
        // 9'. lookup: score gradients (gathered dots) and value rows (row-grouped scatter-add)
        lookup.dots(R, cores, vdim, values, s.dO, W, true, s.dScores);
        lookup.scatterAdd(R, cores, vdim, retrieval.scores, s.dO, W, true, values);
        // 7'–1'. retrieval
        retrieval.backward(x, s.dScores, dx, n);
    }

    @Override public long activatedParamsPerToken() {
        return retrieval.denseParams() + valuesProj.numel() + (long) knn * heads * vdim;
    }

    @Override public long forwardMacsPerToken() {
        return retrieval.forwardMacsPerToken() + (long) heads * knn * vdim + (long) expand * vdim * d;
    }

}
