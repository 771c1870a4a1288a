package dev.ultramem.model;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.layer.GradCheck;
import dev.ultramem.layer.NaiveRef;
import dev.ultramem.layer.TokenLayer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * How the model wires memory layers (placement a:b reads block a's u, adds after block b), checked
 * with a stand-in memory layer y = x·Wᵀ with an auxiliary loss c·mean(y²), against a double reference.
 */
class MemoryWiringTest {

    static final double AUX = 0.05;

    /** A linear memory layer with an aux loss whose gradient it adds in backward. */
    static final class LinearMem implements TokenLayer {
        final Param w;
        final int d;
        float[] lastY = new float[0];
        double aux;

        LinearMem(int d, String prefix) { this.d = d; this.w = Param.of(prefix + "w", Param.Group.DECAY, d, d); }

        @Override public void forward(float[] x, float[] y, int n) {
            float[] a = w.data();
            double ss = 0;
            for (int t = 0; t < n; t++)
                for (int o = 0; o < d; o++) {
                    double s = 0;
                    for (int i = 0; i < d; i++) s += x[t * d + i] * a[o * d + i];
                    y[t * d + o] = (float) s;
                    ss += s * s;
                }
            aux = AUX * ss / (n * d);
            if (lastY.length < n * d) lastY = new float[n * d];
            System.arraycopy(y, 0, lastY, 0, n * d);
        }

        @Override public void backward(float[] x, float[] dy, float[] dx, int n) {
            float[] a = w.data(), g = w.grad();
            for (int t = 0; t < n; t++)
                for (int o = 0; o < d; o++) {
                    float go = dy[t * d + o] + (float) (AUX * 2 * lastY[t * d + o] / (n * d));
                    for (int i = 0; i < d; i++) {
                        g[o * d + i] += go * x[t * d + i];
                        dx[t * d + i] += go * a[o * d + i];
                    }
                }
        }

        @Override public List<Param> params() { return List.of(w); }
        @Override public void initialize(Rng rng) { rng.fillNormal(w.data(), 0.3); }
        @Override public double auxLoss() { return aux; }
        @Override public long activatedParamsPerToken() { return (long) d * d; }
        @Override public long forwardMacsPerToken() { return (long) d * d; }
        @Override public long lastForwardParamBytes() { return 4L * d * d; }
    }

    static ModelConfig cfg(String way) {
        ModelConfig c = ModelTest.tiny();
        c.nLayers = 3;
        c.memType = "pkm";
        c.memInsertWay = way;
        return c;
    }

    /** CE + Σ aux of the reference model with linear memory layers. */
    static double refObjective(Map<String, double[]> p, ModelConfig c, List<MemoryPlacement> pl, int[] in, int[] tg, int B, int T) {
        int d = c.dModel, V = c.vocabSize, n = B * T, f = c.mlpHiddenSize / 2;
        double[] wte = p.get("transformer.wte.weight");
        double[] x = new double[n * d];
        for (int i = 0; i < n; i++) System.arraycopy(wte, in[i] * d, x, i * d, d);
        double[][] memOut = new double[pl.size()][];
        double aux = 0;
        for (int l = 0; l < c.nLayers; l++) {
            double[][] ux = NaiveRef.block(x, p, l, c, B, T, f);
            double[] u = ux[0];
            x = ux[1];
            for (int m = 0; m < pl.size(); m++) {
                if (pl.get(m).from() != l) continue;
                memOut[m] = NaiveRef.linear(u, p.get("transformer.mem_blocks." + m + ".w"), 0, n, d, d);
                double ss = 0;
                for (double v : memOut[m]) ss += v * v;
                aux += AUX * ss / (n * d);
            }
            for (int m = 0; m < pl.size(); m++)
                if (pl.get(m).to() == l) for (int i = 0; i < n * d; i++) x[i] += memOut[m][i];
        }
        double[] xf = NaiveRef.rmsnorm(x, p.get("transformer.ln_f.weight"), c.normEps, n, d);
        double[] logits = NaiveRef.linear(xf, wte, 0, n, d, V);
        double loss = 0;
        for (int i = 0; i < n; i++) {
            double max = Double.NEGATIVE_INFINITY, z = 0;
            for (int j = 0; j < V; j++) max = Math.max(max, logits[i * V + j]);
            for (int j = 0; j < V; j++) z += Math.exp(logits[i * V + j] - max);
            loss += max + Math.log(z) - logits[i * V + tg[i]];
        }
        return loss / n + aux;
    }

    @ParameterizedTest
    @ValueSource(strings = {"full", "0:1/2:2", "1:2"})
    void gradientsFlowThroughMemoryPlacements(String way) {
        ModelConfig c = cfg(way);
        List<MemoryPlacement> pl = MemoryPlacement.parse(way, c.nLayers);
        Model m = new Model(c, (cc, k, num, shared, prefix) -> new LinearMem(cc.dModel, prefix));
        m.initialize(17);
        List<String> names = new ArrayList<>();
        for (Param p : m.params()) names.add(p.name);
        assertEquals("transformer.ln_f.weight", names.get(names.size() - 1 - pl.size()));
        assertEquals("transformer.mem_blocks.0.w", names.get(names.size() - pl.size()));
        Rng rng = new Rng(4);
        int B = 2, T = 4;
        int[] in = ModelTest.randomTokens(rng, B * T, c.vocabSize), tg = ModelTest.randomTokens(rng, B * T, c.vocabSize);
        Map<String, double[]> ref = new HashMap<>();
        for (Param p : m.params()) ref.put(p.name, NaiveRef.toDouble(p.data()));
        double objRef = refObjective(ref, c, pl, in, tg, B, T);
        float ce = m.forwardBackward(in, tg, B, T);
        assertEquals(objRef, ce + m.lastAuxLoss(), 1e-5 * objRef);
        assertTrue(m.lastAuxLoss() > 0);
        for (Param p : m.params())
            GradCheck.check(way + " " + p.name, p.grad(), ref.get(p.name), () -> refObjective(ref, c, pl, in, tg, B, T), 15, 3e-3);
    }

    @ParameterizedTest
    @ValueSource(strings = {"full", "0:1/2:2"})
    void decoderWithMemoryMatchesFullForward(String way) {
        ModelConfig c = cfg(way);
        Model m = new Model(c, (cc, k, num, shared, prefix) -> new LinearMem(cc.dModel, prefix));
        m.initialize(5);
        int T = 6;
        int[] seq = ModelTest.randomTokens(new Rng(8), T, c.vocabSize);
        float[] full = m.logits(seq, 1, T).clone();
        Model.Decoder dec = m.newDecoder(T);
        for (int t = 0; t < T; t++) {
            float[] s = dec.step(seq[t]);
            for (int j = 0; j < c.vocabSize; j++) assertEquals(full[t * c.vocabSize + j], s[j], 1e-5);
        }
    }
}
