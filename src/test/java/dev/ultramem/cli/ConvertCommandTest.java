package dev.ultramem.cli;

import dev.ultramem.core.Param;
import dev.ultramem.io.Safetensors;
import dev.ultramem.kernel.MemoryKernelsTest;
import dev.ultramem.model.Model;
import dev.ultramem.train.Checkpoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static dev.ultramem.cli.MainTest.assertUserError;
import static dev.ultramem.cli.MainTest.run;
import static org.junit.jupiter.api.Assertions.*;

/** {@code convert}: tables to bf16 and back, a servable weights-only run, the source left as it was. */
class ConvertCommandTest {
    @TempDir Path dir;

    @Test
    void convertsTablesToBf16AndBackAndRefusesWhatWouldLoseData() throws Exception {
        Path src = dir.resolve("src"), half = dir.resolve("half"), back = dir.resolve("back");
        assertEquals(0, run("init", "--preset", "family-ultramem-v2", "--set", "model.mem_knum=16", "--set", "model.n_layers=2",
                "--set", "model.mem_knn=8", "--set", "model.mem_stage1_knn=8", "--seed", "4", "--out", src.toString()).code());
        byte[] before = Files.readAllBytes(src.resolve(Checkpoint.LATEST));

        MainTest.Result r = run("convert", src.toString(), "--dtype", "bf16", "--out", half.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("bf16"), r.out());
        assertArrayEquals(before, Files.readAllBytes(src.resolve(Checkpoint.LATEST)), "the source is untouched");
        assertTrue(Files.size(half.resolve(Checkpoint.LATEST)) < Files.size(src.resolve(Checkpoint.LATEST)));
        try (Safetensors st = Safetensors.open(half.resolve(Checkpoint.LATEST))) {
            assertEquals("BF16", st.get("transformer.full_memory_layer.values_for_look_up").dtype());
        }
        Model f = Checkpoint.load(src, false, false).model(), h = Checkpoint.load(half, false, true).model();
        for (int i = 0; i < f.params().size(); i++) {
            Param a = f.params().get(i), b = h.params().get(i);
            assertEquals(!a.isHeap(), b.isBf16(), b.name);
            for (long j = 0; j < a.numel(); j++) {
                float want = a.isHeap() ? a.get(j) : MemoryKernelsTest.nearestBf16(a.get(j));
                if (want != b.get(j)) fail(b.name + "[" + j + "]: " + b.get(j) + ", want " + want);
            }
        }
        assertEquals(0, run("generate", half.toString(), "--prompt", "ab", "--max-tokens", "4").code());
        assertEquals(0, run("eval", half.toString(), "--builtin", "--max-batches", "2").code());
        assertUserError(run("resume", half.toString()), "weights only");

        // back to float32: exactly the bf16 values, as float32 tensors
        assertEquals(0, run("convert", half.toString(), "--dtype", "f32", "--out", back.toString()).code());
        Model b32 = Checkpoint.load(back, false, false).model();
        for (int i = 0; i < b32.params().size(); i++) {
            Param a = b32.params().get(i), b = h.params().get(i);
            assertFalse(a.isBf16());
            for (long j = 0; j < a.numel(); j++) if (a.get(j) != b.get(j)) fail(a.name + "[" + j + "]");
        }

        assertUserError(run("convert", src.toString(), "--dtype", "fp8", "--out", dir.resolve("x").toString()), "--dtype must be bf16 or f32");
        assertUserError(run("convert", src.toString(), "--dtype", "bf16", "--out", src.toString()), "is the run being converted");
        assertUserError(run("convert", src.toString(), "--dtype", "bf16", "--out", half.toString()), "already holds a checkpoint");
        assertUserError(run("convert", dir.resolve("missing").toString(), "--dtype", "bf16", "--out", dir.resolve("y").toString()), "missing");
        assertArrayEquals(before, Files.readAllBytes(src.resolve(Checkpoint.LATEST)), "the source is still untouched");
    }
}
