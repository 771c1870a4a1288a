package dev.ultramem.model;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.layer.TokenLayer;
import dev.ultramem.memory.MemoryStats;
import dev.ultramem.memory.UltraMemV1;
import dev.ultramem.memory.UltraMemV2;
import dev.ultramem.train.AdamW;
import dev.ultramem.train.LrSchedule;
import dev.ultramem.train.TrainConfig;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Tiny models with UltraMem v1 (skip placement) and UltraMemV2 (every block, paper init and query)
 * train end to end: the loss on a fixed batch falls, value rows and memory weights receive updates,
 * and the Tucker vectors follow the cores after every optimizer step.
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
        LrSchedule sched = new LrSchedule(tc);
        Rng rng = new Rng(5);
        int B = 2, T = 16, n = B * T;
        int[] in = new int[n], tg = new int[n];
        for (int i = 0; i < n; i++) { in[i] = rng.nextInt(c.vocabSize); tg[i] = rng.nextInt(c.vocabSize); }
        TokenLayer mem = m.memoryLayers().get(0);
        Param values = mem instanceof UltraMemV1 v1 ? v1.values : ((UltraMemV2) mem).shared.values;
        Param core = mem instanceof UltraMemV1 v1 ? v1.retrieval.tuckerCore[0] : ((UltraMemV2) mem).retrieval.tuckerCore[0];
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
        // u, v equal the leading singular vectors of the current cores (recomputed after the last step)
        var ret = mem instanceof UltraMemV1 v1 ? v1.retrieval : ((UltraMemV2) mem).retrieval;
        float[] u = ret.u.data().clone();
        ret.updateTucker();
        assertArrayEquals(u, ret.u.data(), 1e-6f);
        MemoryStats st = mem instanceof UltraMemV1 v1 ? v1.stats : ((UltraMemV2) mem).stats;
        assertTrue(st.coverage() > 0 && st.coverage() <= 1);
        assertTrue(st.outputStd() > 0);
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
