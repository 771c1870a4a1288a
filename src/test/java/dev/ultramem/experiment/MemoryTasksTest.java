package dev.ultramem.experiment;

import dev.ultramem.model.Model;
import dev.ultramem.model.ModelConfig;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The task generators: each answer re-derived by parsing the prompt text (not from the generator's
 * state), no test item in the training text, and the exact-match scorer against step-by-step greedy
 * decoding with the model's KV-cache decoder.
 */
class MemoryTasksTest {
    static final MemoryTasks.Sizes Z = MemoryTasks.Sizes.of(Scale.TINY);

    /** The answer the prompt implies, read from its text alone. */
    static String expected(String prompt) {
        Matcher q = Pattern.compile(" \\?([a-m]+)=$").matcher(prompt);
        if (prompt.startsWith("L ") || prompt.startsWith("M ")) {
            assertTrue(q.find(), prompt);
            String key = q.group(1), body = prompt.substring(0, q.start()), last = null;
            Matcher w = Pattern.compile(" ([a-m]+)=([n-z]{2})").matcher(body);
            int count = 0;
            while (w.find()) if (w.group(1).equals(key)) { last = w.group(2); count++; }
            if (prompt.startsWith("L ")) assertEquals(1, count, "a long-context key is stated once: " + prompt);
            return last;
        }
        assertTrue(prompt.startsWith("S "), prompt);
        Matcher m = Pattern.compile(" ([a-m])>$").matcher(prompt);
        assertTrue(m.find(), prompt);
        Matcher s = Pattern.compile(" ([a-m])>([n-z]{2})").matcher(prompt.substring(0, m.start()));
        String v = null;
        Map<String, String> map = new HashMap<>();
        while (s.find()) {
            String old = map.put(s.group(1), s.group(2));
            assertTrue(old == null || old.equals(s.group(2)), "a mapping is consistent within its episode: " + prompt);
            if (s.group(1).equals(m.group(1))) v = s.group(2);
        }
        return v;
    }

    @Test
    void answersFollowFromThePrompts() {
        MemoryTasks.TaskSet t = MemoryTasks.generate(7, Z, 1 << 16, 100);
        int overwritten = 0;
        for (var e : t.tests().entrySet()) {
            assertEquals(100, e.getValue().size(), e.getKey());
            for (MemoryTasks.Item it : e.getValue()) {
                assertEquals(expected(it.prompt()), it.answer(), it.prompt());
                assertTrue(it.prompt().length() + it.answer().length() + 1 <= Scale.TINY.seqLen, "fits half the task window");
                if (e.getKey().equals(MemoryTasks.MULTI_ROUND)) {
                    String key = it.prompt().substring(it.prompt().lastIndexOf('?') + 1, it.prompt().length() - 1);
                    if (it.prompt().split(" " + key + "=", -1).length - 1 >= 2) overwritten++;
                }
            }
        }
        assertTrue(overwritten > 80, "most multi-round questions ask an overwritten key: " + overwritten);
        // the training lines too
        for (String line : new String(t.text(), StandardCharsets.US_ASCII).split("\n")) {
            int cut = line.startsWith("S ") ? line.length() - 2 : line.lastIndexOf('=') + 1;
            assertEquals(expected(line.substring(0, cut)), line.substring(cut), line);
        }
    }

    @Test
    void noTestItemIsInTheTrainingText() {
        // sizes small enough that the training stream repeats episodes and test draws collide with it
        MemoryTasks.TaskSet t = MemoryTasks.generate(11, new MemoryTasks.Sizes(1, 1, 2, 1, 1, 1), 1 << 16, 200);
        String text = new String(t.text(), StandardCharsets.US_ASCII);
        Set<String> trainMappings = new HashSet<>();
        for (String line : text.split("\n")) if (line.startsWith("S ")) trainMappings.add(mapping(line));
        int n = 0;
        for (var e : t.tests().entrySet()) {
            Set<String> distinct = new HashSet<>();
            for (MemoryTasks.Item it : e.getValue()) {
                String line = it.prompt() + it.answer();
                assertFalse(text.contains("\n" + line + "\n") || text.startsWith(line + "\n"), "test item in training text: " + line);
                if (e.getKey().equals(MemoryTasks.IN_CONTEXT)) assertFalse(trainMappings.contains(mapping(line)), "mapping seen in training: " + line);
                assertTrue(distinct.add(line), "test items are distinct");
                n++;
            }
        }
        assertEquals(600, n);
        // episodes repeat at these sizes, so test draws hit training episodes and were redrawn: the check is not vacuous
        assertTrue(t.trainSignatures().size() < text.split("\n").length, "training episodes repeat at these sizes");
    }

