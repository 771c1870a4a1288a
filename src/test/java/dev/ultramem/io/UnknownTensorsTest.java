package dev.ultramem.io;

import dev.ultramem.model.OfficialWeights;

import dev.ultramem.TestModels;
import dev.ultramem.cli.Main;
import dev.ultramem.core.Param;
import dev.ultramem.data.Corpus;
import dev.ultramem.memory.GoldenFiles;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.train.JobConfig;
import dev.ultramem.train.Trainer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;

import static dev.ultramem.io.SafetensorsBytes.assertRejected;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A tensor that the model's config does not account for is an error naming it, in checkpoints and in imports. */
class UnknownTensorsTest {
    @TempDir Path dir;

    @Test
    void aCheckpointWithATensorItsModelDoesNotHaveIsRefused() throws Exception {
        JobConfig job = new JobConfig(TestModels.tinyUltraMemV2(), TestModels.tinyTrain(4));
        Trainer t = Trainer.fresh(job, Corpus.builtin(11, 4000, job.train.valFraction), dir.resolve("run"));
        t.trainStep();
        Path file = t.save();
        String derived = t.model.params().stream().filter(p -> !p.trainable).map(p -> p.name).findFirst().orElseThrow();
        String first = t.model.params().get(0).name;
        String[][] cases = {
                {"extra.weight", "unknown tensor 'extra.weight': not a weight, buffer, optimizer state or training tensor"},
                {"optim.m." + derived, "unknown tensor 'optim.m." + derived + "'"},  // AdamW keeps no state for derived u, v
                {"optim.v.nothing", "unknown tensor 'optim.v.nothing'"},
                {"train.other", "unknown tensor 'train.other'"},
                {first + ".copy", "unknown tensor '" + first + ".copy'"},
        };
        for (String[] c : cases) {
            Path bad = dir.resolve("extra.safetensors");
            SafetensorsBytes.rewrite(file, bad, (outs, meta) -> {
                outs.add(Safetensors.Out.f32(c[0], new long[]{2}, new float[]{1, 2}));
                meta.remove("data_crc32");
            });
            assertRejected(bad, c[1], () -> Checkpoint.load(bad, false));
            assertRejected(bad, c[1], () -> Checkpoint.load(bad, true));
        }
        // the same file without the extra tensor loads
        Path ok = dir.resolve("ok.safetensors");
        SafetensorsBytes.rewrite(file, ok, (outs, meta) -> meta.remove("data_crc32"));
        assertEquals(1, Checkpoint.load(ok, true).progress().step());
        assertTrue(t.model.params().stream().anyMatch((Param p) -> p.name.equals(derived)));
    }

    @Test
    void anImportOfOfficialWeightsWithAnUnknownTensorFailsNamingIt() throws Exception {
        Path golden = GoldenFiles.filesOfType("olmo_model").get(0);
        Path weights = dir.resolve("official.safetensors");
        // an official model with biases, which this engine does not have
        SafetensorsBytes.rewrite(golden, weights, (outs, meta) ->
                outs.add(Safetensors.Out.f32("transformer.blocks.0.att_proj.bias", new long[]{3}, new float[3])));
        StringWriter out = new StringWriter(), err = new StringWriter();
        Path run = dir.resolve("imported");
        int code = Main.run(new String[]{"import", weights.toString(), "--out", run.toString()}, new PrintWriter(out), new PrintWriter(err));
        assertEquals(2, code, err.toString());
        assertEquals(1, err.toString().strip().lines().count(), err.toString());
        assertTrue(err.toString().startsWith("error: " + weights + ": unknown tensor 'transformer.blocks.0.att_proj.bias'"), err.toString());
        assertFalse(java.nio.file.Files.exists(run.resolve(Checkpoint.LATEST)));
        // the reference run's own tensors (input, outputs, gradients, intermediates) are on the allow-list
        try (Safetensors st = Safetensors.open(golden)) {
            assertTrue(st.has("logits") && st.has("input_ids") && st.has("loss"));
            assertTrue(st.entries().keySet().stream().anyMatch(n -> n.startsWith("grad.")));
            assertTrue(st.entries().keySet().stream().anyMatch(n -> n.startsWith("debug.")));
            for (String n : st.entries().keySet())
                assertEquals(n.equals("logits") || n.equals("input_ids") || n.equals("loss") || n.startsWith("grad.") || n.startsWith("debug."),
                        OfficialWeights.isReferenceRunTensor(n), n);
        }
        assertEquals(0, Main.run(new String[]{"import", golden.toString(), "--out", run.toString()},
                new PrintWriter(new StringWriter()), new PrintWriter(err)), err.toString());
    }
}
