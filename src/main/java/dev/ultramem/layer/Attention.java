package dev.ultramem.layer;


import dev.ultramem.core.Param;
import dev.ultramem.core.Parallel;
import dev.ultramem.core.Rng;
import dev.ultramem.kernel.Kernels;

import java.util.Arrays;
import java.util.List;

/**
 * OLMo causal self-attention: fused {@code att_proj [3d, d]} (rows q, k, v), per-head RMSNorm of q
 * and k ({@code q_norm}, {@code k_norm} of width hd), rotate-half RoPE applied after the QK-norm,
 * softmax(q·kᵀ/sqrt(hd)) with a causal mask, {@code attn_out [d, d]}.
 *
 * <p>The per-(batch, head) work (gather, QK-norm, RoPE, the blocked flash-style attention and its backward) is
 * split over (b, h) pairs with {@link Parallel}; each pair writes only its own slices, so results do
 * not depend on the thread count. Head tensors use the layout [B, H, T, hd] so that one pair's
 * queries, keys and values are contiguous matrices for the GEMM calls.
 */
public final class Attention {

    /**
     * What attention is built from: width, heads, the block count (scales the output init), the RoPE
     * table length and base, the QK-norm epsilon, and the truncated-normal init (std, cutoff in stds).
     */
    public record Config(int dModel, int nHeads, int nLayers, int maxSeqLen, double ropeTheta, double normEps,
                         double initStd, double initCutoff) {}

    public final Param attProj, attnOut;
    public final RmsNorm qNorm, kNorm;
    private final int d, H, hd, half, nLayers;
    private final double std, cutoff, theta;
    private final float scale;
    private final Kernels k;

    // RoPE tables [positions, hd/2]; the angle of dims i and i + hd/2 is the same
    private float[] cos = new float[0], sin = new float[0];
    private int ropeLen;

    // forward state, sized for the largest B·T seen
    private int cap, lastB, lastT;
    private float[] qkv, qRaw, kRaw, q, kk, v, rstdQ, rstdK, lse, o, att;
    // backward scratch
    private float[] dAtt, dO, dQ, dK, dV, dqkv, dqn, dwQ, dwK;

    /**
     * Blocked causal attention, QB query rows at a time; a query block's keys end at its own last row. While
     * the probabilities of the causal blocks are small beside the layer's other activations (about H·T/2
     * floats per token against the 13·d of its head tensors: T ≤ 26·hd) they are kept for the backward, each
     * query block against all its keys at once. Past that the attention is flash-style: KB keys at a time
     * with an online softmax, only each row's log-sum-exp is kept, and the backward recomputes a block's
     * probabilities from it, so memory grows with T instead of T². The recomputation costs a fifth more
     * attention work (5–16% of a ref-256 step at T = 2048), which is why short windows keep the probabilities.
     */
    public static final int QB = 64, KB = 256;

    /** Whether a forward of B sequences of T positions keeps its probabilities (see {@link #QB}). */
    public static boolean keepsProbabilities(long B, long T, int d, int H) {
        return H * T <= 26L * d && B * H * causalPairSize(T) <= Integer.MAX_VALUE - 8;
    }

    private boolean keepProbs;
    private int pairSize, kb;  // kb: keys per block, T when the probabilities are kept
    private float[] probs = new float[0];  // [B·H, causal blocks of one pair] when kept
    // per worker: scores and their gradient [QB, kb], running max, sum and row term [QB]
    private Flash[] flash = new Flash[0];

    /** Floats of the causal blocks of one (batch, head) pair: query block r holds rows × (its last row + 1). */
    public static long causalPairSize(long T) {
        long size = 0;
        for (long m0 = 0; m0 < T; m0 += QB) size += Math.min(QB, T - m0) * Math.min(m0 + QB, T);
        return size;
    }

    private static final class Flash {
        final float[] m = new float[QB], l = new float[QB];
        float[] s = new float[0], ds = new float[0];  // [QB, kb]
    }

