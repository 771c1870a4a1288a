package dev.ultramem.train;

import dev.ultramem.core.Param;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

class LrScheduleTest {

    @Test
    void cosineWithWarmupAndValueMultiplier() {
        TrainConfig c = new TrainConfig();
        c.lr = 1e-3; c.warmupSteps = 10; c.steps = 110; c.finalLrRatio = 0.1;
        c.memValueLrTimes = 4; c.memValueLrMaxStepsRate = 1; c.memoryPlusValueLr = 2e-3;
        LrSchedule s = new LrSchedule(c);
        assertEquals(1e-4, s.lr(0), 1e-12);            // warmup starts at 10%
        assertEquals(5.5e-4, s.lr(5), 1e-12);          // 0.1 + 0.9·0.5
        assertEquals(1e-3, s.lr(10), 1e-12);           // peak
        assertEquals(5.5e-4, s.lr(60), 1e-12);         // half way down the cosine: 0.1 + 0.9·(1 + cos π/2)/2
        assertEquals(1e-4, s.lr(110), 1e-12);          // final ratio
        assertEquals(1e-4, s.lr(500), 1e-12);
        // value group at t = 55: multiplier 1 + 3·(1 − 0.5) = 2.5, cos(0.45π) = 0.156434465
        assertEquals(0.25e-3 + 2.25e-3 * (1 + 0.156434465) / 2, s.valueLr(55), 1e-11);
        // value group in warmup at t = 3: multiplier 1 + 3·(107/110), factor 0.1 + 0.9·0.3 = 0.37
        assertEquals(0.37 * (1 + 3 * 107.0 / 110) * 1e-3, s.valueLr(3), 1e-12);
        assertEquals(1e-4, s.valueLr(200), 1e-12);     // multiplier back to 1
        assertEquals(2e-3, s.lr(Param.Group.VALUE_FIXED_LR, 57), 0);
        assertEquals(s.lr(57), s.lr(Param.Group.NO_DECAY, 57), 0);
    }

    @Test
    void noWarmup() {
        TrainConfig c = new TrainConfig();
        c.lr = 2e-3; c.warmupSteps = 0; c.steps = 100; c.finalLrRatio = 0;
        LrSchedule s = new LrSchedule(c);
        assertEquals(2e-3, s.lr(0), 1e-12);
        assertEquals(1e-3, s.lr(50), 1e-12);
        assertEquals(0, s.lr(100), 1e-12);
    }
}
