package dev.ultramem.infer;

import dev.ultramem.core.Parallel;
import dev.ultramem.model.Model;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Continuous batching over a {@link Model.BatchDecoder}: one scheduler thread owns the decoder and
 * loops: admit waiting requests into free slots, prefill a bounded number of prompt tokens (so a
 * new prompt delays the running sequences by about one step, not by its whole length), then advance
 * every decoding slot by one token in a single {@code step} call, sample each slot with its own
 * seeded {@link Sampler}, apply its stop strings and max_tokens, and retire the finished ones. A
 * cancelled request (its client went away) leaves its slot at the start of the next iteration.
 *
 * <p>Requests talk to their caller through a queue of {@link Event}s, so the scheduler never waits
 * for a client: a slow reader only lets its own events pile up (at most max_tokens of them).
 */
public final class BatchScheduler implements AutoCloseable {

    /** What a request asks for. An empty stop list means none; temperature 0 is greedy. */
    public record Params(int maxTokens, double temperature, int topK, double topP, long seed, List<String> stop) {
        public Params {
            if (maxTokens < 1) throw new IllegalArgumentException("max_tokens must be >= 1, got " + maxTokens);
            stop = List.copyOf(stop);
        }
    }

    /**
     * One message to a request's caller: generated text, or the end (finish is "stop" or "length"), or
     * a failure on the server side (error is set; nothing follows).
     */
    public record Event(String text, String finish, String error) {
        static Event text(String t) { return new Event(t, null, null); }
        public boolean last() { return finish != null || error != null; }
    }

    /** Why a request was not accepted. */
    public static final class Rejected extends Exception {
        public final boolean shuttingDown;

        Rejected(String message, boolean shuttingDown) {
            super(message);
            this.shuttingDown = shuttingDown;
        }
    }

    /** Observes the scheduler for metrics; called on the scheduler thread, must return at once. */
    public interface Listener {
        /** Time from submission to the first sampled token. */
        default void firstToken(long nanos) {}

        /** A decode step over {@code batch} slots took {@code nanos}. */
        default void decodeStep(int batch, long nanos) {}

        /** A request ended: "stop", "length", "cancelled" or "error". */
        default void finished(String reason) {}
    }

    /** A submitted completion: its caller reads {@link #next} until an event that is {@link Event#last()}. */
    public static final class Request {
        private final int[] prompt;
        private final Params params;
        private final Sampler sampler;
        private final TextCodec.Decoder text;
        private final StopMatcher stops;
        private final BlockingQueue<Event> events = new LinkedBlockingQueue<>();
        private final long submitted = System.nanoTime();
        private volatile boolean cancelled;
        private volatile int generated;
        private int fed;       // prompt tokens fed so far
        private int pending;   // the last sampled token, fed at the next step
        private long order;    // admission order: prefill is first come, first served

        private Request(int[] prompt, Params p, TextCodec codec) {
            this.prompt = prompt;
            this.params = p;
            this.sampler = new Sampler(p.temperature(), p.topK(), p.topP(), p.seed());
            this.text = codec.newDecoder();
            this.stops = new StopMatcher(p.stop());
        }

        /** The next event, waiting up to the timeout; null if none came. */
        public Event next(long timeout, TimeUnit unit) throws InterruptedException { return events.poll(timeout, unit); }

        /** Moves the events that are ready, without waiting, into the list. */
        public void drainTo(List<Event> out) { events.drainTo(out); }

        /** The caller is gone: the scheduler frees the slot (or drops the request from the queue) at its next iteration. */
        public void cancel() { cancelled = true; }

        public int promptTokens() { return prompt.length; }

        public int completionTokens() { return generated; }
    }

    /** Vocabulary entries sampled per pool chunk at least: below that, a chunk costs less than its dispatch. */
    private static final int SAMPLE_CHUNK = 8192;

    private final Model.BatchDecoder dec;
    private final TextCodec codec;
    private final int queueLimit, prefillBudget, V;
    private final Listener listener;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition work = lock.newCondition(), idle = lock.newCondition();
    private final ArrayDeque<Request> waiting = new ArrayDeque<>();
    private final Request[] slots;
    private final Thread thread;
    private final AtomicLong tokens = new AtomicLong();
    private volatile int active;
    private boolean draining, closing;
    private long admitted;
    // reused per iteration
    private final int[] ids, toks;
    private final int[][] chunks;
    private final Request[] batch;

