package dev.ultramem.model;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.layer.TokenLayer;
import dev.ultramem.memory.MemoryStats;
import dev.ultramem.memory.UltraMemV1;
import dev.ultramem.memory.UltraMemV2;
import dev.ultramem.data.Corpus;
import dev.ultramem.train.AdamW;
import dev.ultramem.train.JobConfig;
import dev.ultramem.train.LrSchedule;
import dev.ultramem.train.TrainConfig;
import dev.ultramem.train.Trainer;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Tiny models with UltraMem v1 (skip placement) and UltraMemV2 (every block, paper init and query)
 * train end to end: the loss on a fixed batch falls, value rows and memory weights receive updates;
 * and the trainer keeps the Tucker vectors u, v equal to the leading singular vectors of the updated
 * cores after every step (checked against an SVD computed in the test).
 */
class UltraMemModelTrainingTest {

    static ModelConfig tiny(String memType) {
        ModelConfig c = new ModelConfig();
        c.vocabSize = 32; c.dModel = 32; c.nHeads = 2; c.nLayers = 2; c.mlpHiddenSize = 64; c.maxSeqLen = 16;
        c.memType = memType;
        c.memKnum = 6; c.memKdim = 8; c.memVdim = 16; c.memPreVdim = 8; c.memKnn = 4; c.memHead = 1;
        c.memShareRatio = 0.5;
        return c;
    }

    static void trains(ModelConfig c) {
        Model m = new Model(c);
        m.initialize(3);
        TrainConfig tc = new TrainConfig();
        tc.steps = 30; tc.lr = 1e-2; tc.warmupSteps = 4; tc.weightDecay = 0.0;
        AdamW opt = new AdamW(m.params(), tc);
        LrSchedule sched = new LrSchedule(tc, c.memType);
        Rng rng = new Rng(5);
        int B = 2, T = 16, n = B * T;
        int[] in = new int[n], tg = new int[n];
        for (int i = 0; i < n; i++) { in[i] = rng.nextInt(c.vocabSize); tg[i] = rng.nextInt(c.vocabSize); }
        TokenLayer mem = m.memoryLayers().get(0);
        Param values = tensor(m, c.memType.equals("ultramem_v1") ? "transformer.mem_blocks.0.values_for_look_up"
                : "transformer.full_memory_layer.values_for_look_up");
        Param core = tensor(m, "transformer.mem_blocks.0.tucker_core.0");
        float[] values0 = new float[(int) values.numel()];
        for (int i = 0; i < values0.length; i++) values0[i] = values.get(i);
        float[] core0 = core.data().clone();
        float first = 0, last = 0;
        for (int s = 0; s < tc.steps; s++) {
            opt.zeroGrad();
            float loss = m.forwardBackward(in, tg, B, T);
            assertTrue(Float.isFinite(loss));
            if (s == 0) first = loss;
            last = loss;
            opt.step(sched);
            m.afterWeightsChanged();
        }
        assertTrue(last < 0.7 * first, c.memType + ": loss " + first + " -> " + last);
        int changed = 0;
        for (int i = 0; i < values0.length; i++) if (values.get(i) != values0[i]) changed++;
        assertTrue(changed > 0, "value rows were updated");
        assertFalse(java.util.Arrays.equals(core0, core.data()), "Tucker core was updated");
        MemoryStats st = mem instanceof UltraMemV1 v1 ? v1.stats : ((UltraMemV2) mem).stats;
        assertTrue(st.coverage() > 0 && st.coverage() <= 1);
        assertTrue(st.outputStd() > 0);
    }

    static Param tensor(Model m, String name) {
        for (Param p : m.params()) if (p.name.equals(name)) return p;
        throw new AssertionError("no tensor " + name);
    }

    /**
     * Leading singular pair of the r×r matrix a (row-major), computed here in double by power
     * iteration on aᵀa: {u, v} with a·v = σ·u, |u| = |v| = 1.
     */
    static double[][] leadingSingularPair(double[] a, int r) {
        double[] v = new double[r];
        java.util.Arrays.fill(v, 1 / Math.sqrt(r));
        for (int it = 0; it < 2000; it++) {
            double[] av = new double[r], w = new double[r];
            for (int i = 0; i < r; i++) for (int j = 0; j < r; j++) av[i] += a[i * r + j] * v[j];
            for (int j = 0; j < r; j++) for (int i = 0; i < r; i++) w[j] += a[i * r + j] * av[i];
            double nw = 0;
            for (double x : w) nw += x * x;
            nw = Math.sqrt(nw);
            for (int j = 0; j < r; j++) v[j] = w[j] / nw;
        }
        double[] u = new double[r];
        for (int i = 0; i < r; i++) for (int j = 0; j < r; j++) u[i] += a[i * r + j] * v[j];
        double nu = 0;
        for (double x : u) nu += x * x;
        nu = Math.sqrt(nu);
        for (int i = 0; i < r; i++) u[i] /= nu;
        return new double[][]{u, v};
    }

