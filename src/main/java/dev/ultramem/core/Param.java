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

    /**
     * How an off-heap tensor holds its elements. BF16 halves the bytes a decode reads from a value table;
     * it is for inference only (read-only, no gradient: training keeps float32 master weights).
     */
    public enum Storage { F32, BF16 }

    public final String name;
    public final long[] shape;
    public final Group group;
    public final boolean trainable;

    private final float[] heap;
    /** Off-heap storage; allocated on first use so a table that will be mapped from a file is never zero-filled. */
    private volatile MemorySegment data;
    private final Arena arena;
    private boolean mapped;
    private volatile Storage storage = Storage.F32;
    private boolean deferInit;
    private DeferredNormal deferred;
    private float[] heapGrad;
    private MemorySegment grad;

    private Param(String name, Group group, boolean trainable, long[] shape, float[] heap, MemorySegment data, Arena arena) {
        this.name = name;
        this.group = group;
        this.trainable = trainable;
        this.shape = shape.clone();
        this.heap = heap;
        this.data = data;
        this.arena = arena;
    }

    /** A heap tensor (fewer than 2^31 elements). */
    public static Param of(String name, Group group, int... shape) {
        long n = numel(toLong(shape));
        if (n > Integer.MAX_VALUE - 16) throw new IllegalArgumentException(name + ": too large for a heap tensor, use offHeap");
        float[] a = new float[(int) n];
        return new Param(name, group, true, toLong(shape), a, MemorySegment.ofArray(a), null);
    }

    /** A non-trainable float buffer (no gradient, not updated by the optimizer, saved in checkpoints). */
    public static Param buffer(String name, int... shape) {
        float[] a = new float[(int) numel(toLong(shape))];
        return new Param(name, Group.NO_DECAY, false, toLong(shape), a, MemorySegment.ofArray(a), null);
    }

    /**
     * An off-heap tensor, 64-byte aligned (large ones on huge pages, {@link Madvise#allocate}), zero-filled; may exceed 2^31 elements. The memory is
     * allocated on first access, so a tensor that is then {@linkplain #mapReadOnly mapped} from a
     * file never occupies RAM of its own.
     */
    public static Param offHeap(String name, Group group, Arena arena, long... shape) {
        numel(shape); // overflow check
        return new Param(name, group, true, shape, null, null, arena);
    }

    /** Wraps an existing segment (for example a read-only mapping of a checkpoint) without copying. */
    public static Param wrap(String name, Group group, MemorySegment seg, long... shape) {
        if (seg.byteSize() != numel(shape) * Float.BYTES) throw new IllegalArgumentException(name + ": segment size does not match shape");
        return new Param(name, group, true, shape, null, seg, null);
    }

    /**
     * Serves this off-heap tensor from a read-only segment (a memory-mapped checkpoint region in
     * native float order) instead of its own memory: the OS pages rows in as they are read, so a
     * table may be larger than RAM. The tensor can no longer be trained.
     */
    public void mapReadOnly(MemorySegment seg) { mapReadOnly(seg, Storage.F32); }

    /** As {@link #mapReadOnly(MemorySegment)}, for a segment of elements stored as {@code s}. */
    public void mapReadOnly(MemorySegment seg, Storage s) {
        if (heap != null) throw new IllegalStateException(name + ": only off-heap tensors can be mapped");
        int eb = bytesOf(s);
        if (seg.byteSize() != numel() * eb) throw new IllegalArgumentException(name + ": mapped segment size does not match shape");
        if (seg.address() % eb != 0) throw new IllegalArgumentException(name + ": mapped data is not " + eb + "-byte aligned");
        synchronized (this) {
            data = seg;
            storage = s;
            mapped = true;
        }
    }

    /**
     * Stores this off-heap tensor as bfloat16 from now on: the values are rounded to nearest even (a
     * tensor never touched is simply allocated as bf16). The tensor becomes read-only.
     */
    public synchronized void storeAsBf16() {
        if (heap != null) throw new IllegalStateException(name + ": only off-heap tensors (value tables) can be stored as bf16");
        if (storage == Storage.BF16) return;
        MemorySegment old = data;
        storage = Storage.BF16;
        grad = null;
        if (old == null) return;
        MemorySegment b = Madvise.allocate(arena != null ? arena : Arena.ofAuto(), numel() * 2);
        Bf16.round(old, b, numel());
        data = b;
        mapped = false;
    }

    public Storage storage() { return storage; }

    public boolean isBf16() { return storage == Storage.BF16; }

    /** Bytes per element of the storage: 4, or 2 for bf16. */
    public int elementBytes() { return bytesOf(storage); }

    private static int bytesOf(Storage s) { return s == Storage.BF16 ? 2 : Float.BYTES; }

    /**
     * Marks an off-heap tensor (a value table) whose initialisation is to be recorded, not run:
     * {@link #initNormal} then keeps a {@link DeferredNormal} for a checkpoint writer to replay, and the
     * tensor never gets memory of its own (reading it is an error until it is mapped from a file).
     */
    public void deferInit() {
        if (heap != null) throw new IllegalStateException(name + ": only off-heap tensors can defer their initialisation");
        if (data != null) throw new IllegalStateException(name + ": already has memory");
        deferInit = true;
    }

    /** The initialisation recorded under {@link #deferInit}, or null. */
    public DeferredNormal deferredInit() { return deferred; }

    /**
     * Value-table initialisation: every element N(0, std²), drawn from rng in order. Under
     * {@link #deferInit} the draws are recorded and rng moves past them instead (lazily, see
     * {@link Rng#skipGaussians}), so both ways leave rng in the same state.
     */
    public void initNormal(Rng rng, double std) {
        long n = numel();
        if (deferInit && data == null) {
            deferred = new DeferredNormal(rng.copy(), n, std);
            rng.skipGaussians(n);
        } else {
            rng.fillNormal(segment(), 0, n, std);
        }
    }

    /** True when the storage is a read-only mapping of a file. */
    public boolean isMapped() { return mapped; }

    public boolean isHeap() { return heap != null; }

    /** The heap array of a dense tensor. */
    public float[] data() {
        if (heap == null) throw new IllegalStateException(name + " is not a heap tensor");
        return heap;
    }

    /** The storage as a segment (heap-backed or off-heap). */
    public MemorySegment segment() {
        MemorySegment d = data;
        if (d == null) {
            synchronized (this) {
                if (deferInit && data == null)
                    throw new IllegalStateException(name + ": initialisation deferred to a checkpoint write, the tensor has no memory");
                if (data == null) data = Madvise.allocate(arena, numel() * elementBytes());
                d = data;
            }
        }
        return d;
    }

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
        if (isBf16()) throw new IllegalStateException(name + ": a bf16 table is read-only (inference); train from float32 tables");
        if (grad == null) {
            if (heap != null) grad();
            else grad = Madvise.allocate(Arena.ofAuto(), numel() * Float.BYTES);
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

    public float get(long i) {
        return isBf16() ? Bf16.toFloat(segment().getAtIndex(ValueLayout.JAVA_SHORT, i)) : segment().getAtIndex(ValueLayout.JAVA_FLOAT, i);
    }

    public void set(long i, float v) {
        if (isBf16()) throw new IllegalStateException(name + ": a bf16 table is read-only");
        segment().setAtIndex(ValueLayout.JAVA_FLOAT, i, v);
    }

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
