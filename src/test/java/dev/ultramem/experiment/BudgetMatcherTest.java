package dev.ultramem.experiment;

import dev.ultramem.model.Model;
import dev.ultramem.model.ModelConfig;
import dev.ultramem.model.ModelCosts;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** The grids' cost matching, checked on the built models (ModelCosts.of(Model)), not on the config formulas the matcher searched. */
class BudgetMatcherTest {

    @Test
    void closestFindsTheNearestValueOfAMonotoneCount() {
        ModelConfig c = new ModelConfig();
        for (long target : new long[]{0, 1, 37, 38, 39, 1000, 99_999}) {
            // count(i) = i² on [1, 300]; brute force the nearest (ties: the smaller i)
            int got = BudgetMatcher.closest(i -> { c.dModel = i; return c; }, 1, 300, x -> (long) x.dModel * x.dModel, target);
            int best = 1;
            for (int i = 1; i <= 300; i++) if (Math.abs((long) i * i - target) < Math.abs((long) best * best - target)) best = i;
            assertEquals(best, got, "target " + target);
            assertEquals(got, c.dModel, "the config is left at the chosen value");
        }
    }

    @Test
    void layersGridIsMatchedOnTheBuiltModels() {
        Plan p = Plan.of(Experiments.byName("layers"), Scale.TINY, 1, null, null);
        ModelCosts ref = built(p, "moe-2of16");
        for (Plan.Run r : p.runs) {
            ModelCosts c = built(p, r.variant().name());
            double dc = rel(c.trainingFlopsPerToken(), ref.trainingFlopsPerToken());
            // MoE 8/64 pays a 64-way router; every other row within 1.5% of the reference's compute
            assertTrue(Math.abs(dc) < (r.variant().name().equals("moe-8of64") ? 0.05 : 0.015), r.id() + " compute off by " + dc);
            if (r.variant().match() == Variant.Match.BOTH)
                assertTrue(Math.abs(rel(c.totalParams(), ref.totalParams())) < 0.01, r.id() + " total params");
        }
        // the matcher did change the memory rows: their FFN is narrower than the dense base
        for (String m : List.of("pkm", "memory-plus", "ultramem", "ultramem-v2"))
            assertTrue(job(p, m).mlpHiddenSize < job(p, "dense").mlpHiddenSize, m);
    }

    @Test
    void densityRowsMatchTablesTimesTheirFactor() {
        Plan p = Plan.of(Experiments.byName("density"), Scale.TINY, 1, null, null);
        ModelCosts ref = built(p, "v2-top1x");
        assertEquals(1.0, (double) built(p, "v2-top3x").tableParams() / ref.tableParams(), 0.03);
        assertEquals(2.0, (double) built(p, "v2-top1x-2x-table").tableParams() / ref.tableParams(), 0.06);
        assertEquals(0.5, (double) built(p, "v2-top3x-half-table").tableParams() / ref.tableParams(), 0.03);
        assertEquals(3 * job(p, "v2-top1x").memKnn, job(p, "v2-top3x").memKnn);
    }

    @Test
    void rowsShareSeedScheduleAndBudget() {
        Plan p = Plan.of(Experiments.byName("layers"), Scale.QUICK, 2, null, null);
        assertEquals(14, p.runs.size());
        for (Plan.Run r : p.runs) {
            Plan.Run first = p.runs.get(r.seedIndex() * 7);
            assertEquals(first.job().train.seed, r.job().train.seed);
            assertEquals(first.job().train.steps, r.job().train.steps);
            assertEquals(first.job().train.warmupSteps, r.job().train.warmupSteps);
            assertEquals(first.job().train.lr, r.job().train.lr);
            assertEquals(first.job().train.batchSize * first.job().train.seqLen, r.job().train.batchSize * r.job().train.seqLen);
        }
        assertNotEquals(p.runs.get(0).job().train.seed, p.runs.get(7).job().train.seed);
        // every second run starting at the second
        assertEquals(List.of(1, 3, 5, 7, 9, 11, 13), p.shard(2, 2).stream().map(Plan.Run::index).toList());
    }

    @Test
    void everyRowOfEveryExperimentBuildsAtQuickAndTinyScale() {
        for (Experiment e : Experiments.all()) {
            for (Scale s : new Scale[]{Scale.QUICK, Scale.TINY}) {
                Plan p = Plan.of(e, s, 1, null, null);
                assertEquals(e.variants(s).size(), p.runs.size());
                if (s == Scale.TINY) for (Claim c : e.claims()) {
                    assertDoesNotThrow(() -> e.variant(s, c.better()), e.name() + ": " + c.text());
                    assertDoesNotThrow(() -> e.variant(s, c.worse()), e.name() + ": " + c.text());
                }
                for (Plan.Run r : p.runs) {
                    Model m = new Model(r.job().model);
                    assertEquals(ModelCosts.of(r.job().model, r.job().train.seqLen), ModelCosts.of(m, r.job().train.seqLen), e.name() + " " + r.id());
                }
            }
        }
    }

    static ModelConfig job(Plan p, String row) {
        for (Plan.Run r : p.runs) if (r.variant().name().equals(row)) return r.job().model;
        throw new AssertionError(row);
    }

    static ModelCosts built(Plan p, String row) {
        ModelConfig c = job(p, row);
        Model m = ModelCosts.forCounting(c);
        return ModelCosts.of(m, p.runs.get(0).job().train.seqLen);
    }

    static double rel(long a, long b) { return (a - b) / (double) b; }
}
