package dev.ultramem.model;

import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;
import dev.ultramem.core.Parallel;
import dev.ultramem.core.Rng;
import dev.ultramem.core.StepProfile;
import dev.ultramem.core.UserError;
import dev.ultramem.kernel.Kernels;
import dev.ultramem.layer.RmsNorm;
import dev.ultramem.layer.TokenLayer;
import dev.ultramem.memory.SharedMemory;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A decoder-only language model (OLMo layout): embedding, pre-norm blocks (attention, FFN slot,
 * optional memory layer beside the FFN), final RMSNorm, tied output projection.
 *
 * <p>API contract (implemented by the model package; used by training, inference and the CLI).
 *
 * <p>Memory layer k (placement {@code from:to}) reads block {@code from}'s FFN input u and its output
 * is added to the residual stream after block {@code to}. Targets equal to -1 are ignored by the loss
 * (they still count in the B·T denominator, as in the reference trainer).
 */
public final class Model {

    private final ModelConfig config;
    private final Kernels k;
    private final int d, V, L;
    private final Param wte;
    private final Block[] blocks;
    private final RmsNorm lnF;
    private final List<MemoryPlacement> placements;
    private final TokenLayer[] memLayers;
    private final SharedMemory shared;
    private final List<Param> params = new ArrayList<>();
    private final List<IndexBuffer> indexBuffers = new ArrayList<>();

    // activations [B·T, d], sized for the largest B·T seen
    private int cap;
    private float[][] xs = new float[0][];   // xs[l] = input of block l, xs[L] = input of ln_f
    private float[] xf, rstdF, dX, dXf;
    private float[][] memOut = new float[0][], dUmem = new float[0][];
    private float[] logits = new float[0];
    private float[] rowLoss = new float[0];
    private double auxLoss;

    /** Builds memory layer k of a model (the default is {@link MemoryLayers#create}). */
    @FunctionalInterface
    public interface MemoryLayerFactory {
        TokenLayer create(ModelConfig cfg, int memLayerIndex, int memLayerNum, SharedMemory shared, String prefix);
    }

    /** Allocates all tensors (zero). Call {@link #initialize(long)} or load weights next. */
    public Model(ModelConfig config) { this(config, MemoryLayers::create); }

    /** As {@link #Model(ModelConfig)} with memory layers from the given factory (tests, experiments). */
    public Model(ModelConfig config, MemoryLayerFactory memoryFactory) {
        this.config = config.validate();
        this.k = Kernels.get();
        this.d = config.dModel;
        this.V = config.vocabSize;
        this.L = config.nLayers;
        this.wte = Param.of("transformer.wte.weight", Param.Group.DECAY, V, d);
        this.blocks = new Block[L];
        for (int l = 0; l < L; l++) blocks[l] = new Block(config, l, k);
        this.lnF = new RmsNorm("transformer.ln_f.weight", d, config.normEps, k);
        if (config.hasMemory()) {
            placements = MemoryPlacement.parse(config.memInsertWay, L);
            shared = MemoryLayers.shared(config, placements.size(), "transformer.full_memory_layer.");
            memLayers = new TokenLayer[placements.size()];
            for (int i = 0; i < memLayers.length; i++)
                memLayers[i] = memoryFactory.create(config, i, placements.size(), shared, "transformer.mem_blocks." + i + ".");
        } else {
            placements = List.of();
            shared = null;
            memLayers = new TokenLayer[0];
        }
        params.add(wte);
        for (Block b : blocks) {
            params.addAll(b.params());
            indexBuffers.addAll(b.ffn.indexBuffers());
        }
        params.add(lnF.weight);
        for (TokenLayer m : memLayers) {
            params.addAll(m.params());
            indexBuffers.addAll(m.indexBuffers());
        }
        if (shared != null) params.addAll(shared.params());
    }

    public ModelConfig config() { return config; }

    /** Draws every weight from the configured initialisation, deterministically from the seed. */
    public void initialize(long seed) {
        k.thawWeights(heapWeights());  // layers run forwards while they initialise (norm calibration)
        Rng rng = new Rng(seed);
        rng.fillTruncNormal(wte.data(), config.effectiveInitStd(), config.initCutoffFactor);
        for (Block b : blocks) b.initialize(rng);
        lnF.initialize();
        for (TokenLayer m : memLayers) m.initialize(rng);
        if (shared != null) shared.initialize(LayerConfigs.memory(config), rng);
        afterWeightsChanged();
    }

