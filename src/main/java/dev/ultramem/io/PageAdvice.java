package dev.ultramem.io;

import dev.ultramem.core.Madvise;

import java.lang.foreign.MemorySegment;

/**
 * Tells the OS that a memory-mapped table is read at random rows ({@code madvise(MADV_RANDOM)}, called
 * through the C library the JVM already links). Without it a page fault on a mapped file reads ahead
 * and maps a large block around the row (megabytes with today's read-ahead and large page-cache folios),
 * so decoding a few hundred rows per token would make most of a larger-than-RAM table resident.
 * Best effort: on a platform without {@code madvise} nothing happens.
 */
public final class PageAdvice {
    private PageAdvice() {}

    /** Advises random access for the pages covering seg (a slice of a read-only file mapping); returns whether the OS accepted. */
    public static boolean random(MemorySegment seg) { return Madvise.advise(seg, Madvise.MADV_RANDOM, false); }

    /**
     * Drops this process's mapping of the whole pages inside seg (a slice of a read-only file mapping
     * that was copied out): they leave the resident set, the file is unchanged, a later read pages them in again.
     */
    public static boolean release(MemorySegment seg) { return Madvise.advise(seg, Madvise.MADV_DONTNEED, true); }
}
