package dev.ultramem.train;

import dev.ultramem.core.Param;
import dev.ultramem.model.Model;
import dev.ultramem.model.ModelConfig;
import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Every parameter of every layer type gets the weight decay and learning rate of its official group
 * ({@link OfficialOptimizer#classify}, written from official-layers.md §6.1 independently of the
 * engine's {@link Param.Group}s), with decay_norm_and_embeddings on and off.
 */
class OfficialParamGroupsTest {

    /** A small model of each kind: dense, MoE, UltraMem v1, UltraMemV2 with pre-values, PKM, Memory+. */
    static List<ModelConfig> everyLayerType() {
        List<ModelConfig> out = new java.util.ArrayList<>();
        for (String kind : new String[]{"dense", "moe", "ultramem_v1", "ultramem_v2", "pkm", "memory_plus"}) {
            ModelConfig c = new ModelConfig();
            c.vocabSize = 40; c.dModel = 16; c.nLayers = 2; c.nHeads = 2; c.mlpHiddenSize = 32; c.maxSeqLen = 8;
            if (kind.equals("moe")) { c.ffnType = "moe"; c.moeNumExperts = 3; c.moeTopK = 2; c.moeExpertHidden = 8; }
            else if (!kind.equals("dense")) {
                c.memType = kind;
                c.memKnum = 5; c.memKdim = 8; c.memVdim = kind.equals("memory_plus") || kind.equals("pkm") ? 16 : 8; c.memPreVdim = 4; c.memKnn = 3;
                c.memInsertWay = kind.equals("ultramem_v2") ? "full" : "0:1";
            }
            out.add(c.validate());
        }
        return out;
    }

    @Test
    void everyParameterFollowsTheOfficialGroups() {
        for (ModelConfig c : everyLayerType())
            for (boolean decayNorms : new boolean[]{true, false}) {
                Model model = new Model(c);
                TrainConfig tc = new TrainConfig();
                tc.decayNormAndEmbeddings = decayNorms;
                tc.weightDecay = 0.1; tc.lr = 2e-3; tc.steps = 50; tc.warmupSteps = 5; tc.memValueLrTimes = 3.0;
                tc.memoryPlusValueLr = 7e-4;
                AdamW opt = new AdamW(model.params(), tc);
                LrSchedule sched = new LrSchedule(tc, c.memType);
                Set<String> optimized = new HashSet<>();
                for (Param p : opt.params()) optimized.add(p.name);
                Set<OfficialOptimizer.Group> seen = new HashSet<>();
                String what = c.memType + "/" + c.ffnType + (decayNorms ? "" : " without norm decay");
                for (Param p : model.params()) {
                    if (!p.trainable) {
                        // derived float buffers (Tucker u, v) are not parameters of the official model
                        assertFalse(optimized.contains(p.name), what + ": " + p.name + " is a buffer");
                        assertTrue(p.name.endsWith("tucker_core_u") || p.name.endsWith("tucker_core_v"), what + ": unexpected buffer " + p.name);
                        continue;
                    }
                    assertTrue(optimized.contains(p.name), what + ": " + p.name + " is not optimized");
                    OfficialOptimizer.Group g = OfficialOptimizer.classify(p.name, decayNorms);
                    seen.add(g);
                    assertEquals(g == OfficialOptimizer.Group.NO_DECAY ? 0 : 0.1, opt.weightDecay(p), 0, what + ": weight decay of " + p.name);
                    for (long t : new long[]{1, 3, 5, 20, 50})
                        assertEquals(OfficialOptimizer.lr(tc, c.memType, g == OfficialOptimizer.Group.VALUE, t), sched.lr(p.group, t), 1e-15,
                                what + ": LR of " + p.name + " at step " + t);
                }
                assertEquals(decayNorms ? Set.of(OfficialOptimizer.Group.DECAY) : Set.of(OfficialOptimizer.Group.DECAY, OfficialOptimizer.Group.NO_DECAY),
                        without(seen, OfficialOptimizer.Group.VALUE), what);
                assertEquals(c.hasMemory(), seen.contains(OfficialOptimizer.Group.VALUE), what + ": value group");
            }
    }

    /** The memory layers' own norms are norms like the block norms (the engine once kept them out of decay). */
    @Test
    void memoryNormsDecayLikeBlockNorms() {
        for (ModelConfig c : everyLayerType()) {
            if (!c.hasMemory() || c.memType.equals("pkm")) continue;
            Model model = new Model(c);
            TrainConfig tc = new TrainConfig();
            AdamW opt = new AdamW(model.params(), tc);
            Param blockNorm = null, queryNorm = null, keysNorm = null;
            for (Param p : model.params()) {
                if (p.name.equals("transformer.blocks.0.ff_norm.weight")) blockNorm = p;
                if (p.name.equals("transformer.mem_blocks.0.query_norm.weight")) queryNorm = p;
                if (p.name.equals("transformer.mem_blocks.0.keys_norm.weight")) keysNorm = p;
            }
            assertEquals(tc.weightDecay, opt.weightDecay(blockNorm), 0, c.memType);
            assertEquals(opt.weightDecay(blockNorm), opt.weightDecay(queryNorm), 0, c.memType + " query_norm");
            assertEquals(opt.weightDecay(blockNorm), opt.weightDecay(keysNorm), 0, c.memType + " keys_norm");
        }
    }

    private static Set<OfficialOptimizer.Group> without(Set<OfficialOptimizer.Group> s, OfficialOptimizer.Group g) {
        Set<OfficialOptimizer.Group> o = new HashSet<>(s);
        o.remove(g);
        return o;
    }
}
