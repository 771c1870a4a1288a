package dev.ultramem.memory;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.core.UserError;
import dev.ultramem.layer.TokenLayer;
import dev.ultramem.model.LayerConfigs;
import dev.ultramem.model.MemoryLayers;
import dev.ultramem.model.ModelConfig;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/** SVD, sign smoothing, aux-loss values, dropout, paper init, diagnostics, costs and config errors. */
class UltraMemBehaviourTest {

    @Test
    void svdReconstructsAndIsOrthonormal() {
        Rng rng = new Rng(3);
        for (int r = 1; r <= 5; r++)
            for (int rep = 0; rep < 20; rep++) {
                double[] a = new double[r * r];
                for (int i = 0; i < a.length; i++) a[i] = rng.nextGaussian();
                if (rep == 1 && r > 1) for (int j = 0; j < r; j++) a[(r - 1) * r + j] = a[j]; // rank deficient
                TuckerSvd s = TuckerSvd.of(a, r);
                for (int i = 0; i + 1 < r; i++) assertTrue(s.s[i] >= s.s[i + 1]);
                for (int i = 0; i < r; i++)
                    for (int j = 0; j < r; j++) {
                        double m = 0, uu = 0, vv = 0;
                        for (int k = 0; k < r; k++) {
                            m += s.u[i * r + k] * s.s[k] * s.v[j * r + k];
                            vv += s.v[k * r + i] * s.v[k * r + j];
                            if (s.s[i] > 1e-9 && s.s[j] > 1e-9) uu += s.u[k * r + i] * s.u[k * r + j];
                            else uu = i == j ? 1 : 0;
                        }
                        assertEquals(a[i * r + j], m, 1e-10);
                        assertEquals(i == j ? 1 : 0, vv, 1e-10);
                        assertEquals(i == j ? 1 : 0, uu, 1e-10);
                    }
            }
        // closed form for 2×2: σ1² + σ2² = ‖A‖_F², σ1·σ2 = |det A|
        double[] a = {0.7, 1.3, 0.2, 0.9};
        TuckerSvd s = TuckerSvd.of(a, 2);
        assertEquals(0.49 + 1.69 + 0.04 + 0.81, s.s[0] * s.s[0] + s.s[1] * s.s[1], 1e-12);
        assertEquals(Math.abs(0.7 * 0.9 - 1.3 * 0.2), s.s[0] * s.s[1], 1e-12);
    }

    static ModelConfig small(String type) {
        ModelConfig c = UltraMemGradientTest.base(type);
        return c;
    }

    @Test
    void signSmoothingKeepsPreviousOrientation() {
        UltraMemGradientTest.Built b = UltraMemGradientTest.build(small("ultramem_v1"), 11);
        TuckerRetrieval r = b.ret();
        float[] u0 = r.u.data().clone(), v0 = r.v.data().clone();
        r.updateTucker();
        assertArrayEquals(u0, r.u.data(), 1e-7f, "repeated update must not flip");
        // previous vectors of the other sign: the update follows them
        for (int i = 0; i < u0.length; i++) { r.u.data()[i] = -u0[i]; r.v.data()[i] = -v0[i]; }
        r.updateTucker();
        for (int i = 0; i < u0.length; i++) { assertEquals(-u0[i], r.u.data()[i], 1e-6); assertEquals(-v0[i], r.v.data()[i], 1e-6); }
        // u, v are leading singular vectors: Csum·v = σ1·u
        double[] m = r.coreSum(0);
        int k = r.rank;
        for (int i = 0; i < k; i++) {
            double s = 0;
            for (int j = 0; j < k; j++) s += m[i * k + j] * r.v.data()[j];
            assertEquals(r.singular[0] * r.u.data()[i], s, 1e-5);
        }
    }

