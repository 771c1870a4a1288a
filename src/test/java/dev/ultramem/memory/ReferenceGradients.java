package dev.ultramem.memory;

import dev.ultramem.core.Rng;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * An analytic float32 gradient against central differences of a double-precision reference objective
 * (a {@link NaiveMemory} layer). The reference's rounding error is near 1e-16 of the objective, so with
 * h = 1e-5 its difference quotient errs by ~1e-11/h plus an O(h²) truncation term, both ≈ 1e-10: the
 * reference gradient is exact far below float32 resolution and what a check measures is the engine's own
 * float32 error. Each coordinate must satisfy |an − ref| ≤ rtol·|ref| + atol·max|ref over the tensor|.
 * Probes whose ±h perturbation changes a selection of the reference are skipped and counted.
 */
final class ReferenceGradients {

    /** One evaluation of the reference: the objective and its selection (equal iff every top-k is the same). */
    record Probe(double objective, int[] selection) {}

    static final double H = 1e-5;

    private final Supplier<Probe> ref;
    private final int[] sel0;
    private final double rtol, atol;
    private final int coordsPerTensor;
    private final Rng rng;
    private final List<String> failures = new ArrayList<>();
    int checked, skipped;
    /** largest error / tolerance ratio seen. */
    double worst;

    ReferenceGradients(Supplier<Probe> ref, double rtol, double atol, int coordsPerTensor, Rng rng) {
        this.ref = ref; this.rtol = rtol; this.atol = atol; this.coordsPerTensor = coordsPerTensor; this.rng = rng;
        sel0 = ref.get().selection();
    }

    /** Checks up to coordsPerTensor coordinates (all if the tensor is smaller) of w, whose analytic gradient is an. */
    void tensor(String name, float[] an, double[] w) {
        int len = w.length, k = Math.min(len, coordsPerTensor);
        int[] coords = new int[k];
        for (int q = 0; q < k; q++) coords[q] = len <= coordsPerTensor ? q : rng.nextInt(len);
        double[] fd = new double[k];
        boolean[] ok = new boolean[k];
        double scale = 0;
        for (int q = 0; q < k; q++) {
            int i = coords[q];
            double old = w[i];
            w[i] = old + H;
            Probe p = ref.get();
            w[i] = old - H;
            Probe m = ref.get();
            w[i] = old;
            ok[q] = Arrays.equals(sel0, p.selection()) && Arrays.equals(sel0, m.selection());
            fd[q] = (p.objective() - m.objective()) / (2 * H);
            if (ok[q]) scale = Math.max(scale, Math.abs(fd[q]));
        }
        for (int q = 0; q < k; q++) {
            if (!ok[q]) { skipped++; continue; }
            checked++;
            double a = an[coords[q]], err = Math.abs(a - fd[q]);
            double tol = rtol * Math.abs(fd[q]) + atol * scale + 1e-9;
            worst = Math.max(worst, err / tol);
            if (err > tol) failures.add(name + "[" + coords[q] + "] reference " + fd[q] + " analytic " + a + " (tensor scale " + scale + ")");
        }
    }

    /** No mismatch, and at most 10% of the probes skipped. */
    void assertPassed(String what) {
        assertTrue(failures.isEmpty(), what + ": " + failures.size() + " gradient mismatches against the reference: "
                + failures.subList(0, Math.min(8, failures.size())));
        assertTrue(skipped * 10 <= checked, what + ": too many probes changed the selection: checked " + checked + ", skipped " + skipped);
        System.out.printf("reference gradient %s: checked %d skipped %d, worst err/tol %.3f%n", what, checked, skipped, worst);
    }
}
