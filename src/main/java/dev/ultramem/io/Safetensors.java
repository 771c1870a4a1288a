package dev.ultramem.io;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ultramem.core.UserError;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The safetensors container: an 8-byte little-endian header length, a JSON header mapping names to
 * {dtype, shape, data_offsets}, then the raw little-endian data. Files are memory-mapped for
 * reading, so tensors larger than the heap (value tables) can be used in place.
 */
public final class Safetensors implements AutoCloseable {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long MAX_HEADER = 100L << 20;

    /** One tensor's entry: dtype ("F32", "I64", "I32", "BF16"...), shape and its bytes inside the file. */
    public record Entry(String name, String dtype, long[] shape, MemorySegment data) {
        public long numel() { long n = 1; for (long s : shape) n *= s; return n; }

        /** The tensor as a new float array (F32 only, fewer than 2^31 elements). */
        public float[] toFloats() {
            requireDtype("F32");
            long n = numel();
            if (n > Integer.MAX_VALUE - 16) throw new UserError(name + ": tensor too large for a heap array");
            float[] out = new float[(int) n];
            MemorySegment.copy(data, LE_FLOAT, 0, out, 0, (int) n);
            return out;
        }

        /** The tensor as ints (I64 or I32 on disk; values must fit in an int). */
        public int[] toInts() {
            long n = numel();
            int[] out = new int[(int) n];
            switch (dtype) {
                case "I64" -> {
                    for (int i = 0; i < n; i++) {
                        long v = data.getAtIndex(LE_LONG, i);
                        if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) throw new UserError(name + ": index value out of int range");
                        out[i] = (int) v;
                    }
                }
                case "I32" -> MemorySegment.copy(data, LE_INT, 0, out, 0, (int) n);
                default -> throw new UserError(name + ": expected an integer tensor, found " + dtype);
            }
            return out;
        }

