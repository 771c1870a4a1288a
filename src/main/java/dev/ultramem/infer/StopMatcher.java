package dev.ultramem.infer;

import java.util.List;

/**
 * Stop sequences on generated text, as the OpenAI API defines them: the output ends before the first
 * occurrence of any stop string, which is itself not returned. A stream must not send text that may
 * turn out to begin a stop string, so the longest tail of the text that is a prefix of some stop
 * string is held back until the next piece decides it.
 */
public final class StopMatcher {
    private final List<String> stops;
    private final StringBuilder pending = new StringBuilder();
    private boolean stopped;

    public StopMatcher(List<String> stops) {
        for (String s : stops) if (s.isEmpty()) throw new IllegalArgumentException("empty stop sequence");
        this.stops = List.copyOf(stops);
    }

    /** Adds a piece of generated text and returns what can be sent now ("" once stopped). */
    public String push(String piece) {
        if (stopped) return "";
        pending.append(piece);
        // text sent earlier holds no beginning of a stop string, so any match starts in pending
        int first = -1;
        for (String s : stops) {
            int i = pending.indexOf(s);
            if (i >= 0 && (first < 0 || i < first)) first = i;
        }
        if (first >= 0) {
            stopped = true;
            String out = pending.substring(0, first);
            pending.setLength(0);
            return out;
        }
        int hold = 0;
        for (String s : stops)
            for (int len = Math.min(s.length() - 1, pending.length()); len > hold; len--)
                if (endsWith(pending, s, len)) { hold = len; break; }
        String out = pending.substring(0, pending.length() - hold);
        pending.delete(0, pending.length() - hold);
        return out;
    }

    /** True once a stop string was found. */
    public boolean stopped() { return stopped; }

    /** The end of generation without a stop: the held-back text. */
    public String flush() {
        String out = pending.toString();
        pending.setLength(0);
        return out;
    }

    /** pending ends with the first len characters of s. */
    private static boolean endsWith(CharSequence pending, String s, int len) {
        int off = pending.length() - len;
        for (int i = 0; i < len; i++) if (pending.charAt(off + i) != s.charAt(i)) return false;
        return true;
    }
}