    /** The symbol>value pairs of an in-context line, sorted (the query at the end counts with its answer). */
    static String mapping(String line) {
        Matcher s = Pattern.compile("([a-m])>([n-z]{2})").matcher(line);
        Set<String> pairs = new java.util.TreeSet<>();
        while (s.find()) pairs.add(s.group(1) + ">" + s.group(2));
        return String.join(" ", pairs);
    }

    @Test
    void generationIsSeeded() {
        assertArrayEquals(MemoryTasks.generate(3, Z, 5000, 10).text(), MemoryTasks.generate(3, Z, 5000, 10).text());
        assertNotEquals(new String(MemoryTasks.generate(3, Z, 5000, 10).text()), new String(MemoryTasks.generate(4, Z, 5000, 10).text()));
        List<MemoryTasks.Item> f = MemoryTasks.facts(5, 300);
        assertEquals(300, f.stream().map(MemoryTasks.Item::prompt).distinct().count());
        String text = new String(MemoryTasks.factText(f, 3, 5), StandardCharsets.US_ASCII);
        for (MemoryTasks.Item it : f) assertEquals(3, text.split(Pattern.quote(it.prompt() + it.answer() + "\n"), -1).length - 1);
    }

    @Test
    void storedBitsAboveChance() {
        // 200 facts, half right: 100 correct − 2 by chance = 98 × log2 100
        assertEquals(98 * Math.log(100) / Math.log(2), MemoryTasks.storedBits(0.5, 200), 1e-9);
        assertEquals(0, MemoryTasks.storedBits(0.001, 200));
    }

    @Test
    void exactMatchEqualsGreedyDecoding() {
        ModelConfig c = new ModelConfig();
        c.dModel = 32; c.nLayers = 2; c.nHeads = 2; c.mlpHiddenSize = 64; c.maxSeqLen = 64;
        Model m = new Model(c.validate());
        m.initialize(3);
        m.afterWeightsChanged();
        // items whose answers are the untrained model's own greedy continuation (so some match) and others
        List<MemoryTasks.Item> items = new java.util.ArrayList<>();
        String[] prompts = {"L ab=no cd=pq ?ab=", "S a>xy b>zz a>", "M a=no a=pq ?a=", "@abcd=", "hello", "x"};
        for (String p : prompts) {
            String g = greedy(m, "\n" + p, 2);
            items.add(new MemoryTasks.Item(p, g));                                    // matches by definition
            items.add(new MemoryTasks.Item(p, g.charAt(0) + String.valueOf((char) (g.charAt(1) == 'a' ? 'b' : 'a')))); // second byte wrong
        }
        assertEquals(0.5, MemoryTasks.accuracy(m, items, 64), 1e-12);
        List<MemoryTasks.Item> right = new java.util.ArrayList<>();
        for (int i = 0; i < items.size(); i += 2) right.add(items.get(i));
        assertEquals(1.0, MemoryTasks.accuracy(m, right, 64), 1e-12);
    }

    /** n bytes of greedy decoding through the KV-cache decoder, byte by byte. */
    static String greedy(Model m, String prompt, int n) {
        Model.Decoder d = m.newDecoder(64);
        float[] logits = null;
        for (byte b : prompt.getBytes(StandardCharsets.ISO_8859_1)) logits = d.step(b & 0xFF);
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++) {
            int best = 0;
            for (int v = 1; v < logits.length; v++) if (logits[v] > logits[best]) best = v;
            sb.append((char) best);
            logits = d.step(best);
        }
        return sb.toString();
    }
}
