package dev.ultramem.infer;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class StopMatcherTest {

    /** The reference: the whole text cut before the earliest occurrence of any stop string. */
    private static String cut(String text, List<String> stops) {
        int end = text.length();
        for (String s : stops) {
            int i = text.indexOf(s);
            if (i >= 0) end = Math.min(end, i);
        }
        return text.substring(0, end);
    }

    @Test
    void streamedPiecesGiveTheTextCutBeforeTheFirstStopAndNeverSendPartOfAStop() {
        Random rnd = new Random(7);
        List<List<String>> stopSets = List.of(List.of("aab"), List.of("ba", "abb"), List.of("b"), List.of("abab", "bbb", "aa"), List.of());
        for (int trial = 0; trial < 2000; trial++) {
            List<String> stops = stopSets.get(trial % stopSets.size());
            StringBuilder text = new StringBuilder();
            for (int i = 0, n = rnd.nextInt(20); i < n; i++) text.append(rnd.nextBoolean() ? 'a' : 'b');
            String expected = cut(text.toString(), stops);
            StopMatcher m = new StopMatcher(stops);
            StringBuilder sent = new StringBuilder();
            int pos = 0;
            while (pos < text.length() && !m.stopped()) {
                int len = 1 + rnd.nextInt(3);
                String piece = text.substring(pos, Math.min(text.length(), pos + len));
                pos += piece.length();
                sent.append(m.push(piece));
                assertTrue(expected.startsWith(sent.toString()), "sent " + sent + " for " + text + " stops " + stops);
            }
            if (!m.stopped()) sent.append(m.flush());
            assertEquals(expected, sent.toString(), "text " + text + " stops " + stops);
            assertEquals(expected.length() < text.length(), m.stopped(), "text " + text + " stops " + stops);
        }
    }

    @Test
    void anEmptyStopIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> new StopMatcher(List.of("x", "")));
    }
}