    /** max over heads of the distance between (u, v) and the leading singular pair of Σ_c core_c[h], up to a common sign. */
    static double tuckerVectorError(Model m, ModelConfig c, float[] u, float[] v) {
        int r = c.memTuckerRank, H = c.memHead;
        double worst = 0;
        for (int h = 0; h < H; h++) {
            double[] sum = new double[r * r];
            for (int core = 0; core < c.memTuckerCores; core++) {
                float[] cd = tensor(m, "transformer.mem_blocks.0.tucker_core." + core).data();
                for (int i = 0; i < r * r; i++) sum[i] += cd[h * r * r + i];
            }
            double[][] uv = leadingSingularPair(sum, r);
            double dot = 0;
            for (int i = 0; i < r; i++) dot += uv[0][i] * u[h * r + i];
            double sgn = dot >= 0 ? 1 : -1;
            for (int i = 0; i < r; i++) {
                worst = Math.max(worst, Math.abs(u[h * r + i] - sgn * uv[0][i]));
                worst = Math.max(worst, Math.abs(v[h * r + i] - sgn * uv[1][i]));
            }
        }
        return worst;
    }

    /**
     * The trainer (not the test) refreshes u, v after each optimizer step: after each trainer step the
     * buffers are the leading singular vectors of the updated summed cores, computed here independently,
     * while the vectors from before the step are measurably stale (so the check would fail without the refresh).
     */
    static void trainerRefreshesTuckerVectors(ModelConfig c) {
        c.vocabSize = 256; // the trainer feeds byte tokens
        TrainConfig tc = dev.ultramem.TestModels.tinyTrain(6);
        tc.lr = 0.05; tc.warmupSteps = 0; tc.seqLen = 16; tc.batchSize = 2;
        JobConfig job = new JobConfig(c, tc);
        Trainer trainer = Trainer.fresh(job, Corpus.builtin(5, 20_000, tc.valFraction), null);
        Param u = tensor(trainer.model, "transformer.mem_blocks.0.tucker_core_u");
        Param v = tensor(trainer.model, "transformer.mem_blocks.0.tucker_core_v");
        for (int step = 0; step < 3; step++) {
            float[] u0 = u.data().clone(), v0 = v.data().clone();
            trainer.trainStep();
            double stale = tuckerVectorError(trainer.model, c, u0, v0);
            double now = tuckerVectorError(trainer.model, c, u.data(), v.data());
            assertTrue(stale > 1e-3, c.memType + " step " + step + ": the step must move the singular vectors (" + stale + ")");
            assertTrue(now < 1e-5, c.memType + " step " + step + ": u, v differ from the SVD of the updated cores by " + now);
        }
    }

    @Test
    void trainerRefreshesTuckerVectorsV1() {
        ModelConfig c = tiny("ultramem_v1");
        c.memInsertWay = "0:1";
        c.memHead = 2; c.memTuckerRank = 3;
        trainerRefreshesTuckerVectors(c);
    }

    @Test
    void trainerRefreshesTuckerVectorsV2() {
        trainerRefreshesTuckerVectors(tiny("ultramem_v2"));
    }

    @Test
    void ultraMemV1SkipLayerTrains() {
        ModelConfig c = tiny("ultramem_v1");
        c.memInsertWay = "0:1";
        c.memTuckerPenalty = 0.001;
        trains(c);
    }

    @Test
    void ultraMemV2PaperTrains() {
        ModelConfig c = tiny("ultramem_v2");
        c.memInit = "paper";
        c.memQueryMode = "paper";
        trains(c);
    }

    @Test
    void ultraMemV2ReleasedTrains() {
        ModelConfig c = tiny("ultramem_v2");
        c.memKeyExpandTime = 2;
        trains(c);
    }
}
