package dev.ultramem.kernel;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;

/**
 * Weight matrices a decoder has declared frozen, and their B operands packed once for {@link VectorGemm}.
 *
 * <p>A training step packs each weight into the micro-kernel's panels inside every NT product; that is cheap next
 * to a training-size product, but a decode step multiplies only a few rows by each weight, so packing is most of
 * the work there. An NT product whose B is a frozen array (and whose rows exceed the small-M GEMV path) reads a
 * copy packed on first use, one per (offset, N, K) the array is used with. The copy gives bit-identical results
 * (same K blocks, same order of sums).
 *
 * <p>Keys are the arrays themselves, held weakly (arrays compare by identity; no value refers to its key), so a
 * model that is no longer used takes its copies with it. A copy is made only while all copies stay under a quarter
 * of the maximum heap and it fits in half of the heap still free; otherwise (or if the allocation fails) the product
 * packs as usual, and that (offset, N, K) is not tried again until the array thaws. Whoever freezes an array promises
 * not to change it until it thaws it.
 */
final class FrozenWeights {

    private FrozenWeights() {}

    /** A packed copy, or (data == null) a shape that did not fit. */
    private record Packed(int off, int n, int k, float[] data) {}

    private static final Map<float[], List<Packed>> FROZEN = new WeakHashMap<>();
    /** Nothing frozen: the common case (training) skips the lock. */
    private static volatile boolean empty = true;

    static synchronized void freeze(Collection<float[]> weights) {
        for (float[] w : weights) FROZEN.putIfAbsent(w, new ArrayList<>(1));
        empty = FROZEN.isEmpty();
    }

    static synchronized void thaw(Collection<float[]> weights) {
        for (float[] w : weights) FROZEN.remove(w);
        empty = FROZEN.isEmpty();
    }

    /** Bytes held by the packed copies of arrays still in use (the map drops collected arrays as it is walked). */
    static synchronized long packedBytes() {
        long bytes = 0;
        for (List<Packed> list : FROZEN.values()) bytes += bytes(list);
        empty = FROZEN.isEmpty();
        return bytes;
    }

    /** Bytes held by the packed copies of one array. */
    static synchronized long packedBytes(float[] w) {
        List<Packed> list = FROZEN.get(w);
        return list == null ? 0 : bytes(list);
    }

    private static long bytes(List<Packed> list) {
        long bytes = 0;
        for (Packed p : list) if (p.data != null) bytes += 4L * p.data.length;
        return bytes;
    }

    /** The packed form of B = b[off..] as [n, k] if b is frozen (packed now on first use), else null. */
    static float[] packed(float[] b, int off, int n, int k) {
        if (empty) return null;
        synchronized (FrozenWeights.class) {
            List<Packed> list = FROZEN.get(b);
            if (list == null) return null;
            for (Packed p : list) if (p.off == off && p.n == n && p.k == k) return p.data;
            float[] data = fits(4L * VectorGemm.packedFloats(n, k)) ? tryPack(b, off, n, k) : null;
            list.add(new Packed(off, n, k, data));
            return data;
        }
    }

    private static boolean fits(long need) {
        Runtime rt = Runtime.getRuntime();
        long free = rt.maxMemory() - (rt.totalMemory() - rt.freeMemory());
        return need / 4 <= Integer.MAX_VALUE - 8 && packedBytes() + need <= rt.maxMemory() / 4 && need <= free / 2;
    }

    private static float[] tryPack(float[] b, int off, int n, int k) {
        try {
            return VectorGemm.packB(b, off, n, k);
        } catch (OutOfMemoryError e) {
            return null;  // the product packs per call, as it would without freezing
        }
    }
}