    public Attention(Config cfg, String prefix, Kernels kernels) {
        this.d = cfg.dModel();
        this.H = cfg.nHeads();
        this.hd = d / H;
        this.half = hd / 2;
        this.nLayers = cfg.nLayers();
        this.std = cfg.initStd();
        this.cutoff = cfg.initCutoff();
        this.theta = cfg.ropeTheta();
        this.scale = (float) (1.0 / Math.sqrt(hd));
        this.k = kernels;
        this.attProj = Param.of(prefix + "att_proj.weight", Param.Group.DECAY, 3 * d, d);
        this.qNorm = new RmsNorm(prefix + "q_norm.weight", hd, cfg.normEps(), kernels);
        this.kNorm = new RmsNorm(prefix + "k_norm.weight", hd, cfg.normEps(), kernels);
        this.attnOut = Param.of(prefix + "attn_out.weight", Param.Group.DECAY, d, d);
        ensureRope(cfg.maxSeqLen());
    }

    /** Parameters in the official order: att_proj, q_norm, k_norm, attn_out. */
    public List<Param> params() { return List.of(attProj, qNorm.weight, kNorm.weight, attnOut); }

    public void initialize(Rng rng) {
        rng.fillTruncNormal(attProj.data(), std, cutoff);
        qNorm.initialize();
        kNorm.initialize();
        rng.fillTruncNormal(attnOut.data(), std / Math.sqrt(2.0 * nLayers), cutoff);
    }

    /** Float32 tables as the reference computes them: inv_freq_i = θ^(−2i/hd), angle = t·inv_freq_i. */
    private void ensureRope(int n) {
        if (n <= ropeLen) return;
        float[] c = new float[n * half], s = new float[n * half];
        for (int i = 0; i < half; i++) {
            float invFreq = (float) (1.0 / Math.pow(theta, (2.0 * i) / hd));
            for (int t = 0; t < n; t++) {
                float ang = (float) t * invFreq;
                c[t * half + i] = (float) Math.cos(ang);
                s[t * half + i] = (float) Math.sin(ang);
            }
        }
        cos = c; sin = s; ropeLen = n;
    }

    /** x·cos + rotate_half(x)·sin in place on one head vector at position t. */
    private void ropeForward(float[] x, int off, int t) {
        int r = t * half;
        for (int i = 0; i < half; i++) {
            float x1 = x[off + i], x2 = x[off + half + i], c = cos[r + i], s = sin[r + i];
            x[off + i] = x1 * c - x2 * s;
            x[off + half + i] = x2 * c + x1 * s;
        }
    }

    /** The transpose of the rotation, in place on a gradient. */
    private void ropeBackward(float[] g, int off, int t) {
        int r = t * half;
        for (int i = 0; i < half; i++) {
            float g1 = g[off + i], g2 = g[off + half + i], c = cos[r + i], s = sin[r + i];
            g[off + i] = g1 * c + g2 * s;
            g[off + half + i] = g2 * c - g1 * s;
        }
    }

    private void ensure(int B, int T) {
        int n = B * T;
        if (n > cap) {
            cap = n;
            qkv = new float[n * 3 * d];
            qRaw = new float[n * d]; kRaw = new float[n * d];
            q = new float[n * d]; kk = new float[n * d]; v = new float[n * d];
            rstdQ = new float[n * H]; rstdK = new float[n * H]; lse = new float[n * H];
            o = new float[n * d]; att = new float[n * d];
            dAtt = new float[n * d]; dO = new float[n * d];
            dQ = new float[n * d]; dK = new float[n * d]; dV = new float[n * d];
            dqkv = new float[n * 3 * d]; dqn = new float[n * d];
        }
        int chunks = Math.max(1, Parallel.threads());
        if (flash.length != chunks) {
            flash = new Flash[chunks];
            for (int c = 0; c < chunks; c++) flash[c] = new Flash();
        }
        pairSize = (int) causalPairSize(T);
        keepProbs = keepsProbabilities(B, T, d, H);
        kb = keepProbs ? T : KB;
        for (Flash f : flash) {
            if (f.ds.length < QB * kb) f.ds = new float[QB * kb];
            if (!keepProbs && f.s.length < QB * kb) f.s = new float[QB * kb];  // kept probabilities need no scores block
        }
        if (keepProbs && probs.length < B * H * pairSize) probs = new float[B * H * pairSize];
        if (dwQ == null || dwQ.length < B * H * hd) { dwQ = new float[B * H * hd]; dwK = new float[B * H * hd]; }
        ensureRope(T);
    }

