package dev.ultramem.io;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ultramem.core.UserError;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import java.util.function.Predicate;
import java.util.zip.CRC32;

/**
 * The safetensors container: an 8-byte little-endian header length, a JSON header mapping names to
 * {dtype, shape, data_offsets}, then the raw little-endian data. Files are memory-mapped for
 * reading, so tensors larger than the heap (value tables) can be used in place.
 */
public final class Safetensors implements AutoCloseable {

    private static final ObjectMapper JSON = new ObjectMapper();
    /** The header's reader: a key twice in an entry or in {@code __metadata__} is an error, not the last one winning. */
    private static final ObjectMapper HEADER_JSON = JsonMapper.builder().enable(DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY).build();
    private static final long MAX_HEADER = 100L << 20;

    /** One tensor's entry: dtype ("F32", "I64", "I32", "BF16"...), shape and its bytes inside the file, which errors name. */
    public record Entry(String name, String dtype, long[] shape, MemorySegment data, Path file) {
        public long numel() { long n = 1; for (long s : shape) n *= s; return n; }

        /** The tensor as a new float array (F32 only, fewer than 2^31 elements). */
        public float[] toFloats() {
            requireDtype("F32");
            long n = numel();
            if (n > Integer.MAX_VALUE - 16) throw new UserError(file + ": " + name + ": tensor too large for a heap array");
            float[] out = new float[(int) n];
            MemorySegment.copy(data, LE_FLOAT, 0, out, 0, (int) n);
            return out;
        }

        /** The tensor as ints (I64 or I32 on disk; values must fit in an int). */
        public int[] toInts() {
            long n = numel();
            if (n > Integer.MAX_VALUE - 16) throw new UserError(file + ": " + name + ": tensor too large for a heap array");
            int[] out = new int[(int) n];
            switch (dtype) {
                case "I64" -> {
                    for (int i = 0; i < n; i++) {
                        long v = data.getAtIndex(LE_LONG, i);
                        if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) throw new UserError(file + ": " + name + ": index value out of int range");
                        out[i] = (int) v;
                    }
                }
                case "I32" -> MemorySegment.copy(data, LE_INT, 0, out, 0, (int) n);
                default -> throw new UserError(file + ": " + name + ": expected an integer tensor, found " + dtype);
            }
            return out;
        }

        /**
         * Copies the tensor into {@code dst} (native-order float32, {@link #numel()} elements), converting
         * exactly from F32, BF16 (its 16 bits are the upper half of a float32) or F16 (IEEE half, every
         * value, subnormals included, is a float32). Other dtypes are an error naming the tensor.
         */
        public void copyAsFloat32(MemorySegment dst) {
            long n = numel();
            switch (dtype) {
                case "F32" -> MemorySegment.copy(data, LE_FLOAT, 0, dst, ValueLayout.JAVA_FLOAT, 0, n);
                case "BF16" -> {
                    for (long i = 0; i < n; i++) dst.setAtIndex(ValueLayout.JAVA_FLOAT, i, bf16ToFloat(data.getAtIndex(LE_SHORT, i)));
                }
                case "F16" -> {
                    for (long i = 0; i < n; i++) dst.setAtIndex(ValueLayout.JAVA_FLOAT, i, Float.float16ToFloat(data.getAtIndex(LE_SHORT, i)));
                }
                default -> throw new UserError(file + ": " + name + ": expected a floating-point tensor (F32, BF16 or F16), found " + dtype);
            }
        }

