package dev.ultramem.layer;

import dev.ultramem.core.Parallel;
import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.kernel.Kernels;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Dropless mixture of SwiGLU experts in the FFN slot (OLMoE / megablocks dMoE):
 * <pre>
 *   logits = router(x)                    [n, E]
 *   p      = softmax(logits) over all E experts
 *   y[t]   = Σ_{e ∈ topk(p[t])} p[t,e] · ff_out_e(SiLU(g) ⊙ a),  [a, g] = ff_proj_e(x[t])
 * </pre>
 * The top-k weights are not renormalised. Every token is processed by its k experts (no capacity
 * limit): token slots are grouped by expert and each expert runs as one GEMM over its tokens.
 *
 * <p>Auxiliary losses (returned by {@link #auxLoss()}, gradients added by {@link #backward}):
 * load balancing as megablocks' {@code batched_load_balancing_loss} (megablocks/layers/moe.py, the
 * same in v0.5.1 and later; OLMoE adds it to the loss), whose share from one layer is
 * <pre>
 *   w_lb · E / (n_layers · n · k) · Σ_e count_e · P_e  =  (w_lb · E / n_layers) · Σ_e f_e · P_e
 * </pre>
 * with {@code count_e} the number of the n·k token slots routed to e, {@code f_e = count_e/(n·k)}
 * (no gradient) and {@code P_e} the mean router probability of e over the n tokens, so the model's
 * total over its MoE layers is an average over layers, not a sum; and router z-loss
 * {@code w_z · mean_t logsumexp(logits[t])²} per layer (megablocks' {@code batched_router_zloss}).
 *
 * <p>Tensor names (after the block prefix): {@code ffn.router.weight [E, d]},
 * {@code ffn.experts.{e}.ff_proj.weight [2·hidden, d]} (first half a, second half gate, as the dense
 * FFN), {@code ffn.experts.{e}.ff_out.weight [d, hidden]}.
 */
public final class MoeFfn implements TokenLayer {

    /**
     * Width, expert count E, experts per token k, SwiGLU inner width of one expert, the weights of the
     * load-balancing and z losses, the block count (scales the output init and divides the
     * load-balancing loss, as megablocks' num_layers) and the truncated-normal init (std, cutoff in stds).
     */
    public record Config(int dModel, int experts, int topK, int expertHidden, double lbWeight, double zWeight,
                         int nLayers, double initStd, double initCutoff) {}


    private final int d, E, k, hidden;
    private final double lbWeight, zWeight, initStd, cutoff;
    private final int nLayers;
    private double auxGradScale = 1;

    public final Param router;
    public final Param[] ffProj, ffOut;

    private int n, cap;
    private float[] logits = new float[0], probs = new float[0], lse = new float[0];
    private int[] choice = new int[0], slotOfPos = new int[0], posOfSlot = new int[0];
    private float[] gate = new float[0];
    private final int[] count, start, fill;
    private float[] xg = new float[0], h1 = new float[0], act = new float[0], ye = new float[0];
    private double lastLb, lastZ;
    private int usedExperts;
    // backward scratch
    private float[] dye = new float[0], dact = new float[0], dh1 = new float[0], dxg = new float[0];
    private float[] dGate = new float[0], dLogits = new float[0];

    public MoeFfn(Config cfg, String prefix) {
        this.d = cfg.dModel(); this.E = cfg.experts(); this.k = cfg.topK(); this.hidden = cfg.expertHidden();
        this.lbWeight = cfg.lbWeight(); this.zWeight = cfg.zWeight();
        this.initStd = cfg.initStd(); this.cutoff = cfg.initCutoff(); this.nLayers = cfg.nLayers();
        router = Param.of(prefix + "ffn.router.weight", Param.Group.DECAY, E, d);
        ffProj = new Param[E];
        ffOut = new Param[E];
        for (int e = 0; e < E; e++) {
            ffProj[e] = Param.of(prefix + "ffn.experts." + e + ".ff_proj.weight", Param.Group.DECAY, 2 * hidden, d);
            ffOut[e] = Param.of(prefix + "ffn.experts." + e + ".ff_out.weight", Param.Group.DECAY, d, hidden);
        }
        count = new int[E];
        start = new int[E + 1];
        fill = new int[E];
    }

    /** Scale of the auxiliary-loss gradient added by backward (e.g. 1/micro-batches); default 1. */
    public void setAuxGradScale(double s) { this.auxGradScale = s; }

    private void ensure(int n) {
        if (n <= cap) return;
        cap = n;
        int m = n * k;
        logits = new float[n * E]; probs = new float[n * E]; lse = new float[n]; dLogits = new float[n * E];
        choice = new int[m]; gate = new float[m]; slotOfPos = new int[m]; posOfSlot = new int[m]; dGate = new float[m];
        xg = new float[m * d]; h1 = new float[m * 2 * hidden]; act = new float[m * hidden]; ye = new float[m * d];
        dye = new float[m * d]; dact = new float[m * hidden]; dh1 = new float[m * 2 * hidden]; dxg = new float[m * d];
    }

    private void expertForward(Kernels K, int e, int h2) {
        int c = count[e], st = start[e];
        if (c == 0) return;
        K.gemmNT(c, h2, d, xg, st * d, ffProj[e].data(), 0, h1, st * h2, false);
        for (int r = st; r < st + c; r++)
            K.swigluForward(hidden, h1, r * h2, h1, r * h2 + hidden, act, r * hidden);
        K.gemmNT(c, d, hidden, act, st * hidden, ffOut[e].data(), 0, ye, st * d, false);
    }

    @Override
    public void forward(float[] x, float[] y, int n) {
        ensure(n);
        this.n = n;
        Kernels K = Kernels.get();
        // router: softmax over all experts, top-k choice (selection, ties → lower expert id)
        K.gemmNT(n, E, d, x, 0, router.data(), 0, logits, 0, false);
        Parallel.forRange(n, 64, (s, e) -> {
            for (int t = s; t < e; t++) routeToken(t);
        });
        // group token slots by expert (stable: tokens ascending inside each expert)
        Arrays.fill(count, 0);
        for (int i = 0; i < n * k; i++) count[choice[i]]++;
        start[0] = 0;
        usedExperts = 0;
        for (int e = 0; e < E; e++) {
            start[e + 1] = start[e] + count[e];
            if (count[e] > 0) usedExperts++;
        }
        System.arraycopy(start, 0, fill, 0, E);
        for (int i = 0; i < n * k; i++) {
            int pos = fill[choice[i]]++;
            slotOfPos[pos] = i;
            posOfSlot[i] = pos;
        }
        Parallel.forRange(n * k, 64, (s, e) -> {
            for (int pos = s; pos < e; pos++) System.arraycopy(x, (slotOfPos[pos] / k) * d, xg, pos * d, d);
        });
        // each expert: one SwiGLU FFN over its tokens. With few tokens per expert (decode) one expert's
        // GEMMs are too small to split, so the experts themselves run in parallel; each writes only its rows
        int h2 = 2 * hidden;
        if (n * k >= 8 * E) {
            for (int e = 0; e < E; e++) expertForward(K, e, h2);
        } else {
            Parallel.forRange(E, 1, (e0, e1) -> {
                for (int e = e0; e < e1; e++) expertForward(K, e, h2);
            });
        }
        // combine with the (unrenormalised) router probabilities
        Parallel.forRange(n, 64, (s, e) -> {
            for (int t = s; t < e; t++) {
                Arrays.fill(y, t * d, t * d + d, 0f);
                for (int j = 0; j < k; j++) {
                    int slot = t * k + j;
                    K.axpy(d, gate[slot], ye, posOfSlot[slot] * d, y, t * d);
                }
            }
        });
        // auxiliary losses
        double lb = 0;
        for (int e = 0; e < E; e++) {
            double pMean = 0;
            for (int t = 0; t < n; t++) pMean += probs[t * E + e];
            lb += ((double) count[e] / ((double) n * k)) * (pMean / n);
        }
        double z = 0;
        for (int t = 0; t < n; t++) z += (double) lse[t] * lse[t];
        lastLb = lbWeight * E / nLayers * lb;
        lastZ = zWeight * z / n;
    }

    private void routeToken(int t) {
        int o = t * E;
        float mx = Float.NEGATIVE_INFINITY;
        for (int e = 0; e < E; e++) mx = Math.max(mx, logits[o + e]);
        double sum = 0;
        for (int e = 0; e < E; e++) sum += Math.exp(logits[o + e] - mx);
        lse[t] = (float) (mx + Math.log(sum));
        for (int e = 0; e < E; e++) probs[o + e] = (float) (Math.exp(logits[o + e] - mx) / sum);
        // insertion into a sorted list of k: O(E·k) selection
        int cs = t * k, size = 0;
        for (int e = 0; e < E; e++) {
            float p = probs[o + e];
            if (size == k && p <= gate[cs + size - 1]) continue;
            int i = size < k ? size++ : k - 1;
            while (i > 0 && gate[cs + i - 1] < p) {
                gate[cs + i] = gate[cs + i - 1];
                choice[cs + i] = choice[cs + i - 1];
                i--;
            }
            gate[cs + i] = p;
            choice[cs + i] = e;
        }
    }

    @Override
    public void backward(float[] x, float[] dy, float[] dx, int n) {
        if (n != this.n) throw new IllegalStateException("backward called with n=" + n + " after a forward with n=" + this.n);
        Kernels K = Kernels.get();
        int h2 = 2 * hidden;
        // combine: ∂/∂gate = ⟨dy, expert output⟩, ∂/∂(expert output) = gate · dy
        Parallel.forRange(n, 64, (s, e) -> {
            for (int t = s; t < e; t++)
                for (int j = 0; j < k; j++) {
                    int slot = t * k + j, pos = posOfSlot[slot];
                    dGate[slot] = K.dot(d, dy, t * d, ye, pos * d);
                    for (int i = 0; i < d; i++) dye[pos * d + i] = gate[slot] * dy[t * d + i];
                }
        });
        for (int e = 0; e < E; e++) {
            int c = count[e], st = start[e];
            if (c == 0) continue;
            K.gemmTN(d, hidden, c, dye, st * d, act, st * hidden, ffOut[e].grad(), 0, true);
            K.gemmNN(c, hidden, d, dye, st * d, ffOut[e].data(), 0, dact, st * hidden, false);
            for (int r = st; r < st + c; r++)
                K.swigluBackward(hidden, h1, r * h2, h1, r * h2 + hidden, dact, r * hidden, dh1, r * h2, dh1, r * h2 + hidden);
            K.gemmTN(h2, d, c, dh1, st * h2, xg, st * d, ffProj[e].grad(), 0, true);
            K.gemmNN(c, d, h2, dh1, st * h2, ffProj[e].data(), 0, dxg, st * d, false);
        }
        // router: softmax backward of (gate gradients + load-balancing term) plus the z-loss term
        double lbCoef = auxGradScale * lbWeight * E / ((double) nLayers * n);
        double zCoef = auxGradScale * zWeight * 2.0 / n;
        Parallel.forRange(n, 64, (s, e) -> {
            for (int t = s; t < e; t++) {
                for (int j = 0; j < k; j++) K.axpy(d, 1f, dxg, posOfSlot[t * k + j] * d, dx, t * d);
                int o = t * E;
                // dp[e] = lbCoef·f_e + Σ_j [choice_j = e]·dGate_j
                double dot = 0;
                for (int ex = 0; ex < E; ex++) {
                    double dp = lbCoef * count[ex] / ((double) n * k);
                    dLogits[o + ex] = (float) dp;
                }
                for (int j = 0; j < k; j++) dLogits[o + choice[t * k + j]] += dGate[t * k + j];
                for (int ex = 0; ex < E; ex++) dot += (double) probs[o + ex] * dLogits[o + ex];
                double zt = zCoef * lse[t];
                for (int ex = 0; ex < E; ex++) {
                    double p = probs[o + ex];
                    dLogits[o + ex] = (float) (p * (dLogits[o + ex] - dot) + zt * p);
                }
            }
        });
        K.gemmTN(E, d, n, dLogits, 0, x, 0, router.grad(), 0, true);
        K.gemmNN(n, d, E, dLogits, 0, router.data(), 0, dx, 0, true);
    }

    @Override
    public double auxLoss() { return lastLb + lastZ; }

    /** Load-balancing part of the last auxiliary loss (weighted). */
    public double lastLoadBalancingLoss() { return lastLb; }

    /** Router z-loss part of the last auxiliary loss (weighted). */
    public double lastZLoss() { return lastZ; }

    /** Chosen experts of the last forward, {@code [n][k]}, in descending router probability. */
    public int[] lastChoice() { return choice; }

    /** Router probabilities of the last forward, {@code [n][E]}. */
    public float[] lastProbs() { return probs; }

    @Override
    public List<Param> params() {
        List<Param> out = new ArrayList<>(1 + 2 * E);
        out.add(router);
        for (int e = 0; e < E; e++) { out.add(ffProj[e]); out.add(ffOut[e]); }
        return out;
    }

    /** full_megatron: router and ff_proj N(0, σ²), ff_out N(0, σ²/(2·n_layers)), truncated at ±cutoff·std. */
    @Override
    public void initialize(Rng rng) {
        rng.fillTruncNormal(router.data(), initStd, cutoff);
        double outStd = initStd / Math.sqrt(2.0 * nLayers);
        for (int e = 0; e < E; e++) {
            rng.fillTruncNormal(ffProj[e].data(), initStd, cutoff);
            rng.fillTruncNormal(ffOut[e].data(), outStd, cutoff);
        }
    }

    private long expertParams() { return 3L * hidden * d; }

    @Override
    public long activatedParamsPerToken() { return (long) E * d + k * expertParams(); }

    @Override
    public long forwardMacsPerToken() { return (long) E * d + k * expertParams(); }

    /** Router plus the weights of every expert that received at least one token. */
    @Override
    public long lastForwardParamBytes() { return ((long) E * d + usedExperts * expertParams()) * Float.BYTES; }
}
