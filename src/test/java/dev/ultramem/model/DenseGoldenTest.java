package dev.ultramem.model;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;
import dev.ultramem.io.Safetensors;
import dev.ultramem.layer.TokenLayer;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The dense part of the model against the official OLMo run in olmo_ultramem_v2_tiny.safetensors.
 * The memory layers are replaced by a stand-in that replays the reference memory outputs (and checks
 * that it receives the reference memory inputs), so embeddings, attention, FFN, norms, the tied
 * output and the loss are compared without the memory layer implementation. Of the gradients, those
 * that do not depend on the memory layers' input gradients are compared: ln_f and block 1's FFN.
 */
class DenseGoldenTest {

    static Path goldenDir() {
        String env = System.getenv("GOLDEN_DIR");
        if (env != null && !env.isEmpty()) return Path.of(env);
        String prop = System.getProperty("golden.dir");
        if (prop != null && !prop.isEmpty()) return Path.of(prop);
        return Path.of("../shared/golden");
    }

    /** Outputs the reference memory output; records how far its input is from the reference input. */
    static final class Replay implements TokenLayer {
        final float[] expectIn, out;
        double maxInDiff;

        Replay(float[] expectIn, float[] out) { this.expectIn = expectIn; this.out = out; }

        @Override public void forward(float[] x, float[] y, int n) {
            assertEquals(expectIn.length, n * 64, "token count");
            for (int i = 0; i < expectIn.length; i++) maxInDiff = Math.max(maxInDiff, Math.abs(x[i] - expectIn[i]));
            System.arraycopy(out, 0, y, 0, out.length);
        }

        @Override public void backward(float[] x, float[] dy, float[] dx, int n) {}
        @Override public List<Param> params() { return List.of(); }
        @Override public void initialize(Rng rng) {}
        @Override public long activatedParamsPerToken() { return 0; }
        @Override public long forwardMacsPerToken() { return 0; }
        @Override public long lastForwardParamBytes() { return 0; }
    }

    static double maxAbs(float[] a) {
        double m = 0;
        for (float v : a) m = Math.max(m, Math.abs(v));
        return m;
    }

    static void close(String what, float[] expect, float[] got, int n, double relTol) {
        double scale = maxAbs(expect), worst = 0;
        for (int i = 0; i < n; i++) worst = Math.max(worst, Math.abs(expect[i] - got[i]));
        assertTrue(worst <= relTol * scale, what + ": max abs diff " + worst + " vs scale " + scale);
    }

    @Test
    void denseForwardLossAndTopGradientsMatchOfficialRun() throws Exception {
        try (Safetensors st = Safetensors.open(goldenDir().resolve("olmo_ultramem_v2_tiny.safetensors"))) {
            ModelConfig c = new ModelConfig();
            c.vocabSize = 96; c.dModel = 64; c.nLayers = 2; c.nHeads = 4; c.mlpHiddenSize = 64; c.maxSeqLen = 32;
            c.normEps = 1e-5; c.ropeTheta = 10000;
            c.memType = "ultramem_v2"; c.memInsertWay = "full";
            c.memKnum = 8; c.memKdim = 16; c.memVdim = 32; c.memPreVdim = 16; c.memKnn = 4; c.memHead = 1; c.memShareRatio = 0.5;
            int B = 2, T = 16, n = B * T;
            Replay[] replays = new Replay[2];
            for (int k = 0; k < 2; k++)
                replays[k] = new Replay(st.get("debug.mem." + k + ".input").toFloats(), st.get("debug.mem." + k + ".output").toFloats());
            Model m = new Model(c, (cc, k, num, shared, prefix) -> replays[k]);
            for (Param p : m.params()) {
                if (!st.has(p.name) || !p.isHeap()) continue;
                Safetensors.Entry e = st.get(p.name);
                assertArrayEquals(p.shape, e.shape(), "shape of " + p.name);
                System.arraycopy(e.toFloats(), 0, p.data(), 0, (int) p.numel());
            }
            int[] ids = st.get("input_ids").toInts();
            int[] tg = new int[n];
            for (int b = 0; b < B; b++)
                for (int t = 0; t < T; t++) tg[b * T + t] = t < T - 1 ? ids[b * T + t + 1] : -1;

            float loss = m.forwardBackward(ids, tg, B, T);
            for (int i = 0; i <= 2; i++)
                close("hidden state " + i, st.get("debug.hidden_states." + i).toFloats(), m.hiddenState(i), n * c.dModel, 2e-5);
            for (int k = 0; k < 2; k++) assertTrue(replays[k].maxInDiff < 1e-4, "memory " + k + " input diff " + replays[k].maxInDiff);
            assertEquals(st.get("loss").toFloats()[0], loss, 1e-5);
            for (String name : List.of("transformer.ln_f.weight", "transformer.blocks.1.ff_out.weight", "transformer.blocks.1.ff_proj.weight")) {
                Param p = m.params().stream().filter(q -> q.name.equals(name)).findFirst().orElseThrow();
                close("grad " + name, st.get("grad." + name).toFloats(), p.grad(), (int) p.numel(), 1e-4);
            }
            float[] logits = m.logits(ids, B, T);
            close("logits", st.get("logits").toFloats(), logits, n * c.vocabSize, 2e-5);
        }
    }
}
