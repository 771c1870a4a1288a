package dev.ultramem.io;

import dev.ultramem.core.UserError;
import org.junit.jupiter.api.function.Executable;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiConsumer;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Safetensors files taken apart and put together byte by byte, for tests of the reader. */
final class SafetensorsBytes {
    private SafetensorsBytes() {}

    /** The header region (JSON and any padding) of a file. */
    static byte[] header(byte[] file) {
        long n = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        return Arrays.copyOfRange(file, 8, 8 + (int) n);
    }

    /** The header JSON of a file without its padding. */
    static String headerJson(byte[] file) {
        return new String(header(file), StandardCharsets.UTF_8).stripTrailing();
    }

    /** The data section of a file. */
    static byte[] data(byte[] file) {
        return Arrays.copyOfRange(file, 8 + header(file).length, file.length);
    }

    /** A file: the 8-byte little-endian length of {@code header}, the header, then the data. */
    static byte[] file(byte[] header, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        return b.putLong(header.length).put(header).put(data).array();
    }

    static byte[] file(String header, byte[] data) { return file(header.getBytes(StandardCharsets.UTF_8), data); }

    static Path write(Path p, byte[] bytes) throws IOException {
        Files.write(p, bytes);
        return p;
    }

    /**
     * Writes {@code to} with the tensors and metadata of {@code from} after {@code edit} changed them
     * (F32 and I64 tensors).
     */
    static void rewrite(Path from, Path to, BiConsumer<List<Safetensors.Out>, Map<String, String>> edit) throws IOException {
        List<Safetensors.Out> outs = new ArrayList<>();
        Map<String, String> meta;
        try (Safetensors st = Safetensors.open(from)) {
            meta = new LinkedHashMap<>(st.metadata());
            for (Safetensors.Entry e : st.entries().values())
                outs.add(e.dtype().equals("I64") ? Safetensors.Out.i64(e.name(), e.shape(), e.toInts())
                        : Safetensors.Out.f32(e.name(), e.shape(), e.toFloats()));
        }
        edit.accept(outs, meta);
        Safetensors.write(to, outs, meta);
    }

    /** Asserts a one-line UserError that names the file and contains {@code part}. */
    static UserError assertRejected(Path file, String part, Executable ex) {
        UserError e = assertThrows(UserError.class, ex, file.getFileName() + " should be refused (" + part + ")");
        assertTrue(e.getMessage().contains(part), "expected '" + part + "' in: " + e.getMessage());
        assertTrue(e.getMessage().contains(file.toString()), "names the file: " + e.getMessage());
        assertFalse(e.getMessage().contains("\n") || e.getMessage().contains("\r"), "one line: " + e.getMessage());
        return e;
    }

    static UserError assertRejected(Path file, String part) {
        return assertRejected(file, part, () -> Safetensors.open(file).close());
    }
}
