package dev.ultramem.core;

import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;

import static org.junit.jupiter.api.Assertions.*;

class ParallelTest {

    /** Runs r with the pool at n threads, restoring the previous count. */
    static void withThreads(int n, Runnable r) {
        int saved = Parallel.threads();
        Parallel.setThreads(n);
        try { r.run(); } finally { Parallel.setThreads(saved); }
    }

    @Test
    void chunksCoverTheRangeExactlyOnceWithFixedBoundaries() {
        withThreads(2, () -> {
            for (int n : new int[] {1, 2, 3, 17, 1000}) {
                for (int chunks : new int[] {1, 2, 3, 5}) {
                    AtomicIntegerArray hits = new AtomicIntegerArray(n);
                    int[] start = new int[chunks], end = new int[chunks];
                    java.util.Arrays.fill(start, -1);
                    Parallel.forChunks(n, chunks, (c, s, e) -> {
                        start[c] = s; end[c] = e;
                        for (int i = s; i < e; i++) hits.incrementAndGet(i);
                    });
                    for (int i = 0; i < n; i++) assertEquals(1, hits.get(i), "index " + i + " n=" + n + " chunks=" + chunks);
                    for (int c = 0; c < chunks; c++) {
                        int s = (int) ((long) n * c / chunks), e = (int) ((long) n * (c + 1) / chunks);
                        if (s < e) { assertEquals(s, start[c]); assertEquals(e, end[c]); }
                        else assertEquals(-1, start[c], "empty chunks are not run");
                    }
                }
            }
        });
    }

    @Test
    void manyBackToBackRegionsAllComplete() {
        withThreads(2, () -> {
            AtomicInteger sum = new AtomicInteger();
            for (int r = 0; r < 20_000; r++) Parallel.forRange(4, (s, e) -> sum.addAndGet(e - s));
            assertEquals(80_000, sum.get());
        });
    }

    @Test
    void exceptionsFromAnyChunkReachTheCallerAndThePoolStaysUsable() {
        withThreads(2, () -> {
            IllegalStateException ex = assertThrows(IllegalStateException.class,
                    () -> Parallel.forChunks(10, 2, (c, s, e) -> { if (c == 1) throw new IllegalStateException("chunk 1"); }));
            assertEquals("chunk 1", ex.getMessage());
            assertThrows(ArithmeticException.class,
                    () -> Parallel.forChunks(10, 2, (c, s, e) -> { if (c == 0) throw new ArithmeticException("chunk 0"); }));
            AtomicInteger n = new AtomicInteger();
            Parallel.forChunks(10, 2, (c, s, e) -> n.addAndGet(e - s));
            assertEquals(10, n.get());
        });
    }

    @Test
    void nestedAndConcurrentRegionsRunSeriallyWithoutDeadlock() throws Exception {
        withThreads(2, () -> {
            AtomicInteger inner = new AtomicInteger();
            Parallel.forChunks(4, 2, (c, s, e) -> Parallel.forChunks(6, 3, (c2, s2, e2) -> inner.addAndGet(e2 - s2)));
            assertEquals(12, inner.get());
        });
        int saved = Parallel.threads();
        Parallel.setThreads(2);
        try {
            AtomicInteger total = new AtomicInteger();
            Thread[] ts = new Thread[3];
            for (int t = 0; t < ts.length; t++) {
                ts[t] = new Thread(() -> {
                    for (int r = 0; r < 2000; r++) Parallel.forChunks(8, 2, (c, s, e) -> total.addAndGet(e - s));
                });
                ts[t].start();
            }
            for (Thread t : ts) t.join(60_000);
            assertEquals(3 * 2000 * 8, total.get());
        } finally {
            Parallel.setThreads(saved);
        }
    }

    @Test
    void neverUsesMoreThreadsThanConfigured() {
        for (int t : new int[] {1, 2}) {
            withThreads(t, () -> {
                java.util.Set<Thread> seen = java.util.concurrent.ConcurrentHashMap.newKeySet();
                for (int r = 0; r < 200; r++)
                    Parallel.forChunks(64, 8, (c, s, e) -> { seen.add(Thread.currentThread()); busy(2000); });
                assertTrue(seen.size() <= Parallel.threads(), seen.size() + " threads for " + Parallel.threads());
                if (Parallel.threads() == 1) assertEquals(java.util.Set.of(Thread.currentThread()), seen);
            });
        }
    }

    private static double sink;

    private static void busy(int n) {
        double x = 0;
        for (int i = 0; i < n; i++) x += Math.sqrt(i);
        sink += x;
    }

    @Test
    void rejectsBadThreadCount() {
        assertThrows(IllegalArgumentException.class, () -> Parallel.setThreads(0));
    }
}
