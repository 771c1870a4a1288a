package dev.ultramem.train;

import dev.ultramem.core.UserError;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class RunLockTest {
    @TempDir Path dir;

    @Test
    void aSecondLockOnTheSameFolderFailsNamingTheOwnerAndWorksAfterRelease() {
        Path run = dir.resolve("run");
        try (RunLock first = RunLock.acquire(run)) {
            UserError e = assertThrows(UserError.class, () -> RunLock.acquire(run));
            assertTrue(e.getMessage().contains("in use by another ultramem run"), e.getMessage());
            assertTrue(e.getMessage().contains("pid " + ProcessHandle.current().pid()), e.getMessage());
            assertEquals(1, e.getMessage().lines().count());
        }
        try (RunLock again = RunLock.acquire(run)) {
            assertEquals(run, again.dir());
        }
    }

    @Test
    void removesOnlyTheWritersOwnStaleTempFiles() throws Exception {
        Path run = Files.createDirectories(dir.resolve("run"));
        List<String> stale = List.of(".latest.safetensors.123456.tmp", ".config.json.99.tmp", ".metrics.csv.1.tmp",
                ".write-test.42.tmp");
        List<String> kept = List.of("latest.safetensors", "notes.tmp", ".latest.safetensors", ".other.123.tmp",
                "x.latest.safetensors.1.tmp", ".latest.safetensors.tmp");
        for (String n : stale) Files.writeString(run.resolve(n), "x");
        for (String n : kept) Files.writeString(run.resolve(n), "x");
        try (RunLock lock = RunLock.acquire(run)) {
            assertEquals(stale.size(), lock.removeStaleTempFiles().size());
        }
        for (String n : stale) assertFalse(Files.exists(run.resolve(n)), n);
        for (String n : kept) assertTrue(Files.exists(run.resolve(n)), n);
    }

    @Test
    void aFolderCreatedForARunThatWroteNothingIsRemovedAgain() throws Exception {
        Path fresh = dir.resolve("fresh");
        RunLock.acquire(fresh).close();
        assertFalse(Files.exists(fresh));
        Path used = dir.resolve("used");
        try (RunLock lock = RunLock.acquire(used)) {
            Files.writeString(used.resolve("metrics.csv"), "step\n");
        }
        assertTrue(Files.exists(used.resolve("metrics.csv")));
        Path existing = Files.createDirectories(dir.resolve("existing"));
        RunLock.acquire(existing).close();
        assertTrue(Files.isDirectory(existing), "a folder the user made stays");
    }
}
