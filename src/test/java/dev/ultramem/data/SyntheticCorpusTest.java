package dev.ultramem.data;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

class SyntheticCorpusTest {

    @Test
    void sameSeedSameBytesOtherSeedOtherBytes() {
        byte[] a = SyntheticCorpus.generate(42, 50_000), b = SyntheticCorpus.generate(42, 50_000);
        byte[] c = SyntheticCorpus.generate(43, 50_000);
        assertArrayEquals(a, b);
        assertFalse(java.util.Arrays.equals(a, c));
        assertEquals(50_000, a.length);
        // a prefix of a longer corpus of the same seed
        assertArrayEquals(a, java.util.Arrays.copyOf(SyntheticCorpus.generate(42, 80_000), 50_000));
    }

    @Test
    void textIsPrintableAsciiWithConsistentFactsAndCorrectSums() {
        String s = new String(SyntheticCorpus.generate(7, 200_000), StandardCharsets.US_ASCII);
        for (char ch : s.toCharArray()) assertTrue(ch == '\n' || (ch >= 32 && ch < 127), "unexpected char " + (int) ch);
        Map<String, String> capitals = new HashMap<>();
        Matcher m = Pattern.compile("the capital of (\\w+) is (\\w+)\\.").matcher(s);
        int facts = 0;
        while (m.find()) {
            String prev = capitals.putIfAbsent(m.group(1), m.group(2));
            if (prev != null) assertEquals(prev, m.group(2), "capital of " + m.group(1) + " changed");
            facts++;
        }
        assertTrue(facts > 1000 && capitals.size() > 10, facts + " facts about " + capitals.size() + " countries");
        Matcher add = Pattern.compile("(?<![\\d,] )\\b(\\d+) \\+ (\\d+) = (\\d+)\\.").matcher(s);
        int sums = 0;
        while (add.find()) {
            assertEquals(Integer.parseInt(add.group(1)) + Integer.parseInt(add.group(2)), Integer.parseInt(add.group(3)));
            sums++;
        }
        assertTrue(sums > 100);
    }
}
