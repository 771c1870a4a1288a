package dev.ultramem.cli;

import dev.ultramem.io.Safetensors;
import dev.ultramem.memory.GoldenFiles;
import dev.ultramem.model.Model;
import dev.ultramem.train.Checkpoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** `import` turns official weights into a checkpoint that computes the official logits. */
class ImportCommandTest {
    @TempDir Path dir;

    @Test
    void importedOfficialModelReproducesTheOfficialLogits() throws Exception {
        List<Path> files = GoldenFiles.filesOfType("olmo_model");
        assertFalse(files.isEmpty(), "no olmo_model golden file in " + GoldenFiles.dir());
        for (Path f : files) {
            Path out = dir.resolve(f.getFileName().toString());
            StringWriter sout = new StringWriter(), serr = new StringWriter();
            CommandLine cl = Main.commandLine(new PrintWriter(sout), new PrintWriter(serr), false);
            int code = cl.execute("import", f.toString(), "--out", out.toString());
            assertEquals(0, code, serr.toString());

            assertTrue(java.nio.file.Files.exists(out.resolve("config.json")), "config.json beside the checkpoint");
            byte[] before = java.nio.file.Files.readAllBytes(out.resolve(Checkpoint.LATEST));
            StringWriter again = new StringWriter();
            int refused = Main.commandLine(new PrintWriter(new StringWriter()), new PrintWriter(again), false)
                    .execute("import", f.toString(), "--out", out.toString());
            assertEquals(2, refused, "a second import into the same folder needs --force");
            assertTrue(again.toString().contains("--force"), again.toString());
            assertArrayEquals(before, java.nio.file.Files.readAllBytes(out.resolve(Checkpoint.LATEST)));

            Model m = Checkpoint.load(out, true).model();
            try (Safetensors st = Safetensors.open(f)) {
                var meta = st.metadataJson("config");
                int B = meta.get("B").asInt(), T = meta.get("T").asInt();
                float[] logits = m.logits(st.get("input_ids").toInts(), B, T);
                GoldenFiles.assertClose(f + " logits after import", st.get("logits").toFloats(), logits,
                        B * T * m.config().vocabSize, 1e-5);
            }
        }
    }

    @Test
    void missingFileAndIncompleteConfigAreOneLineErrors() throws Exception {
        // a layer golden file carries only the memory fields of the official config, not a whole model
        Path layerFile = GoldenFiles.filesOfType("ultramem_v2").get(0);
        String[][] cases = {
                {dir.resolve("missing.safetensors").toString(), "file not found"},
                {layerFile.toString(), "official config: missing or invalid"}};
        for (String[] c : cases) {
            StringWriter serr = new StringWriter();
            CommandLine cl = Main.commandLine(new PrintWriter(new StringWriter()), new PrintWriter(serr), false);
            int code = cl.execute("import", c[0], "--out", dir.resolve("x").toString());
            assertEquals(2, code, serr.toString());
            assertTrue(serr.toString().contains(c[1]), serr.toString());
            assertEquals(1, serr.toString().strip().lines().count(), "one line: " + serr);
        }
    }
}
