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

        // forwards outside training (evaluation, decoding) record nothing; training forwards count again
        layer.setTraining(false);
        layer.forward(x, y, n);
        assertEquals(0.0, layer.diagnostics().get("coverage"), "an evaluation forward was recorded");
        layer.setTraining(true);
        layer.forward(x, y, n);
        assertEquals(m.get("coverage"), layer.diagnostics().get("coverage"), 1e-15);
    }

    /** PKM and Memory+ report the same diagnostics, recounted here from their winners and output. */
    @Test
    void productKeyLayersReportCoverageScoresAndUsage() {
        for (String type : new String[]{"pkm", "memory_plus"}) {
            ModelConfig c = new ModelConfig();
            c.dModel = 16; c.memType = type; c.memKnum = 7; c.memKdim = 4; c.memVdim = 16; c.memKnn = 5; c.memHead = 2;
            c.validate();
            Rng rng = new Rng(11);
            dev.ultramem.layer.TokenLayer layer;
            if (type.equals("pkm")) layer = new Pkm(LayerConfigs.memory(c), "");
            else {
                SharedMemory shared = SharedMemory.create(LayerConfigs.memory(c), 1, "full_memory_layer.");
                shared.initialize(LayerConfigs.memory(c), rng);
                layer = new MemoryPlus(LayerConfigs.memory(c), shared, "");
            }
            layer.initialize(rng);
            int n = 9, d = c.dModel, R = c.memHead * c.memKnn, rows = c.memKnum * c.memKnum;
            float[] x = new float[n * d], y = new float[n * d];
            rng.fillNormal(x, 1.0);
            layer.resetDiagnostics();
            layer.forward(x, y, n);
            Map<String, Double> m = layer.diagnostics();
            int[] idx = type.equals("pkm") ? ((Pkm) layer).lastIndices() : ((MemoryPlus) layer).lastIndices();
            int[] counts = new int[rows];
            for (int e = 0; e < n * R; e++) counts[idx[e]]++;
            double distinct = 0, kl = 0;
            for (int k : counts) if (k > 0) { distinct++; double p = (double) k / (n * R); kl += p * Math.log(p * rows); }
            assertEquals(distinct / rows, m.get("coverage"), 1e-12, type);
            assertEquals(kl, m.get("usage_kl"), 1e-9, type);
            double mean = 0, sq = 0;
            for (float v : y) mean += v;
            mean /= y.length;
            for (float v : y) sq += (v - mean) * (v - mean);
            assertEquals(Math.sqrt(sq / y.length), m.get("output_std"), 1e-6, type);
            assertTrue(m.containsKey("top1_score") && m.get("top1_score") >= m.get("topk_score"), type);

            layer.resetDiagnostics();
            layer.setTraining(false);
            layer.forward(x, y, n);
            assertEquals(0.0, layer.diagnostics().get("coverage"), type + ": an evaluation forward was recorded");
            layer.setTraining(true);
        }
    }

    /** Tables above MemoryStats.DENSE_ROWS count only the touched rows; the figures are those of a full count. */
    @Test
    void largeTablesCountTouchedRowsOnly() {
        long rows = MemoryStats.DENSE_ROWS + 12345;
        Rng rng = new Rng(3);
        int n = 50, R = 40, m = n * R;
        int[] z = new int[m];
        for (int e = 0; e < m; e++) z[e] = e % 7 == 0 ? (int) (rows - 1 - rng.nextInt(30)) : rng.nextInt(3000);
        ValueLookup lk = new ValueLookup(null, rows, rows, 0, 4, 1, false);
        lk.address(z, m);
        java.util.Map<Integer, Integer> ref = new java.util.HashMap<>();
        for (int v : z) ref.merge(v, 1, Integer::sum);
        double kl = 0;
        for (int k : ref.values()) { double p = (double) k / m; kl += p * Math.log(p * rows); }
        MemoryStats st = new MemoryStats(rows);
        for (int rep = 0; rep < 2; rep++) {
            st.reset();
            st.recordRows(lk);
            assertEquals((double) ref.size() / rows, st.coverage(), 1e-15);
            assertEquals(kl, st.usageKl(), 1e-9);
        }
    }
}