    /**
     * As {@link #initialize(long)}, with the value and pre-value tables (the off-heap tensors) left out of
     * memory: each records its draws ({@link Param#deferInit}) for a checkpoint writer to make a chunk at a
     * time, so {@code init} writes a model whose tables are larger than RAM. Every other tensor, and the
     * values the file gets, are those of {@code initialize(seed)}; the tables cannot be read in this model.
     */
    public void initializeTablesDeferred(long seed) {
        for (Param p : params) if (!p.isHeap()) p.deferInit();
        initialize(seed);
    }

    /** Every tensor under its official name (weights and float buffers), in a stable order. */
    public List<Param> params() { return java.util.Collections.unmodifiableList(params); }

    /** Integer buffers (shuffle indices). */
    public List<IndexBuffer> indexBuffers() { return java.util.Collections.unmodifiableList(indexBuffers); }

    /** The memory layers in placement order (empty without memory). */
    public List<TokenLayer> memoryLayers() { return List.of(memLayers); }

    /** The FFN-slot layer of block l. */
    public TokenLayer ffn(int l) { return blocks[l].ffn; }

    /** Value tables shared by the memory layers (UltraMemV2, Memory+), or null without memory. */
    public SharedMemory sharedMemory() { return shared; }

    private void ensure(int n) {
        if (n > cap) {
            cap = n;
            xs = new float[L + 1][n * d];
            xf = new float[n * d];
            rstdF = new float[n];
            dX = new float[n * d];
            dXf = new float[n * d];
            memOut = new float[memLayers.length][n * d];
            dUmem = new float[memLayers.length][n * d];
            rowLoss = new float[n];
        }
        if (logits.length != n * V) logits = new float[n * V];
    }

    private void check(int[] inputs, int[] targets, int B, int T) {
        if (B <= 0 || T <= 0) throw new UserError("batch: B and T must be > 0, got " + B + ", " + T);
        if (T > config.maxSeqLen) throw new UserError("batch: sequence length " + T + " exceeds max_seq_len " + config.maxSeqLen);
        int n = B * T;
        if (inputs.length < n) throw new UserError("batch: inputs hold " + inputs.length + " tokens, need " + n);
        for (int i = 0; i < n; i++)
            if (inputs[i] < 0 || inputs[i] >= V) throw new UserError("batch: token id " + inputs[i] + " outside vocabulary [0, " + V + ")");
        if (targets != null) {
            if (targets.length < n) throw new UserError("batch: targets hold " + targets.length + " tokens, need " + n);
            for (int i = 0; i < n; i++)
                if (targets[i] < -1 || targets[i] >= V) throw new UserError("batch: target id " + targets[i] + " outside vocabulary [0, " + V + ")");
        }
    }

    /** Embedding, blocks with memory layers, ln_f and the logits. */
    private void forward(int[] inputs, int B, int T) {
        int n = B * T;
        ensure(n);
        long t0 = StepProfile.start();
        float[] e = wte.data(), x0 = xs[0];
        for (int i = 0; i < n; i++) System.arraycopy(e, inputs[i] * d, x0, i * d, d);
        StepProfile.stop(StepProfile.Kind.EMBEDDING_LOSS, t0);
        auxLoss = 0;
        for (int l = 0; l < L; l++) {
            blocks[l].forward(xs[l], xs[l + 1], B, T);
            for (int m = 0; m < memLayers.length; m++) {
                if (placements.get(m).from() != l) continue;
                t0 = StepProfile.start();
                memLayers[m].forward(blocks[l].u(), memOut[m], n);
                auxLoss += memLayers[m].auxLoss();
                StepProfile.stop(StepProfile.Kind.MEMORY, t0);
            }
            for (int m = 0; m < memLayers.length; m++) {
                if (placements.get(m).to() != l) continue;
                float[] xo = xs[l + 1], mo = memOut[m];
                for (int i = 0; i < n * d; i++) xo[i] += mo[i];
            }
            auxLoss += blocks[l].ffn.auxLoss();
        }
        t0 = StepProfile.start();
        lnF.forward(n, xs[L], 0, xf, 0, rstdF, 0);
        StepProfile.stop(StepProfile.Kind.NORMS, t0);
        t0 = StepProfile.start();
        k.gemmNT(n, V, d, xf, 0, e, 0, logits, 0, false);
        StepProfile.stop(StepProfile.Kind.EMBEDDING_LOSS, t0);
    }

