package dev.ultramem.memory;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.layer.TokenLayerGradCheck;
import dev.ultramem.layer.TokenLayer;
import dev.ultramem.model.LayerConfigs;
import dev.ultramem.model.MemoryLayers;
import dev.ultramem.model.ModelConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.*;

/** Finite-difference gradient checks of Memory+ and PKM, and exact zeros for never-selected rows and keys. */
class ProductKeyLayersGradTest {

    static final int N = 12, D = 16;

    static ModelConfig config(String type, boolean keyNorm, int stage1) {
        ModelConfig cfg = new ModelConfig();
        cfg.dModel = D; cfg.nHeads = 2; cfg.nLayers = 2; cfg.memType = type;
        cfg.memKnum = 32; cfg.memKdim = 8; cfg.memVdim = D; cfg.memKnn = 4; cfg.memHead = 2;
        cfg.memStage1Knn = stage1; cfg.memKeyNorm = keyNorm;
        return cfg.validate();
    }

    static void perturbNorm(Param p, Rng rng) {
        for (int i = 0; i < p.numel(); i++) p.set(i, (float) (1 + 0.2 * rng.nextGaussian()));
    }

    /** Keys that scored a selected cell: [H][2][knum]. */
    static boolean[] usedKeys(int[] idx, int n, int heads, int knn, int knum) {
        boolean[] used = new boolean[heads * 2 * knum];
        for (int t = 0; t < n; t++)
            for (int h = 0; h < heads; h++)
                for (int k = 0; k < knn; k++) {
                    int z = idx[t * heads * knn + h * knn + k];
                    used[(2 * h) * knum + z / knum] = true;
                    used[(2 * h + 1) * knum + z % knum] = true;
                }
        return used;
    }