        public void requireDtype(String dt) {
            if (!dtype.equals(dt)) throw new UserError(name + ": expected dtype " + dt + ", found " + dtype);
        }
    }

    public static final ValueLayout.OfFloat LE_FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfLong LE_LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfInt LE_INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path path;
    private final Arena arena;
    private final Map<String, Entry> entries;
    private final Map<String, String> metadata;

    private Safetensors(Path path, Arena arena, Map<String, Entry> entries, Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.entries = entries;
        this.metadata = metadata;
    }

    /**
     * Opens and validates a file (header JSON, dtypes, offsets inside the file, sizes matching shapes).
     * Any problem is a {@link UserError} naming the file.
     */
    public static Safetensors open(Path path) {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) throw new UserError(path + ": not a safetensors file (shorter than 8 bytes)");
            MemorySegment all = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            long hlen = all.get(LE_LONG, 0);
            if (hlen <= 0 || hlen > MAX_HEADER || 8 + hlen > size)
                throw new UserError(path + ": corrupt safetensors header (header length " + hlen + ", file size " + size + ")");
            byte[] hb = all.asSlice(8, hlen).toArray(ValueLayout.JAVA_BYTE);
            JsonNode header;
            try {
                header = JSON.readTree(new String(hb, StandardCharsets.UTF_8).trim());
            } catch (JsonProcessingException e) {
                throw new UserError(path + ": corrupt safetensors header (invalid JSON)");
            }
            if (header == null || !header.isObject()) throw new UserError(path + ": corrupt safetensors header (not a JSON object)");
            long dataStart = 8 + hlen;
            long dataLen = size - dataStart;
            MemorySegment body = all.asSlice(dataStart, dataLen);
            Map<String, Entry> entries = new LinkedHashMap<>();
            Map<String, String> meta = new LinkedHashMap<>();
            Iterator<Map.Entry<String, JsonNode>> it = header.fields();
            while (it.hasNext()) {
                var f = it.next();
                String name = f.getKey();
                JsonNode n = f.getValue();
                if (name.equals("__metadata__")) {
                    n.fields().forEachRemaining(m -> meta.put(m.getKey(), m.getValue().asText()));
                    continue;
                }
                JsonNode dt = n.get("dtype"), sh = n.get("shape"), off = n.get("data_offsets");
                if (dt == null || sh == null || off == null || !sh.isArray() || !off.isArray() || off.size() != 2)
                    throw new UserError(path + ": corrupt safetensors header (entry " + name + ")");
                String dtype = dt.asText();
                int esize = elementSize(dtype);
                if (esize < 0) throw new UserError(path + ": unsupported dtype " + dtype + " for " + name);
                long[] shape = new long[sh.size()];
                long numel = 1;
                for (int i = 0; i < shape.length; i++) {
                    shape[i] = sh.get(i).asLong(-1);
                    if (shape[i] < 0) throw new UserError(path + ": negative dimension in " + name);
                    numel = Math.multiplyExact(numel, shape[i]);
                }
                long begin = off.get(0).asLong(-1), end = off.get(1).asLong(-1);
                if (begin < 0 || end < begin || end > dataLen)
                    throw new UserError(path + ": truncated or corrupt file (" + name + " data lies outside the file)");
                if (end - begin != numel * esize)
                    throw new UserError(path + ": corrupt header (" + name + " byte size does not match its shape)");
                entries.put(name, new Entry(name, dtype, shape, body.asSlice(begin, end - begin)));
            }
            return new Safetensors(path, arena, entries, meta);
        } catch (IOException e) {
            arena.close();
            throw UserError.cannotRead(path, e);
        } catch (UserError | ArithmeticException e) {
            arena.close();
            if (e instanceof UserError ue) throw ue;
            throw new UserError(path + ": corrupt safetensors header (shape overflow)");
        }
    }

    public static int elementSize(String dtype) {
        return switch (dtype) {
            case "F32", "I32", "U32" -> 4;
            case "F64", "I64", "U64" -> 8;
            case "F16", "BF16", "I16", "U16" -> 2;
            case "I8", "U8", "BOOL" -> 1;
            default -> -1;
        };
    }

    public Path path() { return path; }

    public Map<String, Entry> entries() { return entries; }

    public Map<String, String> metadata() { return metadata; }

    public boolean has(String name) { return entries.containsKey(name); }

    public Entry get(String name) {
        Entry e = entries.get(name);
        if (e == null) throw new UserError(path + ": missing tensor " + name);
        return e;
    }

    /** Parsed JSON of a metadata entry (e.g. "config"), or null. */
    public JsonNode metadataJson(String key) {
        String s = metadata.get(key);
        if (s == null) return null;
        try {
            return JSON.readTree(s);
        } catch (JsonProcessingException e) {
            throw new UserError(path + ": metadata " + key + " is not valid JSON");
        }
    }

    @Override public void close() { arena.close(); }

    // ---------------------------------------------------------------- writing

    /** A tensor to write: F32 from a segment (heap or off-heap), or I64 from ints. */
    public record Out(String name, String dtype, long[] shape, MemorySegment f32, int[] ints) {
        public static Out f32(String name, long[] shape, MemorySegment data) { return new Out(name, "F32", shape, data, null); }
        public static Out f32(String name, long[] shape, float[] data) { return new Out(name, "F32", shape, MemorySegment.ofArray(data), null); }
        public static Out i64(String name, long[] shape, int[] data) { return new Out(name, "I64", shape, null, data); }

        long bytes() { return "F32".equals(dtype) ? f32.byteSize() : (long) ints.length * 8; }
    }

    /**
     * Writes a file atomically ({@link AtomicFiles}): to a temporary file in the same folder, fsync,
     * then rename over the target. A crash or a failed write (a full disk is an {@link IOException})
     * leaves any previous file intact.
     */
    public static void write(Path target, List<Out> tensors, Map<String, String> metadata) throws IOException {
        ObjectNode header = JSON.createObjectNode();
        if (metadata != null && !metadata.isEmpty()) {
            ObjectNode m = header.putObject("__metadata__");
            metadata.forEach(m::put);
        }
        long off = 0;
        for (Out t : tensors) {
            ObjectNode e = header.putObject(t.name());
            e.put("dtype", t.dtype());
            var sh = e.putArray("shape");
            for (long s : t.shape()) sh.add(s);
            var o = e.putArray("data_offsets");
            o.add(off);
            off += t.bytes();
            o.add(off);
        }
        byte[] hjson = JSON.writeValueAsBytes(header);
        int pad = (8 - (hjson.length % 8)) % 8;  // keep data 8-byte aligned
        byte[] hbytes = new byte[hjson.length + pad];
        System.arraycopy(hjson, 0, hbytes, 0, hjson.length);
        for (int i = hjson.length; i < hbytes.length; i++) hbytes[i] = ' ';
        long total = 8 + hbytes.length + off;
        AtomicFiles.write(target, total, out -> {
            out.putLong(hbytes.length);
            out.put(hbytes);
            for (Out t : tensors) {
                if ("F32".equals(t.dtype())) out.putFloats(t.f32());
                else out.putIntsAsLongs(t.ints());
            }
        });
    }
}