    /**
     * @param queueLimit    requests that may wait for a slot beyond the decoder's capacity
     * @param prefillBudget prompt tokens prefilled per iteration (across all new prompts)
     */
    public BatchScheduler(Model.BatchDecoder dec, TextCodec codec, int queueLimit, int prefillBudget, Listener listener) {
        if (queueLimit < 0) throw new IllegalArgumentException("queue limit must be >= 0, got " + queueLimit);
        if (prefillBudget < 1) throw new IllegalArgumentException("prefill budget must be >= 1, got " + prefillBudget);
        this.dec = dec;
        this.codec = codec;
        this.queueLimit = queueLimit;
        this.prefillBudget = prefillBudget;
        this.listener = listener == null ? new Listener() {} : listener;
        this.V = dec.vocab();
        int c = dec.capacity();
        slots = new Request[c];
        ids = new int[c];
        toks = new int[c];
        chunks = new int[c][];
        batch = new Request[c];
        thread = new Thread(this::loop, "batch-scheduler");
        thread.setDaemon(true);
        thread.start();
    }

    public int capacity() { return slots.length; }

    /** Requests in a slot (prefilling or decoding). */
    public int active() { return active; }

    /** Requests waiting for a slot. */
    public int queued() {
        lock.lock();
        try {
            return waiting.size();
        } finally {
            lock.unlock();
        }
    }

    /** Tokens sampled since the start. */
    public long tokensGenerated() { return tokens.get(); }

    /**
     * Queues a completion of prompt (non-empty token ids below the vocabulary size; a prompt longer
     * than the context window is fed through the sliding window).
     *
     * @throws Rejected when capacity + queue limit requests are already in, or after {@link #drain()}
     */
    public Request submit(int[] prompt, Params p) throws Rejected {
        if (prompt.length == 0) throw new IllegalArgumentException("empty prompt");
        for (int t : prompt) if (t < 0 || t >= V) throw new IllegalArgumentException("token id " + t + " outside [0, " + V + ")");
        Request r = new Request(prompt.clone(), p, codec);
        lock.lock();
        try {
            if (draining || closing) throw new Rejected("the server is shutting down", true);
            if (waiting.size() + active >= slots.length + queueLimit)
                throw new Rejected("all " + slots.length + " slots are busy and " + queueLimit + " requests wait already", false);
            waiting.add(r);
            work.signal();
        } finally {
            lock.unlock();
        }
        return r;
    }

    /** Stops admitting: later submissions are rejected; the queued and running requests go on. */
    public void drain() {
        lock.lock();
        try {
            draining = true;
        } finally {
            lock.unlock();
        }
    }

    /** Waits until no request waits or runs; false if the timeout came first. */
    public boolean awaitIdle(long timeout, TimeUnit unit) throws InterruptedException {
        long left = unit.toNanos(timeout);
        lock.lock();
        try {
            while (!waiting.isEmpty() || active > 0) {
                if (left <= 0) return false;
                left = idle.awaitNanos(left);
            }
            return true;
        } finally {
            lock.unlock();
        }
    }

