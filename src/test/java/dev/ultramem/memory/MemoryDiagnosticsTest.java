package dev.ultramem.memory;

import dev.ultramem.core.Rng;
import dev.ultramem.model.LayerConfigs;
import dev.ultramem.model.ModelConfig;
import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/** The logged diagnostics against values recomputed here from the layer's selections and output. */
class MemoryDiagnosticsTest {

    @Test
    void coverageScoresAndOutputStdMatchARecount() {
        ModelConfig c = new ModelConfig();
        c.dModel = 32; c.memType = "ultramem_v2"; c.memKnum = 6; c.memKdim = 8; c.memVdim = 16; c.memPreVdim = 8;
        c.memKnn = 4; c.memShareRatio = 0.5; c.validate();
        int layers = 2;
        SharedMemory shared = SharedMemory.create(LayerConfigs.memory(c), layers, "full_memory_layer.");
        UltraMemV2 layer = new UltraMemV2(LayerConfigs.memory(c), 1, layers, shared, "mem.");
        Rng rng = new Rng(5);
        layer.initialize(rng);
        shared.initialize(LayerConfigs.memory(c), rng);
        layer.afterWeightsChanged();

        int n = 24, d = c.dModel;
        float[] x = new float[n * d], y = new float[n * d];
        rng.fillNormal(x, 1.0);
        layer.resetDiagnostics();
        layer.forward(x, y, n);
        Map<String, Double> m = layer.diagnostics();

        // coverage: distinct physical rows selected / rows in the layer's window (spec §3.2 addressing)
        int[] shuffle = layer.indexBuffers().get(0).data();
        Set<Long> rows = new HashSet<>();
        int R = layer.heads * layer.knn;
        for (int e = 0; e < n * R; e++) {
            long z = shuffle[layer.retrieval.bestIndices[e]];
            rows.add(((z % layer.valueNum) + layer.offset) % layer.allValueNum);
        }
        assertEquals((double) rows.size() / layer.valueNum, m.get("coverage"), 1e-12);

        double top1 = 0, topk = 0;
        for (int t = 0; t < n; t++) {
            top1 += layer.retrieval.sumScores[t * R];
            for (int q = 0; q < R; q++) topk += layer.retrieval.sumScores[t * R + q];
        }
        assertEquals(top1 / n, m.get("top1_score"), 1e-5 * Math.max(1, Math.abs(top1 / n)));
        assertEquals(topk / (n * R), m.get("topk_score"), 1e-5 * Math.max(1, Math.abs(topk / (n * R))));

        double mean = 0, sq = 0;
        for (float v : y) mean += v;
        mean /= y.length;
        for (float v : y) sq += (v - mean) * (v - mean);
        assertEquals(Math.sqrt(sq / y.length), m.get("output_std"), 1e-6);

        assertTrue(m.get("usage_kl") >= 0);
        assertTrue(m.get("sv1") >= m.get("sv2") && m.get("sv2") >= 0, "singular values sorted and non-negative");

        layer.resetDiagnostics();
        assertEquals(0.0, layer.diagnostics().get("coverage"));
    }
}