    /** y[B·T, d] = attention of the normalised input x[B·T, d]; keeps what backward needs. */
    public void forward(float[] x, float[] y, int B, int T) {
        ensure(B, T);
        lastB = B; lastT = T;
        final int n = B * T, d3 = 3 * d;
        k.gemmNT(n, d3, d, x, 0, attProj.data(), 0, qkv, 0, false);
        final Flash[] fl = flash;
        Parallel.forChunks(B * H, fl.length, (c, s, e) -> {
            for (int bh = s; bh < e; bh++) {
                int b = bh / H, h = bh % H, base = bh * T * hd;
                for (int t = 0; t < T; t++) {
                    int src = (b * T + t) * d3 + h * hd, dst = base + t * hd;
                    System.arraycopy(qkv, src, qRaw, dst, hd);
                    System.arraycopy(qkv, src + d, kRaw, dst, hd);
                    System.arraycopy(qkv, src + 2 * d, v, dst, hd);
                }
                qNorm.forward(T, qRaw, base, q, base, rstdQ, bh * T);
                kNorm.forward(T, kRaw, base, kk, base, rstdK, bh * T);
                for (int t = 0; t < T; t++) {
                    ropeForward(q, base + t * hd, t);
                    ropeForward(kk, base + t * hd, t);
                }
                attendForward(fl[c], base, bh * T, T, keepProbs ? bh * pairSize : 0);
                for (int t = 0; t < T; t++) System.arraycopy(o, base + t * hd, att, (b * T + t) * d + h * hd, hd);
            }
        });
        k.gemmNT(n, d, d, att, 0, attnOut.data(), 0, y, 0, false);
    }

    /** Accumulates the weight gradients and ADDS ∂L/∂x into dx. Uses the state of the last forward. */
    public void backward(float[] x, float[] dy, float[] dx, int B, int T) {
        final int n = B * T, d3 = 3 * d;
        k.gemmTN(d, d, n, dy, 0, att, 0, attnOut.grad(), 0, true);
        k.gemmNN(n, d, d, dy, 0, attnOut.data(), 0, dAtt, 0, false);
        final float[] wq = qNorm.weight.data(), wk = kNorm.weight.data();
        final Flash[] fl = flash;
        Parallel.forChunks(B * H, fl.length, (c, s, e) -> {
            for (int bh = s; bh < e; bh++) {
                int b = bh / H, h = bh % H, base = bh * T * hd;
                for (int t = 0; t < T; t++) System.arraycopy(dAtt, (b * T + t) * d + h * hd, dO, base + t * hd, hd);
                attendBackward(fl[c], base, bh * T, T, keepProbs ? bh * pairSize : 0);
                for (int t = 0; t < T; t++) {
                    ropeBackward(dQ, base + t * hd, t);
                    ropeBackward(dK, base + t * hd, t);
                }
                // per-pair partial weight gradients of the QK-norms, summed in pair order below
                normWeightGrad(dQ, qRaw, rstdQ, base, bh, T, dwQ);
                normWeightGrad(dK, kRaw, rstdK, base, bh, T, dwK);
                k.rmsnormBackward(T, hd, qRaw, base, wq, rstdQ, bh * T, dQ, base, dqn, base, null, false);
                for (int t = 0; t < T; t++) System.arraycopy(dqn, base + t * hd, dqkv, (b * T + t) * d3 + h * hd, hd);
                k.rmsnormBackward(T, hd, kRaw, base, wk, rstdK, bh * T, dK, base, dqn, base, null, false);
                for (int t = 0; t < T; t++) {
                    int dst = (b * T + t) * d3 + h * hd;
                    System.arraycopy(dqn, base + t * hd, dqkv, dst + d, hd);
                    System.arraycopy(dV, base + t * hd, dqkv, dst + 2 * d, hd);
                }
            }
        });
        float[] gq = qNorm.weight.grad(), gk = kNorm.weight.grad();
        for (int bh = 0; bh < B * H; bh++)
            for (int i = 0; i < hd; i++) { gq[i] += dwQ[bh * hd + i]; gk[i] += dwK[bh * hd + i]; }
        k.gemmTN(d3, d, n, dqkv, 0, x, 0, attProj.grad(), 0, true);
        k.gemmNN(n, d, d3, dqkv, 0, attProj.data(), 0, dx, 0, true);
    }

