package dev.ultramem.memory;

import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.kernel.Kernels;
import dev.ultramem.layer.TokenLayer;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The plumbing UltraMem v1 and UltraMemV2 share: TDQKR retrieval, the shuffle of the virtual value
 * index, value addressing, the per-step state grown with the token count, the rank-1 Tucker refresh
 * after each weight update, and the diagnostics. Subclasses say what a value is and how the output is
 * formed.
 */
abstract class TuckerMemoryLayer<S> implements TokenLayer {

    final MemoryConfig cfg;
    public final int d, vdim, knn, heads, cores, keyNum;
    public final TuckerRetrieval retrieval;
    public final IndexBuffer shuffleIndex;
    public final MemoryStats stats;
    final int memLayerNum;
    final Kernels K = Kernels.get();

    /** the step state (activations the backward reads), for {@link #cap} tokens. */
    S state;
    private int cap = -1;
    int n;
    long lastBytes;

    TuckerMemoryLayer(MemoryConfig cfg, int memLayerNum, String prefix, int keyNum, long layerRows, TuckerRetrieval retrieval) {
        this.cfg = cfg; this.memLayerNum = memLayerNum; this.keyNum = keyNum; this.retrieval = retrieval;
        d = cfg.dModel(); vdim = cfg.vdim(); knn = cfg.knn(); heads = cfg.heads(); cores = cfg.tuckerCores();
        int[] perm = new int[Math.toIntExact((long) keyNum * keyNum)];
        for (int i = 0; i < perm.length; i++) perm[i] = i;
        shuffleIndex = new IndexBuffer(prefix + "shuffle_index", perm);
        stats = new MemoryStats(layerRows);
    }

    /** The step state for c tokens. */
    abstract S newState(int c);

    /** Sets the token count and grows the step state (by half again, so growth is rare). */
    final void ensure(int n) {
        this.n = n;
        if (n <= cap) return;
        int c = Math.max(n, cap * 3 / 2);
        state = newState(c);
        cap = c;
    }

    /** Winners per token (H·knn). */
    final int entriesPerToken() { return heads * knn; }

    /** Draws the shuffle of the virtual value index (part of the layer's init). */
    final void shuffle(Rng rng) {
        rng.permute(shuffleIndex.data());  // in place: a table's shuffle index may be hundreds of MB
    }

    /** The retrieval's parameters followed by the layer's own. */
    final List<Param> params(Param... own) {
        List<Param> l = new ArrayList<>(retrieval.params());
        for (Param p : own) if (p != null) l.add(p);
        return l;
    }

    @Override public List<IndexBuffer> indexBuffers() { return List.of(shuffleIndex); }

    @Override public void setTraining(boolean training) {
        retrieval.setCacheKeys(!training);
        stats.setRecording(training);
    }

    /** The rank-1 refresh of u, v after a weight update, and its singular values for the diagnostics. */
    @Override public void afterWeightsChanged() {
        retrieval.updateTucker();
        stats.setSingular(retrieval.singular, retrieval.rank);
    }

    @Override public double auxLoss() { return retrieval.auxLoss(); }

    @Override public Map<String, Double> diagnostics() { return stats.toMap(); }

    @Override public void resetDiagnostics() { stats.reset(); }

    @Override public long lastForwardParamBytes() { return lastBytes; }
}
