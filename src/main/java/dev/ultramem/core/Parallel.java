package dev.ultramem.core;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicReference;

/**
 * One fixed pool of worker threads shared by every kernel. Work is split into contiguous chunks,
 * one parallel region per operation. The thread count is {@code availableProcessors()} unless the
 * system property {@code ultramem.threads} (or {@link #setThreads}) says otherwise.
 *
 * <p>Determinism: every kernel splits work so that each output element is computed by exactly one
 * thread in a fixed order, so results do not depend on the thread count unless a kernel documents
 * a reduction across chunks.
 */
public final class Parallel {

    @FunctionalInterface
    public interface RangeBody { void run(int start, int end); }

    @FunctionalInterface
    public interface ChunkBody { void run(int chunk, int start, int end); }

    private static volatile int threads = Integer.getInteger("ultramem.threads", Runtime.getRuntime().availableProcessors());
    private static Worker[] workers = new Worker[0];

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

    /** Runs body on exactly {@code chunks} contiguous chunks of [0, n) (some may be empty). */
    public static void forChunks(int n, int chunks, ChunkBody body) {
        if (n <= 0) return;
        if (chunks <= 1 || Thread.currentThread() instanceof WorkerThread) {
            for (int c = 0; c < Math.max(1, chunks); c++) {
                int s = (int) ((long) n * c / Math.max(1, chunks)), e = (int) ((long) n * (c + 1) / Math.max(1, chunks));
                if (s < e) body.run(c, s, e);
            }
            return;
        }
        Worker[] ws = pool(chunks - 1);
        CountDownLatch done = new CountDownLatch(chunks - 1);
        AtomicReference<Throwable> err = new AtomicReference<>();
        for (int c = 1; c < chunks; c++) {
            final int cc = c;
            final int s = (int) ((long) n * c / chunks), e = (int) ((long) n * (c + 1) / chunks);
            ws[c - 1].queue.add(() -> {
                try { if (s < e) body.run(cc, s, e); }
                catch (Throwable t) { err.compareAndSet(null, t); }
                finally { done.countDown(); }
            });
        }
        try {
            int e0 = (int) ((long) n / chunks);
            if (e0 > 0) body.run(0, 0, e0);
        } catch (Throwable t) {
            err.compareAndSet(null, t);
        }
        try { done.await(); } catch (InterruptedException ie) { Thread.currentThread().interrupt(); throw new RuntimeException(ie); }
        Throwable t = err.get();
        if (t instanceof RuntimeException re) throw re;
        if (t instanceof Error er) throw er;
        if (t != null) throw new RuntimeException(t);
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

    private static final class Worker {
        final LinkedBlockingQueue<Runnable> queue = new LinkedBlockingQueue<>();

        Worker(int id) {
            new WorkerThread(() -> {
                while (true) {
                    try { queue.take().run(); }
                    catch (InterruptedException e) { return; }
                }
            }, "ultramem-worker-" + id).start();
        }
    }
}
