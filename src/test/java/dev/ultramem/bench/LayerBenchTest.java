package dev.ultramem.bench;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.*;

/** Smoke run of the layer benchmark on a few tokens; the exact byte counts of the dense FFN are checked by hand. */
class LayerBenchTest {

    @Test
    void printsEveryLayerAndTheMemoryVersusFfnLine() {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        LayerBench.run(new PrintStream(buf, true, StandardCharsets.UTF_8), true, 32, 2);
        String out = buf.toString(StandardCharsets.UTF_8);
        for (String label : new String[]{"dense FFN", "MoE 2/16", "MoE 8/64", "PKM", "Memory+", "UltraMem v1", "UltraMemV2"})
            assertTrue(out.lines().anyMatch(l -> l.startsWith(label + " ")), label + " missing:\n" + out);
        assertTrue(out.contains("UltraMemV2 preset, n = 32"), out);
        // dense SwiGLU inner 512 at d 256: 3·512·256 weights of 4 bytes read once per call
        String dense = out.lines().filter(l -> l.startsWith("dense FFN ")).findFirst().orElseThrow();
        String[] f = dense.trim().split("\\s+");
        long w = 3L * 512 * 256 * 4;
        assertEquals(String.format("%,d", w), f[f.length - 4], dense);
        assertEquals(String.format("%,d", w / 8), f[f.length - 3], dense);
        assertEquals(String.format("%,d", w / 64), f[f.length - 2], dense);
        assertEquals(String.format("%,d", w / 512), f[f.length - 1], dense);
    }
}