    /**
     * o = softmax(scale·q·kᵀ, causal)·v of one (batch, head) pair at element offset base, one query block at a
     * time with an online softmax over its key blocks: per row the running maximum m and sum l of
     * exp(scale·s − m); o is rescaled by exp(m_old − m_new) when a later block raises the maximum. Keeps
     * lse = m + log l per row (at lseOff) for the backward, or, when {@link #keepProbs}, the normalised
     * probabilities of the pair's causal blocks in {@link #probs} from pOff.
     */
    private void attendForward(Flash f, int base, int lseOff, int T, int pOff) {
        float[] m = f.m, l = f.l, S = keepProbs ? probs : f.s;
        for (int m0 = 0; m0 < T; m0 += QB) {
            int rows = Math.min(QB, T - m0), qEnd = m0 + rows, oq = base + m0 * hd;
            for (int c0 = 0; c0 < qEnd; c0 += kb) {
                int cols = Math.min(kb, qEnd - c0), so = keepProbs ? pOff : 0;
                k.gemmNT(rows, cols, hd, q, oq, kk, base + c0 * hd, S, so, false);
                for (int i = 0; i < rows; i++) {
                    int len = Math.min(cols, m0 + i - c0 + 1), r = so + i * cols;  // keys up to the row's own position
                    float mx = scale * k.max(len, S, r);  // scale > 0: the max of the scaled scores
                    if (c0 == 0) {
                        m[i] = mx;
                        l[i] = k.expScaled(len, S, r, scale, mx);
                    } else {
                        float mNew = Math.max(m[i], mx);
                        float corr = (float) Math.exp((double) m[i] - mNew);
                        l[i] = l[i] * corr + k.expScaled(len, S, r, scale, mNew);
                        if (corr != 1f) for (int j = 0, oi = oq + i * hd; j < hd; j++) o[oi + j] *= corr;
                        m[i] = mNew;
                    }
                    if (keepProbs) {  // one key block: the row's sum is final
                        float inv = 1f / l[i];
                        for (int j = 0; j < len; j++) S[r + j] *= inv;
                    }
                    Arrays.fill(S, r + len, r + cols, 0f);
                }
                k.gemmNN(rows, hd, cols, S, so, v, base + c0 * hd, o, oq, c0 > 0);
            }
            for (int i = 0; i < rows; i++) {
                if (!keepProbs) {
                    float inv = 1f / l[i];
                    for (int j = 0, oi = oq + i * hd; j < hd; j++) o[oi + j] *= inv;
                }
                lse[lseOff + m0 + i] = m[i] + (float) Math.log(l[i]);
            }
            if (keepProbs) pOff += rows * qEnd;
        }
    }

