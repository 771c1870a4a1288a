package dev.ultramem.train;

import dev.ultramem.TestModels;
import dev.ultramem.core.Param;
import dev.ultramem.data.Corpus;
import dev.ultramem.model.Model;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** Inference with value tables served from the memory-mapped checkpoint instead of the heap or RAM copies. */
class MappedTablesTest {
    @TempDir Path dir;

    @Test
    void mappedTablesGiveTheSameLogitsAsCopiedOnes() {
        for (String type : new String[]{"ultramem_v2", "ultramem_v1", "memory_plus"}) {
            JobConfig job = TestModels.tinyJob(4);
            job.model.dModel = 32;
            job.model.memType = type;
            job.model.memKnum = 6;
            job.model.memKdim = 8;
            job.model.memVdim = type.equals("memory_plus") ? 32 : 16;
            job.model.memPreVdim = 8;
            job.model.memKnn = 4;
            job.model.validate();
            Path run = dir.resolve(type);
            Trainer trainer = Trainer.fresh(job, Corpus.builtin(3, 4000, job.train.valFraction), run);
            for (int i = 0; i < 2; i++) trainer.trainStep();
            trainer.save();

            Model copied = Checkpoint.load(run, false, false).model();
            Model mapped = Checkpoint.load(run, false, true).model();
            int tables = 0;
            for (Param p : mapped.params()) {
                if (p.isHeap()) continue;
                assertTrue(p.isMapped(), type + ": " + p.name + " should be served from the file");
                assertTrue(p.segment().isMapped(), type + ": " + p.name + " segment is not a file mapping");
                tables++;
            }
            assertTrue(tables > 0, type + ": no off-heap table in the model");
            int B = 2, T = 8;
            int[] ids = new int[B * T];
            for (int i = 0; i < ids.length; i++) ids[i] = (i * 37 + 5) % 256;
            float[] a = copied.logits(ids, B, T).clone();
            float[] b = mapped.logits(ids, B, T);
            for (int i = 0; i < B * T * 256; i++) assertEquals(a[i], b[i], 0f, type + " logit " + i);
        }
    }
}
