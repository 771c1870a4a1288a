package dev.ultramem.train;

import dev.ultramem.TestModels;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

/** Resume exactness with memory layers and MoE, which keep derived state (Tucker vectors, shuffle indices, routers). */
class ResumeSparseLayersTest {
    @TempDir Path dir;

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"ultramem_v2", "ultramem_v1", "pkm", "memory_plus", "moe"})
    void resumeIsExactForSparseLayers(String type) {
        JobConfig job = TestModels.tinyJob(4);
        job.train.evalEvery = 2;
        job.model.dModel = 32;
        if (type.equals("moe")) {
            job.model.ffnType = "moe";
            job.model.moeNumExperts = 4;
            job.model.moeTopK = 2;
            job.model.moeExpertHidden = 16;
        } else {
            job.model.memType = type;
            job.model.memKnum = 6;
            job.model.memKdim = 8;
            job.model.memVdim = type.equals("memory_plus") || type.equals("pkm") ? 32 : 16;
            job.model.memPreVdim = type.equals("ultramem_v2") ? 8 : 0;
            job.model.memKnn = 4;
        }
        job.model.validate();
        TrainerTest.assertResumeExact(dir, type, job, 4);
    }

}
