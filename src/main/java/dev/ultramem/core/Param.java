package dev.ultramem.core;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * A named float32 tensor of a model: a weight (trainable) or a float buffer such as the Tucker u, v
 * vectors (not trainable). Names are the official PyTorch state-dict names, so checkpoints and the
 * official weights share one namespace.
 *
 * <p>Dense weights live on the heap ({@link #data()} returns the array, kernels index it directly).
 * Value tables may exceed 2^31 elements, so they live in a {@link MemorySegment} (off-heap or
 * memory-mapped from a checkpoint) and are addressed with long offsets through {@link #segment()}.
 */
public final class Param {

    /** Optimizer parameter group (official {@code get_param_groups}). */
    public enum Group {
        /** linear weights, keys, cores, norms, embeddings: AdamW with weight decay */
        DECAY,
        /** weight decay 0 */
        NO_DECAY,
        /** value and pre-value tables: weight decay plus the value learning-rate multiplier */
        VALUE,
        /** Memory+ value table: a constant learning rate (official: 1e-3), still decayed */
        VALUE_FIXED_LR
    }

    public final String name;
    public final long[] shape;
    public final Group group;
    public final boolean trainable;

    private final float[] heap;
    private final MemorySegment data;
    private float[] heapGrad;
    private MemorySegment grad;

    private Param(String name, Group group, boolean trainable, long[] shape, float[] heap, MemorySegment data) {
        this.name = name;
        this.group = group;
        this.trainable = trainable;
        this.shape = shape.clone();
        this.heap = heap;
        this.data = data;
    }

    /** A heap tensor (fewer than 2^31 elements). */
    public static Param of(String name, Group group, int... shape) {
        long n = numel(toLong(shape));
        if (n > Integer.MAX_VALUE - 16) throw new IllegalArgumentException(name + ": too large for a heap tensor, use offHeap");
        float[] a = new float[(int) n];
        return new Param(name, group, true, toLong(shape), a, MemorySegment.ofArray(a));
    }

    /** A non-trainable float buffer (no gradient, not updated by the optimizer, saved in checkpoints). */
    public static Param buffer(String name, int... shape) {
        float[] a = new float[(int) numel(toLong(shape))];
        return new Param(name, Group.NO_DECAY, false, toLong(shape), a, MemorySegment.ofArray(a));
    }

    /** An off-heap tensor, 64-byte aligned, zero-filled; may exceed 2^31 elements. */
    public static Param offHeap(String name, Group group, Arena arena, long... shape) {
        long bytes = numel(shape) * Float.BYTES;
        MemorySegment seg = arena.allocate(bytes, 64);
        return new Param(name, group, true, shape, null, seg);
    }

    /** Wraps an existing segment (for example a read-only mapping of a checkpoint) without copying. */
    public static Param wrap(String name, Group group, MemorySegment seg, long... shape) {
        if (seg.byteSize() != numel(shape) * Float.BYTES) throw new IllegalArgumentException(name + ": segment size does not match shape");
        return new Param(name, group, true, shape, null, seg);
    }

    public boolean isHeap() { return heap != null; }

    /** The heap array of a dense tensor. */
    public float[] data() {
        if (heap == null) throw new IllegalStateException(name + " is not a heap tensor");
        return heap;
    }

    /** The storage as a segment (heap-backed or off-heap). */
    public MemorySegment segment() { return data; }

    /** Gradient of a heap tensor, allocated on first use. */
    public float[] grad() {
        if (heap == null) throw new IllegalStateException(name + " is not a heap tensor");
        if (heapGrad == null) {
            heapGrad = new float[heap.length];
            grad = MemorySegment.ofArray(heapGrad);
        }
        return heapGrad;
    }

    /** Gradient as a segment, allocated (zeroed) on first use; off-heap for off-heap tensors. */
    public MemorySegment gradSegment() {
        if (grad == null) {
            if (heap != null) grad();
            else grad = Arena.ofAuto().allocate(data.byteSize(), 64);
        }
        return grad;
    }

    public boolean hasGrad() { return grad != null; }

    public void zeroGrad() {
        if (heapGrad != null) Arrays.fill(heapGrad, 0f);
        else if (grad != null) grad.fill((byte) 0);
    }

    public long numel() { return numel(shape); }

    public int dim(int i) { return (int) shape[i]; }

    public float get(long i) { return data.getAtIndex(ValueLayout.JAVA_FLOAT, i); }

    public void set(long i, float v) { data.setAtIndex(ValueLayout.JAVA_FLOAT, i, v); }

    public String shapeString() { return Arrays.toString(shape); }

    @Override public String toString() { return name + shapeString(); }

    public static long numel(long[] shape) {
        long n = 1;
        for (long s : shape) n = Math.multiplyExact(n, s);
        return n;
    }

    private static long[] toLong(int[] s) {
        long[] l = new long[s.length];
        for (int i = 0; i < s.length; i++) {
            if (s[i] < 0) throw new IllegalArgumentException("negative dimension " + s[i]);
            l[i] = s[i];
        }
        return l;
    }
}
