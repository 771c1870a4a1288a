package dev.ultramem.memory;

import dev.ultramem.core.Parallel;
import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.layer.TokenLayerGradCheck;
import dev.ultramem.model.LayerConfigs;
import dev.ultramem.model.ModelConfig;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Comparator;

import static org.junit.jupiter.api.Assertions.*;

class ProductKeysTest {

    /** topK against a full stable sort (descending value, ties by ascending position), with many ties. */
    @Test
    void topKMatchesFullSort() {
        Rng rng = new Rng(9);
        for (int trial = 0; trial < 300; trial++) {
            int len = 1 + rng.nextInt(70), k = 1 + rng.nextInt(len), off = rng.nextInt(5);
            float[] s = new float[off + len];
            for (int i = 0; i < s.length; i++) s[i] = trial % 2 == 0 ? rng.nextInt(6) : (float) rng.nextGaussian();
            Integer[] order = new Integer[len];
            for (int i = 0; i < len; i++) order[i] = i;
            Arrays.sort(order, Comparator.<Integer>comparingDouble(i -> -s[off + i]).thenComparingInt(i -> i));
            int[] idx = new int[k];
            float[] val = new float[k];
            ProductKeys.topK(s, off, len, k, idx, val);
            for (int j = 0; j < k; j++) {
                assertEquals(order[j], idx[j], "trial " + trial + " rank " + j);
                assertEquals(s[off + order[j]], val[j]);
            }
        }
    }

    /** Results must not depend on the thread count (each output is computed by one thread). */
    @Test
    void memoryPlusIsIndependentOfThreadCount() {
        int before = Parallel.threads();
        try {
            float[][] r1 = run(1), r2 = run(3);
            for (int i = 0; i < r1.length; i++) assertArrayEquals(r1[i], r2[i], "tensor " + i);
        } finally {
            Parallel.setThreads(before);
        }
    }

    private static float[][] run(int threads) {
        Parallel.setThreads(threads);
        ModelConfig cfg = new ModelConfig();
        cfg.dModel = 32; cfg.nHeads = 2; cfg.nLayers = 1; cfg.memType = "memory_plus";
        cfg.memKnum = 16; cfg.memKdim = 8; cfg.memVdim = 32; cfg.memKnn = 6; cfg.memHead = 3; cfg.memStage1Knn = 4;
        cfg.validate();
        Rng rng = new Rng(77);
        SharedMemory shared = SharedMemory.create(LayerConfigs.memory(cfg), 1, "full_memory_layer.");
        shared.initialize(LayerConfigs.memory(cfg), rng);
        MemoryPlus layer = new MemoryPlus(LayerConfigs.memory(cfg), shared, "");
        layer.initialize(rng);
        int n = 200;
        float[] x = TokenLayerGradCheck.randn(rng, n * 32, 1), g = TokenLayerGradCheck.randn(rng, n * 32, 1);
        float[] y = new float[n * 32], dx = new float[n * 32];
        layer.forward(x, y, n);
        layer.backward(x, g, dx, n);
        float[][] out = new float[3 + layer.params().size()][];
        out[0] = y; out[1] = dx;
        out[2] = new float[(int) shared.values.numel()];
        for (int i = 0; i < out[2].length; i++) out[2][i] = shared.values.gradSegment().getAtIndex(ValueLayout.JAVA_FLOAT, i);
        int j = 3;
        for (Param p : layer.params()) out[j++] = p.grad().clone();
        return out;
    }
}
