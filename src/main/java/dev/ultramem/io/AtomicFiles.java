package dev.ultramem.io;

import dev.ultramem.core.UserError;

import dev.ultramem.core.Bf16;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.zip.CRC32;

/**
 * Files written whole: to a temporary file beside the target ({@code .<target-name>.<random>.tmp}),
 * through {@link FileChannel#write} (so a full disk is an {@link IOException}, never a fault in a
 * memory map), forced to the device, then renamed over the target. A crash or a failed write leaves
 * the previous file or the new one, never a part, and removes the temporary file.
 */
public final class AtomicFiles {
    private AtomicFiles() {}

    /** Size of the one native buffer that a file's bytes pass through on their way to the channel. */
    static final int CHUNK = 4 << 20;

    /** The bytes of a file, produced into an {@link Output}. */
    @FunctionalInterface
    public interface Content {
        void writeTo(Output out) throws IOException;
    }

    /** What the bytes go through on their way to a temporary file (a test seam: tests wrap it to fail). */
    @FunctionalInterface
    interface Channels {
        WritableByteChannel wrap(Path tmp, FileChannel file);
    }

    static volatile Channels channels = (tmp, file) -> file;

    /** Writes text as UTF-8. */
    public static void write(Path target, CharSequence text) throws IOException {
        write(target, text.toString().getBytes(StandardCharsets.UTF_8));
    }

    /** Writes the given bytes. */
    public static void write(Path target, byte[] bytes) throws IOException {
        write(target, bytes.length, out -> out.put(bytes));
    }

