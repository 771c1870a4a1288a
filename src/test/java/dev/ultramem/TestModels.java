package dev.ultramem;

import dev.ultramem.model.ModelConfig;
import dev.ultramem.train.JobConfig;
import dev.ultramem.train.TrainConfig;

/** Tiny configurations that train in milliseconds. */
public final class TestModels {
    private TestModels() {}

    public static ModelConfig tinyModel() {
        ModelConfig m = new ModelConfig();
        m.vocabSize = 256;
        m.dModel = 16;
        m.nLayers = 1;
        m.nHeads = 2;
        m.mlpHiddenSize = 32;
        m.maxSeqLen = 16;
        return m.validate();
    }

    /** {@link #tinyModel()} with an UltraMemV2 layer (index buffers, off-heap tables, derived Tucker u, v). */
    public static ModelConfig tinyUltraMemV2() {
        ModelConfig m = tinyModel();
        m.dModel = 32;
        m.memType = "ultramem_v2";
        m.memKnum = 6;
        m.memKdim = 8;
        m.memVdim = 16;
        m.memPreVdim = 8;
        m.memKnn = 4;
        return m.validate();
    }

    public static TrainConfig tinyTrain(int steps) {
        TrainConfig t = new TrainConfig();
        t.steps = steps;
        t.batchSize = 2;
        t.seqLen = 16;
        t.lr = 1e-2;
        t.warmupSteps = 2;
        t.evalEvery = 3;
        t.evalBatches = 2;
        t.checkpointEvery = 2;
        t.logEvery = 1;
        t.valFraction = 0.1;
        return t.validate();
    }

    public static JobConfig tinyJob(int steps) { return new JobConfig(tinyModel(), tinyTrain(steps)); }
}
