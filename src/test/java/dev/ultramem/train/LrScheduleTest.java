package dev.ultramem.train;

import dev.ultramem.core.Param;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class LrScheduleTest {

    @Test
    void cosineWithWarmupAndValueMultiplier() {
        TrainConfig c = new TrainConfig();
        c.lr = 1e-3; c.warmupSteps = 10; c.steps = 110; c.finalLrRatio = 0.1;
        c.memValueLrTimes = 4.0; c.memValueLrMaxStepsRate = 1; c.memoryPlusValueLr = 2e-3;
        LrSchedule s = new LrSchedule(c, "ultramem_v2");
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
    void valueLrMultiplierResolvedByMemoryType() {
        TrainConfig c = new TrainConfig();
        c.lr = 1e-3; c.warmupSteps = 0; c.steps = 100; c.finalLrRatio = 1; // no cosine: the LR is the multiplier
        assertNull(c.memValueLrTimes);
        // spec decisions: v1 4 → 1 over the run, everything else 1×
        assertEquals(4e-3, new LrSchedule(c, "ultramem_v1").valueLr(0), 1e-15);
        assertEquals(2.5e-3, new LrSchedule(c, "ultramem_v1").valueLr(50), 1e-15);
        for (String other : new String[]{"ultramem_v2", "pkm", "none"}) assertEquals(1e-3, new LrSchedule(c, other).valueLr(0), 1e-15);
        // an explicit value overrides the type default, in both directions
        c.memValueLrTimes = 1.0;
        assertEquals(1e-3, new LrSchedule(c, "ultramem_v1").valueLr(0), 1e-15);
        c.memValueLrTimes = 3.0;
        assertEquals(3e-3, new LrSchedule(c, "ultramem_v2").valueLr(0), 1e-15);
    }

    @Test
    void v1JobsGetTheDecayingValueLrUnlessOverridden() {
        var base = java.util.List.of("model.mem_type=ultramem_v1", "model.mem_insert_way=0:1", "model.n_layers=2");
        JobConfig job = JobConfig.build(null, null, base);
        assertEquals(4.0, job.train.valueLrTimes(job.model.memType));
        // stored unset, so a checkpoint's config keeps resolving by type
        assertTrue(job.toTree().get("train").get("mem_value_lr_times").isNull());
        var set = new java.util.ArrayList<>(base);
        set.add("train.mem_value_lr_times=1.5");
        JobConfig over = JobConfig.build(null, null, set);
        assertEquals(1.5, over.train.valueLrTimes(over.model.memType));
        assertThrows(dev.ultramem.core.UserError.class, () -> JobConfig.build(null, null, java.util.List.of("train.mem_value_lr_times=0")));
    }

    @Test
    void noWarmup() {
        TrainConfig c = new TrainConfig();
        c.lr = 2e-3; c.warmupSteps = 0; c.steps = 100; c.finalLrRatio = 0;
        LrSchedule s = new LrSchedule(c, "ultramem_v2");
        assertEquals(2e-3, s.lr(0), 1e-12);
        assertEquals(1e-3, s.lr(50), 1e-12);
        assertEquals(0, s.lr(100), 1e-12);
    }
}
