package dev.ultramem.memory;

import dev.ultramem.core.Rng;
import dev.ultramem.model.LayerConfigs;
import dev.ultramem.model.ModelConfig;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * UltraMem v1 and UltraMemV2 forwards against {@link NaiveMemory} (double precision, plain loops, from the
 * spec): the rank-1 vectors u, v, the stage-2 winners (virtual index and order), their summed and per-core
 * scores, the output and the aux losses. Paper-mode queries (a row and a column query per Tucker rank, the
 * default for new V2 models) are the main subject; released, shared and v1 layouts are covered as well.
 *
 * <p>Tolerances. The engine computes in float32 (u = 2⁻²⁴ ≈ 6e-8). Along the longest path of these tiny
 * layers (query projection over d = 16, RMSNorm over kdim = 8, scores over kdim, a grid of r² ≤ 9 terms per
 * core, pre-value dot over ≤ 4, the pooled lookup over H·knn·C ≤ 18 and values_proj over ≤ 48 inputs) the
 * standard bound |fl(Σ) − Σ| ≤ γ_K·Σ|terms| with Σ K ≈ 120 gives a relative error below 120·u ≈ 7e-6 of
 * the magnitudes involved, which here stay close to the largest output. We allow 1e-5 of the tensor's
 * largest |value| for scores and outputs (observed: at most 3e-7; a structural error such as a swapped rank
 * query or a dropped key norm changes outputs by O(1) of their scale).
 * Selections are compared exactly (as sets per token and head, the scores then matched by index); each
 * case first asserts that every k-th and (k+1)-th reference score are at least 1e-4 (relative) apart,
 * ~500× the float error of a score, so equal selections are required.
 */
class TuckerForwardReferenceTest {

    static final int N = 7;
    static final double TOL = 1e-5, TIE = 1e-4;

    static void check(ModelConfig c, long seed) {
        UltraMemGradientTest.Built b = UltraMemGradientTest.build(c, seed);
        MemoryConfig mc = LayerConfigs.memory(c);
        boolean v1 = c.memType.equals("ultramem_v1");
        NaiveMemory.Tucker s = v1 ? NaiveMemory.v1(mc) : NaiveMemory.v2(mc, 1, 2);
        TuckerRetrieval ret = b.ret();
        assertEquals(s.keyNum(), ret.keyNum, "keys per side");
        assertEquals(s.nSlots() * s.kdim(), ret.queryProj.dim(0), "query projection width");

        Map<String, double[]> w = NaiveMemory.weights(b.params());
        // u, v: the leading singular pair of Σ_c C_c[h], computed here (sign taken from the engine's)
        assertTrue(NaiveMemory.refreshRankOne(s, w, "m.") < 1e-6, "u, v differ from the leading singular pair of the summed core");

        Rng rng = new Rng(seed + 100);
        float[] x = new float[N * c.dModel], y = new float[N * c.dModel];
        rng.fillNormal(x, 1.0);
        b.layer().setTraining(true);
        b.layer().forward(x, y, N);
        NaiveMemory.Out ref = NaiveMemory.tucker(s, w, "m.", v1 ? "m." : "full_memory_layer.", b.layer().indexBuffers().get(0).data(),
                dev.ultramem.layer.NaiveRef.toDouble(x), N);
        assertTrue(ref.minGap() > TIE, "test setup: a reference top-k is within " + ref.minGap() + " of a tie; pick another seed");

        int m = N * s.heads() * s.knn();
        int[] at = matchWinners(ref.z(), ret.bestIndices, m, s.knn());
        assertClose("summed scores", permute(ref.sum(), at, 1), ret.sumScores, m);
        assertClose("per-core scores", permute(ref.core(), at, s.cores()), ret.scores, m * s.cores());
        assertClose("output", ref.y(), y, N * c.dModel);
        double aux = b.layer().auxLoss();
        assertEquals(ref.aux(), aux, 1e-5 * Math.abs(ref.aux()) + 1e-12, "aux loss");
        if (s.penalty() > 0 || s.balance() > 0) assertTrue(ref.aux() > 0, "test setup: the aux losses should be active");
    }