    /**
     * Mean cross-entropy of the logits; with grad, overwrites the logits by ∂(mean CE)/∂logits.
     * Rows run in parallel, the sum in row order (deterministic).
     */
    private float crossEntropy(int[] targets, int n, boolean grad) {
        final float invN = 1f / n;
        Parallel.forRange(n, 32, (s, e) -> {
            for (int i = s; i < e; i++) {
                int off = i * V, tgt = targets[i];
                if (tgt < 0) {
                    rowLoss[i] = 0f;
                    if (grad) Arrays.fill(logits, off, off + V, 0f);
                    continue;
                }
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < V; j++) max = Math.max(max, logits[off + j]);
                float lt = logits[off + tgt];
                double sum = 0;
                if (grad) {
                    // one exp per logit: keep exp(l − max) in place, normalise below
                    for (int j = 0; j < V; j++) {
                        float ej = (float) Math.exp(logits[off + j] - max);
                        logits[off + j] = ej;
                        sum += ej;
                    }
                    float f = (float) (invN / sum);
                    for (int j = 0; j < V; j++) logits[off + j] *= f;
                    logits[off + tgt] -= invN;
                } else {
                    for (int j = 0; j < V; j++) sum += Math.exp(logits[off + j] - max);
                }
                rowLoss[i] = (float) (max + Math.log(sum) - lt);
            }
        });
        double total = 0;
        for (int i = 0; i < n; i++) total += rowLoss[i];
        return (float) (total / n);
    }

    /**
     * Forward and backward on a batch: inputs and targets are [B, T] token ids (targets[b,t] is the
     * token after inputs[b,t]). Accumulates gradients into the params (the caller zeroes them).
     * Returns the mean cross-entropy over the B·T positions (aux losses excluded, see {@link #lastAuxLoss()}).
     */
    public float forwardBackward(int[] inputs, int[] targets, int B, int T) {
        check(inputs, targets, B, T);
        int n = B * T;
        forward(inputs, B, T);
        long t0 = StepProfile.start();
        float loss = crossEntropy(targets, n, true);
        float[] e = wte.data();
        // tied output projection: both uses of wte accumulate into its gradient
        k.gemmTN(V, d, n, logits, 0, xf, 0, wte.grad(), 0, true);
        k.gemmNN(n, d, V, logits, 0, e, 0, dXf, 0, false);
        StepProfile.stop(StepProfile.Kind.EMBEDDING_LOSS, t0);
        t0 = StepProfile.start();
        lnF.backward(n, xs[L], 0, rstdF, 0, dXf, 0, dX, 0, false);
        StepProfile.stop(StepProfile.Kind.NORMS, t0);
        for (int l = L - 1; l >= 0; l--) {
            // dX = ∂L/∂xs[l+1]: memory layers added after block l get it as their output gradient
            for (int m = 0; m < memLayers.length; m++) {
                if (placements.get(m).to() != l) continue;
                t0 = StepProfile.start();
                Arrays.fill(dUmem[m], 0, n * d, 0f);
                memLayers[m].backward(blocks[placements.get(m).from()].u(), dX, dUmem[m], n);
                StepProfile.stop(StepProfile.Kind.MEMORY, t0);
            }
            blocks[l].backwardFfn(dX, n);
            float[] du = blocks[l].du();
            for (int m = 0; m < memLayers.length; m++) {
                if (placements.get(m).from() != l) continue;
                float[] g = dUmem[m];
                for (int i = 0; i < n * d; i++) du[i] += g[i];
            }
            blocks[l].backwardRest(xs[l], dX, B, T);
        }
        t0 = StepProfile.start();
        float[] ge = wte.grad();
        for (int i = 0; i < n; i++) k.axpy(d, 1f, dX, i * d, ge, inputs[i] * d);
        StepProfile.stop(StepProfile.Kind.EMBEDDING_LOSS, t0);
        return loss;
    }

    /** Forward only: mean cross-entropy over B·T positions. */
    public float loss(int[] inputs, int[] targets, int B, int T) {
        check(inputs, targets, B, T);
        forward(inputs, B, T);
        long t0 = StepProfile.start();
        float loss = crossEntropy(targets, B * T, false);
        StepProfile.stop(StepProfile.Kind.EMBEDDING_LOSS, t0);
        return loss;
    }

    /** Forward only: logits [B·T, vocab] (a view of an internal buffer, valid until the next call). */
    public float[] logits(int[] inputs, int B, int T) {
        check(inputs, null, B, T);
        forward(inputs, B, T);
        return logits;
    }

    /** Input of block i of the last forward for i < n_layers, the ln_f output for i = n_layers (tests, debugging). */
    float[] hiddenState(int i) { return i < L ? xs[i] : xf; }

    /** Sum of the auxiliary losses (MoE balance, memory penalties) of the last forward. */
    public double lastAuxLoss() { return auxLoss; }

    /** To call after each optimizer step and after loading weights (refreshes derived state such as Tucker u, v). */
    public void afterWeightsChanged() {
        k.thawWeights(heapWeights());
        for (Block b : blocks) b.ffn.afterWeightsChanged();
        for (TokenLayer m : memLayers) m.afterWeightsChanged();
    }

    private boolean bf16KvCache;

    /**
     * Decoders created afterwards keep their KV cache as bfloat16 (keys after norm and RoPE, and values), rounded to
     * nearest even as they are stored: half the cache's memory and half the bytes a decode step reads from it.
     * Off by default (float32, which matches the training forward to float rounding).
     */
    public void useBf16KvCache(boolean bf16) { this.bf16KvCache = bf16; }

    public boolean usesBf16KvCache() { return bf16KvCache; }

    /** Bytes of the KV cache a decoder of this config allocates: keys and values of every layer, slots × context. */
    public static long kvCacheBytes(ModelConfig c, int slots, int context, boolean bf16) {
        return 2L * slots * context * c.dModel * c.nLayers * (bf16 ? 2 : Float.BYTES);
    }

    /** The data arrays of the heap tensors (the dense weights a decoder freezes). */
    private List<float[]> heapWeights() {
        List<float[]> out = new ArrayList<>();
        for (Param p : params) if (p.isHeap()) out.add(p.data());
        return out;
    }

    /**
     * Stores the value and pre-value tables (the off-heap tensors) as bfloat16, rounded to nearest even:
     * half the memory and half the bytes a decode step reads from them. Inference only: the model can no
     * longer be trained. Dense weights stay float32.
     */
    public void storeTablesAsBf16() {
        for (Param p : params) if (!p.isHeap()) p.storeAsBf16();
    }

    public void setTraining(boolean training) {
        for (Block b : blocks) b.ffn.setTraining(training);
        for (TokenLayer m : memLayers) m.setTraining(training);
    }

    /**
     * Batched incremental decoding: {@code capacity} independent sequences ("slots"), each with its own
     * KV cache of {@code context} positions. One call advances any subset of the slots by a chunk of
     * tokens each (a prompt, or one token during decode) and returns the logits after each chunk's last
     * token. When a slot holds {@code context} positions the window slides: the oldest position is
     * dropped and RoPE positions keep counting, so generation never restarts. A decoder freezes the dense
     * weights for as long as the model lives (the kernels may keep them packed): whoever changes weights calls
     * {@link #afterWeightsChanged()} before the next forward, as the trainer does after each optimizer step and
     * checkpoint and official-weight loading do. Not thread-safe: one
     * scheduler thread drives it.
     */
    public interface BatchDecoder {
        int capacity();

        /** Positions each slot's window keeps. */
        int context();

        int vocab();

        /**
         * Appends chunks[i] to slot slots[i] for i &lt; n (distinct slots, non-empty chunks) in one batched
         * forward and returns the logits [n, vocab] after each chunk's last token (a view of an internal
         * buffer, valid until the next call).
         */
        float[] forward(int[] slots, int[][] chunks, int n);

        /** Decode step: one token per slot; the same as {@link #forward} with chunks of length 1. */
        float[] step(int[] slots, int[] tokens, int n);

        /** Tokens fed to the slot since its last reset (may exceed {@link #context()}). */
        long position(int slot);

        /** Empties a slot for a new sequence. */
        void reset(int slot);

        /** Parameter bytes read by the last call, as the layers count them (for {@code bench decode}). */
        long lastParamBytes();

        /** Bytes of cached keys and values read by the last call. */
        long lastKvBytes();

        /**
         * Moves a slot to a position without feeding tokens, its cache left as it is (for benchmarks:
         * a decode step costs the same whatever the cached keys hold, so a full context needs no prefill).
         */
        void seek(int slot, long position);

        /** Bytes held by the KV caches of all slots. */
        long kvCacheBytes();
    }

    /** A batch decoder with {@code capacity} slots of {@code context} positions each (context ≤ max_seq_len). */
    public BatchDecoder newBatchDecoder(int capacity, int context) {
        if (capacity <= 0) throw new UserError("decoder: batch capacity must be > 0, got " + capacity);
        if (context <= 0 || context > config.maxSeqLen)
            throw new UserError("decoder: context " + context + " must be in [1, max_seq_len " + config.maxSeqLen + "]");
        return new CachedDecoder(capacity, context);
    }

    /** A KV-cache decoding session for one sequence of at most maxTokens tokens (a one-slot batch decoder). */
    public Decoder newDecoder(int maxTokens) {
        if (maxTokens <= 0) throw new UserError("decoder: max tokens must be > 0, got " + maxTokens);
        if (maxTokens > config.maxSeqLen) throw new UserError("decoder: " + maxTokens + " tokens exceed max_seq_len " + config.maxSeqLen);
        CachedDecoder dec = new CachedDecoder(1, maxTokens);
        int[] slot0 = {0}, tok = new int[1];
        return new Decoder() {
            @Override
            public float[] step(int token) {
                if (dec.position(0) >= maxTokens) throw new UserError("decoder: the KV cache holds only " + maxTokens + " tokens");
                tok[0] = token;
                return dec.step(slot0, tok, 1);
            }
            @Override public int position() { return (int) dec.position(0); }
            @Override public void reset() { dec.reset(0); }
        };
    }

    /** Incremental decoding of one sequence with a KV cache. */
    public interface Decoder {
        /** Feeds one token at the next position and returns the logits [vocab] for the following token. */
        float[] step(int token);
        int position();
        /** Starts a new sequence at position 0, reusing the cache (what a new decoder computes, without allocating one). */
        void reset();
    }

    /**
     * The batch decoder: the new tokens of every sequence in a call go through each layer together, as
     * rows of one [rows, d] matrix (GEMMs for attention projections and dense FFNs, tokens grouped per
     * expert in MoE, one retrieval over all queries in memory layers); only attention looks at each
     * sequence's own cache. Long chunks are fed in rounds of at most {@link #ROUND} rows per sequence,
     * which bounds the attention scratch.
     */
    private final class CachedDecoder implements BatchDecoder {
        static final int ROUND = 256;
        private final int ctx;
        private final long[] pos;
        private final Block.Cached[] blocks_;
        private final boolean[] seen;
        // per round: rows [rows, d], and per sequence its slot, first position, first row and row count
        private float[] x = new float[0], last = new float[0], lastN = new float[0], out = new float[0], r = new float[0];
        private float[][] mem = new float[memLayers.length][0];
        private int[] slotR = new int[0], startR = new int[0], lenR = new int[0], seqR = new int[0], done = new int[0];
        private long[] pos0R = new long[0];
        private long paramBytes, kvBytes;

        CachedDecoder(int capacity, int ctx) {
            this.ctx = ctx;
            // Decode multiplies a few rows by each weight per step: the kernels may keep the weights packed until
            // afterWeightsChanged() (an optimizer step or a load) thaws them.
            k.freezeWeights(heapWeights());
            pos = new long[capacity];
            seen = new boolean[capacity];
            blocks_ = new Block.Cached[L];
            for (int l = 0; l < L; l++) blocks_[l] = blocks[l].new Cached(capacity, ctx, bf16KvCache);
        }

        @Override public int capacity() { return pos.length; }
        @Override public int context() { return ctx; }
        @Override public int vocab() { return V; }
        @Override public long position(int slot) { checkSlot(slot); return pos[slot]; }
        @Override public void reset(int slot) { checkSlot(slot); pos[slot] = 0; }
        @Override public long lastParamBytes() { return paramBytes; }

        @Override public long lastKvBytes() { return kvBytes; }

        @Override
        public void seek(int slot, long position) {
            checkSlot(slot);
            if (position < 0) throw new UserError("decoder: position must be >= 0, got " + position);
            pos[slot] = position;
        }

        @Override
        public long kvCacheBytes() {
            long b = 0;
            for (Block.Cached c : blocks_) b += c.pool.bytes();
            return b;
        }

        private void checkSlot(int slot) {
            if (slot < 0 || slot >= pos.length) throw new UserError("decoder: slot " + slot + " outside [0, " + pos.length + ")");
        }

        @Override
        public float[] step(int[] slots, int[] tokens, int n) {
            int[][] chunks = new int[n][];
            for (int i = 0; i < n; i++) chunks[i] = new int[]{tokens[i]};
            return forward(slots, chunks, n);
        }

        @Override
        public float[] forward(int[] slots, int[][] chunks, int n) {
            if (n <= 0 || n > pos.length) throw new UserError("decoder: " + n + " sequences for " + pos.length + " slots");
            java.util.Arrays.fill(seen, false);
            for (int i = 0; i < n; i++) {
                checkSlot(slots[i]);
                if (seen[slots[i]]) throw new UserError("decoder: slot " + slots[i] + " appears twice in one call");
                seen[slots[i]] = true;
                if (chunks[i] == null || chunks[i].length == 0) throw new UserError("decoder: empty chunk for slot " + slots[i]);
                for (int t : chunks[i])
                    if (t < 0 || t >= V) throw new UserError("decoder: token id " + t + " outside vocabulary [0, " + V + ")");
            }
            if (slotR.length < n) {
                slotR = new int[n]; startR = new int[n]; lenR = new int[n]; seqR = new int[n]; pos0R = new long[n]; done = new int[n];
            }
            if (last.length < n * d) { last = new float[n * d]; lastN = new float[n * d]; r = new float[n]; }
            if (out.length < n * V) out = new float[n * V];
            java.util.Arrays.fill(done, 0, n, 0);
            paramBytes = 0;
            kvBytes = 0;
            while (true) {
                // one round: up to ROUND more rows of every sequence that still has tokens
                int nSeq = 0, rows = 0;
                for (int i = 0; i < n; i++) {
                    int m = Math.min(ROUND, chunks[i].length - done[i]);
                    if (m == 0) continue;
                    slotR[nSeq] = slots[i]; startR[nSeq] = rows; lenR[nSeq] = m; seqR[nSeq] = i; pos0R[nSeq] = pos[slots[i]];
                    nSeq++;
                    rows += m;
                }
                if (nSeq == 0) break;
                round(chunks, nSeq, rows);
            }
            lnF.forward(n, last, 0, lastN, 0, r, 0);
            k.gemmNT(n, V, d, lastN, 0, wte.data(), 0, out, 0, false);
            paramBytes += ((long) V * d + d) * Float.BYTES;
            return out;
        }

        /** One round: rows [startR[s], startR[s] + lenR[s]) hold the next tokens of call sequence seqR[s]. */
        private void round(int[][] chunks, int nSeq, int rows) {
            if (x.length < rows * d) {
                x = new float[rows * d];
                for (int m = 0; m < mem.length; m++) mem[m] = new float[rows * d];
            }
            float[] e = wte.data();
            for (int s = 0; s < nSeq; s++) {
                int i = seqR[s];
                for (int j = 0; j < lenR[s]; j++) System.arraycopy(e, chunks[i][done[i] + j] * d, x, (startR[s] + j) * d, d);
            }
            paramBytes += (long) rows * d * Float.BYTES;
            for (int l = 0; l < L; l++) {
                Block.Cached b = blocks_[l];
                b.run(x, rows, nSeq, slotR, pos0R, startR, lenR);
                paramBytes += b.paramBytes();
                kvBytes += b.kvFloatsRead * b.pool.elementBytes();
                for (int m = 0; m < memLayers.length; m++) {
                    if (placements.get(m).from() != l) continue;
                    memLayers[m].forward(b.u, mem[m], rows);
                    paramBytes += memLayers[m].lastForwardParamBytes();
                }
                for (int m = 0; m < memLayers.length; m++) {
                    if (placements.get(m).to() != l) continue;
                    float[] mo = mem[m];
                    for (int i = 0; i < rows * d; i++) x[i] += mo[i];
                }
            }
            // advance positions; a sequence whose chunk ends in this round leaves its last row for the logits
            for (int s = 0; s < nSeq; s++) {
                int i = seqR[s], m = lenR[s];
                done[i] += m;
                pos[slotR[s]] += m;
                if (done[i] == chunks[i].length) System.arraycopy(x, (startR[s] + m - 1) * d, last, i * d, d);
            }
        }
    }
}