    @Test
    void tuckerPenaltyValueMatchesClosedForm() {
        ModelConfig c = small("ultramem_v1");
        UltraMemGradientTest.Built b = UltraMemGradientTest.build(c, 12);
        TuckerRetrieval r = b.ret();
        r.setAuxLosses(0.001, 0.15, 0);
        double[] m = r.coreSum(0);
        double fro = 0;
        for (double x : m) fro += x * x;
        double det = Math.abs(m[0] * m[3] - m[1] * m[2]);
        double disc = Math.sqrt(Math.max(0, fro * fro - 4 * det * det));
        double s2 = Math.sqrt((fro - disc) / 2);
        double expect = Math.pow(Math.max(0, s2 - 0.15), 2);
        assertEquals(expect, r.tuckerPenaltyValue(), 1e-9);
    }

    @Test
    void balanceLossValueMatchesNaive() {
        ModelConfig c = small("ultramem_v2");
        c.memHead = 2; c.memStage1Knn = 4; c.memKeyBalanceCoef = 1;
        UltraMemGradientTest.Built b = UltraMemGradientTest.build(c, 13);
        TuckerRetrieval r = b.ret();
        int n = 9, d = c.dModel;
        float[] x = new float[n * d], y = new float[n * d];
        new Rng(5).fillNormal(x, 1);
        b.layer().forward(x, y, n);
        double loss = 0;
        for (int side = 0; side < 2; side++) {
            double[] p = new double[r.keyNum], f = new double[r.keyNum];
            for (int t = 0; t < n; t++)
                for (int h = 0; h < r.heads; h++) {
                    double[] a = new double[r.keyNum];
                    for (int k = 0; k < r.keyNum; k++)
                        for (int q = 0; q < r.rank; q++)
                            a[k] += r.score(side, t, h, k, q) * (side == 0 ? r.u : r.v).data()[h * r.rank + q];
                    double mx = Arrays.stream(a).max().orElseThrow(), z = 0;
                    for (double v : a) z += Math.exp(v - mx);
                    for (int k = 0; k < r.keyNum; k++) p[k] += Math.exp(a[k] - mx) / z / (n * r.heads);
                    // naive top-k1 by sorting
                    Integer[] idx = new Integer[r.keyNum];
                    for (int k = 0; k < r.keyNum; k++) idx[k] = k;
                    Arrays.sort(idx, (i, j) -> a[i] != a[j] ? Double.compare(a[j], a[i]) : Integer.compare(i, j));
                    for (int i = 0; i < r.knn1; i++) f[idx[i]] += 1.0 / (n * r.heads * r.knn1);
                }
            double s = 0;
            for (int k = 0; k < r.keyNum; k++) s += p[k] * f[k];
            loss += r.keyNum * s;
        }
        assertEquals(loss, b.layer().auxLoss(), 1e-5 * loss);
    }

    @Test
    void dropoutMasksOutputAndGradient() {
        ModelConfig c = small("ultramem_v2");
        c.memOutputDropout = 0.5;
        UltraMemGradientTest.Built b = UltraMemGradientTest.build(c, 14);
        TokenLayer l = b.layer();
        int n = 8, d = c.dModel;
        Rng rng = new Rng(9);
        float[] x = new float[n * d], g = new float[n * d], y0 = new float[n * d], y1 = new float[n * d];
        rng.fillNormal(x, 1);
        rng.fillNormal(g, 1);
        l.setTraining(false);
        l.forward(x, y0, n);
        for (Param p : b.params()) p.zeroGrad();
        l.setTraining(true);
        l.forward(x, y1, n);
        float[] dx1 = new float[n * d];
        l.backward(x, g, dx1, n);
        float[] gq = b.ret().queryProj.grad().clone();
        int zeros = 0;
        float[] gm = new float[n * d];
        for (int i = 0; i < n * d; i++) {
            if (y1[i] == 0 && y0[i] != 0) zeros++;
            else assertEquals(2 * y0[i], y1[i], 1e-5 * Math.abs(y0[i]) + 1e-7, "kept outputs are scaled by 1/(1-p)");
            gm[i] = y1[i] == 0 ? 0 : 2 * g[i];
        }
        assertTrue(zeros > n * d / 4 && zeros < 3 * n * d / 4, "about half dropped, got " + zeros);
        // eval-mode backward with the masked upstream gradient gives the same gradients
        l.setTraining(false);
        for (Param p : b.params()) p.zeroGrad();
        l.forward(x, y0, n);
        float[] dx0 = new float[n * d];
        l.backward(x, gm, dx0, n);
        for (int i = 0; i < n * d; i++) assertEquals(dx0[i], dx1[i], 1e-5 * (Math.abs(dx0[i]) + 1e-3));
        float[] gq0 = b.ret().queryProj.grad();
        for (int i = 0; i < gq.length; i++) assertEquals(gq0[i], gq[i], 1e-5 * (Math.abs(gq0[i]) + 1e-3));
    }

