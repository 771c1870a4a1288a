package dev.ultramem.infer;

import dev.ultramem.model.Model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** A batch decoder that records every call (and can sleep in each decode step, to keep requests running). */
public final class RecordingDecoder implements Model.BatchDecoder {
    /** One call: "forward" or "step", the slots and the tokens fed to each. */
    public record Call(String kind, int[] slots, int[] tokensPerSlot) {
        public int totalTokens() {
            int t = 0;
            for (int n : tokensPerSlot) t += n;
            return t;
        }

        public boolean has(int slot) {
            for (int s : slots) if (s == slot) return true;
            return false;
        }
    }

    private final Model.BatchDecoder inner;
    private final long stepSleepMillis;
    public final List<Call> calls = Collections.synchronizedList(new ArrayList<>());
    /** While set, every decode step waits for it to open: holds running requests in their slots for as long as a test needs. */
    public volatile java.util.concurrent.CountDownLatch gate;

    public RecordingDecoder(Model.BatchDecoder inner, long stepSleepMillis) {
        this.inner = inner;
        this.stepSleepMillis = stepSleepMillis;
    }

    @Override public int capacity() { return inner.capacity(); }
    @Override public int context() { return inner.context(); }
    @Override public int vocab() { return inner.vocab(); }
    @Override public long position(int slot) { return inner.position(slot); }
    @Override public void reset(int slot) { inner.reset(slot); }
    @Override public long lastParamBytes() { return inner.lastParamBytes(); }
    @Override public long lastKvBytes() { return inner.lastKvBytes(); }
    @Override public void seek(int slot, long position) { inner.seek(slot, position); }
    @Override public long kvCacheBytes() { return inner.kvCacheBytes(); }

    @Override
    public float[] forward(int[] slots, int[][] chunks, int n) {
        int[] lens = new int[n];
        for (int i = 0; i < n; i++) lens[i] = chunks[i].length;
        calls.add(new Call("forward", java.util.Arrays.copyOf(slots, n), lens));
        return inner.forward(slots, chunks, n);
    }

    @Override
    public float[] step(int[] slots, int[] tokens, int n) {
        int[] ones = new int[n];
        java.util.Arrays.fill(ones, 1);
        calls.add(new Call("step", java.util.Arrays.copyOf(slots, n), ones));
        java.util.concurrent.CountDownLatch g = gate;
        if (g != null) {
            try {
                g.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        if (stepSleepMillis > 0) {
            try {
                Thread.sleep(stepSleepMillis);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        return inner.step(slots, tokens, n);
    }
}