    /**
     * The backward of {@link #attendForward} on one pair from dO: per block the probabilities P (kept, or
     * recomputed as exp(scale·s − lse)), dV += Pᵀ·dO, dS = P ⊙ (dO·vᵀ − D)·scale with the row term
     * D = Σ_j P·dP = dO·o, dQ += dS·k, dK += dSᵀ·q. Writes dQ, dK, dV of the pair (no accumulation across calls).
     */
    private void attendBackward(Flash f, int base, int lseOff, int T, int pOff) {
        float[] dS = f.ds, D = f.l, S = keepProbs ? probs : f.s;
        Arrays.fill(dV, base, base + T * hd, 0f);
        Arrays.fill(dK, base, base + T * hd, 0f);
        for (int m0 = 0; m0 < T; m0 += QB) {
            int rows = Math.min(QB, T - m0), qEnd = m0 + rows, oq = base + m0 * hd;
            for (int i = 0; i < rows; i++) D[i] = k.dot(hd, dO, oq + i * hd, o, oq + i * hd);
            for (int c0 = 0; c0 < qEnd; c0 += kb) {
                int cols = Math.min(kb, qEnd - c0), ok = base + c0 * hd, so = keepProbs ? pOff : 0;
                if (!keepProbs) {
                    k.gemmNT(rows, cols, hd, q, oq, kk, ok, S, 0, false);
                    for (int i = 0; i < rows; i++) {
                        int len = Math.min(cols, m0 + i - c0 + 1), r = i * cols;
                        k.expScaled(len, S, r, scale, lse[lseOff + m0 + i]);
                        Arrays.fill(S, r + len, r + cols, 0f);
                    }
                }
                k.gemmTN(cols, hd, rows, S, so, dO, oq, dV, ok, true);
                k.gemmNT(rows, cols, hd, dO, oq, v, ok, dS, 0, false);
                for (int i = 0; i < rows; i++) {
                    int len = Math.min(cols, m0 + i - c0 + 1), r = i * cols;
                    float Di = D[i];
                    for (int j = 0; j < len; j++) dS[r + j] = S[so + r + j] * (dS[r + j] - Di) * scale;
                    Arrays.fill(dS, r + len, r + cols, 0f);
                }
                k.gemmNN(rows, hd, cols, dS, 0, kk, ok, dQ, oq, c0 > 0);
                k.gemmTN(cols, hd, rows, dS, 0, q, oq, dK, ok, true);
            }
            if (keepProbs) pOff += rows * qEnd;
        }
    }

    private void normWeightGrad(float[] dy, float[] xr, float[] rstd, int base, int bh, int T, float[] out) {
        int o0 = bh * hd;
        for (int i = 0; i < hd; i++) out[o0 + i] = 0f;
        for (int t = 0; t < T; t++) {
            float r = rstd[bh * T + t];
            int off = base + t * hd;
            for (int i = 0; i < hd; i++) out[o0 + i] += dy[off + i] * xr[off + i] * r;
        }
    }

    /** RoPE at any position: the float32 table inside the training window, double-precision angles past it. */
    private void ropeAt(float[] x, int off, long t) {
        if (t < ropeLen) { ropeForward(x, off, (int) t); return; }
        for (int i = 0; i < half; i++) {
            double ang = t * (1.0 / Math.pow(theta, (2.0 * i) / hd));
            float c = (float) Math.cos(ang), s = (float) Math.sin(ang);
            float x1 = x[off + i], x2 = x[off + half + i];
            x[off + i] = x1 * c - x2 * s;
            x[off + half + i] = x2 * c + x1 * s;
        }
    }

    /**
     * Key/value caches of a batch of decoding sequences: per slot and head a ring of {@code window}
     * positions, [slots, H, window, hd], after QK-norm and RoPE. Position p lives at ring index p mod window,
     * so a full window slides by overwriting its oldest position.
     */
    public final class KvPool {
        final int slots, window;
        /** float32 rings, or (bf16) null and the bfloat16 rings keys16, values16. */
        final float[] keys, values;
        final short[] keys16, values16;
        final boolean bf16;

        KvPool(int slots, int window, boolean bf16) {
            long floats = (long) slots * H * window * hd;
            if (floats > Integer.MAX_VALUE - 8)
                throw new dev.ultramem.core.UserError("decoder: a KV cache of " + slots + " slots × " + window
                        + " positions × d " + d + " exceeds 2^31 floats per layer; use fewer slots or a shorter context");
            this.slots = slots;
            this.window = window;
            this.bf16 = bf16;
            keys = bf16 ? null : new float[(int) floats];
            values = bf16 ? null : new float[(int) floats];
            keys16 = bf16 ? new short[(int) floats] : null;
            values16 = bf16 ? new short[(int) floats] : null;
        }

        /** Bytes of one cached key or value element. */
        public int elementBytes() { return bf16 ? 2 : Float.BYTES; }

        /** Bytes held by this layer's cache. */
        public long bytes() { return 2L * slots * H * window * hd * elementBytes(); }

