package dev.ultramem.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ultramem.core.Param;
import dev.ultramem.core.Parallel;
import dev.ultramem.core.UserError;
import dev.ultramem.layer.Attention;
import dev.ultramem.memory.MemoryPlus;
import dev.ultramem.memory.MemoryStats;
import dev.ultramem.memory.Pkm;
import dev.ultramem.memory.UltraMemV1;
import dev.ultramem.memory.UltraMemV2;
import dev.ultramem.memory.ValueLookup;

import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.ToLongFunction;

/**
 * The memory a model needs, computed from its config alone before anything is allocated, with
 * saturating arithmetic (a product that does not fit a long is {@link Long#MAX_VALUE}). It lists
 * the arrays whose size depends on the config, as the layers allocate them, in named parts:
 * <ul>
 *   <li>{@link Part#WEIGHTS}: the heap {@code float[]} tensors (dense weights, norms, Tucker u, v);</li>
 *   <li>{@link Part#TABLES}: the off-heap value and pre-value tables;</li>
 *   <li>{@link Part#OPTIMIZER}: AdamW's two moments of every trainable tensor (heap or off-heap like it);</li>
 *   <li>{@link Part#GRADIENTS}: one gradient of every trainable tensor (tables: off-heap, full size);</li>
 *   <li>{@link Part#ACTIVATIONS}: what the model and its layers keep for one forward and backward over
 *       batch_size × seq_len tokens (evaluation allocates the same; generation one token);</li>
 *   <li>{@link Part#BUFFERS}: batch-independent working arrays (RoPE tables, normalised key copies,
 *       shuffle indices, row-usage counts, the loss history);</li>
 *   <li>{@link Part#KV_CACHE}: the decoder's key/value cache of one sequence at max_seq_len.</li>
 * </ul>
 * A {@link Use} says which parts count and whether the tables are memory-mapped from a checkpoint
 * (inference), in which case they may exceed RAM and are not counted against it.
 *
 * <p>Two checks: {@link #checkLimits()} refuses a single heap array above {@link #MAX_ARRAY} elements
 * and a table whose rows do not fit the engine's 32-bit row indices; {@link #requireFits()} refuses a
 * plan whose heap parts exceed {@code -Xmx} or whose off-heap parts exceed the direct-memory limit
 * or physical RAM. Both name the config key that dominates (the one whose reset to its default
 * shrinks the need the most).
 */
public final class MemoryPlan {

    /** Largest heap array the JVM allocates, in elements. */
    public static final long MAX_ARRAY = Integer.MAX_VALUE - 16;
    /** Value-table rows and virtual entries are addressed with ints. */
    public static final long MAX_INDEX = Integer.MAX_VALUE;
    /** Tokens info's measured forward processes at once (its largest batch). */
    public static final int COUNT_TOKENS = 512;

    public enum Part {
        WEIGHTS("weights"), TABLES("value tables"), OPTIMIZER("optimizer state"), GRADIENTS("gradients"),
        ACTIVATIONS("activations"), BUFFERS("buffers"), KV_CACHE("KV cache");

        public final String label;

        Part(String label) { this.label = label; }
    }

    /** What the memory is for: the parts that count, whether tables come mapped from a checkpoint, the tokens of one forward. */
    public enum Use {
        /** The model alone (weights, tables, buffers, KV cache): the limits every built model must respect. */
        MODEL("the model", false, false, EnumSet.of(Part.WEIGHTS, Part.TABLES, Part.BUFFERS, Part.KV_CACHE)),
        /** train, resume, the default job: a step at batch_size × seq_len, and the generated sample at the end. */
        TRAIN("training", false, true, EnumSet.allOf(Part.class)),
        /** eval: forward passes at batch_size × seq_len on a checkpoint, tables mapped. */
        EVAL("evaluation", true, true, EnumSet.of(Part.WEIGHTS, Part.TABLES, Part.ACTIVATIONS, Part.BUFFERS)),
        /** generate: one token at a time with a KV cache at max_seq_len, tables mapped. */
        GENERATE("generation", true, true, EnumSet.of(Part.WEIGHTS, Part.TABLES, Part.ACTIVATIONS, Part.BUFFERS, Part.KV_CACHE)),
        /** import: weights copied in and a fresh optimizer state written. */
        IMPORT("import", false, false, EnumSet.of(Part.WEIGHTS, Part.TABLES, Part.OPTIMIZER, Part.BUFFERS)),
        /** init: the model with its tables made while written to the checkpoint, never in memory (as if mapped). */
        INIT("init", true, false, EnumSet.of(Part.WEIGHTS, Part.TABLES, Part.BUFFERS)),
        /** info on a config: an initialised model and forwards of up to {@link #COUNT_TOKENS} tokens. */
        COUNT("counting", false, false, EnumSet.of(Part.WEIGHTS, Part.TABLES, Part.ACTIVATIONS, Part.BUFFERS)),
        /** info on a checkpoint: as COUNT with the tables mapped. */
        COUNT_CHECKPOINT("counting", true, true, EnumSet.of(Part.WEIGHTS, Part.TABLES, Part.ACTIVATIONS, Part.BUFFERS));

