package dev.ultramem.cli;

import dev.ultramem.core.Param;
import dev.ultramem.model.Model;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.train.JobConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static dev.ultramem.cli.MainTest.assertUserError;
import static dev.ultramem.model.MemoryPlan.human;
import static dev.ultramem.cli.MainTest.run;
import static org.junit.jupiter.api.Assertions.*;

/** {@code init}: a weights-only checkpoint equal to the model initialised in memory, servable, never resumed. */
class InitCommandTest {
    @TempDir Path dir;

    @Test
    void writesTheSeededInitialisationAndRefusesWhatItCannotBe() throws Exception {
        Path out = dir.resolve("run");
        List<String> sets = List.of("model.mem_knum=12", "model.n_layers=2", "model.mem_knn=8");
        MainTest.Result r = run("init", "--preset", "family-ultramem-v2", "--set", sets.get(0), "--set", sets.get(1),
                "--set", sets.get(2), "--seed", "9", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("parameters"), r.out());

        // the same model initialised here, with the same seed, tensor by tensor (tables read from the mapped file)
        JobConfig job = JobConfig.build("family-ultramem-v2", null, List.of(sets.get(0), sets.get(1), sets.get(2), "train.seed=9"));
        Model want = new Model(job.model);
        want.initialize(9);
        Model got = Checkpoint.load(out, false, true).model();
        int mapped = 0;
        for (int i = 0; i < want.params().size(); i++) {
            Param a = want.params().get(i), b = got.params().get(i);
            assertEquals(a.name, b.name);
            if (b.isMapped()) mapped++;
            for (long j = 0; j < a.numel(); j++)
                if (a.get(j) != b.get(j)) fail(a.name + "[" + j + "]: " + b.get(j) + " in the file, " + a.get(j) + " in memory");
        }
        assertTrue(mapped > 0, "the value tables are served from the file");

        assertUserError(run("resume", out.toString()), "weights only");
        assertUserError(run("init", "--preset", "family-dense", "--out", out.toString()), "already holds a checkpoint");
        assertEquals(0, run("generate", out.toString(), "--prompt", "ab", "--max-tokens", "3").code());
        assertTrue(Files.exists(out.resolve("config.json")));
    }

    /**
     * The tables are never in memory: a child JVM whose heap (128 MB) and direct memory (32 MB) are each
     * several times smaller than the model's tables (368 MB) writes them, with a peak resident set below
     * the table size, and the file passes the checks of a load (shapes, checksum) with the tables mapped.
     */
    @Test
    void writesTablesLargerThanItsMemoryLimits() throws Exception {
        Path out = dir.resolve("big");
        Child c = Child.start(dir, "init", List.of("-Xmx128m", "-XX:MaxDirectMemorySize=32m"),
                "init", "--preset", "family-ultramem-v2", "--set", "model.mem_knum=300", "--seed", "4", "--out", out.toString());
        assertEquals(0, c.waitExit(), c.output());
        long tableBytes = 0;
        Checkpoint.Loaded got = Checkpoint.load(out, false, true);
        for (Param p : got.model().params()) if (!p.isHeap()) tableBytes += p.numel() * Float.BYTES;
        assertTrue(tableBytes > 10 * (32L << 20) && tableBytes > 2 * (128L << 20), "tables of " + human(tableBytes));
        var peak = java.util.regex.Pattern.compile("peak RSS ([0-9.]+) ([MG])B").matcher(c.output());
        assertTrue(peak.find(), c.output());
        assertTrue(Double.parseDouble(peak.group(1)) * (peak.group(2).equals("M") ? 1 << 20 : 1 << 30) < tableBytes, "peak RSS above the tables' " + human(tableBytes) + ": " + c.output());
        Files.delete(out.resolve(Checkpoint.LATEST));
    }
}
