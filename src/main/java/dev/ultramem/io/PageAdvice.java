package dev.ultramem.io;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * Tells the OS that a memory-mapped table is read at random rows ({@code madvise(MADV_RANDOM)}, called
 * through the C library the JVM already links). Without it a page fault on a mapped file reads ahead
 * and maps a large block around the row (megabytes with today's read-ahead and large page-cache folios),
 * so decoding a few hundred rows per token would make most of a larger-than-RAM table resident.
 * Best effort: on a platform without {@code madvise} nothing happens.
 */
public final class PageAdvice {
    private PageAdvice() {}

    private static final int MADV_RANDOM = 1, MADV_DONTNEED = 4;
    private static final long PAGE = 4096;
    private static final MethodHandle MADVISE = lookup();

    private static MethodHandle lookup() {
        if (!System.getProperty("os.name", "").toLowerCase(java.util.Locale.ROOT).contains("linux")) return null;
        try {
            Linker linker = Linker.nativeLinker();
            return linker.defaultLookup().find("madvise").map(f -> linker.downcallHandle(f,
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT)))
                    .orElse(null);
        } catch (RuntimeException | LinkageError e) {
            return null;  // native access not enabled, or no C library: reads still work, with read-ahead
        }
    }

    /** Advises random access for the pages covering seg (a slice of a read-only file mapping); returns whether the OS accepted. */
    public static boolean random(MemorySegment seg) { return advise(seg, MADV_RANDOM, false); }

    /**
     * Drops this process's mapping of the whole pages inside seg (a slice of a read-only file mapping
     * that was copied out): they leave the resident set, the file is unchanged, a later read pages them in again.
     */
    public static boolean release(MemorySegment seg) { return advise(seg, MADV_DONTNEED, true); }

    private static boolean advise(MemorySegment seg, int advice, boolean inner) {
        if (MADVISE == null || seg.byteSize() == 0) return false;
        long end = seg.address() + seg.byteSize();
        // random: every page that holds part of seg; release: only pages wholly inside it (neighbours stay)
        long start = inner ? (seg.address() + PAGE - 1) & -PAGE : seg.address() & -PAGE;
        long stop = inner ? end & -PAGE : end;
        if (stop <= start) return false;
        try {
            return (int) MADVISE.invokeExact(MemorySegment.ofAddress(start), stop - start, advice) == 0;
        } catch (Throwable t) {
            return false;
        }
    }
}