        public final String label;
        public final boolean mappedTables;
        final boolean history;
        final Set<Part> parts;

        Use(String label, boolean mappedTables, boolean history, Set<Part> parts) {
            this.label = label;
            this.mappedTables = mappedTables;
            this.history = history;
            this.parts = parts;
        }
    }

    /**
     * The training settings a plan reads ({@code train.TrainConfig} implements it): the tokens of one
     * step and the planned steps. To name the key that dominates a need, the plan also resets each of
     * its integer keys (read as a config tree) to the value in {@link #defaults()}.
     */
    public interface Training {
        int batchSize();

        int seqLen();

        int steps();

        /** The same kind of settings with every key at its default. */
        Training defaults();
    }

    /** Which module a tensor belongs to (ModelCosts' dense part is everything outside FFN slots, memory layers and shared tables). */
    public enum Owner { DENSE, FFN, MEMORY, SHARED }

    /** {@code count} tensors of {@code numel} elements each (one per layer, or per expert). */
    public record Tensor(String name, Param.Group group, boolean trainable, boolean heap, Owner owner, long count, long numel) {
        public long total() { return mul(count, numel); }
    }

    /** {@code count} arrays of {@code elements} elements of {@code elementBytes} bytes each, on the heap or off it. */
    public record Block(Part part, String what, boolean heap, long count, long elements, int elementBytes) {
        public long bytes() { return mul(count, elements, elementBytes); }
    }

    /** A size the engine keeps in an int: {@code value} must not exceed {@code max}. */
    private record Limit(String what, long value, long max, String unit) {}

    /** Derived sizes of the memory layers, as their constructors compute them. */
    record MemoryShape(int layers, long keyNum, long stage1, long querySlots, long layerRows, long tableRows, long outWidth) {}

    private final Use use;
    private final ModelConfig model;
    private final Training train;
    private final int threads;
    private final List<Tensor> tensors = new ArrayList<>();
    private final List<Block> blocks = new ArrayList<>();
    private final List<Limit> limits = new ArrayList<>();
    private long indexEntries;

    private MemoryPlan(Use use, ModelConfig c, Training t, int threads) {
        this.use = use;
        this.model = c;
        this.train = t;
        this.threads = Math.max(1, threads);
        MemoryShape ms = memoryShape(c);
        weights(c, ms);
        buffers(c, ms);
        // the history grows with the steps run (Trainer), so a long planned schedule costs nothing up front
        if (use.history && t != null) heap(Part.BUFFERS, "loss history, first 1024 steps", 1, Math.min(1024, Math.max(16, t.steps())) + 1, 4);
        if (use.parts.contains(Part.ACTIVATIONS)) {
            long[] bt = activationShape(use, c, t);
            activations(c, ms, bt[0], bt[1]);
        }
        if (use.parts.contains(Part.KV_CACHE)) kvCache(c, ms);
    }

    /** The plan of a use with the current worker-thread count (train may be null for MODEL and IMPORT). */
    public static MemoryPlan of(Use use, ModelConfig model, Training train) { return of(use, model, train, Parallel.threads()); }

    public static MemoryPlan of(Use use, ModelConfig model, Training train, int threads) {
        if (train == null && (use == Use.TRAIN || use == Use.EVAL)) throw new IllegalArgumentException(use + " needs a train config");
        return new MemoryPlan(use, model, train, threads);
    }

    public Use use() { return use; }

    /** Every tensor of the model (params and float buffers), as the Model constructor creates them. */
    public List<Tensor> tensors() { return Collections.unmodifiableList(tensors); }

    /** Integer buffers saved with the model (shuffle indices), in elements. */
    public long indexEntries() { return indexEntries; }

    /** The arrays of the parts this use needs. */
    public List<Block> blocks() {
        List<Block> out = new ArrayList<>();
        for (Block b : blocks) if (use.parts.contains(b.part)) out.add(b);
        return out;
    }

    public long bytes(Part part, boolean heap) {
        long s = 0;
        for (Block b : blocks()) if (b.part == part && b.heap == heap) s = add(s, b.bytes());
        return s;
    }

    /** Heap bytes this use needs. */
    public long heapBytes() {
        long s = 0;
        for (Block b : blocks()) if (b.heap) s = add(s, b.bytes());
        return s;
    }

    /** Off-heap bytes this use allocates (mapped tables excluded: the OS pages them in from the file). */
    public long offHeapBytes() {
        long s = 0;
        for (Block b : blocks()) if (!b.heap && !(use.mappedTables && b.part == Part.TABLES)) s = add(s, b.bytes());
        return s;
    }

