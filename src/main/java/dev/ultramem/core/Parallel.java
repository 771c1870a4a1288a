package dev.ultramem.core;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * One fixed pool of worker threads shared by every kernel. Work is split into contiguous chunks,
 * one parallel region per operation. The thread count is {@code availableProcessors()} unless the
 * system property {@code ultramem.threads} (or {@link #setThreads}) says otherwise.
 *
 * <p>Determinism: every kernel splits work so that each output element is computed by exactly one
 * thread in a fixed order, so results do not depend on the thread count unless a kernel documents
 * a reduction across chunks.
 *
 * <p>Workers spin briefly after finishing before parking, so back-to-back regions (one per layer) do not
 * pay a full park/unpark wake-up each. Chunks are claimed from a shared counter by the workers and by the
 * caller, so a worker that the OS has not scheduled yet does not hold the caller up: the caller runs the
 * chunk itself. Chunk boundaries never depend on who runs a chunk. Dispatch allocates nothing. Only one
 * region runs on the pool at a time: a region started while another is running (from another thread, or
 * nested inside a body) runs its chunks serially on the calling thread, with the same boundaries.
 */
public final class Parallel {

    @FunctionalInterface
    public interface RangeBody { void run(int start, int end); }

    @FunctionalInterface
    public interface ChunkBody { void run(int chunk, int start, int end); }

    /** Spin iterations (each one {@link Thread#onSpinWait()}) before a waiting thread parks or yields. */
    private static final int SPINS = Integer.getInteger("ultramem.spins", 5_000);

    private static volatile int threads = Integer.getInteger("ultramem.threads", Runtime.getRuntime().availableProcessors());
    private static Worker[] workers = new Worker[0];
    private static final AtomicBoolean BUSY = new AtomicBoolean();
    private static final int MAX_CHUNKS = 0xFFFF;

    // The current region (only one at a time, guarded by BUSY).
    private static final AtomicLong ctl = new AtomicLong();
    private static final AtomicInteger finished = new AtomicInteger();
    private static final AtomicReference<Throwable> error = new AtomicReference<>();
    private static ChunkBody regionBody;
    private static int regionN, regionHelpers;
    private static long epoch;

    private Parallel() {}

    public static int threads() { return threads; }

    public static synchronized void setThreads(int n) {
        if (n < 1) throw new IllegalArgumentException("threads must be >= 1");
        threads = n;
    }

    /** Runs body over [0, n) split into at most {@link #threads()} contiguous chunks. */
    public static void forRange(int n, RangeBody body) {
        forRange(n, 1, body);
    }

    /** As {@link #forRange(int, RangeBody)}, but never makes chunks smaller than minChunk (small work stays on one thread). */
    public static void forRange(int n, int minChunk, RangeBody body) {
        int t = Math.min(threads, Math.max(1, n / Math.max(1, minChunk)));
        forChunks(n, t, (c, s, e) -> body.run(s, e));
    }

    private static int bound(int n, int c, int chunks) { return (int) ((long) n * c / chunks); }

    /**
     * Runs body on exactly {@code chunks} contiguous chunks of [0, n) (some may be empty), using at most
     * {@link #threads()} threads (the caller included); chunk c always covers [n·c/chunks, n·(c+1)/chunks).
     */
    public static void forChunks(int n, int chunks, ChunkBody body) {
        if (n <= 0) return;
        chunks = Math.max(1, chunks);
        int helpers = Math.min(chunks, threads) - 1; // workers besides the caller; chunks are claimed dynamically
        if (helpers <= 0 || chunks > MAX_CHUNKS || Thread.currentThread() instanceof WorkerThread
                || !BUSY.compareAndSet(false, true)) {
            serial(n, chunks, body);
            return;
        }
        Throwable err;
        try {
            Worker[] ws = pool(helpers);
            regionBody = body;
            regionN = n;
            regionHelpers = helpers;
            finished.set(0);
            error.set(null);
            long e = epoch = (epoch + 1) & 0xFFFFFFFFL; // 32 bits in ctl; wraps after 2³² regions
            ctl.set(e << 32 | chunks); // publishes body and n; next chunk = 0
            for (int w = 0; w < helpers; w++) ws[w].wake();
            // The caller claims chunks too: if a worker is slow to start, the caller takes its chunks.
            runChunks(e);
            int spins = 0;
            while (finished.get() < chunks) {
                if (spins < SPINS) { spins++; Thread.onSpinWait(); }
                else Thread.yield();
            }
            err = error.get();
        } finally {
            regionBody = null;
            error.set(null);
            BUSY.set(false);
        }
        if (err instanceof RuntimeException re) throw re;
        if (err instanceof Error er) throw er;
        if (err != null) throw new RuntimeException(err);
    }

    /**
     * Claims and runs chunks of region e until none is left. A claim is a CAS on ctl, which holds
     * (epoch, next chunk, chunk count); the region's body and n are read after seeing an unclaimed chunk of
     * epoch e, and they cannot change before that chunk is claimed and finished, so a successful CAS means
     * they belong to epoch e.
     */
    private static void runChunks(long e) {
        while (true) {
            long v = ctl.get();
            int chunks = (int) (v & 0xFFFF), next = (int) ((v >>> 16) & 0xFFFF);
            if ((v >>> 32) != e || next >= chunks) return;
            ChunkBody body = regionBody;
            int n = regionN;
            if (!ctl.compareAndSet(v, v + (1L << 16))) continue;
            try {
                int s = bound(n, next, chunks), en = bound(n, next + 1, chunks);
                if (s < en) body.run(next, s, en);
            } catch (Throwable t) {
                error.compareAndSet(null, t);
            }
            finished.incrementAndGet();
        }
    }

    private static void serial(int n, int chunks, ChunkBody body) {
        for (int c = 0; c < chunks; c++) {
            int s = bound(n, c, chunks), e = bound(n, c + 1, chunks);
            if (s < e) body.run(c, s, e);
        }
    }

    private static synchronized Worker[] pool(int n) {
        if (workers.length < n) {
            Worker[] w = java.util.Arrays.copyOf(workers, n);
            for (int i = workers.length; i < n; i++) w[i] = new Worker(i);
            workers = w;
        }
        return workers;
    }

    private static final class WorkerThread extends Thread {
        WorkerThread(Runnable r, String name) { super(r, name); setDaemon(true); }
    }

    private static final class Worker implements Runnable {
        final WorkerThread thread;
        final int id;
        volatile boolean parked;

        Worker(int id) {
            this.id = id;
            thread = new WorkerThread(this, "ultramem-worker-" + id);
            thread.start();
        }

        void wake() {
            if (parked) LockSupport.unpark(thread);
        }

        @Override public void run() {
            long seen = 0;
            while (true) {
                long e;
                int spins = 0;
                while ((e = ctl.get() >>> 32) == seen) {
                    if (spins < SPINS) { spins++; Thread.onSpinWait(); continue; }
                    parked = true;
                    if ((ctl.get() >>> 32) == seen) LockSupport.park(this);
                    parked = false;
                }
                seen = e;
                if (id < regionHelpers) runChunks(e); // a pool grown under a larger thread count stays out
            }
        }
    }
}
