package dev.ultramem.data;

import dev.ultramem.core.UserError;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class CorpusTest {
    @TempDir Path dir;

    @Test
    void folderIsReadInNameOrderAndSplitAtTheEnd() throws Exception {
        Path f = Files.createDirectories(dir.resolve("texts"));
        Files.writeString(f.resolve("b.txt"), "second file");
        Files.writeString(f.resolve("a.txt"), "first file");
        Files.writeString(f.resolve(".hidden"), "skipped");
        Corpus c = Corpus.load(List.of(f), 0.25);
        String all = "first file\nsecond file";
        int nVal = (int) Math.ceil(all.length() * 0.25);
        assertEquals(all.substring(0, all.length() - nVal), new String(c.train(), StandardCharsets.UTF_8));
        assertEquals(all.substring(all.length() - nVal), new String(c.val(), StandardCharsets.UTF_8));
        assertEquals("files", c.source().get("type").asText());
    }

    @Test
    void badInputsAreOneLineUserErrors() throws Exception {
        Path bad = dir.resolve("bad.txt");
        Files.write(bad, new byte[]{'o', 'k', (byte) 0xFF, 'x'});
        UserError e = assertThrows(UserError.class, () -> Corpus.load(List.of(bad), 0.1));
        assertTrue(e.getMessage().contains("not UTF-8"), e.getMessage());
        assertTrue(e.getMessage().contains("byte 2"), e.getMessage());

        Path empty = dir.resolve("empty.txt");
        Files.writeString(empty, "");
        assertTrue(assertThrows(UserError.class, () -> Corpus.load(List.of(empty), 0.1)).getMessage().contains("empty"));

        assertTrue(assertThrows(UserError.class, () -> Corpus.load(List.of(dir.resolve("missing.txt")), 0.1))
                .getMessage().contains("not found"));

        Path emptyDir = Files.createDirectories(dir.resolve("nothing"));
        assertThrows(UserError.class, () -> Corpus.load(List.of(emptyDir), 0.1));

        Path small = dir.resolve("small.txt");
        Files.writeString(small, "x".repeat(100));
        Corpus c = Corpus.load(List.of(small), 0.1);
        UserError shortErr = assertThrows(UserError.class, () -> c.requireWindows(16));
        assertTrue(shortErr.getMessage().contains("too short"), shortErr.getMessage());
        assertFalse(shortErr.getMessage().contains("\n"));
        c.requireWindows(8);  // 10 validation bytes hold a window of 9
    }

    @Test
    void builtinIsDeterministicAndRebuildsFromItsSource() {
        Corpus a = Corpus.builtin(3, 20_000, 0.1), b = Corpus.fromSource(a.source(), 0.1);
        assertArrayEquals(a.train(), b.train());
        assertArrayEquals(a.val(), b.val());
        assertEquals(20_000, a.totalBytes());
        assertEquals(2000, a.val().length);
    }
}