    /** Bytes of the tables served from a memory-mapped checkpoint (0 unless the use maps them). */
    public long mappedBytes() { return use.mappedTables ? bytes(Part.TABLES, false) : 0; }

    // ------------------------------------------------------------------ checks

    /**
     * Refuses a heap array above {@link #MAX_ARRAY} elements and a table or index above the engine's
     * 32-bit addressing, naming the config key that makes it so large.
     */
    public MemoryPlan checkLimits() {
        Limit worst = null;
        double worstRatio = 1;
        for (Limit l : allLimits()) {
            double r = (double) l.value / l.max;
            if (r > worstRatio) { worst = l; worstRatio = r; }
        }
        if (worst == null) return this;
        final String what = worst.what;
        String key = dominantKeys(p -> p.limitValue(what));
        throw new UserError(key + " makes " + what + " " + count(worst.value) + " " + worst.unit + " (" + String.format("%,d", worst.max) + ")");
    }

    /** The index limits and one per array: heap arrays hold at most {@link #MAX_ARRAY} elements, off-heap ones need 64-bit byte offsets. */
    private List<Limit> allLimits() {
        List<Limit> all = new ArrayList<>(limits);
        for (Block b : blocks()) {
            String what = "an array of the " + b.part.label + " (" + b.what + ")";
            all.add(b.heap ? new Limit(what, b.elements, MAX_ARRAY, "elements, more than a Java array holds")
                    : new Limit(what, b.elements, Long.MAX_VALUE / 8, "elements, more than 64-bit byte offsets address"));
        }
        return all;
    }

    private long limitValue(String what) {
        for (Limit l : allLimits()) if (l.what.equals(what)) return l.value;
        return 0;
    }

    /**
     * Refuses this use when its heap parts exceed the heap limit ({@code -Xmx}) or, unless the tables are
     * mapped from a checkpoint, its off-heap parts exceed the direct-memory limit or physical RAM.
     */
    public MemoryPlan requireFits() {
        long heap = heapBytes(), maxHeap = Runtime.getRuntime().maxMemory();
        if (heap > maxHeap)
            throw new UserError(dominantKeys(MemoryPlan::heapBytes) + " needs " + human(heap) + " of heap for " + use.label
                    + " (" + partsOf(true) + "; available: " + human(maxHeap) + ", raise -Xmx via ULTRAMEM_JAVA_OPTS)");
        long off = offHeapBytes(), direct = maxDirectMemory(), ram = physicalMemory();
        if (off > Math.min(direct, ram)) {
            String where = direct <= ram
                    ? human(direct) + " of direct memory, raise -XX:MaxDirectMemorySize (default: -Xmx) via ULTRAMEM_JAVA_OPTS"
                    : human(ram) + " of physical memory";
            throw new UserError(dominantKeys(MemoryPlan::offHeapBytes) + " needs " + human(off) + " of off-heap memory for " + use.label
                    + " (" + partsOf(false) + "; available: " + where + ")");
        }
        return this;
    }

    /** Whether {@link #requireFits()} passes. */
    public boolean fits() { return fitsWithin(1); }

    /** Whether this use takes at most half of the heap and half of the off-heap memory available. */
    public boolean fitsComfortably() { return fitsWithin(2); }

    private boolean fitsWithin(int share) {
        return heapBytes() <= Runtime.getRuntime().maxMemory() / share
                && offHeapBytes() <= Math.min(maxDirectMemory(), physicalMemory()) / share;
    }


    /** The off-heap allocation limit: -XX:MaxDirectMemorySize, by default the heap limit. */
    public static long maxDirectMemory() {
        try {
            var bean = ManagementFactory.getPlatformMXBean(com.sun.management.HotSpotDiagnosticMXBean.class);
            long v = Long.parseLong(bean.getVMOption("MaxDirectMemorySize").getValue());
            if (v > 0) return v;
        } catch (RuntimeException | LinkageError e) {
            // not a HotSpot VM: the default below
        }
        return Runtime.getRuntime().maxMemory();
    }

