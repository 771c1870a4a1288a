package dev.ultramem.memory;

import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.core.UserError;
import dev.ultramem.kernel.Kernels;
import dev.ultramem.kernel.MemoryKernels;
import dev.ultramem.layer.TokenLayer;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * UltraMem (v1) memory layer, official {@code UltraMemLayerV1}: TDQKR retrieval over
 * {@code key_num = √E·knum} keys per side, implicit value expansion (E virtual blocks of the
 * layer's own {@code knum² × vdim} table, addressed through a shuffle), multi-core scoring (core c
 * weights the c-th 1/C of each value row), the E pooled blocks concatenated and projected by
 * {@code values_proj}. Scores are raw (no softmax).
 */
public final class UltraMemV1 implements TokenLayer {

    final MemoryConfig cfg;
    public final int d, vdim, knn, heads, cores, expand, keyNum;
    public final long valueNum;
    public final TuckerRetrieval retrieval;
    public final Param values, valuesProj;
    public final IndexBuffer shuffleIndex;
    public final ValueLookup lookup;
    public final MemoryStats stats;
    private final int memLayerNum;

    private final Kernels K = Kernels.get();
    private final MemoryKernels MK = MemoryKernels.get();

    private int cap = -1, n;
    private float[] o, dO, dScores;
    private long lastBytes;

    public UltraMemV1(MemoryConfig cfg, int memLayerNum, String prefix) {
        this.cfg = cfg;
        this.memLayerNum = memLayerNum;
        d = cfg.dModel(); vdim = cfg.vdim(); knn = cfg.knn(); heads = cfg.heads(); cores = cfg.tuckerCores();
        expand = cfg.v1ValueExpand();
        int ket = (int) Math.round(Math.sqrt(expand));
        if (ket * ket != expand) throw new UserError("config: mem_v1_value_expand_time must be a perfect square");
        if (vdim % cores != 0) throw new UserError("config: mem_vdim must be divisible by mem_tucker_cores");
        keyNum = ket * cfg.knum();
        valueNum = (long) cfg.knum() * cfg.knum();
        int k1 = cfg.stage1Knn() == 0 ? knn : cfg.stage1Knn();
        int r = cfg.tuckerRank();
        int[][][] slots = TuckerRetrieval.sharedQuerySlots(heads, r);
        retrieval = new TuckerRetrieval(prefix, d, cfg.kdim(), heads, keyNum, r, cores, k1, knn,
                2 * ((heads + 1) / 2), slots[0], slots[1]);
        retrieval.setAuxLosses(cfg.tuckerPenalty(), cfg.tuckerTau(), 0);
        values = Param.offHeap(prefix + "values_for_look_up", Param.Group.VALUE, Arena.ofAuto(), valueNum, vdim);
        valuesProj = Param.of(prefix + "values_proj.weight", Param.Group.DECAY, d, expand * vdim);
        int virtual = Math.toIntExact((long) keyNum * keyNum);
        int[] perm = new int[virtual];
        for (int i = 0; i < virtual; i++) perm[i] = i;
        shuffleIndex = new IndexBuffer(prefix + "shuffle_index", perm);
        lookup = new ValueLookup(perm, valueNum, valueNum, 0, vdim, expand, true);
        stats = new MemoryStats(valueNum);
    }

    @Override public List<Param> params() {
        List<Param> l = new ArrayList<>(retrieval.params());
        l.add(values);
        l.add(valuesProj);
        return l;
    }

    @Override public List<IndexBuffer> indexBuffers() { return List.of(shuffleIndex); }

    @Override public void initialize(Rng rng) {
        boolean paper = cfg.paperInit();
        int kdim = cfg.kdim();
        double linStd = PaperInit.linearStd(cfg);
        retrieval.initialize(rng, Math.pow(kdim, -0.33), paper ? linStd : 1.0 / Math.sqrt(kdim));
        rng.fillNormal(valuesProj.data(), paper ? linStd : 1.0 / Math.sqrt(expand * vdim));
        int[] perm = rng.permutation(shuffleIndex.data().length);
        System.arraycopy(perm, 0, shuffleIndex.data(), 0, perm.length);
        double valueStd = 0.02;
        if (paper) {
            double sigmaS = retrieval.calibrateNorms(rng, 256);
            valueStd = PaperInit.valueStd(cfg, memLayerNum, sigmaS, 0);
        }
        SharedMemory.fillNormal(values, rng, valueStd);
        afterWeightsChanged();
    }

    /** Eval mode reuses the normalised keys until afterWeightsChanged (v1 has no dropout). */
    @Override public void setTraining(boolean training) { retrieval.setCacheKeys(!training); }

    @Override public void afterWeightsChanged() {
        retrieval.updateTucker();
        stats.setSingular(retrieval.singular, retrieval.rank);
    }

    private void ensure(int n) {
        this.n = n;
        if (n <= cap) return;
        int c = Math.max(n, cap * 3 / 2);
        o = new float[c * expand * vdim]; dO = new float[c * expand * vdim];
        dScores = new float[c * heads * knn * cores];
        cap = c;
    }

    @Override
    public void forward(float[] x, float[] y, int n) {
        ensure(n);
        int R = heads * knn, W = expand * vdim;
        // 1–7. TDQKR: query, keys, row/col scores, stage-1 top-k with u, v, grid per core, stage-2 top-k
        retrieval.forward(x, n);
        // 8. shuffle and implicit value expansion: virtual index → (block g, physical row)
        lookup.address(retrieval.bestIndices, n * R);
        // 9. multi-core pooled lookup: o[n, g·vdim + chunk c] += score_c · V[p, chunk c]
        Arrays.fill(o, 0, n * W, 0f);
        lookup.gather(n, R, cores, vdim, values.segment(), retrieval.scores, o, W, true);
        // 10. y = values_proj(concat_g o_g)
        K.gemmNT(n, d, W, o, 0, valuesProj.data(), 0, y, 0, false);
        lastBytes = Float.BYTES * (retrieval.denseParams() + valuesProj.numel() + (long) lookup.nSeg * vdim);
        stats.record(lookup, retrieval, y, n, d);
    }

    @Override
    public void backward(float[] x, float[] dy, float[] dx, int n) {
        if (n != this.n) throw new IllegalStateException("backward n differs from forward n");
        int R = heads * knn, W = expand * vdim;
        // 10'. values_proj
        K.gemmNN(n, W, d, dy, 0, valuesProj.data(), 0, dO, 0, false);
        K.gemmTN(d, W, n, dy, 0, o, 0, valuesProj.grad(), 0, true);
        // 9'. lookup: score gradients (gathered dots) and value rows (row-grouped scatter-add)
        lookup.dots(R, cores, vdim, values.segment(), dO, W, true, dScores);
        MK.scatterAddRows(lookup.nSeg, lookup.segStart, lookup.segRow, lookup.order, R, cores, vdim,
                retrieval.scores, dO, W, lookup.col, values.gradSegment());
        // 7'–1'. retrieval
        retrieval.backward(x, dScores, dx, n);
    }

    @Override public double auxLoss() { return retrieval.auxLoss(); }

    @Override public java.util.Map<String, Double> diagnostics() { return stats.toMap(); }

    @Override public void resetDiagnostics() { stats.reset(); }

    @Override public long activatedParamsPerToken() {
        return retrieval.denseParams() + valuesProj.numel() + (long) knn * heads * vdim;
    }

    @Override public long forwardMacsPerToken() {
        return retrieval.forwardMacsPerToken() + (long) heads * knn * vdim + (long) expand * vdim * d;
    }

    @Override public long lastForwardParamBytes() { return lastBytes; }
}