    static void assertUnselectedZero(TokenLayer layer, Param keys, Param values, int[] idx, ModelConfig cfg) {
        int knum = cfg.memKnum, kdim = cfg.memKdim, vdim = cfg.memVdim;
        boolean[] usedK = usedKeys(idx, N, cfg.memHead, cfg.memKnn, knum);
        int unusedKeys = 0;
        for (int r = 0; r < usedK.length; r++) {
            if (usedK[r]) continue;
            unusedKeys++;
            for (int i = 0; i < kdim; i++) assertEquals(0f, keys.grad()[r * kdim + i], 0f, "unselected key " + r);
        }
        boolean[] usedRow = new boolean[knum * knum];
        for (int i = 0; i < N * cfg.memHead * cfg.memKnn; i++) usedRow[idx[i]] = true;
        int unusedRows = 0;
        for (int r = 0; r < usedRow.length; r++) {
            if (usedRow[r]) continue;
            unusedRows++;
            for (int i = 0; i < vdim; i++)
                assertEquals(0f, values.gradSegment().getAtIndex(ValueLayout.JAVA_FLOAT, (long) r * vdim + i), 0f, "unselected value row " + r);
        }
        assertTrue(unusedKeys > 0 && unusedRows > 0, "test setup should leave some keys and rows unselected");
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void memoryPlusGradients(boolean keyNorm) {
        Rng rng = new Rng(keyNorm ? 11 : 12);
        ModelConfig cfg = config("memory_plus", keyNorm, 0);
        SharedMemory shared = SharedMemory.create(LayerConfigs.memory(cfg), 1, "full_memory_layer.");
        shared.initialize(LayerConfigs.memory(cfg), rng);
        MemoryPlus layer = (MemoryPlus) MemoryLayers.create(cfg, 0, 1, shared, "transformer.mem_blocks.0.");
        layer.initialize(rng);
        perturbNorm(layer.queryNorm, rng);
        perturbNorm(layer.keysNorm, rng);
        float[] x = TokenLayerGradCheck.randn(rng, N * D, 1);
        float[] g = TokenLayerGradCheck.randn(rng, N * D, 1);
        TokenLayerGradCheck gc = new TokenLayerGradCheck(layer, x, g, N, D, () -> layer.lastIndices().clone(), false);
        shared.values.zeroGrad();
        float[] dx = gc.analytic();
        int[] idx = layer.lastIndices().clone();
        assertUnselectedZero(layer, layer.keys, shared.values, idx, cfg);
        if (!keyNorm) for (float v : layer.keysNorm.grad()) assertEquals(0f, v, 0f);

        gc.checkInput(dx, 60, 1e-3, 1e-2, 1e-3, rng);
        for (Param p : layer.params()) {
            if (!keyNorm && p == layer.keysNorm) continue;
            gc.checkParam(p, 40, 1e-3, 1e-2, 1e-3, rng);
        }
        gc.checkParam(shared.values, 60, 1e-3, 1e-2, 1e-3, rng);
        System.out.printf("memory_plus keyNorm=%s: %d probes, %d skipped (selection changed), worst err/tol %.3f%n", keyNorm, gc.probes, gc.skipped, gc.worst);
        assertTrue(gc.skipped < gc.probes / 4, "too many probes changed the selection: " + gc.skipped);
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void pkmGradients(boolean keyNorm) {
        Rng rng = new Rng(keyNorm ? 21 : 22);
        ModelConfig cfg = config("pkm", keyNorm, 5);
        Pkm layer = (Pkm) MemoryLayers.create(cfg, 0, 1, SharedMemory.create(LayerConfigs.memory(cfg), 1, "transformer.full_memory_layer."), "transformer.mem_blocks.0.");
        layer.initialize(rng);
        float[] x = TokenLayerGradCheck.randn(rng, N * D, 1);
        float[] g = TokenLayerGradCheck.randn(rng, N * D, 1);
        TokenLayerGradCheck gc = new TokenLayerGradCheck(layer, x, g, N, D, () -> layer.lastIndices().clone(), false);
        float[] dx = gc.analytic();
        assertUnselectedZero(layer, layer.keys, layer.values, layer.lastIndices().clone(), cfg);
        gc.checkInput(dx, 60, 1e-3, 1e-2, 1e-3, rng);
        for (Param p : layer.params()) gc.checkParam(p, 60, 1e-3, 1e-2, 1e-3, rng);
        System.out.printf("pkm keyNorm=%s: %d probes, %d skipped (selection changed), worst err/tol %.3f%n", keyNorm, gc.probes, gc.skipped, gc.worst);
        assertTrue(gc.skipped < gc.probes / 4, "too many probes changed the selection: " + gc.skipped);
    }

    /** PKM output against a naive per-token evaluation written here (scores of all knum² cells, full sort). */
    @Test
    void pkmForwardMatchesNaive() {
        Rng rng = new Rng(5);
        ModelConfig cfg = config("pkm", false, 0);
        Pkm layer = new Pkm(LayerConfigs.memory(cfg), "");
        layer.initialize(rng);
        float[] x = TokenLayerGradCheck.randn(rng, N * D, 1);
        float[] y = new float[N * D];
        layer.forward(x, y, N);
        int H = cfg.memHead, knum = cfg.memKnum, kdim = cfg.memKdim, knn = cfg.memKnn;
        float[] W = layer.queryProj.data(), K = layer.keys.data();
        for (int t = 0; t < N; t++) {
            double[] out = new double[D];
            for (int h = 0; h < H; h++) {
                double[][] side = new double[2][knum];
                for (int s = 0; s < 2; s++)
                    for (int k = 0; k < knum; k++) {
                        double acc = 0;
                        for (int c = 0; c < kdim; c++) {
                            double q = 0;
                            for (int j = 0; j < D; j++) q += (double) W[((h * 2 + s) * kdim + c) * D + j] * x[t * D + j];
                            acc += q * K[((h * 2 + s) * knum + k) * kdim + c];
                        }
                        side[s][k] = acc;
                    }
                // with k1 = knn, the best knn cells of the full grid are the best knn cells of the top-k1 sub-grid
                Integer[] cells = new Integer[knum * knum];
                for (int i = 0; i < cells.length; i++) cells[i] = i;
                java.util.Arrays.sort(cells, (a, b) -> Double.compare(side[0][b / knum] + side[1][b % knum], side[0][a / knum] + side[1][a % knum]));
                double mx = side[0][cells[0] / knum] + side[1][cells[0] % knum], sum = 0;
                double[] w = new double[knn];
                for (int k = 0; k < knn; k++) { w[k] = Math.exp(side[0][cells[k] / knum] + side[1][cells[k] % knum] - mx); sum += w[k]; }
                for (int k = 0; k < knn; k++) {
                    assertEquals(cells[k], layer.lastIndices()[t * H * knn + h * knn + k], "selected cell");
                    for (int j = 0; j < D; j++) out[j] += w[k] / sum * layer.values.get((long) cells[k] * D + j);
                }
            }
            for (int j = 0; j < D; j++) assertEquals(out[j], y[t * D + j], 1e-5, "y[" + t + "," + j + "]");
        }
        assertEquals(cfg.memHead * cfg.memKnn * D + 2L * kdim * H * D + (long) H * 2 * knum * kdim, layer.activatedParamsPerToken());
    }

    /** Official Memory+ init (§4): Xavier-uniform query, keys U(±1/sqrt(2·kdim)), projections N(0, 1/vdim), norms 1. */
    @Test
    void memoryPlusOfficialInit() {
        ModelConfig cfg = config("memory_plus", false, 0);
        cfg.dModel = 64; cfg.memVdim = 64;
        MemoryPlus m = new MemoryPlus(LayerConfigs.memory(cfg), SharedMemory.create(LayerConfigs.memory(cfg), 1, ""), "");
        m.initialize(new Rng(8));
        double xav = Math.sqrt(6.0 / (64 + 2 * 8 * 2)), kb = 1 / Math.sqrt(16.0);
        double mq = 0, mk = 0, ss = 0;
        for (float v : m.queryProj.data()) mq = Math.max(mq, Math.abs(v));
        for (float v : m.keys.data()) mk = Math.max(mk, Math.abs(v));
        for (float v : m.valuesProj.data()) ss += (double) v * v;
        assertTrue(mq <= xav && mq > 0.9 * xav, "query_proj bound " + mq);
        assertTrue(mk <= kb && mk > 0.9 * kb, "keys bound " + mk);
        assertEquals(1 / Math.sqrt(64), Math.sqrt(ss / m.valuesProj.numel()), 0.05 / Math.sqrt(64));
        for (float v : m.queryNorm.data()) assertEquals(1f, v);
    }

    @Test
    void badShapesAreUserErrors() {
        ModelConfig cfg = config("pkm", false, 0);
        cfg.memKnum = 3; cfg.memKnn = 4; // the row/column top-4 cannot exceed 3 keys
        var e = assertThrows(dev.ultramem.core.UserError.class, () -> new Pkm(LayerConfigs.memory(cfg), ""));
        assertTrue(e.getMessage().contains("mem_knum"), e.getMessage());
        ModelConfig c2 = config("pkm", false, 2);
        c2.memKnn = 5; // more than the 2×2 grid
        assertThrows(dev.ultramem.core.UserError.class, () -> new Pkm(LayerConfigs.memory(c2), ""));
        ModelConfig c3 = config("memory_plus", false, 0);
        assertThrows(dev.ultramem.core.UserError.class, () -> new MemoryPlus(LayerConfigs.memory(c3), SharedMemory.create(LayerConfigs.memory(config("pkm", false, 0)), 1, ""), ""));
    }
}