    public static long physicalMemory() {
        if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os)
            return os.getTotalMemorySize();
        return Long.MAX_VALUE;
    }

    /** "weights 1.2 GB, activations 3.4 GB, ..." for the heap (true) or off-heap (false) parts. */
    public String partsOf(boolean heap) {
        StringBuilder sb = new StringBuilder();
        for (Part p : use.parts) {
            if (!heap && use.mappedTables && p == Part.TABLES) continue;
            long b = bytes(p, heap);
            if (b == 0) continue;
            if (!sb.isEmpty()) sb.append(", ");
            sb.append(p.label).append(' ').append(human(b));
        }
        return sb.toString();
    }

    /**
     * The config keys that make the metric large, as "config: model.d_model=1000000000": the integer key
     * whose reset to its default value shrinks the metric the most, and a second one when it accounts
     * for at least half as many orders of magnitude.
     */
    private String dominantKeys(ToLongFunction<MemoryPlan> metric) {
        double base = metric.applyAsLong(this);
        List<String> keys = new ArrayList<>();
        List<Double> gains = new ArrayList<>();
        candidates("model", Configs.toTree(model), Configs.toTree(new ModelConfig()), base, metric, keys, gains);
        if (train != null) candidates("train", Configs.toTree(train), Configs.toTree(train.defaults()), base, metric, keys, gains);
        int best = -1, second = -1;
        for (int i = 0; i < keys.size(); i++) {
            if (best < 0 || gains.get(i) > gains.get(best)) { second = best; best = i; }
            else if (second < 0 || gains.get(i) > gains.get(second)) second = i;
        }
        if (best < 0) return "config: this " + (train != null ? "job" : "model");
        String out = keys.get(best);
        if (second >= 0 && gains.get(second) >= Math.sqrt(gains.get(best))) out += " and " + keys.get(second);
        return "config: " + out;
    }

    private void candidates(String section, ObjectNode tree, ObjectNode defaults, double base, ToLongFunction<MemoryPlan> metric,
                            List<String> keys, List<Double> gains) {
        Iterator<Map.Entry<String, JsonNode>> it = tree.fields();
        while (it.hasNext()) {
            var e = it.next();
            JsonNode def = defaults.get(e.getKey());
            if (!e.getValue().isIntegralNumber() || def == null || def.equals(e.getValue())) continue;
            ObjectNode changed = tree.deepCopy();
            changed.set(e.getKey(), def);
            double v;
            try {
                MemoryPlan p = section.equals("model")
                        ? new MemoryPlan(use, Configs.convert(changed, ModelConfig.class, "model config"), train, threads)
                        : new MemoryPlan(use, model, Configs.convert(changed, train.getClass(), "train config"), threads);
                v = metric.applyAsLong(p);
            } catch (RuntimeException ex) {
                continue;  // the reset makes the config unusable (e.g. a placement beyond n_layers): not a candidate
            }
            double gain = v <= 0 ? Double.POSITIVE_INFINITY : base / v;
            if (gain > 1.5) {
                keys.add(section + "." + e.getKey() + "=" + e.getValue().asText());
                gains.add(gain);
            }
        }
    }

    // ------------------------------------------------------------------ the model's tensors

    private void tensor(String name, Param.Group group, Owner owner, long count, long numel) {
        tensor(name, group, true, true, owner, count, numel);
    }

    private void tensor(String name, Param.Group group, boolean trainable, boolean heap, Owner owner, long count, long numel) {
        if (count == 0) return;
        tensors.add(new Tensor(name, group, trainable, heap, owner, count, numel));
        blocks.add(new Block(heap ? Part.WEIGHTS : Part.TABLES, name, heap, count, numel, 4));
        if (trainable) {
            blocks.add(new Block(Part.OPTIMIZER, name + " moments", heap, mul(2, count), numel, 4));
            blocks.add(new Block(Part.GRADIENTS, name + " gradient", heap, count, numel, 4));
        }
    }

    private void weights(ModelConfig c, MemoryShape ms) {
        long d = c.dModel, L = c.nLayers, hd = d / c.nHeads;
        Param.Group dec = Param.Group.DECAY;
        tensor("transformer.wte.weight", dec, Owner.DENSE, 1, mul(c.vocabSize, d));
        tensor("transformer.blocks.*.attn_norm.weight", dec, Owner.DENSE, L, d);
        tensor("transformer.blocks.*.att_proj.weight", dec, Owner.DENSE, L, mul(3, d, d));
        tensor("transformer.blocks.*.q_norm.weight", dec, Owner.DENSE, L, hd);
        tensor("transformer.blocks.*.k_norm.weight", dec, Owner.DENSE, L, hd);
        tensor("transformer.blocks.*.attn_out.weight", dec, Owner.DENSE, L, mul(d, d));
        tensor("transformer.blocks.*.ff_norm.weight", dec, Owner.DENSE, L, d);
        tensor("transformer.ln_f.weight", dec, Owner.DENSE, 1, d);
        if (c.ffnType.equals("moe")) {
            long E = c.moeNumExperts, h = c.moeExpertHidden;
            tensor("transformer.blocks.*.ffn.router.weight", dec, Owner.FFN, L, mul(E, d));
            tensor("transformer.blocks.*.ffn.experts.*.ff_proj.weight", dec, Owner.FFN, mul(L, E), mul(2, h, d));
            tensor("transformer.blocks.*.ffn.experts.*.ff_out.weight", dec, Owner.FFN, mul(L, E), mul(d, h));
        } else {
            long f = c.mlpHiddenSize / 2;
            tensor("transformer.blocks.*.ff_proj.weight", dec, Owner.FFN, L, mul(2, f, d));
            tensor("transformer.blocks.*.ff_out.weight", dec, Owner.FFN, L, mul(d, f));
        }
        long M = ms.layers, H = c.memHead, kd = c.memKdim, vd = c.memVdim;
        String mem = "transformer.mem_blocks.*.";
        switch (c.memType) {
            case "ultramem_v1", "ultramem_v2" -> {
                long r = c.memTuckerRank;
                tensor(mem + "query_proj.weight", dec, Owner.MEMORY, M, mul(ms.querySlots, kd, d));
                tensor(mem + "query_norm.weight", dec, Owner.MEMORY, M, kd);
                tensor(mem + "keys", dec, Owner.MEMORY, M, mul(H, 2, ms.keyNum, kd, r));
                tensor(mem + "keys_norm.weight", dec, Owner.MEMORY, M, kd);
                tensor(mem + "tucker_core.*", dec, Owner.MEMORY, mul(M, c.memTuckerCores), mul(H, r, r));
                tensor(mem + "tucker_core_u", Param.Group.NO_DECAY, false, true, Owner.MEMORY, M, mul(H, r));
                tensor(mem + "tucker_core_v", Param.Group.NO_DECAY, false, true, Owner.MEMORY, M, mul(H, r));
                long virtual = mul(ms.keyNum, ms.keyNum);
                indexEntries = mul(M, virtual);
                if (c.memType.equals("ultramem_v1")) {
                    tensor(mem + "values_for_look_up", Param.Group.VALUE, true, false, Owner.MEMORY, M, mul(ms.tableRows, vd));
                    tensor(mem + "values_proj.weight", dec, Owner.MEMORY, M, mul(d, c.memV1ValueExpandTime, vd));
                    limit("the rows of each value table, mem_knum²,", ms.tableRows);
                } else {
                    if (c.memPreVdim > 0) tensor(mem + "pre_values_proj.weight", dec, Owner.MEMORY, M, mul(c.memPreVdim, d));
                    tensor(mem + "values_proj.weight", dec, Owner.MEMORY, M, mul(d, c.memValueExpandTime, vd));
                    String shared = "transformer.full_memory_layer.";
                    tensor(shared + "values_for_look_up", Param.Group.VALUE, true, false, Owner.SHARED, M > 0 ? 1 : 0, mul(ms.tableRows, vd));
                    if (c.memPreVdim > 0)
                        tensor(shared + "pre_values_for_look_up", Param.Group.VALUE, true, false, Owner.SHARED, M > 0 ? 1 : 0, mul(ms.tableRows, c.memPreVdim));
                    limit("the rows of the shared value table, mem_knum² × memory layers,", ms.tableRows);
                }
            }
            case "pkm" -> {
                tensor(mem + "query_proj.weight", dec, Owner.MEMORY, M, mul(2, kd, H, d));
                tensor(mem + "keys", dec, Owner.MEMORY, M, mul(H, 2, c.memKnum, kd));
                tensor(mem + "values_for_look_up", Param.Group.VALUE, true, false, Owner.MEMORY, M, mul(ms.tableRows, vd));
                limit("the rows of each value table, mem_knum²,", ms.tableRows);
            }
            case "memory_plus" -> {
                tensor(mem + "query_proj.weight", dec, Owner.MEMORY, M, mul(2, kd, H, d));
                tensor(mem + "query_norm.weight", dec, Owner.MEMORY, M, kd);
                tensor(mem + "keys", dec, Owner.MEMORY, M, mul(H, 2, c.memKnum, kd));
                tensor(mem + "keys_norm.weight", dec, Owner.MEMORY, M, kd);
                tensor(mem + "swilu_projection.weight", dec, Owner.MEMORY, M, mul(vd, d));
                tensor(mem + "values_proj.weight", dec, Owner.MEMORY, M, mul(d, vd));
                tensor("transformer.full_memory_layer.values_for_look_up", Param.Group.VALUE_FIXED_LR, true, false, Owner.SHARED,
                        M > 0 ? 1 : 0, mul(ms.tableRows, vd));
                limit("the rows of the shared value table, mem_knum²,", ms.tableRows);
            }
            default -> { }
        }
    }

    private void limit(String what, long value) { limits.add(new Limit(what, value, MAX_INDEX, "rows, more than 32-bit row indices address")); }

    // ------------------------------------------------------------------ buffers, activations, KV cache

    private void heap(Part part, String what, long count, long elements, int bytes) {
        if (count > 0 && elements > 0) blocks.add(new Block(part, what, true, count, elements, bytes));
    }

    /** Activation arrays of 4-byte elements (float or int). */
    private void act(String what, long count, long elements) { heap(Part.ACTIVATIONS, what, count, elements, 4); }

    private void buffers(ModelConfig c, MemoryShape ms) {
        long L = c.nLayers, hd = c.dModel / c.nHeads, M = ms.layers;
        heap(Part.BUFFERS, "attention RoPE tables, max_seq_len × head dim / 2", mul(2, L), mul(c.maxSeqLen, hd / 2), 4);
        if (c.ffnType.equals("moe")) heap(Part.BUFFERS, "MoE expert counts", mul(3, L), add(c.moeNumExperts, 1), 4);
        long H = c.memHead, kd = c.memKdim;
        switch (c.memType) {
            case "ultramem_v1", "ultramem_v2" -> {
                long nk = mul(H, 2, c.memTuckerRank, ms.keyNum, kd);
                heap(Part.BUFFERS, "normalised key copies and their gradients", mul(6, M), nk, 4);
                heap(Part.BUFFERS, "key norms", M, mul(H, 2, c.memTuckerRank, ms.keyNum), 4);
                heap(Part.BUFFERS, "shuffle indices, keys per side²", M, mul(ms.keyNum, ms.keyNum), 4);
                heap(Part.BUFFERS, "value-row usage counts", M, Math.min(ms.layerRows, MemoryStats.DENSE_ROWS), 4);
                heap(Part.BUFFERS, "stage-2 bound cells, built once", M, mul(ms.stage1, ms.stage1), 20);
            }
            case "pkm", "memory_plus" -> {
                long nk = mul(H, 2, c.memKnum);
                if (c.memKeyNorm) heap(Part.BUFFERS, "normalised key copies and their gradients", mul(2, M), mul(nk, kd), 4);
                heap(Part.BUFFERS, "key norms", M, nk, 4);
                heap(Part.BUFFERS, "value-row usage counts", M, Math.min(ms.layerRows, MemoryStats.DENSE_ROWS), 4);
                heap(Part.BUFFERS, "stage-2 bound cells, built once", M, mul(ms.stage1, ms.stage1), 20);
            }
            default -> { }
        }
    }

    /** {batch, tokens per sequence} of one forward for a use. */
    private static long[] activationShape(Use use, ModelConfig c, Training t) {
        return switch (use) {
            case TRAIN, EVAL -> new long[]{t.batchSize(), t.seqLen()};
            case COUNT, COUNT_CHECKPOINT -> {
                // ModelCosts.measuredParamBytesPerToken: T the largest divisor of the batch not above max_seq_len
                int T = Math.min(COUNT_TOKENS, c.maxSeqLen);
                while (COUNT_TOKENS % T != 0) T--;
                yield new long[]{COUNT_TOKENS / T, T};
            }
            default -> new long[]{1, 1};
        };
    }

    private void activations(ModelConfig c, MemoryShape ms, long B, long T) {
        long n = mul(B, T), d = c.dModel, L = c.nLayers, H = c.nHeads, hd = d / H, M = ms.layers, nd = mul(n, d);
        // Model: residual stream, ln_f, memory outputs, logits; the trainer's token ids
        act("block inputs, n_layers + 1 of tokens × d_model", add(L, 1), nd);
        act("ln_f output and residual gradients", 3, nd);
        act("per-token norms and losses", 2, n);
        act("memory-layer outputs and input gradients", mul(2, M), nd);
        act("logits, tokens × vocab_size", 1, mul(n, c.vocabSize));
        act("token ids and targets", 4, n);
        // Block and Attention, per layer
        act("block states: norms, attention, FFN in and out", mul(7, L), nd);
        act("block norm factors", mul(2, L), n);
        act("attention q, k, v projections and gradients", mul(2, L), mul(n, 3, d));
        act("attention head tensors and gradients", mul(13, L), nd);
        act("QK-norm factors", mul(2, L), mul(n, H));
        boolean kept = Attention.keepsProbabilities(B, T, (int) d, (int) H);
        if (kept)
            act("attention probabilities, batch × heads × causal blocks (kept while seq_len ≤ 26·head dim)", L,
                    mul(B, H, Attention.causalPairSize(T)));
        act("attention row log-sum-exp", L, mul(n, H));
        act("attention score blocks and their gradients, per thread", mul(L, threads),
                kept ? add(mul(Attention.QB, T), mul(2, Attention.QB)) : add(mul(2, mul(Attention.QB, Attention.KB)), mul(2, Attention.QB)));
        act("QK-norm weight partials", mul(2, L), mul(B, H, hd));
        if (c.ffnType.equals("moe")) {
            long E = c.moeNumExperts, h = c.moeExpertHidden, m = mul(n, c.moeTopK);
            act("router logits, probabilities and gradients", mul(3, L), mul(n, E));
            act("router log-sum-exp", L, n);
            act("routing slots", mul(3, L), m);
            act("routing gates and gradients", mul(2, L), m);
            act("expert inputs, outputs and gradients", mul(4, L), mul(m, d));
            act("expert hidden states and gradients", mul(2, L), mul(m, 2, h));
            act("expert activations and gradients", mul(2, L), mul(m, h));
        } else {
            act("SwiGLU states and gradients, tokens × mlp_hidden_size / 2", mul(6, L), mul(n, c.mlpHiddenSize / 2));
        }
        long Hm = c.memHead, kd = c.memKdim, vd = c.memVdim, knn = c.memKnn, R = mul(Hm, knn), C = c.memTuckerCores;
        switch (c.memType) {
            case "ultramem_v2" -> {
                // lookup outputs, pre-value inputs and scores, lookup weights, dropout masks, and their gradients
                act("UltraMemV2 step state", M, mul(n, UltraMemV2.StepState.floatsPerToken(ms.outWidth, c.memPreVdim, R, C, d)));
                lookup(M, mul(n, R), ms.tableRows);
                retrieval(c, ms, n);
            }
            case "ultramem_v1" -> {
                // lookup outputs and their gradients, score gradients
                act("UltraMem v1 step state", M, mul(n, UltraMemV1.StepState.floatsPerToken(ms.outWidth, R, C)));
                lookup(M, mul(n, R), ms.tableRows);
                retrieval(c, ms, n);
            }
            case "pkm" -> {
                // queries and their gradients, lookup-weight gradients
                act("PKM step state", M, mul(n, Pkm.StepState.floatsPerToken(mul(Hm, 2, kd), R)));
                productKeys(c, ms, n);
            }
            case "memory_plus" -> {
                // queries, norm factors, lookup, gate and hidden states, and their gradients
                act("Memory+ step state", M, mul(n, MemoryPlus.StepState.floatsPerToken(mul(Hm, 2, kd), mul(Hm, 2), vd, R)));
                productKeys(c, ms, n);
            }
            default -> { }
        }
    }

    /** ValueLookup.address over m entries of a table with the given rows. */
    private void lookup(long M, long m, long rows) {
        act("lookup addresses and row grouping", mul(6, M), m);
        act("lookup segment starts", M, add(m, 1));
        int bits = 64 - Long.numberOfLeadingZeros(Math.max(1, rows - 1)), lowBits = (bits + 1) / 2;
        act("lookup radix counts", M, mul(ValueLookup.SORT_CHUNKS, 1L << Math.min(lowBits, 62)));
    }

    /** ProductKeyRetrieval.ensure and its per-chunk scratch: the two-stage core of every memory layer. */
    private void selection(ModelConfig c, MemoryShape ms, long n) {
        long M = ms.layers, H = c.memHead, kn = ms.keyNum, k1 = ms.stage1, knn = c.memKnn;
        act("stage-1 side scores, tokens × keys per side", M, mul(H, 2, n, kn));
        act("stage-1 candidates", M, mul(n, H, 2, k1));
        act("winners: grid cells, addresses and scores", mul(4, M), mul(n, H, knn));
        long chunks = mul(M, Math.max(1, Math.min(4L * threads, n)));
        act("stage-1 candidate scores, per chunk", chunks, mul(2, k1));
        act("stage-2 grids, per chunk", chunks, mul(k1, k1));
        act("stage-2 winner values and cells, per chunk", mul(2, chunks), knn);
    }

    /** TuckerRetrieval.allocate and its per-chunk scratch, on top of {@link #selection}. */
    private void retrieval(ModelConfig c, MemoryShape ms, long n) {
        long M = ms.layers, S = ms.querySlots, kd = c.memKdim, H = c.memHead, r = c.memTuckerRank, kn = ms.keyNum, k1 = ms.stage1;
        long knn = c.memKnn, C = c.memTuckerCores;
        selection(c, ms, n);
        act("retrieval queries and gradients", mul(6, M), mul(n, S, kd));
        act("retrieval query norm factors", M, mul(n, S));
        act("retrieval rank queries", M, mul(H, 2, n, r, kd));
        act("per-rank candidate scores and gradients", mul(2, M), mul(n, H, 2, k1, r));
        act("per-core scores", M, mul(n, H, knn, C));
        if (c.memKeyBalanceCoef > 0) act("key-balance score gradients", M, mul(H, 2, r, n, kn));
        heap(Part.ACTIVATIONS, "Tucker-core gradient partials", M, mul(Math.min(n, 64), C, H, r, r), 8);
        long chunks = mul(M, Math.max(1, Math.min(4L * threads, n)));
        act("per-rank candidate scratch, per chunk", mul(4, chunks), mul(k1, r));
        act("per-core grid scratch, per chunk", chunks, mul(C, k1, r));
    }

    /** ProductKeys.allocate (PKM, Memory+), on top of {@link #selection}. */
    private void productKeys(ModelConfig c, MemoryShape ms, long n) {
        long M = ms.layers, hs = mul(2, c.memHead), slots = mul(c.memHead, c.memKnn), kd = c.memKdim;
        selection(c, ms, n);
        act("product-key queries, side-major", M, mul(hs, n, kd));
        act("lookup weights and score gradients", mul(2, M), mul(n, slots));
        lookup(M, mul(n, slots), ms.tableRows);
    }

    private void kvCache(ModelConfig c, MemoryShape ms) {
        long d = c.dModel, L = c.nLayers, H = c.nHeads, hd = d / H, max = c.maxSeqLen;
        heap(Part.KV_CACHE, "KV cache keys and values, max_seq_len × d_model per layer", mul(2, L), mul(H, max, hd), 4);
        heap(Part.KV_CACHE, "decoder attention scores", L, max, 4);
        heap(Part.KV_CACHE, "decoder token states", mul(8, L), d, 4);
        heap(Part.KV_CACHE, "decoder query projections", L, mul(3, d), 4);
        heap(Part.KV_CACHE, "decoder output logits", 1, c.vocabSize, 4);
        heap(Part.KV_CACHE, "sampler buffers", 2, c.vocabSize, 8);
        heap(Part.KV_CACHE, "decoder memory outputs", ms.layers, d, 4);
        heap(Part.KV_CACHE, "generated-token window", 1, max, 4);
    }

    // ------------------------------------------------------------------ derived sizes

    /** The number of memory layers of a config (its placements), counted without listing "full" ones. */
    static int memoryLayers(ModelConfig c) {
        if (!c.hasMemory()) return 0;
        if ("full".equals(c.memInsertWay)) return c.nLayers;
        return MemoryPlacement.parse(c.memInsertWay, c.nLayers).size();
    }

    /** The keys, rows and widths the memory layers derive from the config (see UltraMemV1, UltraMemV2, Pkm, MemoryPlus). */
    static MemoryShape memoryShape(ModelConfig c) {
        int M = memoryLayers(c);
        long knum = c.memKnum, knumSq = mul(knum, knum), knn = c.memKnn, H = c.memHead, groups = (H + 1) / 2;
        long stage1 = c.memStage1Knn > 0 ? c.memStage1Knn : knn;
        return switch (c.memType) {
            case "ultramem_v2" -> {
                long all = mul(knumSq, M), knumL = rowsPerSide(all, c.memShareRatio);
                long slots = switch (c.memQueryMode) {
                    case "released" -> 2L * c.memTuckerRank;
                    case "shared" -> 2 * groups;
                    default -> mul(2, c.memTuckerRank, groups);
                };
                long g = mul(c.memKeyExpandTime, c.memKeyExpandTime);
                long width = c.memValueExpandTime == g ? mul(g, c.memVdim) : c.memVdim;
                yield new MemoryShape(M, mul(c.memKeyExpandTime, knumL), stage1, slots, mul(knumL, knumL), all, width);
            }
            case "ultramem_v1" -> {
                long ket = Math.round(Math.sqrt(c.memV1ValueExpandTime));
                yield new MemoryShape(M, mul(ket, knum), stage1, 2 * groups, knumSq, knumSq, mul(c.memV1ValueExpandTime, c.memVdim));
            }
            case "pkm", "memory_plus" -> new MemoryShape(M, knum, stage1, 2 * H, knumSq, knumSq, c.memVdim);
            default -> new MemoryShape(0, 0, 0, 0, 0, 0, 0);
        };
    }

    /** UltraMemV2's knum_l = floor(sqrt(all · share_ratio)), exact for rows that fit the engine's indices. */
    private static long rowsPerSide(long all, double share) {
        double x = all * share;
        long k = (long) Math.floor(Math.sqrt(x));
        if (all > MAX_INDEX) return k;
        while ((k + 1) * (k + 1) <= x) k++;
        while (k > 0 && k * k > x) k--;
        return k;
    }

    // ------------------------------------------------------------------ arithmetic and formatting

    /** Product of non-negative factors, {@link Long#MAX_VALUE} when it does not fit. */
    public static long mul(long... xs) {
        long p = 1;
        for (long x : xs) {
            if (x == 0) return 0;
            if (p > Long.MAX_VALUE / x) p = Long.MAX_VALUE;
            else p *= x;
        }
        return p;
    }

    /** Sum of non-negative terms, {@link Long#MAX_VALUE} when it does not fit. */
    public static long add(long a, long b) {
        long s = a + b;
        return s < 0 ? Long.MAX_VALUE : s;
    }

    private static String count(long v) { return v == Long.MAX_VALUE ? "more than 9.2e18" : String.format("%,d", v); }

    /** Bytes as "512 B", "3.0 MB", "1.2 GB" (binary units, as -Xmx counts them). */
    public static String human(long bytes) {
        if (bytes == Long.MAX_VALUE) return "more than 8 EB";
        String[] units = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
        double v = bytes;
        int u = 0;
        while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
        return u == 0 ? bytes + " B" : String.format(java.util.Locale.ROOT, "%.1f %s", v, units[u]);
    }
}