        public void requireDtype(String dt) {
            if (!dtype.equals(dt)) throw new UserError(file + ": " + name + ": expected dtype " + dt + ", found " + dtype);
        }
    }

    public static final ValueLayout.OfFloat LE_FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfLong LE_LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfInt LE_INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfShort LE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** A bfloat16 value as float32: its bits are the upper 16 bits of the float32. */
    public static float bf16ToFloat(short bits) { return dev.ultramem.core.Bf16.toFloat(bits); }

    private final Path path;
    private final Arena arena;
    private final Map<String, Entry> entries;
    private final Map<String, String> metadata;

    private long base;

    /** Where an entry's bytes start in the file (to read them through a channel instead of the mapping). */
    public long fileOffset(Entry e) { return e.data().address() - base; }

    private Safetensors(Path path, Arena arena, Map<String, Entry> entries, Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.entries = entries;
        this.metadata = metadata;
    }

    /**
     * Opens and validates a file strictly by the safetensors format: an unsigned 64-bit header
     * length, a UTF-8 JSON object starting at the first header byte and followed only by spaces, no
     * name twice, entries of exactly {@code dtype} (string), {@code shape} (non-negative integers)
     * and {@code data_offsets} (two unsigned integers), a {@code __metadata__} object of strings,
     * byte sizes matching shapes, and tensors that tile the data section exactly: in offset order the
     * first starts at 0, each starts where the previous one ends, the last ends at the end of the file.
     * Any problem is a one-line {@link UserError} naming the file.
     */
    public static Safetensors open(Path path) {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) throw new UserError(path + ": not a safetensors file (shorter than 8 bytes)");
            MemorySegment all = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            long hlen = all.get(LE_LONG, 0);  // unsigned
            if (Long.compareUnsigned(hlen, MAX_HEADER) > 0)
                throw corrupt(path, "header length " + Long.toUnsignedString(hlen) + " is over the limit of " + MAX_HEADER + " bytes");
            if (hlen == 0) throw corrupt(path, "header length 0");
            if (8 + hlen > size) throw corrupt(path, "header length " + hlen + " runs past the end of the file, file size " + size);
            byte[] hb = all.asSlice(8, hlen).toArray(ValueLayout.JAVA_BYTE);
            long dataStart = 8 + hlen;
            long dataLen = size - dataStart;
            Map<String, String> meta = new LinkedHashMap<>();
            List<Span> spans = parseHeader(path, hb, dataLen, meta);
            checkTiling(path, spans, dataLen);
            MemorySegment body = all.asSlice(dataStart, dataLen);
            Map<String, Entry> entries = new LinkedHashMap<>();
            for (Span t : spans) entries.put(t.name, new Entry(t.name, t.dtype, t.shape, body.asSlice(t.begin, t.end - t.begin), path));
            Safetensors st = new Safetensors(path, arena, entries, meta);
            st.base = all.address();
            return st;
        } catch (IOException e) {
            arena.close();
            throw UserError.cannotRead(path, e);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static UserError corrupt(Path path, String detail) {
        return new UserError(path + ": corrupt safetensors header (" + detail + ")");
    }

    /** One tensor as the header describes it; offsets are relative to the data section. */
    private record Span(String name, String dtype, long[] shape, long begin, long end) {}

    private static final Set<String> ENTRY_KEYS = Set.of("dtype", "shape", "data_offsets");

    /** The header's tensors in header order; fills {@code meta}. */
    private static List<Span> parseHeader(Path path, byte[] hb, long dataLen, Map<String, String> meta) {
        requireUtf8(path, hb);
        if (hb[0] != '{') throw corrupt(path, "the header does not start with '{'");
        List<Span> spans = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        String name = null;
        try (JsonParser p = HEADER_JSON.createParser(hb)) {
            p.nextToken();  // the '{'
            JsonToken t;
            while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                name = p.currentName();
                if (!seen.add(name)) throw corrupt(path, "name " + UserError.quote(name) + " appears twice");
                p.nextToken();
                JsonNode n = HEADER_JSON.readTree(p);
                if (name.equals("__metadata__")) readMetadata(path, n, meta);
                else spans.add(span(path, name, n, dataLen));
                name = null;
            }
            if (t != JsonToken.END_OBJECT) throw corrupt(path, "invalid JSON");
            long end = p.currentTokenLocation().getByteOffset() + 1;
            for (int i = (int) end; i < hb.length; i++)
                if (hb[i] != ' ')
                    throw corrupt(path, "byte " + i + " of the header follows the JSON object and is not a space");
        } catch (JsonProcessingException e) {
            String m = String.valueOf(e.getOriginalMessage());
            String where = name == null ? "" : " in " + UserError.quote(name);
            if (m.startsWith("Duplicate field")) throw corrupt(path, "a key appears twice" + where);
            long at = e.getLocation() == null ? -1 : e.getLocation().getByteOffset();
            throw corrupt(path, "invalid JSON" + where + (at >= 0 ? " at byte " + at : ""));
        } catch (IOException e) {
            throw corrupt(path, "invalid JSON");
        }
        return spans;
    }

    private static void requireUtf8(Path path, byte[] hb) {
        var dec = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(hb);
        CharBuffer out = CharBuffer.allocate(4096);
        while (true) {
            CoderResult r = dec.decode(in, out, true);
            if (r.isError()) throw corrupt(path, "byte " + in.position() + " of the header is not valid UTF-8");
            out.clear();
            if (r.isUnderflow()) break;
        }
    }

    private static void readMetadata(Path path, JsonNode n, Map<String, String> meta) {
        if (n == null || !n.isObject()) throw corrupt(path, "__metadata__ is not an object");
        for (var f : n.properties()) {
            if (!f.getValue().isTextual())
                throw corrupt(path, "__metadata__ value " + UserError.quote(f.getKey()) + " is not a string");
            meta.put(f.getKey(), f.getValue().textValue());
        }
    }

    private static Span span(Path path, String name, JsonNode n, long dataLen) {
        String q = UserError.quote(name);
        if (n == null || !n.isObject()) throw corrupt(path, "entry " + q + " is not an object");
        for (var f : n.properties())
            if (!ENTRY_KEYS.contains(f.getKey())) throw corrupt(path, "entry " + q + " has an unknown key " + UserError.quote(f.getKey()));
        JsonNode dt = n.get("dtype"), sh = n.get("shape"), off = n.get("data_offsets");
        if (dt == null || !dt.isTextual()) throw corrupt(path, "entry " + q + ": dtype must be a string");
        if (sh == null || !sh.isArray()) throw corrupt(path, "entry " + q + ": shape must be an array");
        if (off == null || !off.isArray() || off.size() != 2) throw corrupt(path, "entry " + q + ": data_offsets must be an array of two integers");
        String dtype = dt.textValue();
        int esize = elementSize(dtype);
        if (esize < 0) throw new UserError(path + ": unsupported dtype " + UserError.quote(dtype) + " for " + q);
        long[] shape = new long[sh.size()];
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = sh.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.longValue() < 0)
                throw corrupt(path, "entry " + q + ": shape must hold non-negative integers");
            shape[i] = d.longValue();
        }
        BigInteger begin = offset(path, q, off.get(0)), end = offset(path, q, off.get(1));
        BigInteger limit = BigInteger.valueOf(dataLen);
        if (begin.compareTo(limit) > 0 || end.compareTo(limit) > 0)
            throw new UserError(path + ": truncated or corrupt file (" + q + " data lies outside the file)");
        if (end.compareTo(begin) < 0) throw corrupt(path, "entry " + q + ": data_offsets end before they begin");
        long bytes = end.longValue() - begin.longValue();
        long expected;
        try {
            expected = esize;
            for (long d : shape) expected = Math.multiplyExact(expected, d);
        } catch (ArithmeticException e) {
            throw corrupt(path, "entry " + q + ": shape " + shapeText(shape) + " is too large");
        }
        if (expected != bytes)
            throw corrupt(path, "entry " + q + ": " + bytes + " bytes of data do not match its shape " + shapeText(shape) + " of " + dtype);
        return new Span(name, dtype, shape, begin.longValue(), end.longValue());
    }

    private static String shapeText(long[] shape) {
        return shape.length <= 8 ? Arrays.toString(shape) : "of " + shape.length + " dimensions";
    }

    private static BigInteger offset(Path path, String q, JsonNode v) {
        if (!v.isIntegralNumber() || v.bigIntegerValue().signum() < 0)
            throw corrupt(path, "entry " + q + ": data_offsets must be two non-negative integers");
        return v.bigIntegerValue();
    }

    /** In offset order the tensors start at 0, each where the previous one ends, and the last ends at the end of the file. */
    private static void checkTiling(Path path, List<Span> spans, long dataLen) {
        List<Span> byOffset = new ArrayList<>(spans);
        byOffset.sort(Comparator.comparingLong(Span::begin).thenComparingLong(Span::end));
        long pos = 0;
        String prev = null;
        for (Span t : byOffset) {
            if (t.begin < pos)
                throw corrupt(path, "the data of " + UserError.quote(t.name) + " overlaps the data of " + UserError.quote(prev));
            if (t.begin > pos)
                throw corrupt(path, (t.begin - pos) + " bytes before the data of " + UserError.quote(t.name) + " belong to no tensor");
            pos = t.end;
            prev = t.name;
        }
        if (pos != dataLen)
            throw new UserError(path + ": corrupt safetensors file (" + (dataLen - pos) + " bytes after the last tensor's data belong to no tensor)");
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

    /**
     * Fails, naming the first of them, if the file holds tensors that {@code known} does not accept;
     * {@code why} says what a known tensor is.
     */
    public void requireNoUnknownTensors(Predicate<String> known, String why) {
        List<String> unknown = entries.keySet().stream().filter(known.negate()).toList();
        if (!unknown.isEmpty())
            throw new UserError(path + ": unknown tensor " + UserError.quote(unknown.get(0))
                    + (unknown.size() > 1 ? " (and " + (unknown.size() - 1) + " more)" : "") + ": " + why);
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

    /**
     * A tensor to write: F32 or BF16 from a native-order segment (heap or off-heap; field f32), F32 made while
     * writing (fill), or I64 from ints.
     */
    public record Out(String name, String dtype, long[] shape, MemorySegment f32, int[] ints, Consumer<MemorySegment> fill) {
        public static Out f32(String name, long[] shape, MemorySegment data) { return new Out(name, "F32", shape, data, null, null); }
        public static Out f32(String name, long[] shape, float[] data) { return new Out(name, "F32", shape, MemorySegment.ofArray(data), null, null); }
        public static Out i64(String name, long[] shape, int[] data) { return new Out(name, "I64", shape, null, data, null); }

        /**
         * A BF16 tensor from native-order bf16 values (2 bytes each), or from float32 values (4 bytes each), which
         * are rounded to nearest even as they are written, so a table larger than RAM converts without a copy.
         */
        public static Out bf16(String name, long[] shape, MemorySegment data) { return new Out(name, "BF16", shape, data, null, null); }

        /** An F32 tensor from native-order bf16 values (2 bytes each), widened exactly as they are written. */
        public static Out f32FromBf16(String name, long[] shape, MemorySegment bf16) {
            if (bf16.byteSize() != numel(shape) * 2) throw new IllegalArgumentException(name + ": not a bf16 segment of its shape");
            return new Out(name, "F32", shape, bf16, null, null);
        }

        /**
         * An F32 tensor whose values exist only while the file is written: fill is called with a bounded
         * native-order float segment again and again, and fills it with the next values each time.
         */
        public static Out filled(String name, long[] shape, Consumer<MemorySegment> fill) { return new Out(name, "F32", shape, null, null, fill); }

        /** Bytes per element of the source segment: 2 or 4 (a source of the other width is converted on writing). */
        public int sourceBytes() {
            long n = numel(shape);
            return n == 0 || f32 == null ? ("BF16".equals(dtype) ? 2 : 4) : (int) (f32.byteSize() / n);
        }

        long bytes() { return ints != null ? (long) ints.length * 8 : numel(shape) * ("BF16".equals(dtype) ? 2 : 4); }

        public static long numel(long[] shape) { long n = 1; for (long s : shape) n *= s; return n; }
    }

    /**
     * Writes a file atomically ({@link AtomicFiles}): to a temporary file in the same folder, fsync,
     * then rename over the target. A crash or a failed write (a full disk is an {@link IOException})
     * leaves any previous file intact.
     */
    public static void write(Path target, List<Out> tensors, Map<String, String> metadata) throws IOException {
        write(target, tensors, metadata, null);
    }

    /** Floats a {@linkplain Out#filled filled} tensor makes per call: the memory it needs while written. */
    static final int FILL_CHUNK = 1 << 20;

    /**
     * As {@link #write(Path, List, Map)}; with a {@code crcKey}, metadata {@code crcKey} is the CRC32 of the
     * data section (every tensor's bytes in file order) computed as the bytes are written, as filled
     * tensors need: their bytes exist nowhere before. The header is written with the longest CRC in its
     * place and rewritten in place, padded with spaces, once the data is written.
     */
    public static void write(Path target, List<Out> tensors, Map<String, String> metadata, String crcKey) throws IOException {
        Map<String, String> meta = metadata == null ? new LinkedHashMap<>() : new LinkedHashMap<>(metadata);
        if (crcKey != null) meta.put(crcKey, Long.toString(0xffffffffL));
        byte[] hbytes = header(tensors, meta, 0);
        long total = 8 + hbytes.length;
        for (Out t : tensors) total += t.bytes();
        AtomicFiles.write(target, total, out -> {
            out.putLong(hbytes.length);
            out.put(hbytes);
            CRC32 crc = crcKey != null ? out.startChecksum() : null;
            putData(out, tensors);
            if (crc != null) {
                meta.put(crcKey, Long.toString(out.endChecksum()));
                out.overwrite(8, header(tensors, meta, hbytes.length));
            }
        });
    }

    /** A filled tensor's values, made a bounded chunk at a time into one native buffer. */
    private static void putFilled(AtomicFiles.Output out, Out t) throws IOException {
        long n = Out.numel(t.shape());
        try (Arena a = Arena.ofConfined()) {
            MemorySegment chunk = a.allocate((long) Float.BYTES * Math.min(n, FILL_CHUNK), 64);
            for (long i = 0; i < n; i += FILL_CHUNK) {
                MemorySegment c = chunk.asSlice(0, (long) Float.BYTES * Math.min(FILL_CHUNK, n - i));
                t.fill().accept(c);
                out.putFloats(c);
            }
        }
    }

    /** The JSON header, padded with spaces to a multiple of 8 bytes (data stays 8-byte aligned) and to at least minLength. */
    private static byte[] header(List<Out> tensors, Map<String, String> metadata, int minLength) throws IOException {
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
        int len = Math.max(hjson.length + (8 - (hjson.length % 8)) % 8, minLength);
        if (minLength > 0 && len != minLength) throw new IllegalStateException("header outgrew its reserved " + minLength + " bytes");
        byte[] hbytes = new byte[len];
        System.arraycopy(hjson, 0, hbytes, 0, hjson.length);
        for (int i = hjson.length; i < hbytes.length; i++) hbytes[i] = ' ';
        return hbytes;
    }

    /** The tensors' data as the file holds it: little-endian, in order, each converted to its dtype. */
    private static void putData(AtomicFiles.Output out, List<Out> tensors) throws IOException {
        for (Out t : tensors) {
            if (t.fill() != null) putFilled(out, t);
            else if (t.ints() != null) out.putIntsAsLongs(t.ints());
            else if ("F32".equals(t.dtype())) {
                if (t.sourceBytes() == 4) out.putFloats(t.f32());
                else out.putBf16AsFloats(t.f32());
            } else if (t.sourceBytes() == 2) out.putShorts(t.f32());
            else out.putFloatsAsBf16(t.f32());
        }
    }
}
