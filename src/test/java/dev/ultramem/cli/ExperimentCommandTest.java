package dev.ultramem.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static dev.ultramem.cli.MainTest.assertUserError;
import static dev.ultramem.cli.MainTest.run;
import static org.junit.jupiter.api.Assertions.*;

class ExperimentCommandTest {

    @Test
    void listShowsTheSixExperimentsWithClaimsAndTimes() {
        MainTest.Result r = run("experiment", "--list");
        assertEquals(0, r.code(), r.err());
        for (String n : new String[]{"layers", "ladder", "memory-tasks", "density", "placement", "recipe"})
            assertTrue(r.out().contains("\n" + n + "\n") || r.out().contains("\n" + n + "  ["), n);
        assertTrue(r.out().contains("claim: UltraMemV2 beats MoE on multi-round memorisation"));
        assertTrue(r.out().contains("expected time: tiny (default) about"));
    }

    @Test
    void badInputIsAOneLineError() {
        assertUserError(run("experiment", "nosuch"), "unknown experiment 'nosuch'");
        assertUserError(run("experiment", "layers", "--shard", "3/2", "--plan"), "--shard must be i/n");
        assertUserError(run("experiment", "layers", "--scale", "huge", "--plan"), "--scale must be tiny or small");
        assertUserError(run("experiment", "layers", "--seeds", "0", "--plan"), "--seeds must be >= 1");
        assertUserError(run("experiment", "layers", "--tokens", "3", "--plan"), "--tokens must be at least one batch");
        assertUserError(run("experiment"), "give an experiment NAME");
        assertUserError(run("experiment", "memory-tasks", "--data", "README.md", "--plan"), "--data does not apply");
    }

    @Test
    void planPrintsTheMatchedCosts() {
        MainTest.Result r = run("experiment", "layers", "--plan");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("| ultramem-v2 | compute + total params |"), r.out());
    }

    @Test
    void quickRunAndReportMerge(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("d");
        MainTest.Result r = run("experiment", "density", "--quick", "--seeds", "1", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("overall: 4/4 runs done"), r.out());
        String md = Files.readString(out.resolve("report.md"));
        assertTrue(md.contains("inconclusive (fewer than 2 seeds: no std)"), md);
        assertUserError(run("experiment", "density", "--quick", "--seeds", "1", "--out", out.toString()), "--resume");
        MainTest.Result again = run("experiment", "density", "--quick", "--seeds", "1", "--out", out.toString(), "--resume");
        assertEquals(0, again.code(), again.err());
        assertTrue(again.out().contains("finished earlier, skipped"));
        assertUserError(run("experiment", "density", "--quick", "--seeds", "2", "--out", out.toString(), "--resume"), "planned with other settings");
        Path merged = tmp.resolve("m");
        MainTest.Result m = run("experiment", "report", out.toString(), "--out", merged.toString());
        assertEquals(0, m.code(), m.err());
        assertEquals(md, Files.readString(merged.resolve("report.md")));
        assertUserError(run("experiment", "report", tmp.toString()), "not an experiment folder");
    }
}