    @Test
    void paperInitCalibratesMeanTopKScoreToOne() {
        for (String type : new String[]{"ultramem_v1", "ultramem_v2"}) {
            ModelConfig c = small(type);
            c.dModel = 32; c.memKnum = 12; c.memKdim = 16; c.memKnn = 8; c.memVdim = 16; c.memPreVdim = 8;
            c.memInit = "paper"; c.memQueryMode = "paper";
            c.validate();
            Rng rng = new Rng(21);
            TokenLayer l;
            TuckerRetrieval r;
            MemoryStats st;
            if (type.equals("ultramem_v1")) {
                UltraMemV1 v = new UltraMemV1(LayerConfigs.memory(c), 2, "");
                v.initialize(rng);
                l = v; r = v.retrieval; st = v.stats;
                // value std from the no-pre-value formula, measured on the table
                double s2 = 0;
                for (long i = 0; i < v.values.numel(); i++) s2 += v.values.get(i) * v.values.get(i);
                double std = Math.sqrt(s2 / v.values.numel());
                double kInner = (c.mlpHiddenSize / 2.0) / c.dModel;
                double expectLow = Math.sqrt(0.08 * kInner * c.dModel / (c.memKnn * c.memHead * 2.0 * c.memVdim * 2));
                double expectHigh = Math.sqrt(0.08 * kInner * c.dModel / (c.memKnn * c.memHead * 1.0 * c.memVdim * 2));
                assertTrue(std > 0.9 * expectLow && std < 1.1 * expectHigh, "value std " + std);
            } else {
                SharedMemory sh = SharedMemory.create(LayerConfigs.memory(c), 2, "");
                sh.initialize(LayerConfigs.memory(c), rng);
                UltraMemV2 v = new UltraMemV2(LayerConfigs.memory(c), 0, 2, sh, "");
                v.initialize(rng);
                l = v; r = v.retrieval; st = v.stats;
            }
            double lin = 0;
            float[] q = r.queryProj.data();
            for (float f : q) lin += f * f;
            assertEquals(Math.sqrt(2.0 / (5 * c.dModel)), Math.sqrt(lin / q.length), 0.1 * Math.sqrt(2.0 / (5 * c.dModel)));
            int n = 512;
            float[] x = new float[n * c.dModel], y = new float[n * c.dModel];
            new Rng(77).fillNormal(x, 1);
            st.reset();
            l.forward(x, y, n);
            assertEquals(1.0, st.meanTopKScore(), 0.15, type + " mean top-k score on fresh unit-variance input");
        }
    }

