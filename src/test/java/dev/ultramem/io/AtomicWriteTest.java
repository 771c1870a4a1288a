package dev.ultramem.io;

import dev.ultramem.TestModels;
import dev.ultramem.core.UserError;
import dev.ultramem.data.Corpus;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.train.JobConfig;
import dev.ultramem.train.Trainer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Writes go through FileChannel.write, so a full disk is an IOException (simulated here by a channel
 * that fails after K bytes): the previous file stays byte for byte, and no temporary file is left.
 */
class AtomicWriteTest {
    @TempDir Path dir;

    @AfterEach
    void realChannels() {
        AtomicFiles.channels = (tmp, file) -> file;
    }

    /** A channel that accepts {@code budget} bytes, then fails as a full disk (or with another message) does. */
    private static void failAfter(long budget, String message, String onlyFor) {
        AtomicFiles.channels = (tmp, file) -> {
            if (onlyFor != null && !AtomicFiles.isTempOf(tmp, onlyFor)) return file;
            return new WritableByteChannel() {
                long left = budget;
                @Override public int write(ByteBuffer src) throws IOException {
                    if (left == 0) throw new IOException(message);
                    int n = (int) Math.min(src.remaining(), left);
                    ByteBuffer part = src.slice().limit(n);
                    int w = file.write(part);
                    src.position(src.position() + w);
                    left -= w;
                    return w;
                }
                @Override public boolean isOpen() { return file.isOpen(); }
                @Override public void close() throws IOException { file.close(); }
            };
        };
    }

