package dev.ultramem.cli;

import dev.ultramem.model.Model;
import dev.ultramem.train.JobConfig;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class CostsTest {
    @Test
    void denseModelActivatesEveryParameter() {
        for (String preset : List.of("dense-tiny", "ref-256")) {
            Model m = new Model(JobConfig.build(preset, null, List.of()).model);
            assertEquals(Costs.totalParams(m), Costs.activatedParams(m), preset);
        }
    }

    @Test
    void forwardMacsMatchAHandCount() {
        Model m = new Model(JobConfig.build("ref-256", null, List.of()).model);
        long d = 256, f = 1024, L = 4, V = 256, T = 256;
        // per layer: qkv + out (4d²), SwiGLU (3·d·f), attention scores and weighted sum over (T+1)/2 keys on average
        long want = L * (4 * d * d + 3 * d * f + 2 * d * ((T + 1) / 2)) + V * d;
        assertEquals(want, Costs.forwardMacs(m, (int) T));
    }
}
