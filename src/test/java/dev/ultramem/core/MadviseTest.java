package dev.ultramem.core;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Large off-heap tensors: zero-filled and usable after their pages are dropped, and advised for huge pages. */
class MadviseTest {

    @Test
    void largeTablesReadZeroHoldWritesAndAreHugePageEligible() throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            long floats = (Madvise.HUGE_FROM + 3 * Madvise.PAGE + 20) / Float.BYTES; // not a whole number of pages
            Param p = Param.offHeap("table", Param.Group.NO_DECAY, arena, floats);
            MemorySegment s = p.segment();
            assertEquals(floats * Float.BYTES, s.byteSize());
            // dropped pages read back as zeros, first and last element included
            for (long i = 0; i < floats; i += 1021) assertEquals(0f, s.getAtIndex(ValueLayout.JAVA_FLOAT, i), "element " + i);
            assertEquals(0f, s.getAtIndex(ValueLayout.JAVA_FLOAT, floats - 1));
            for (long i = 0; i < floats; i++) s.setAtIndex(ValueLayout.JAVA_FLOAT, i, i * 0.5f);
            for (long i = 0; i < floats; i += 997) assertEquals(i * 0.5f, s.getAtIndex(ValueLayout.JAVA_FLOAT, i), "element " + i);

            String mode = readOr(Path.of("/sys/kernel/mm/transparent_hugepage/enabled"), "");
            boolean linux = System.getProperty("os.name", "").toLowerCase(java.util.Locale.ROOT).contains("linux");
            if (linux && (mode.contains("[madvise]") || mode.contains("[always]"))) {
                assertEquals(0, s.address() % Madvise.HUGE_PAGE, "a large table starts on a huge-page boundary");
                // in madvise mode a mapping is eligible only when advised, so this fails without the advice
                int eligible = thpEligible(s.address() + Madvise.HUGE_PAGE);
                org.junit.jupiter.api.Assumptions.assumeTrue(eligible >= 0, "this kernel's smaps has no THPeligible line");
                assertEquals(1, eligible, "THP mode " + mode);
            }
            MemorySegment small = Param.offHeap("small", Param.Group.NO_DECAY, arena, 1000).segment();
            assertTrue(small.address() % 64 == 0);
        }
    }

    private static String readOr(Path p, String dflt) {
        try { return Files.readString(p); } catch (IOException | RuntimeException e) { return dflt; }
    }

    /** THPeligible of the mapping holding addr in /proc/self/smaps, or -1 when not found. */
    private static int thpEligible(long addr) throws IOException {
        List<String> lines = Files.readAllLines(Path.of("/proc/self/smaps"));
        boolean inside = false;
        for (String l : lines) {
            int dash = l.indexOf('-');
            if (dash > 0 && l.indexOf(' ') > dash && l.substring(0, dash).matches("[0-9a-f]+")) {
                long lo = Long.parseUnsignedLong(l.substring(0, dash), 16);
                long hi = Long.parseUnsignedLong(l.substring(dash + 1, l.indexOf(' ')), 16);
                inside = addr >= lo && addr < hi;
            } else if (inside && l.startsWith("THPeligible:")) {
                return Integer.parseInt(l.substring("THPeligible:".length()).trim());
            }
        }
        return -1;
    }
}
