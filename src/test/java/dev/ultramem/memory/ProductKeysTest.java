package dev.ultramem.memory;

import dev.ultramem.core.Parallel;
import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.layer.TokenLayerGradCheck;
import dev.ultramem.model.LayerConfigs;
import dev.ultramem.model.ModelConfig;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.*;

class ProductKeysTest {

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