    /**
     * Asserts that each list of k winners (one per token and head) holds the same indices in engine and
     * reference, and that the engine lists them best first; returns the reference position of each engine
     * entry. Positions are matched by index because the order of two winners whose scores differ by less
     * than the float error is not part of the result.
     */
    static int[] matchWinners(int[] ref, int[] eng, int m, int k) {
        int[] at = new int[m];
        for (int e = 0; e < m; e++) {
            int list = e / k * k, found = -1;
            for (int q = list; q < list + k; q++) if (ref[q] == eng[e]) found = q;
            assertTrue(found >= 0, "winner " + e + ": engine index " + eng[e] + " is not among the reference's " +
                    java.util.Arrays.toString(java.util.Arrays.copyOfRange(ref, list, list + k)));
            at[e] = found;
        }
        return at;
    }

    /** The reference's per-entry values (width w each) in the engine's entry order. */
    static double[] permute(double[] ref, int[] at, int w) {
        double[] p = new double[at.length * w];
        for (int e = 0; e < at.length; e++) System.arraycopy(ref, at[e] * w, p, e * w, w);
        return p;
    }

    static void assertClose(String what, double[] ref, float[] got, int len) {
        double scale = 0, worst = 0;
        for (int i = 0; i < len; i++) scale = Math.max(scale, Math.abs(ref[i]));
        assertTrue(scale > 0, what + ": reference is identically zero");
        int at = -1;
        for (int i = 0; i < len; i++) {
            double e = Math.abs(got[i] - ref[i]);
            if (e > worst) { worst = e; at = i; }
        }
        assertTrue(worst <= TOL * scale, what + ": |engine − reference| = " + worst + " at " + at + " (reference " + (at < 0 ? 0 : ref[at])
                + ", engine " + (at < 0 ? 0 : got[at]) + ") exceeds " + TOL + "·" + scale);
    }

    static ModelConfig paper() {
        ModelConfig c = UltraMemGradientTest.base("ultramem_v2");
        c.memQueryMode = "paper";
        return c;
    }

    @Test void v2PaperQueries() { check(paper(), 31); }

    @Test void v2PaperTwoHeadsRank3Cores3Stage1KeyExpandConcatGelu() {
        ModelConfig c = paper();
        c.memHead = 2; c.memTuckerRank = 3; c.memTuckerCores = 3; c.memVdim = 12; c.memStage1Knn = 4;
        c.memKeyExpandTime = 2; c.memValueExpandTime = 4; c.memUseGluAct = true;
        c.memTuckerPenalty = 0.5; c.memTuckerTau = 0.05; c.memKeyBalanceCoef = 0.3;
        check(c, 32);
    }

    /** Three heads: heads 0, 1 share the first pair of rank queries, head 2 reads the second pair. */
    @Test void v2PaperThreeHeadsSummedGroupsNoPreValues() {
        ModelConfig c = paper();
        c.memHead = 3; c.memPreVdim = 0; c.memKeyExpandTime = 2; c.memStage1Knn = 2; c.memKnn = 3;
        check(c, 33);
    }

    @Test void v2ReleasedQueries() { check(UltraMemGradientTest.base("ultramem_v2"), 34); }

    @Test void v2SharedQueryTwoHeads() {
        ModelConfig c = UltraMemGradientTest.base("ultramem_v2");
        c.memQueryMode = "shared"; c.memHead = 2;
        check(c, 45);
    }

    @Test void v1Rank3Cores3Penalty() {
        ModelConfig c = UltraMemGradientTest.base("ultramem_v1");
        c.memHead = 2; c.memTuckerRank = 3; c.memTuckerCores = 3; c.memVdim = 12; c.memStage1Knn = 4;
        c.memTuckerPenalty = 0.5; c.memTuckerTau = 0.05;
        check(c, 36);
    }
}
