package dev.ultramem.memory;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.layer.NaiveRef;
import dev.ultramem.layer.TokenLayerGradCheck;
import dev.ultramem.model.LayerConfigs;
import dev.ultramem.model.MemoryLayers;
import dev.ultramem.model.ModelConfig;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Memory+ against {@link NaiveMemory#memoryPlus} (double, plain loops, from spec §4), with the keys
 * normalised (the paper, our default) and raw (the official code): the selected rows of every token and
 * head, their raw grid scores and softmax weights, and the output.
 *
 * <p>Tolerance: the float32 path is query_proj (d = 16 terms), RMSNorm (kdim = 8), key scores (8), the
 * grid sum, a softmax over knn = 4, the pooled rows (H·knn = 8), the SiLU gate (16) and values_proj
 * (vdim = 16): Σ K ≈ 80 terms, |fl − exact| ≤ 80·2⁻²⁴ ≈ 5e-6 of the magnitudes involved; we allow 1e-5
 * of each tensor's largest |value| (observed below 5e-7). A missing key norm moves the scores by O(1).
 * Each case asserts first that every top-k set of the reference is 1e-4 (relative) away from a tie.
 */
class MemoryPlusReferenceTest {

    static final int N = 9;

    record Built(ModelConfig cfg, MemoryConfig mc, MemoryPlus layer, List<Param> all) {}

    static Built build(boolean keyNorm, int stage1, Rng rng) {
        ModelConfig cfg = ProductKeyLayersGradTest.config("memory_plus", keyNorm, stage1);
        MemoryConfig mc = LayerConfigs.memory(cfg);
        SharedMemory shared = SharedMemory.create(mc, 1, "full_memory_layer.");
        shared.initialize(mc, rng);
        MemoryPlus layer = (MemoryPlus) MemoryLayers.create(cfg, 0, 1, shared, "transformer.mem_blocks.0.");
        layer.initialize(rng);
        // generic norm weights, so that a norm applied to the wrong tensor or skipped shows
        ProductKeyLayersGradTest.perturbNorm(layer.queryNorm, rng);
        ProductKeyLayersGradTest.perturbNorm(layer.keysNorm, rng);
        List<Param> all = new ArrayList<>(layer.params());
        all.addAll(shared.params());
        return new Built(cfg, mc, layer, all);
    }

    static NaiveMemory.PlusOut reference(Built b, Map<String, double[]> w, double[] x) {
        return NaiveMemory.memoryPlus(b.mc(), b.cfg().memKeyNorm, w, "transformer.mem_blocks.0.", "full_memory_layer.", x, N);
    }

    @ParameterizedTest
    @CsvSource({"true, 0, 41", "true, 6, 42", "false, 0, 43", "true, 0, 44", "true, 6, 45", "false, 0, 46"})
    void forwardMatchesReference(boolean keyNorm, int stage1, long seed) {
        Rng rng = new Rng(seed);
        Built b = build(keyNorm, stage1, rng);
        ModelConfig cfg = b.cfg();
        MemoryPlus layer = b.layer();
        float[] x = TokenLayerGradCheck.randn(rng, N * cfg.dModel, 1), y = new float[N * cfg.dModel];
        layer.forward(x, y, N);
        NaiveMemory.PlusOut ref = reference(b, NaiveMemory.weights(b.all()), NaiveRef.toDouble(x));
        assertTrue(ref.minGap() > TuckerForwardReferenceTest.TIE, "test setup: a reference top-k is near a tie (" + ref.minGap() + ", seed " + seed + ")");
        int m = N * cfg.memHead * cfg.memKnn;
        int[] at = TuckerForwardReferenceTest.matchWinners(ref.idx(), layer.lastIndices(), m, cfg.memKnn);
        TuckerForwardReferenceTest.assertClose("raw scores", TuckerForwardReferenceTest.permute(ref.raw(), at, 1), layer.lastRawScores(), m);
        TuckerForwardReferenceTest.assertClose("weights", TuckerForwardReferenceTest.permute(ref.weight(), at, 1), layer.lastWeights(), m);
        TuckerForwardReferenceTest.assertClose("output", ref.y(), y, N * cfg.dModel);
    }

    /**
     * Every gradient (input, query projection and norm, keys and keys_norm, gate and output projections,
     * the touched and untouched value rows) against central differences of the reference
     * ({@link ReferenceGradients}), with the tolerances of the UltraMem check: |an − ref| ≤ 2e-5·|ref| +
     * 5e-6·max|ref| per tensor (the float32 backward sums at most ~100 products per coordinate: ≤ 6e-6
     * of the magnitudes; the older check of this layer allows 1e-2·|an| + 1e-3·max|an|).
     */
    @ParameterizedTest
    @CsvSource({"true, 0, 51", "true, 6, 52", "false, 0, 53"})
    void gradientsMatchReference(boolean keyNorm, int stage1, long seed) {
        Rng rng = new Rng(seed);
        Built b = build(keyNorm, stage1, rng);
        int d = b.cfg().dModel;
        MemoryPlus layer = b.layer();
        float[] x = TokenLayerGradCheck.randn(rng, N * d, 1), g = TokenLayerGradCheck.randn(rng, N * d, 1);
        TokenLayerGradCheck gc = new TokenLayerGradCheck(layer, x, g, N, d, null, false);
        for (Param p : b.all()) p.zeroGrad();
        float[] dx = gc.analytic();
        Map<String, double[]> w = NaiveMemory.weights(b.all());
        double[] xd = NaiveRef.toDouble(x);
        assertTrue(reference(b, w, xd).minGap() > TuckerForwardReferenceTest.TIE, "test setup: a reference top-k is near a tie (seed " + seed + ")");
        ReferenceGradients rg = new ReferenceGradients(() -> {
            NaiveMemory.PlusOut o = reference(b, w, xd);
            return new ReferenceGradients.Probe(NaiveRef.probe(o.y(), g), o.idx());
        }, UltraMemGradientTest.REF_RTOL, UltraMemGradientTest.REF_ATOL, UltraMemGradientTest.REF_COORDS, rng);
        rg.tensor("input", dx, xd);
        for (Param p : b.all()) rg.tensor(p.name, GoldenFiles.gradOf(p), w.get(p.name));
        rg.assertPassed("memory_plus keyNorm=" + keyNorm);
    }
}
