package dev.ultramem.infer;

import dev.ultramem.core.Rng;
import dev.ultramem.core.UserError;
import dev.ultramem.kernel.Kernels;

import java.util.Arrays;

/**
 * Picks the next token from logits: greedy (argmax, lowest index on ties) at temperature 0, else a
 * draw from softmax(logits / temperature) restricted to the top-k tokens (k = 0: all) and then to the
 * nucleus, the smallest set of most probable tokens whose probability reaches top-p (p = 1: all).
 * A draw walks the kept tokens from most to least probable (ties by lower index). Buffers are
 * allocated once per vocabulary size.
 */
public final class Sampler {
    private final double temperature;
    private final int topK;
    private final double topP;
    private final Rng rng;
    private long[] order = new long[0];
    private double[] probs = new double[0];
    private float[] weight = new float[0];
    private static final Kernels K = Kernels.get();

    public Sampler(double temperature, int topK, double topP, long seed) {
        if (!(temperature >= 0) || Double.isInfinite(temperature)) throw new UserError("--temperature must be >= 0, got " + temperature);
        if (topK < 0) throw new UserError("--top-k must be >= 0 (0 disables it), got " + topK);
        if (!(topP > 0 && topP <= 1)) throw new UserError("--top-p must be in (0, 1], got " + topP);
        this.temperature = temperature;
        this.topK = topK;
        this.topP = topP;
        this.rng = new Rng(seed);
    }

    public boolean greedy() { return temperature == 0; }

    public int sample(float[] logits) { return sample(logits, 0, logits.length); }

    /**
     * Samples from logits[off, off + n): the same draw as walking the sorted kept tokens (class comment), found in
     * expected O(n) by selection instead of a sort of the vocabulary, which with a real tokenizer's 32k–128k
     * tokens would cost more than the decode step itself for every sequence of a batch. Quickselect over the
     * packed keys narrows to the top-k, then to the nucleus, then to the token where the cumulative weight in
     * the walk's order passes u times the kept weight (the masses are summed in partition order, so they can
     * differ from the sorted walk's in the last bits).
     */
    public int sample(float[] logits, int off, int n) {
        // a temperature whose inverse overflows a float is the limit T → 0: every weight but the maximum's is 0
        if (greedy() || 1 / temperature > Float.MAX_VALUE) return argmax(logits, off, n);
        if (order.length < n) { order = new long[n]; probs = new double[n]; }
        if (weight.length < n) weight = new float[n];
        float max = K.max(n, logits, off);
        for (int i = 0; i < n; i++) {
            float l = logits[off + i];
            order[i] = key(l, i);
            weight[i] = l - max;  // subtracted before the scaling, so a small temperature does not lose precision
        }
        // weights exp((l − max)/T), indexed by token, with the kernels' float exp (≤ 1 ulp): Math.exp per token
        // cost more than the selection at a real vocabulary size
        K.expScaled(n, weight, 0, (float) (1 / temperature), 0f);
        int len = n;
        if (topK > 0 && topK < n) {
            selectBest(topK, n);
            len = topK;
        }
        double mass = 0;
        for (int i = 0; i < len; i++) mass += weight[token(order[i])];
        if (topP < 1) {
            len = crossing(len, topP * mass, false);
            mass = crossedMass;
        }
        return token(order[crossing(len, rng.nextDouble() * mass, true) - 1]);
    }

    /** Sort key: ascending key is descending logit, then ascending index (one long: no boxing). */
    private static long key(float logit, int i) {
        int bits = Float.floatToIntBits(logit);
        int k = bits >= 0 ? bits : bits ^ 0x7FFFFFFF;   // monotone in the float value
        return ((long) ~k << 32) | i;                  // ~k: larger logits first
    }

    private static int token(long key) { return (int) key; }

    private double crossedMass;
    private static final int SMALL = 16;