    /** Stops the scheduler thread; requests still in get an error event. */
    @Override
    public void close() {
        lock.lock();
        try {
            closing = true;
            work.signalAll();
        } finally {
            lock.unlock();
        }
        try {
            thread.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void loop() {
        while (true) {
            lock.lock();
            try {
                while (!closing && waiting.isEmpty() && active == 0) work.awaitUninterruptibly();
                if (closing) break;
                admit();
            } finally {
                lock.unlock();
            }
            for (int s = 0; s < slots.length; s++)
                if (slots[s] != null && slots[s].cancelled) retire(s, null, "cancelled", null);
            try {
                prefill();
                decode();
            } catch (RuntimeException e) {
                // a fault in the model must not take the server down: fail the running requests, keep serving
                String msg = "internal error while decoding: " + e;
                for (int s = 0; s < slots.length; s++) if (slots[s] != null) retire(s, null, "error", msg);
            }
            if (active == 0) signalIdle();
        }
        String msg = "the server stopped before this completion finished";
        for (int s = 0; s < slots.length; s++) if (slots[s] != null) retire(s, null, "error", msg);
        lock.lock();
        try {
            for (Request r : waiting) fail(r, msg);
            waiting.clear();
            idle.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Under the lock: waiting requests into free slots. */
    private void admit() {
        for (int s = 0; s < slots.length && !waiting.isEmpty(); s++) {
            if (slots[s] != null) continue;
            Request r = waiting.poll();
            if (r.cancelled) {
                listener.finished("cancelled");
                s--;
                continue;
            }
            dec.reset(s);
            r.order = admitted++;
            slots[s] = r;
            active++;
        }
    }

    private void signalIdle() {
        lock.lock();
        try {
            if (waiting.isEmpty()) idle.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Feeds up to prefillBudget prompt tokens, oldest admission first; a completed prompt samples its first token. */
    private void prefill() {
        int n = 0, budget = prefillBudget;
        while (budget > 0) {
            int best = -1;
            for (int s = 0; s < slots.length; s++) {
                Request r = slots[s];
                if (r == null || r.fed == r.prompt.length || contains(ids, n, s)) continue;
                if (best < 0 || r.order < slots[best].order) best = s;
            }
            if (best < 0) break;
            Request r = slots[best];
            int len = Math.min(budget, r.prompt.length - r.fed);
            ids[n] = best;
            chunks[n] = Arrays.copyOfRange(r.prompt, r.fed, r.fed + len);
            batch[n++] = r;
            budget -= len;
        }
        if (n == 0) return;
        float[] logits = dec.forward(ids, chunks, n);
        for (int i = 0; i < n; i++) {
            Request r = batch[i];
            r.fed += chunks[i].length;
            if (r.fed == r.prompt.length) {
                listener.firstToken(System.nanoTime() - r.submitted);
                sampled(ids[i], r, r.sampler.sample(logits, i * V, V));
            }
        }
    }

    /** One token for every slot whose prompt is in. */
    private void decode() {
        int n = 0;
        for (int s = 0; s < slots.length; s++) {
            Request r = slots[s];
            if (r == null || r.fed < r.prompt.length) continue;
            ids[n] = s;
            toks[n] = r.pending;
            batch[n++] = r;
        }
        if (n == 0) return;
        long t0 = System.nanoTime();
        float[] logits = dec.step(ids, toks, n);
        listener.decodeStep(n, System.nanoTime() - t0);
        // each slot has its own sampler and seed, so drawing them on the pool gives the same tokens as in turn
        Parallel.forRange(n, Math.max(1, SAMPLE_CHUNK / V), (s, e) -> {
            for (int i = s; i < e; i++) toks[i] = batch[i].sampler.sample(logits, i * V, V);
        });
        for (int i = 0; i < n; i++) sampled(ids[i], batch[i], toks[i]);
    }

    private void sampled(int slot, Request r, int token) {
        tokens.incrementAndGet();
        r.generated++;
        String out = r.stops.push(r.text.append(token));
        if (!r.stops.stopped() && r.generated >= r.params.maxTokens()) {
            out += r.stops.push(r.text.finish());
            if (!r.stops.stopped()) out += r.stops.flush();
        }
        if (r.stops.stopped()) retire(slot, out, "stop", null);
        else if (r.generated >= r.params.maxTokens()) retire(slot, out, "length", null);
        else {
            if (!out.isEmpty()) r.events.add(Event.text(out));
            r.pending = token;
        }
    }

    private void retire(int slot, String text, String reason, String error) {
        Request r = slots[slot];
        slots[slot] = null;
        active--;
        if (text != null && !text.isEmpty()) r.events.add(Event.text(text));
        if (error != null) r.events.add(new Event(null, null, error));
        else if (!reason.equals("cancelled")) r.events.add(new Event(null, reason, null));
        listener.finished(reason);
    }

    private void fail(Request r, String msg) {
        r.events.add(new Event(null, null, msg));
        listener.finished("error");
    }

    private static boolean contains(int[] a, int n, int v) {
        for (int i = 0; i < n; i++) if (a[i] == v) return true;
        return false;
    }
}