        /** Copies n cached elements of the ring at off into dst (widened exactly from bf16). */
        void read(boolean key, int off, float[] dst, int dOff, int n) {
            if (!bf16) System.arraycopy(key ? keys : values, off, dst, dOff, n);
            else k.widenBf16(n, key ? keys16 : values16, off, dst, dOff);
        }

        /** Stores n elements of src into the ring at off (rounded to nearest even for bf16). */
        void write(boolean key, float[] src, int sOff, int off, int n) {
            if (!bf16) System.arraycopy(src, sOff, key ? keys : values, off, n);
            else k.roundToBf16(n, src, sOff, key ? keys16 : values16, off);
        }
    }

    /** A KV cache of slots × window positions; bf16 halves its bytes (keys and values rounded as they are stored). */
    public KvPool newPool(int slots, int window, boolean bf16) { return new KvPool(slots, window, bf16); }

    // cached-forward scratch: rows [n, ·] shared, per worker [rows of one sequence, ·]
    private float[] cQkv = new float[0], cO = new float[0];
    private float[][] cQ = new float[0][], cK = new float[0][], cV = new float[0][], cS = new float[0][];

    /**
     * Attention of n new rows x[n, d] (normalised) that continue nSeq cached sequences: sequence s owns
     * rows [start[s], start[s] + len[s]), lives in slot[s] of the pool and its first new row sits at
     * position pos0[s]. Each row attends to the last {@code window} positions up to and including its own
     * (the cached ones and the earlier new rows of its sequence); the new keys and values are appended to
     * the rings. Writes y[n, d]. Work is split over (sequence, head) pairs, each writing its own slices,
     * so results do not depend on the thread count. Returns the number of cached key/value floats read.
     */
    public long forwardCached(KvPool pool, float[] x, float[] y, int n, int nSeq,
                              int[] slot, long[] pos0, int[] start, int[] len) {
        final int d3 = 3 * d, W = pool.window;
        if (cQkv.length < n * d3) { cQkv = new float[n * d3]; cO = new float[n * d]; }
        k.gemmNT(n, d3, d, x, 0, attProj.data(), 0, cQkv, 0, false);
        int maxLen = 0;
        for (int s = 0; s < nSeq; s++) maxLen = Math.max(maxLen, len[s]);
        int chunks = Math.max(1, Math.min(Parallel.threads(), nSeq * H));
        int keyRows = W - 1 + maxLen;
        if (cQ.length != chunks || cQ[0].length < maxLen * hd || cK[0].length < keyRows * hd || cS[0].length < maxLen * keyRows) {
            int qs = Math.max(maxLen * hd, cQ.length > 0 ? cQ[0].length : 0);
            int ks = Math.max(keyRows * hd, cK.length > 0 ? cK[0].length : 0);
            int ss = Math.max(maxLen * keyRows, cS.length > 0 ? cS[0].length : 0);
            cQ = new float[chunks][qs]; cK = new float[chunks][ks]; cV = new float[chunks][ks]; cS = new float[chunks][ss];
        }
        final float[] qkv = cQkv, o = cO;
        long[] read = new long[chunks];
        Parallel.forChunks(nSeq * H, chunks, (c, lo, hi) -> {
            float[] Q = cQ[c], K = cK[c], Vv = cV[c], S = cS[c];
            float[] r1 = new float[1];
            short[] h16 = pool.bf16 ? new short[hd] : null;
            for (int sh = lo; sh < hi; sh++) {
                int sq = sh / H, h = sh % H, m = len[sq], r0 = start[sq];
                long p0 = pos0[sq];
                int ring = (slot[sq] * H + h) * W * hd;
                if (m == 1) {
                    // decode: write the new key and value first, then score the ring in place (its order
                    // does not matter to a softmax), which saves copying the window
                    int row = r0 * d3 + h * hd, at = ring + (int) (p0 % W) * hd, cnt = (int) Math.min(p0 + 1, W);
                    int dst = r0 * d + h * hd;
                    qNorm.forward(1, qkv, row, Q, 0, r1, 0);
                    ropeAt(Q, 0, p0);
                    // one query: the scores and the weighted sum are one-row products (the GEMV path, or the
                    // bf16 kernels) that stream the ring's keys and values once each
                    if (!pool.bf16) {
                        kNorm.forward(1, qkv, row + d, pool.keys, at, r1, 0);
                        ropeAt(pool.keys, at, p0);
                        System.arraycopy(qkv, row + 2 * d, pool.values, at, hd);
                        k.gemmNT(1, cnt, hd, Q, 0, pool.keys, ring, S, 0, false);
                    } else {
                        kNorm.forward(1, qkv, row + d, K, 0, r1, 0);
                        ropeAt(K, 0, p0);
                        pool.write(true, K, 0, at, hd);
                        pool.write(false, qkv, row + 2 * d, at, hd);
                        k.dotsBf16(cnt, hd, Q, 0, pool.keys16, ring, S, 0);
                    }
                    for (int j = 0; j < cnt; j++) S[j] *= scale;
                    k.softmaxRows(1, cnt, S, 0, cnt);
                    if (!pool.bf16) k.gemmNN(1, hd, cnt, S, 0, pool.values, ring, o, dst, false);
                    else k.weightedSumBf16(cnt, hd, S, 0, pool.values16, ring, o, dst);
                    read[c] += 2L * cnt * hd;
                    continue;
                }
                // the new rows' queries, keys and values, normalised and rotated at their positions
                int old = (int) Math.min(p0, W - 1);
                for (int r = 0; r < m; r++) {
                    int row = (r0 + r) * d3 + h * hd;
                    qNorm.forward(1, qkv, row, Q, r * hd, r1, 0);
                    ropeAt(Q, r * hd, p0 + r);
                    kNorm.forward(1, qkv, row + d, K, (old + r) * hd, r1, 0);
                    ropeAt(K, (old + r) * hd, p0 + r);
                    System.arraycopy(qkv, row + 2 * d, Vv, (old + r) * hd, hd);
                    if (pool.bf16) {
                        // the new rows attend to their keys and values as the cache will hold them
                        k.roundToBf16(hd, K, (old + r) * hd, h16, 0);
                        k.widenBf16(hd, h16, 0, K, (old + r) * hd);
                        k.roundToBf16(hd, Vv, (old + r) * hd, h16, 0);
                        k.widenBf16(hd, h16, 0, Vv, (old + r) * hd);
                    }
                }
                // the cached positions p0 − old … p0 − 1, oldest first
                for (int j = 0; j < old; j++) {
                    int src = ring + (int) ((p0 - old + j) % W) * hd;
                    pool.read(true, src, K, j * hd, hd);
                    pool.read(false, src, Vv, j * hd, hd);
                }
                int cols = old + m;
                read[c] += 2L * old * hd;
                k.gemmNT(m, cols, hd, Q, 0, K, 0, S, 0, false);
                for (int r = 0; r < m; r++) {
                    // row r (position p0 + r) sees the columns whose positions lie in (p0 + r − W, p0 + r]
                    int hiC = old + r, loC = Math.max(0, hiC - W + 1), off = r * cols;
                    for (int j = loC; j <= hiC; j++) S[off + j] *= scale;
                    k.softmaxRows(1, hiC - loC + 1, S, off + loC, cols);
                    Arrays.fill(S, off, off + loC, 0f);
                    Arrays.fill(S, off + hiC + 1, off + cols, 0f);
                }
                k.gemmNN(m, hd, cols, S, 0, Vv, 0, Q, 0, false);
                for (int r = 0; r < m; r++) System.arraycopy(Q, r * hd, o, (r0 + r) * d + h * hd, hd);
                // append the newest min(m, W) positions to the ring
                for (int r = Math.max(0, m - W); r < m; r++) {
                    int dst = ring + (int) ((p0 + r) % W) * hd;
                    pool.write(true, K, (old + r) * hd, dst, hd);
                    pool.write(false, Vv, (old + r) * hd, dst, hd);
                }
            }
        });
        k.gemmNT(n, d, d, o, 0, attnOut.data(), 0, y, 0, false);
        long total = 0;
        for (long r : read) total += r;
        return total;
    }

    public long paramCount() { return 4L * d * d + 2L * hd; }
}