    /**
     * Rearranges order[0, len) so that its first j keys are the j best, the j-th of them last, where j is the
     * smallest count whose summed weight passes target (strictly, or reaches it), and returns j (len if the whole
     * range does not); the weight of those j goes to crossedMass.
     */
    private int crossing(int len, double target, boolean strict) {
        int lo = 0, hi = len;
        double before = 0;
        while (hi - lo > SMALL) {
            int m = partition(lo, hi);
            double left = before;
            for (int i = lo; i < m; i++) left += weight[token(order[i])];
            if (strict ? left > target : left >= target) { hi = m; continue; }
            double withPivot = left + weight[token(order[m])];
            if (strict ? withPivot > target : withPivot >= target) { crossedMass = withPivot; return m + 1; }
            before = withPivot;
            lo = m + 1;
        }
        Arrays.sort(order, lo, hi);
        for (int i = lo; i < hi; i++) {
            before += weight[token(order[i])];
            if (strict ? before > target : before >= target) { crossedMass = before; return i + 1; }
        }
        crossedMass = before;  // rounding: the target is within the last bits of the range's weight
        return hi;             // hi == len here: the last range sorted is the tail, so order[len - 1] is the worst
    }

    /** Rearranges order[0, n) so that its first k keys are the k best (in no particular order). */
    private void selectBest(int k, int n) {
        int lo = 0, hi = n;
        while (hi - lo > 1) {
            int m = partition(lo, hi);
            if (m == k || m + 1 == k) return;
            if (m > k) hi = m;
            else lo = m + 1;
        }
    }

    /**
     * Partitions order[lo, hi) around the median of its first, middle and last keys: smaller keys before it,
     * larger after; returns the pivot's position. Keys are distinct (they hold the token index).
     */
    private int partition(int lo, int hi) {
        int a = lo, b = (lo + hi) >>> 1, c = hi - 1;
        long ka = order[a], kb = order[b], kc = order[c];
        int p = ka < kb ? (kb < kc ? b : ka < kc ? c : a) : (ka < kc ? a : kb < kc ? c : b);
        long pivot = order[p];
        order[p] = order[hi - 1];
        order[hi - 1] = pivot;
        int m = lo;
        for (int i = lo; i < hi - 1; i++) {
            long v = order[i];
            if (v < pivot) { order[i] = order[m]; order[m++] = v; }
        }
        order[hi - 1] = order[m];
        order[m] = pivot;
        return m;
    }

    /**
     * Computes the kept tokens and their renormalised probabilities, most probable first. Writes the
     * full distribution over the vocabulary into out (zeros for dropped tokens) when out is not null.
     */
    public void distribution(float[] logits, double[] out) {
        int kept = distribution(logits, 0, logits.length);
        Arrays.fill(out, 0);
        for (int i = 0; i < kept; i++) out[(int) order[i]] = probs[i];
    }

    private int distribution(float[] logits, int off, int n) {
        if (order.length < n) { order = new long[n]; probs = new double[n]; }
        // sort key: descending logit, then ascending index (packed in one long: no boxing)
        for (int i = 0; i < n; i++) order[i] = key(logits[off + i], i);
        Arrays.sort(order, 0, n);
        for (int i = 0; i < n; i++) order[i] = order[i] & 0xFFFFFFFFL;
        int k = topK == 0 ? n : Math.min(topK, n);
        double max = logits[off + (int) order[0]];
        double sum = 0;
        for (int i = 0; i < k; i++) {
            double p = Math.exp((logits[off + (int) order[i]] - max) / temperature);
            probs[i] = p;
            sum += p;
        }
        int kept = k;
        double c = 0;
        for (int i = 0; i < k; i++) {
            probs[i] /= sum;
            c += probs[i];
            if (c >= topP && kept == k) kept = i + 1;
        }
        if (kept < k) {
            double s = 0;
            for (int i = 0; i < kept; i++) s += probs[i];
            for (int i = 0; i < kept; i++) probs[i] /= s;
        }
        return kept;
    }

    static int argmax(float[] x, int off, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) if (x[off + i] > x[off + best]) best = i;
        return best;
    }
}
