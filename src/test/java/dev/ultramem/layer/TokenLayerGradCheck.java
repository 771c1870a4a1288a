package dev.ultramem.layer;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;

import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Central finite-difference check of a {@link TokenLayer}'s backward for the objective
 * {@code L = Σ y·g + auxLoss()}, summed in double. Layers with a discrete choice (top-k, expert
 * routing) are only differentiable while the choice stays the same: probes whose perturbation changes
 * the selection snapshot are skipped and counted.
 */
public final class TokenLayerGradCheck {

    public final TokenLayer layer;
    public final float[] x, g;
    public final int n, d;
    public final Supplier<int[]> selection;
    public final boolean withAux;
    public int probes, skipped;
    /** Largest error / tolerance ratio seen (≤ 1 when every probe passed). */
    public double worst;

    public TokenLayerGradCheck(TokenLayer layer, float[] x, float[] g, int n, int d, Supplier<int[]> selection, boolean withAux) {
        this.layer = layer; this.x = x; this.g = g; this.n = n; this.d = d; this.selection = selection; this.withAux = withAux;
    }

    public double loss() {
        float[] y = new float[n * d];
        layer.forward(x, y, n);
        double l = 0;
        for (int i = 0; i < n * d; i++) l += (double) y[i] * g[i];
        return withAux ? l + layer.auxLoss() : l;
    }

    /** Runs forward + backward from zeroed gradients; returns dx. */
    public float[] analytic() {
        for (Param p : layer.params()) if (p.trainable) p.zeroGrad();
        float[] y = new float[n * d];
        layer.forward(x, y, n);
        float[] dx = new float[n * d];
        layer.backward(x, g, dx, n);
        return dx;
    }

    interface Access { float get(long i); void set(long i, float v); }

    /**
     * Checks {@code count} random coordinates of a tensor (all of them if count ≥ size) against the
     * analytic gradient: |fd − an| ≤ rtol·max(|fd|, |an|) + atol·max|an over the tensor|.
     */
    public void check(String what, long size, Access acc, Access grad, int count, double eps, double rtol, double atol, Rng rng) {
        double scale = 0;
        for (long i = 0; i < size; i++) scale = Math.max(scale, Math.abs(grad.get(i)));
        long[] coords;
        if (count >= size) { coords = new long[(int) size]; for (int i = 0; i < size; i++) coords[i] = i; }
        else { coords = new long[count]; for (int i = 0; i < count; i++) coords[i] = (long) (rng.nextDouble() * size); }
        int[] base = selection == null ? null : selection.get().clone();
        for (long c : coords) {
            float orig = acc.get(c);
            float an = grad.get(c);
            acc.set(c, orig + (float) eps);
            double lp = loss();
            boolean changed = base != null && !Arrays.equals(base, selection.get());
            float up = acc.get(c);
            acc.set(c, orig - (float) eps);
            double lm = loss();
            changed |= base != null && !Arrays.equals(base, selection.get());
            float down = acc.get(c);
            acc.set(c, orig);
            probes++;
            if (changed) { skipped++; continue; }
            double fd = (lp - lm) / ((double) up - down);
            double err = Math.abs(fd - an);
            double tol = rtol * Math.max(Math.abs(fd), Math.abs(an)) + atol * scale + 1e-9;
            worst = Math.max(worst, err / tol);
            assertTrue(err <= tol, what + "[" + c + "]: finite difference " + fd + " vs analytic " + an + " (scale " + scale + ")");
        }
        // restore the forward state of the unperturbed weights
        loss();
    }

    public void checkParam(Param p, int count, double eps, double rtol, double atol, Rng rng) {
        Access a = new Access() {
            public float get(long i) { return p.get(i); }
            public void set(long i, float v) { p.set(i, v); }
        };
        Access gr = new Access() {
            public float get(long i) { return p.gradSegment().getAtIndex(ValueLayout.JAVA_FLOAT, i); }
            public void set(long i, float v) { throw new UnsupportedOperationException(); }
        };
        check(p.name, p.numel(), a, gr, count, eps, rtol, atol, rng);
    }

    public void checkInput(float[] dx, int count, double eps, double rtol, double atol, Rng rng) {
        Access a = new Access() {
            public float get(long i) { return x[(int) i]; }
            public void set(long i, float v) { x[(int) i] = v; }
        };
        Access gr = new Access() {
            public float get(long i) { return dx[(int) i]; }
            public void set(long i, float v) { throw new UnsupportedOperationException(); }
        };
        check("input", (long) n * d, a, gr, count, eps, rtol, atol, rng);
    }

    public static float[] randn(Rng rng, int len, double std) {
        float[] a = new float[len];
        rng.fillNormal(a, std);
        return a;
    }
}
