package dev.ultramem.infer;

import dev.ultramem.core.Rng;
import dev.ultramem.core.UserError;

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

    /** Samples from logits[off, off + n). */
    public int sample(float[] logits, int off, int n) {
        if (greedy()) return argmax(logits, off, n);
        int kept = distribution(logits, off, n);
        double u = rng.nextDouble();
        double c = 0;
        for (int i = 0; i < kept; i++) {
            c += probs[i];
            if (u < c) return (int) order[i];
        }
        return (int) order[kept - 1];  // rounding: u within the last ulp
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
        for (int i = 0; i < n; i++) {
            int bits = Float.floatToIntBits(logits[off + i]);
            int key = bits >= 0 ? bits : bits ^ 0x7FFFFFFF;   // monotone in the float value
            order[i] = ((long) ~key << 32) | i;              // ~key: larger logits first
        }
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
