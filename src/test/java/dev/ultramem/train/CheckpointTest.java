package dev.ultramem.train;

import dev.ultramem.TestModels;
import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;
import dev.ultramem.core.UserError;
import dev.ultramem.data.Corpus;
import dev.ultramem.io.Safetensors;
import dev.ultramem.model.Configs;
import dev.ultramem.model.Model;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class CheckpointTest {
    @TempDir Path dir;
    Trainer trainer;
    Path file;

    @BeforeEach
    void trainAFewSteps() {
        JobConfig job = TestModels.tinyJob(6);
        trainer = Trainer.fresh(job, Corpus.builtin(11, 4000, job.train.valFraction), dir);
        for (int i = 0; i < 3; i++) trainer.trainStep();
        file = trainer.save();
    }

    @Test
    void roundTripIsBitIdentical() {
        Checkpoint.Loaded ck = Checkpoint.load(dir, true);
        assertEquals(3, ck.progress().step());
        assertArrayEquals(trainer.progress().dataRng(), ck.progress().dataRng());
        assertArrayEquals(trainer.trainLossHistory(), ck.progress().trainLoss());
        assertEquals(Configs.toJson(trainer.job.model), Configs.toJson(ck.job().model));
        assertEquals(Configs.toJson(trainer.job.train), Configs.toJson(ck.job().train));
        List<Param> a = trainer.model.params(), b = ck.model().params();
        assertEquals(a.size(), b.size());
        for (int i = 0; i < a.size(); i++) {
            assertEquals(a.get(i).name, b.get(i).name);
            assertSameBits(a.get(i).segment(), b.get(i).segment(), a.get(i).name);
        }
        List<IndexBuffer> ia = trainer.model.indexBuffers(), ib = ck.model().indexBuffers();
        for (int i = 0; i < ia.size(); i++) assertArrayEquals(ia.get(i).data(), ib.get(i).data());
        assertEquals(trainer.optimizer.step(), ck.optimizer().step());
        List<Param> oa = trainer.optimizer.params(), ob = ck.optimizer().params();
        assertFalse(oa.isEmpty());
        for (int i = 0; i < oa.size(); i++) {
            assertSameBits(trainer.optimizer.expAvg(oa.get(i).name).segment(), ck.optimizer().expAvg(ob.get(i).name).segment(), "m " + oa.get(i).name);
            assertSameBits(trainer.optimizer.expAvgSq(oa.get(i).name).segment(), ck.optimizer().expAvgSq(ob.get(i).name).segment(), "v " + oa.get(i).name);
        }
        // and the file holds every tensor under the documented names
        try (Safetensors st = Safetensors.open(file)) {
            for (Param p : oa) {
                assertTrue(st.has("optim.m." + p.name));
                assertTrue(st.has("optim.v." + p.name));
            }
            assertEquals("1", st.metadata().get("format_version"));
        }
    }

    private static void assertSameBits(MemorySegment x, MemorySegment y, String what) {
        assertEquals(x.byteSize(), y.byteSize(), what);
        long n = x.byteSize() / 4;
        for (long i = 0; i < n; i++)
            assertEquals(Float.floatToRawIntBits(x.getAtIndex(ValueLayout.JAVA_FLOAT, i)),
                    Float.floatToRawIntBits(y.getAtIndex(ValueLayout.JAVA_FLOAT, i)), what + " at " + i);
    }

    @Test
    void truncatedFileIsAUserError() throws Exception {
        byte[] b = Files.readAllBytes(file);
        Path t = dir.resolve("trunc.safetensors");
        Files.write(t, java.util.Arrays.copyOf(b, b.length - 64));
        assertOneLine(() -> Checkpoint.load(t, true), "truncated");
        Files.write(t, java.util.Arrays.copyOf(b, 5));
        assertOneLine(() -> Checkpoint.load(t, true), "not a safetensors file");
    }

    @Test
    void corruptHeaderIsAUserError() throws Exception {
        byte[] b = Files.readAllBytes(file);
        for (int i = 9; i < 40; i++) b[i] = '#';
        Path t = dir.resolve("hdr.safetensors");
        Files.write(t, b);
        assertOneLine(() -> Checkpoint.load(t, true), "corrupt");
        byte[] c = Files.readAllBytes(file);
        c[7] = 0x7F;  // absurd header length
        Files.write(t, c);
        assertOneLine(() -> Checkpoint.load(t, true), "corrupt");
    }

    @Test
    void flippedDataByteFailsTheChecksum() throws Exception {
        byte[] b = Files.readAllBytes(file);
        b[b.length - 200] ^= 0x10;
        Path t = dir.resolve("flip.safetensors");
        Files.write(t, b);
        assertOneLine(() -> Checkpoint.load(t, true), "checksum");
    }

    @Test
    void shapeMismatchAndMissingTensorAreUserErrors() throws Exception {
        Map<String, String> meta;
        List<Safetensors.Out> outs = new ArrayList<>();
        Path wrong = dir.resolve("wrong.safetensors"), missing = dir.resolve("missing.safetensors");
        try (Safetensors st = Safetensors.open(file)) {
            meta = new LinkedHashMap<>(st.metadata());
            for (Safetensors.Entry e : st.entries().values())
                outs.add(Safetensors.Out.f32(e.name(), e.shape(), e.toFloats()));
        }
        meta.remove("data_crc32");
        var tree = Configs.toTree(trainer.job.model);
        tree.put("d_model", 32);
        tree.put("n_heads", 4);
        Map<String, String> wrongMeta = new LinkedHashMap<>(meta);
        wrongMeta.put("model_config", tree.toString());
        Safetensors.write(wrong, outs, wrongMeta);
        assertOneLine(() -> Checkpoint.load(wrong, true), "shape mismatch");

        String first = trainer.model.params().get(0).name;
        Safetensors.write(missing, outs.stream().filter(o -> !o.name().equals(first)).toList(), meta);
        assertOneLine(() -> Checkpoint.load(missing, true), "missing tensor " + first);
    }

    @Test
    void notACheckpointOrMissingFileIsAUserError() throws Exception {
        Path other = dir.resolve("weights.safetensors");
        Safetensors.write(other, List.of(Safetensors.Out.f32("x", new long[]{2}, new float[]{1, 2})), Map.of());
        assertOneLine(() -> Checkpoint.load(other, false), "not an ultramem checkpoint");
        assertOneLine(() -> Checkpoint.load(dir.resolve("nope.safetensors"), false), "not found");
        assertOneLine(() -> Checkpoint.load(Files.createDirectories(dir.resolve("emptyrun")), false), "no latest.safetensors");
    }

    static void assertOneLine(org.junit.jupiter.api.function.Executable ex, String part) {
        UserError e = assertThrows(UserError.class, ex);
        assertTrue(e.getMessage().contains(part), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
    }
}