    @Test
    void statsAndCostsMatchNaiveCounts() {
        ModelConfig c = small("ultramem_v2");
        c.memHead = 2;
        UltraMemGradientTest.Built b = UltraMemGradientTest.build(c, 15);
        UltraMemV2 l = (UltraMemV2) b.layer();
        l.stats.reset();
        int n = 7, d = c.dModel;
        float[] x = new float[n * d], y = new float[n * d];
        new Rng(3).fillNormal(x, 1);
        l.forward(x, y, n);
        int m = n * l.heads * l.knn;
        Set<Integer> rows = new HashSet<>();
        long[] cnt = new long[(int) l.valueNum];
        for (int e = 0; e < m; e++) {
            int z = l.shuffleIndex.data()[l.retrieval.bestIndices[e]];
            int p = (int) (((z % l.valueNum) + l.offset) % l.allValueNum);
            assertEquals(p, l.lookup.row[e]);
            rows.add(p);
            cnt[(int) (z % l.valueNum)]++;
        }
        assertEquals((double) rows.size() / l.valueNum, l.stats.coverage(), 1e-12);
        double kl = 0;
        for (long k : cnt) if (k > 0) kl += (double) k / m * Math.log((double) k / m * l.valueNum);
        assertEquals(kl, l.stats.usageKl(), 1e-9);
        double s = 0, s2 = 0;
        for (float v : y) { s += v; s2 += (double) v * v; }
        assertEquals(Math.sqrt(s2 / y.length - Math.pow(s / y.length, 2)), l.stats.outputStd(), 1e-6);
        double top1 = 0;
        for (int t = 0; t < n; t++) for (int h = 0; h < l.heads; h++) top1 += l.retrieval.sumScores[(t * l.heads + h) * l.knn];
        assertEquals(top1 / (n * l.heads), l.stats.meanTop1Score(), 1e-6);
        assertEquals(l.heads * l.retrieval.rank, l.stats.tuckerSingularValues().length);

        long dense = 0;
        for (Param p : l.params()) if (p.trainable) dense += p.numel();
        assertEquals(dense + (long) l.knn * l.heads * (c.memVdim + c.memPreVdim), l.activatedParamsPerToken());
        assertEquals(4L * (dense + (long) rows.size() * (c.memVdim + c.memPreVdim)), l.lastForwardParamBytes());
        assertTrue(l.forwardMacsPerToken() > (long) d * c.memVdim);
    }

    @Test
    void ringWindowWrapsForTheLastLayer() {
        ModelConfig c = small("ultramem_v2");
        c.memShareRatio = 1.0; // window = whole table: the last layer's window wraps past the end
        c.validate();
        SharedMemory sh = SharedMemory.create(LayerConfigs.memory(c), 3, "");
        UltraMemV2 l = new UltraMemV2(LayerConfigs.memory(c), 2, 3, sh, "");
        l.initialize(new Rng(1));
        assertEquals(75, l.allValueNum);
        assertEquals(64, l.valueNum); // floor(sqrt(75))² = 8²
        assertEquals(50, l.offset);
        int n = 20;
        float[] x = new float[n * c.dModel], y = new float[n * c.dModel];
        new Rng(2).fillNormal(x, 1);
        l.forward(x, y, n);
        boolean wrapped = false;
        for (int e = 0; e < n * l.knn; e++) {
            long z = l.lookup.shuffled[e] % l.valueNum;
            assertEquals((z + 50) % 75, l.lookup.row[e]);
            wrapped |= z + 50 >= 75;
        }
        assertTrue(wrapped, "some selected rows must wrap around the table end");
    }

    @Test
    void resultsDoNotDependOnTheThreadCount() {
        int saved = dev.ultramem.core.Parallel.threads();
        try {
            float[][] ref = null;
            for (int threads : new int[]{1, 2, 3}) {
                dev.ultramem.core.Parallel.setThreads(threads);
                ModelConfig c = small("ultramem_v2");
                c.memHead = 2; c.memKeyExpandTime = 2; c.memQueryMode = "paper";
                UltraMemGradientTest.Built b = UltraMemGradientTest.build(c, 31);
                int n = 40, d = c.dModel;
                Rng rng = new Rng(8);
                float[] x = new float[n * d], g = new float[n * d], y = new float[n * d], dx = new float[n * d];
                rng.fillNormal(x, 1);
                rng.fillNormal(g, 1);
                b.layer().forward(x, y, n);
                b.layer().backward(x, g, dx, n);
                float[][] got = new float[b.params().size() + 2][];
                got[0] = y; got[1] = dx;
                for (int i = 0; i < b.params().size(); i++) got[i + 2] = GoldenFiles.gradOf(b.params().get(i));
                if (ref == null) ref = got;
                else for (int i = 0; i < got.length; i++) assertArrayEquals(ref[i], got[i], "tensor " + i + " with " + threads + " threads");
            }
        } finally {
            dev.ultramem.core.Parallel.setThreads(saved);
        }
    }

