package dev.ultramem.core;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * {@code madvise} on off-heap and mapped memory, called through the C library the JVM already links; best effort:
 * without Linux, {@code madvise} or native access nothing happens and memory behaves as without the advice.
 *
 * <p>Huge pages: a value table is read (and in training its gradient written) at a few hundred random rows per
 * token, so with 4 KB pages nearly every row costs a TLB miss and a page walk through page tables that are themselves
 * far larger than the caches (a 1 GB table has 2 MB of them). With 2 MB pages the same table needs 512 TLB entries.
 * The JVM's own huge-page option covers only its heap; tables live off it.
 */
public final class Madvise {
    private Madvise() {}

    public static final int MADV_RANDOM = 1, MADV_DONTNEED = 4, MADV_HUGEPAGE = 14;
    public static final long PAGE = 4096, HUGE_PAGE = 2L << 20;
    /** Off-heap allocations from this size up are advised to use huge pages. */
    public static final long HUGE_FROM = 8L << 20;
    private static final MethodHandle MADVISE = lookup();

    private static MethodHandle lookup() {
        if (!System.getProperty("os.name", "").toLowerCase(java.util.Locale.ROOT).contains("linux")) return null;
        try {
            Linker linker = Linker.nativeLinker();
            return linker.defaultLookup().find("madvise").map(f -> linker.downcallHandle(f,
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT)))
                    .orElse(null);
        } catch (RuntimeException | LinkageError e) {
            return null;  // native access not enabled, or no C library
        }
    }

    /**
     * Applies advice to the pages of seg: every page that holds part of it, or (inner) only the pages wholly inside
     * it, so that neighbouring memory is never affected. Returns whether the OS accepted.
     */
    public static boolean advise(MemorySegment seg, int advice, boolean inner) {
        if (MADVISE == null || seg.byteSize() == 0) return false;
        long end = seg.address() + seg.byteSize();
        long start = inner ? (seg.address() + PAGE - 1) & -PAGE : seg.address() & -PAGE;
        long stop = inner ? end & -PAGE : end;
        if (stop <= start) return false;
        try {
            return (int) MADVISE.invokeExact(MemorySegment.ofAddress(start), stop - start, advice) == 0;
        } catch (Throwable t) {
            return false;
        }
    }

    /**
     * A zero-filled off-heap segment of the given bytes, 64-byte aligned; from {@link #HUGE_FROM} up 2 MB-aligned
     * and backed by huge pages where the OS grants them. The arena zero-fills by touching every page, which maps
     * 4 KB pages; so the segment is advised {@code MADV_HUGEPAGE} and its pages are then dropped
     * ({@code MADV_DONTNEED}, which on private anonymous memory reads back as zeros), and the first touch of each
     * 2 MB range maps a huge page. Only pages wholly inside the segment are advised.
     */
    public static MemorySegment allocate(Arena arena, long bytes) {
        if (bytes < HUGE_FROM || MADVISE == null) return arena.allocate(bytes, 64);
        MemorySegment s = arena.allocate(bytes, HUGE_PAGE);
        if (advise(s, MADV_HUGEPAGE, true)) advise(s, MADV_DONTNEED, true);
        return s;
    }
}
