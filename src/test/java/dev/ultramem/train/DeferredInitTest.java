package dev.ultramem.train;

import dev.ultramem.TestModels;
import dev.ultramem.core.Param;
import dev.ultramem.infer.Generator;
import dev.ultramem.infer.Sampler;
import dev.ultramem.io.Safetensors;
import dev.ultramem.model.Model;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A model whose tables are made while the checkpoint is written ({@link Model#initializeTablesDeferred})
 * gives the checkpoint of the same model initialised in memory and saved, tensor for tensor, byte for
 * byte, with the same checksum, for every layer type with a table: shared tables (UltraMemV2 with its
 * pre-values, Memory+) and per-layer ones over two memory layers (PKM, UltraMem v1: the first table is
 * followed by other draws, so its replay starts from its recorded state).
 */
class DeferredInitTest {
    @TempDir Path dir;

    private static JobConfig job(String type) {
        JobConfig job = TestModels.tinyJob(1);
        job.model.dModel = 32;
        job.model.nLayers = 2;
        job.model.memType = type;
        job.model.memKnum = 6;
        job.model.memKdim = 8;
        job.model.memVdim = type.equals("memory_plus") || type.equals("pkm") ? 32 : 16;
        job.model.memPreVdim = 8;
        job.model.memKnn = 4;
        job.model.validate();
        return job;
    }

    @Test
    void deferredTablesGiveTheBytesOfTheInMemoryInitialisation() {
        for (String type : new String[]{"ultramem_v2", "memory_plus", "pkm", "ultramem_v1"}) {
            JobConfig job = job(type);
            Path inMemory = dir.resolve(type + "-memory.safetensors"), streamed = dir.resolve(type + "-streamed.safetensors");
            Model a = new Model(job.model);
            a.initialize(11);
            Checkpoint.saveWeightsOnly(inMemory, job, a);
            Model b = new Model(job.model);
            b.initializeTablesDeferred(11);
            int deferred = 0;
            for (Param p : b.params()) if (p.deferredInit() != null) deferred++;
            assertTrue(deferred > 0, type + ": no table was deferred");
            Checkpoint.saveWeightsOnly(streamed, job, b);

            try (Safetensors x = Safetensors.open(inMemory); Safetensors y = Safetensors.open(streamed)) {
                assertEquals(x.entries().keySet().stream().toList(), y.entries().keySet().stream().toList(), type);
                for (Safetensors.Entry e : x.entries().values()) {
                    Safetensors.Entry f = y.get(e.name());
                    assertArrayEquals(e.shape(), f.shape(), type + ": " + e.name());
                    assertEquals(-1L, e.data().mismatch(f.data()), type + ": tensor " + e.name() + " differs");
                }
                assertEquals(x.metadata(), y.metadata(), type + ": metadata (data_crc32 included)");
            }
            // loading verifies the checksum; the tables are then served from the file
            Model mapped = Checkpoint.load(streamed, false, true).model();
            for (Param p : mapped.params()) if (!p.isHeap()) assertTrue(p.isMapped(), type + ": " + p.name);
            int[] want = Generator.generate(a, new int[]{1, 2, 3}, 6, new Sampler(0, 0, 1, 5), t -> { });
            int[] got = Generator.generate(mapped, new int[]{1, 2, 3}, 6, new Sampler(0, 0, 1, 5), t -> { });
            assertArrayEquals(want, got, type + ": greedy generation from the streamed checkpoint");
        }
    }

    @Test
    void aDeferredTableHasNoMemoryToRead() {
        Model b = new Model(job("ultramem_v2").model);
        b.initializeTablesDeferred(3);
        Param table = b.sharedMemory().values;
        IllegalStateException e = assertThrows(IllegalStateException.class, table::segment);
        assertTrue(e.getMessage().contains("deferred"), e.getMessage());
    }
}