    /** Changes keys and the keys' norm weight as an optimizer step would (the same change on every call). */
    private static void perturbKeys(UltraMemGradientTest.Built b) {
        Param keys = b.ret().keys, kn = b.ret().keysNorm;
        Rng rng = new Rng(6);
        for (int i = 0; i < keys.numel(); i++) keys.set(i, keys.get(i) + (float) (0.3 * rng.nextGaussian()));
        kn.set(0, kn.get(0) * 1.5f);
    }

    @Test
    void evalModeKeyCacheFollowsWeightChanges() {
        // 5 tokens take the one-row product path; 12 the packed path, which reads the cached keys' frozen packed copy
        for (int n : new int[]{5, 12})
        for (String type : new String[]{"ultramem_v1", "ultramem_v2"}) {
            UltraMemGradientTest.Built b = UltraMemGradientTest.build(small(type), 41);
            TokenLayer l = b.layer();
            int d = 16;
            float[] x = new float[n * d], yTrain = new float[n * d], yEval = new float[n * d];
            new Rng(4).fillNormal(x, 1);
            l.setTraining(false);
            l.forward(x, yEval, n);
            l.setTraining(true);
            l.forward(x, yTrain, n);
            assertArrayEquals(yTrain, yEval, type + " n " + n);
            // change keys and norm weight as an optimizer step would, then refresh
            l.setTraining(false);
            l.forward(x, yEval, n);
            perturbKeys(b);
            l.afterWeightsChanged();
            l.forward(x, yEval, n);
            l.setTraining(true);
            l.forward(x, yTrain, n);
            assertArrayEquals(yTrain, yEval, type + " n " + n + " after a weight change");
            // and both equal a layer built with the changed keys from the start (no cache, no frozen copy)
            UltraMemGradientTest.Built fresh = UltraMemGradientTest.build(small(type), 41);
            perturbKeys(fresh);
            fresh.layer().afterWeightsChanged();
            float[] yFresh = new float[n * d];
            fresh.layer().forward(x, yFresh, n);
            assertArrayEquals(yFresh, yEval, type + " n " + n + " against a fresh layer");
        }
    }

    @Test
    void configErrorsAreUserErrors() {
        ModelConfig c = small("ultramem_v2");
        c.memHead = 5; // released: at most 2·r heads
        SharedMemory sh = SharedMemory.create(LayerConfigs.memory(c), 2, "");
        assertThrows(UserError.class, () -> new UltraMemV2(LayerConfigs.memory(c), 0, 2, sh, ""));
        ModelConfig c2 = small("ultramem_v1");
        c2.memKnn = 11; // knn > stage-1 keys (2·knum = 10)
        assertThrows(UserError.class, () -> new UltraMemV1(LayerConfigs.memory(c2), 1, ""));
        ModelConfig c3 = small("ultramem_v2");
        assertThrows(UserError.class, () -> new UltraMemV2(LayerConfigs.memory(c3), 0, 2, SharedMemory.create(LayerConfigs.memory(c3), 3, ""), ""));
        assertTrue(MemoryLayers.create(small("ultramem_v1"), 0, 1, null, "") instanceof UltraMemV1);
        ModelConfig c4 = small("ultramem_v2");
        assertTrue(MemoryLayers.create(c4, 1, 2, SharedMemory.create(LayerConfigs.memory(c4), 2, ""), "") instanceof UltraMemV2);
    }
}
