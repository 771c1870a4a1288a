package dev.ultramem.core;

import java.util.concurrent.atomic.AtomicBoolean;
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
 * <p>Workers spin briefly after finishing a chunk before parking, so back-to-back regions (one per
 * layer) do not pay a full park/unpark wake-up each. Dispatch allocates nothing. Only one region runs on
 * the pool at a time: a region started while another is running (from another thread, or nested inside
 * a body) runs its chunks serially on the calling thread, which keeps the same chunk boundaries and
 * therefore the same results.
 */
public final class Parallel {

    @FunctionalInterface
    public interface RangeBody { void run(int start, int end); }

    @FunctionalInterface
    public interface ChunkBody { void run(int chunk, int start, int end); }

    /** Spin iterations (each one {@link Thread#onSpinWait()}) before a waiting thread parks or yields. */
    private static final int SPINS = Integer.getInteger("ultramem.spins", 20_000);

    private static volatile int threads = Integer.getInteger("ultramem.threads", Runtime.getRuntime().availableProcessors());
    private static Worker[] workers = new Worker[0];
    private static final AtomicBoolean BUSY = new AtomicBoolean();
    private static long seq;

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

    /** Runs body on exactly {@code chunks} contiguous chunks of [0, n) (some may be empty). */
    public static void forChunks(int n, int chunks, ChunkBody body) {
        if (n <= 0) return;
        chunks = Math.max(1, chunks);
        if (chunks == 1 || Thread.currentThread() instanceof WorkerThread || !BUSY.compareAndSet(false, true)) {
            serial(n, chunks, body);
            return;
        }
        Worker[] ws;
        long s;
        try {
            ws = pool(chunks - 1);
            s = ++seq;
            for (int c = 1; c < chunks; c++) ws[c - 1].post(s, body, c, bound(n, c, chunks), bound(n, c + 1, chunks));
        } catch (Throwable t) {
            BUSY.set(false);
            throw t;
        }
        Throwable err = null;
        try {
            int e0 = bound(n, 1, chunks);
            if (e0 > 0) body.run(0, 0, e0);
        } catch (Throwable t) {
            err = t;
        }
        for (int c = 1; c < chunks; c++) {
            Worker w = ws[c - 1];
            w.await(s);
            if (err == null && w.error != null) err = w.error;
            w.error = null;
            w.body = null;
        }
        BUSY.set(false);
        if (err instanceof RuntimeException re) throw re;
        if (err instanceof Error er) throw er;
        if (err != null) throw new RuntimeException(err);
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
        // Written by the caller before the volatile write of posted, read by the worker after reading it.
        ChunkBody body;
        int chunk, start, end;
        Throwable error;
        volatile long posted, done;
        volatile boolean parked;

        Worker(int id) {
            thread = new WorkerThread(this, "ultramem-worker-" + id);
            thread.start();
        }

        void post(long s, ChunkBody b, int c, int st, int en) {
            body = b; chunk = c; start = st; end = en; error = null;
            posted = s;
            if (parked) LockSupport.unpark(thread);
        }

        void await(long s) {
            int spins = 0;
            while (done != s) {
                if (spins < SPINS) { spins++; Thread.onSpinWait(); }
                else Thread.yield();
            }
        }

        @Override public void run() {
            long seen = 0;
            while (true) {
                long s;
                int spins = 0;
                while ((s = posted) == seen) {
                    if (spins < SPINS) { spins++; Thread.onSpinWait(); continue; }
                    parked = true;
                    if (posted == seen) LockSupport.park(this);
                    parked = false;
                }
                seen = s;
                try {
                    if (start < end) body.run(chunk, start, end);
                } catch (Throwable t) {
                    error = t;
                }
                done = s;
            }
        }
    }
}
