package dev.ultramem.infer;

import dev.ultramem.TestModels;
import dev.ultramem.model.Model;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class GeneratorTest {

    private static Model model() {
        Model m = new Model(TestModels.tinyModel());
        m.initialize(77);
        // larger weights than the init so that greedy choices are well separated
        for (var p : m.params()) if (p.trainable && p.isHeap() && !p.name.contains("norm")) for (int i = 0; i < p.data().length; i++) p.data()[i] *= 8;
        m.afterWeightsChanged();
        return m;
    }

    /** Greedy reference without the KV cache: a full forward over the whole prefix for every new token. */
    private static List<Integer> naiveGreedy(Model m, int[] prompt, int n) {
        List<Integer> seq = new ArrayList<>();
        for (int t : prompt) seq.add(t);
        List<Integer> out = new ArrayList<>();
        int V = m.config().vocabSize;
        for (int g = 0; g < n; g++) {
            int[] in = seq.stream().mapToInt(Integer::intValue).toArray();
            float[] logits = m.logits(in, 1, in.length);
            int off = (in.length - 1) * V, best = 0;
            for (int v = 1; v < V; v++) if (logits[off + v] > logits[off + best]) best = v;
            out.add(best);
            seq.add(best);
        }
        return out;
    }

    @Test
    void greedyGenerationMatchesFullForwardArgmax() {
        Model m = model();
        int[] prompt = {'t', 'h', 'e', ' '};
        int n = m.config().maxSeqLen - prompt.length;  // stays inside one context window
        int[] got = Generator.generate(m, prompt, n, new Sampler(0, 0, 1, 0), null);
        List<Integer> want = naiveGreedy(m, prompt, n);
        for (int i = 0; i < n; i++) assertEquals(want.get(i), got[i], "token " + i);
    }

    @Test
    void generationContinuesPastTheContextWindowAndIsSeeded() {
        Model m = model();
        int ctx = m.config().maxSeqLen;
        List<Integer> streamed = new ArrayList<>();
        int[] a = Generator.generate(m, new int[]{'a'}, 3 * ctx, new Sampler(1.0, 0, 0.9, 5), streamed::add);
        int[] b = Generator.generate(m, new int[]{'a'}, 3 * ctx, new Sampler(1.0, 0, 0.9, 5), null);
        assertEquals(3 * ctx, a.length);
        assertArrayEquals(a, b);
        assertEquals(streamed, java.util.Arrays.stream(a).boxed().toList());
        for (int t : a) assertTrue(t >= 0 && t < 256);
        // a prompt longer than the window keeps only its tail
        int[] longPrompt = new int[2 * ctx];
        java.util.Arrays.fill(longPrompt, 'x');
        assertEquals(4, Generator.generate(m, longPrompt, 4, new Sampler(0, 0, 1, 0), null).length);
    }

    /** Thrown by the test's token consumer to stop a generation that would otherwise run for hours. */
    private static final class Stop extends RuntimeException {
        Stop() { super(null, null, false, false); }
    }

    @Test
    void aHugeTokenBudgetAllocatesNothingUpFrontAndStreamsTheSameTokens() {
        Model m = model();
        int ctx = m.config().maxSeqLen, n = 3 * ctx;
        int[] want = Generator.generate(m, new int[]{'a'}, n, new Sampler(1.0, 0, 0.9, 5), null);
        var threads = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        List<Integer> got = new ArrayList<>();
        long before = threads.getCurrentThreadAllocatedBytes();
        assertThrows(Stop.class, () -> Generator.stream(m, new int[]{'a'}, 2_000_000_000, new Sampler(1.0, 0, 0.9, 5), t -> {
            if (got.size() == n) throw new Stop();
            got.add(t);
        }));
        long allocated = threads.getCurrentThreadAllocatedBytes() - before;
        assertTrue(allocated < 16 << 20, "allocated " + allocated + " bytes for " + n + " tokens");
        assertEquals(java.util.Arrays.stream(want).boxed().toList(), got);
    }

    /** With a one-token window the model continues from the last token alone (restarting on half of 1 token fed nothing). */
    @Test
    void aOneTokenWindowContinuesFromTheLastToken() {
        var c = dev.ultramem.TestModels.tinyModel().copy();
        c.maxSeqLen = 1;
        Model m = new Model(c.validate());
        m.initialize(77);
        for (var p : m.params()) if (p.trainable && p.isHeap() && !p.name.contains("norm")) for (int i = 0; i < p.data().length; i++) p.data()[i] *= 8;
        m.afterWeightsChanged();
        int[] got = Generator.generate(m, new int[]{'q'}, 12, new Sampler(0, 0, 1, 0), null);
        int prev = 'q';
        for (int i = 0; i < got.length; i++) {
            assertEquals(naiveGreedy(m, new int[]{prev}, 1).get(0), got[i], "token " + i);
            prev = got[i];
        }
    }
}