    /**
     * Writes the bytes that {@code content} produces; {@code expectedBytes} (how many it will
     * produce, roughly) only sizes the buffer, which never exceeds {@value #CHUNK} bytes.
     */
    public static void write(Path target, long expectedBytes, Content content) throws IOException {
        Path dir = target.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, "." + target.getFileName() + ".", ".tmp");
        try {
            // temp files are created owner-only; the renamed file gets the usual rw-r--r--
            if (tmp.getFileSystem().supportedFileAttributeViews().contains("posix"))
                Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rw-r--r--"));
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING);
                 Arena arena = Arena.ofConfined()) {
                long size = Math.clamp(expectedBytes, 64, CHUNK);
                Output out = new Output(channels.wrap(tmp, ch), ch, arena.allocate(size, 8));
                content.writeTo(out);
                out.flush();
                ch.force(true);
            }
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /**
     * Whether {@code candidate} is a temporary file that {@link #write} creates for a target named
     * {@code targetName} in the same folder: {@code .<targetName>.<random>.tmp}.
     */
    public static boolean isTempOf(Path candidate, String targetName) {
        Path f = candidate.getFileName();
        if (f == null) return false;
        String n = f.toString(), prefix = "." + targetName + ".";
        return n.length() > prefix.length() + ".tmp".length() && n.startsWith(prefix) && n.endsWith(".tmp");
    }

    /** The one-line error for a failed write, naming a full disk as such. */
    public static UserError writeError(Path file, IOException e) {
        return writeError(file, e, "");
    }

    /**
     * As {@link #writeError(Path, IOException)}, with {@code onFullDisk} (e.g. "; the previous
     * checkpoint is intact") appended when the disk is full.
     */
    public static UserError writeError(Path file, IOException e, String onFullDisk) {
        String m = String.valueOf(e.getMessage());
        if (m.contains("No space left on device"))
            return new UserError("no space left on device while writing " + file + onFullDisk, e);
        return new UserError("cannot write " + file + " (" + m + ")", e);
    }

    /** Sequential output through one reusable buffer; numbers are written little-endian. */
    public static final class Output {
        private final WritableByteChannel channel;
        private final FileChannel file;
        private final MemorySegment buf;
        private final ByteBuffer view;
        private long fill;
        private CRC32 crc;

        private static final ValueLayout.OfLong LE_LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        private static final ValueLayout.OfFloat LE_FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        private static final ValueLayout.OfShort LE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

        Output(WritableByteChannel channel, FileChannel file, MemorySegment buf) {
            this.channel = channel;
            this.file = file;
            this.buf = buf;
            this.view = buf.asByteBuffer();
        }

        public void put(byte[] b) throws IOException {
            for (int i = 0; i < b.length; ) {
                int c = (int) Math.min(b.length - i, room(1));
                MemorySegment.copy(b, i, buf, ValueLayout.JAVA_BYTE, fill, c);
                fill += c;
                i += c;
            }
        }

        public void putLong(long v) throws IOException {
            room(Long.BYTES);
            buf.set(LE_LONG, fill, v);
            fill += Long.BYTES;
        }

        /** Floats in native order (a heap or off-heap segment), written as little-endian F32. */
        public void putFloats(MemorySegment floats) throws IOException {
            long n = floats.byteSize() / Float.BYTES;
            for (long i = 0; i < n; ) {
                long c = Math.min(n - i, room(Float.BYTES) / Float.BYTES);
                MemorySegment.copy(floats, ValueLayout.JAVA_FLOAT, i * Float.BYTES, buf, LE_FLOAT, fill, c);
                fill += c * Float.BYTES;
                i += c;
            }
        }

        /** 16-bit values in native order (bf16 bits), written little-endian. */
        public void putShorts(MemorySegment shorts) throws IOException {
            long n = shorts.byteSize() / Short.BYTES;
            for (long i = 0; i < n; ) {
                long c = Math.min(n - i, room(Short.BYTES) / Short.BYTES);
                MemorySegment.copy(shorts, ValueLayout.JAVA_SHORT, i * Short.BYTES, buf, LE_SHORT, fill, c);
                fill += c * Short.BYTES;
                i += c;
            }
        }

        /** Native-order floats rounded to bf16 (nearest even), written little-endian. */
        public void putFloatsAsBf16(MemorySegment floats) throws IOException {
            long n = floats.byteSize() / Float.BYTES;
            for (long i = 0; i < n; ) {
                long c = Math.min(n - i, room(Short.BYTES) / Short.BYTES);
                for (long j = 0; j < c; j++) buf.set(LE_SHORT, fill + 2 * j, Bf16.round(floats.getAtIndex(ValueLayout.JAVA_FLOAT, i + j)));
                fill += c * Short.BYTES;
                i += c;
            }
        }

        /** Native-order bf16 values widened to float32, written little-endian. */
        public void putBf16AsFloats(MemorySegment shorts) throws IOException {
            long n = shorts.byteSize() / Short.BYTES;
            for (long i = 0; i < n; ) {
                long c = Math.min(n - i, room(Float.BYTES) / Float.BYTES);
                for (long j = 0; j < c; j++) buf.set(LE_FLOAT, fill + 4 * j, Bf16.toFloat(shorts.getAtIndex(ValueLayout.JAVA_SHORT, i + j)));
                fill += c * Float.BYTES;
                i += c;
            }
        }

        /** Ints written as little-endian I64. */
        public void putIntsAsLongs(int[] v) throws IOException {
            for (int i = 0; i < v.length; ) {
                int c = (int) Math.min(v.length - i, room(Long.BYTES) / Long.BYTES);
                for (int j = 0; j < c; j++) buf.set(LE_LONG, fill + (long) Long.BYTES * j, v[i + j]);
                fill += (long) Long.BYTES * c;
                i += c;
            }
        }

        /** From here on the bytes written are summed into the returned CRC32, until {@link #endChecksum}. */
        public CRC32 startChecksum() throws IOException {
            flush();
            crc = new CRC32();
            return crc;
        }

        /** The CRC32 of the bytes written since {@link #startChecksum}. */
        public long endChecksum() throws IOException {
            flush();
            long v = crc.getValue();
            crc = null;
            return v;
        }

        /**
         * Writes bytes over ones already written at file position {@code at} (a header completed once the
         * data after it is known); the sequential output goes on where it was.
         */
        public void overwrite(long at, byte[] b) throws IOException {
            flush();
            ByteBuffer bb = ByteBuffer.wrap(b);
            for (long pos = at; bb.hasRemaining(); ) pos += file.write(bb, pos);
        }

        /** Free bytes in the buffer after making room for at least {@code atLeast}. */
        private long room(int atLeast) throws IOException {
            if (buf.byteSize() - fill < atLeast) flush();
            return buf.byteSize() - fill;
        }

        void flush() throws IOException {
            view.clear().limit((int) fill);
            if (crc != null) {
                crc.update(view);
                view.flip();
            }
            while (view.hasRemaining()) channel.write(view);
            fill = 0;
        }
    }
}