    private List<Path> tempFiles() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.getFileName().toString().endsWith(".tmp")).toList();
        }
    }

    private static List<Safetensors.Out> tensors(int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = i * scale;
        int[] b = new int[n / 3];
        for (int i = 0; i < b.length; i++) b[i] = -i;
        return List.of(Safetensors.Out.f32("a", new long[]{n}, a), Safetensors.Out.i64("b", new long[]{b.length}, b));
    }

    @Test
    void aFullDiskInTheSafetensorsWriterIsAnIOExceptionAndLeavesThePreviousFile() throws Exception {
        Path target = dir.resolve("w.safetensors");
        Safetensors.write(target, tensors(1000, 1), Map.of("k", "old"));
        byte[] before = Files.readAllBytes(target);
        // 1.5M floats + 0.5M longs: 10 MB, more than two chunks of the writer's buffer
        int n = 1_500_000;
        for (long k : new long[]{0, 5, 8, 100, AtomicFiles.CHUNK - 1, AtomicFiles.CHUNK, AtomicFiles.CHUNK + 3, 9_999_000}) {
            failAfter(k, "No space left on device", null);
            IOException e = assertThrows(IOException.class, () -> Safetensors.write(target, tensors(n, 2), Map.of("k", "new")), "K=" + k);
            assertEquals("No space left on device", e.getMessage());
            assertArrayEquals(before, Files.readAllBytes(target), "previous file intact, K=" + k);
            assertEquals(List.of(), tempFiles(), "no temp file left, K=" + k);
        }
        realChannels();
        Safetensors.write(target, tensors(n, 2), Map.of("k", "new"));
        try (Safetensors st = Safetensors.open(target)) {
            assertEquals("new", st.metadata().get("k"));
            assertEquals(2f * (n - 1), st.get("a").toFloats()[n - 1]);
        }
    }

    @Test
    void writtenBytesAreTheSafetensorsLayout() throws Exception {
        // more than one buffer's worth, so the chunk boundaries are crossed
        int n = AtomicFiles.CHUNK / 4 + 1001;
        List<Safetensors.Out> t = tensors(n, 0.5f);
        Path target = dir.resolve("layout.safetensors");
        Safetensors.write(target, t, Map.of("k", "v"));
        int nb = n / 3;
        String json = "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[" + n + "],\"data_offsets\":[0," + 4L * n
                + "]},\"b\":{\"dtype\":\"I64\",\"shape\":[" + nb + "],\"data_offsets\":[" + 4L * n + "," + (4L * n + 8L * nb) + "]}}";
        byte[] h = json.getBytes(StandardCharsets.UTF_8);
        int padded = (h.length + 7) / 8 * 8;
        ByteBuffer want = ByteBuffer.allocate(8 + padded + 4 * n + 8 * nb).order(ByteOrder.LITTLE_ENDIAN);
        want.putLong(padded).put(h);
        for (int i = h.length; i < padded; i++) want.put((byte) ' ');
        for (int i = 0; i < n; i++) want.putFloat(i * 0.5f);
        for (int i = 0; i < nb; i++) want.putLong(-i);
        assertArrayEquals(want.array(), Files.readAllBytes(target));
    }

    private Trainer trainer() {
        JobConfig job = TestModels.tinyJob(6);
        return Trainer.fresh(job, Corpus.builtin(11, 4000, job.train.valFraction), dir);
    }

    @Test
    void aFullDiskDuringACheckpointSaveIsAOneLineErrorAndThePreviousCheckpointStays() throws Exception {
        Trainer t = trainer();
        t.trainStep();
        Path file = t.save();
        byte[] ckpt = Files.readAllBytes(file), cfg = Files.readAllBytes(dir.resolve("config.json"));
        t.trainStep();
        // the size of the save that is to fail (it may be smaller than the last: the header is padded to 8 bytes)
        Path probe = dir.resolve("size-probe.safetensors");
        Checkpoint.save(probe, t.job, t.model, t.optimizer, t.progress());
        long size = Files.size(probe);
        Files.delete(probe);
        for (long k : new long[]{0, 1000, size - 1}) {
            failAfter(k, "No space left on device", Checkpoint.LATEST);
            UserError e = assertThrows(UserError.class, t::save);
            assertEquals("no space left on device while writing " + file + "; the previous checkpoint is intact", e.getMessage());
            assertArrayEquals(ckpt, Files.readAllBytes(file));
            assertArrayEquals(cfg, Files.readAllBytes(dir.resolve("config.json")));
            assertEquals(List.of(), tempFiles());
        }
        failAfter(10, "Input/output error", Checkpoint.LATEST);
        UserError io = assertThrows(UserError.class, t::save);
        assertEquals("cannot write " + file + " (Input/output error)", io.getMessage());
        assertArrayEquals(ckpt, Files.readAllBytes(file));

        // config.json is written the same way, after the checkpoint
        failAfter(3, "No space left on device", "config.json");
        UserError c = assertThrows(UserError.class, t::save);
        Path cfgFile = dir.resolve("config.json");
        assertEquals("no space left on device while writing " + cfgFile + "; the checkpoint was saved, the previous config.json is intact",
                c.getMessage());
        assertArrayEquals(cfg, Files.readAllBytes(cfgFile));
        assertEquals(List.of(), tempFiles());
        assertEquals(2, Checkpoint.load(dir, true).progress().step());
    }

    @Test
    void aFirstSaveOnAFullDiskSaysNoCheckpointWasSaved() throws Exception {
        Trainer t = trainer();
        t.trainStep();
        failAfter(0, "No space left on device", null);
        UserError e = assertThrows(UserError.class, t::save);
        Path file = dir.resolve(Checkpoint.LATEST);
        assertEquals("no space left on device while writing " + file + "; no checkpoint was saved", e.getMessage());
        assertFalse(Files.exists(file));
        assertEquals(List.of(), tempFiles());
    }

    @Test
    void textIsWrittenAtomicallyAndItsTempFilesHaveTheirNamePattern() throws Exception {
        Path f = dir.resolve("metrics.csv");
        AtomicFiles.write(f, "a,b\n1,2\n");
        assertEquals("a,b\n1,2\n", Files.readString(f));
        failAfter(4, "No space left on device", null);
        IOException e = assertThrows(IOException.class, () -> AtomicFiles.write(f, "x".repeat(100)));
        assertEquals("no space left on device while writing " + f, AtomicFiles.writeError(f, e).getMessage());
        assertEquals("a,b\n1,2\n", Files.readString(f));
        assertEquals(List.of(), tempFiles());

        Path tmp = Files.createTempFile(dir, ".metrics.csv.", ".tmp");
        assertTrue(AtomicFiles.isTempOf(tmp, "metrics.csv"));
        assertFalse(AtomicFiles.isTempOf(tmp, "loss.png"));
        assertFalse(AtomicFiles.isTempOf(f, "metrics.csv"));
        assertFalse(AtomicFiles.isTempOf(dir.resolve(".metrics.csv.tmp"), "metrics.csv"));
        assertFalse(AtomicFiles.isTempOf(dir.resolve("x.metrics.csv.1.tmp"), "metrics.csv"));
    }
}
