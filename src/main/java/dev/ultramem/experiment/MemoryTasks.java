package dev.ultramem.experiment;

import dev.ultramem.core.Rng;
import dev.ultramem.model.Model;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Synthetic versions of UltraMemV2's memory-intensive evaluations (P2 Table 2) and a closed-book fact
 * probe, as byte text generated from a seed. Each episode is one line; its answer is computed from the
 * episode's own content, so it is correct by construction. Test items are drawn from a separate random
 * stream and any item whose episode (or, for symbol mappings, whose mapping) occurs in the training
 * text is drawn again, so no test item is in the training split.
 *
 * <ul>
 *   <li>long-context memorisation ({@code L}): facts {@code key=value} stated at the start, filler, and at
 *       the end {@code ?key=} asks one of them;</li>
 *   <li>multi-round memorisation ({@code M}): writes {@code key=value} to a few keys, overwriting them,
 *       then {@code ?key=} asks for a key's latest value (a key written at least twice);</li>
 *   <li>in-context learning ({@code S}): shots {@code symbol>value} of a random mapping made for the
 *       episode, then {@code symbol>} asks one symbol shown before.</li>
 * </ul>
 */
public final class MemoryTasks {
    private MemoryTasks() {}

    /** A test question and its expected answer (bytes after the prompt, exact match). */
    public record Item(String prompt, String answer) {}

    /** One generated episode: prompt + answer + "\n" is its line of text. */
    public record Episode(String prompt, String answer, String signature) {
        String line() { return prompt + answer + "\n"; }
    }

    /** Sizes of the three task kinds at one scale (episodes stay within half the training window). */
    public record Sizes(int facts, int filler, int writes, int keys, int symbols, int shots) {
        public static Sizes of(Scale s) {
            return switch (s) {
                case QUICK -> new Sizes(3, 4, 4, 2, 3, 4);
                case TINY -> new Sizes(6, 12, 8, 3, 5, 8);
                case SMALL -> new Sizes(12, 40, 16, 4, 8, 16);
            };
        }
    }

    static final String KEYS = "abcdefghijklm", VALUES = "nopqrstuvwxyz", FILLER = "0123456789";
    public static final String LONG_CONTEXT = "long_context", MULTI_ROUND = "multi_round", IN_CONTEXT = "in_context";

    static String pick(Rng r, String alphabet, int n) {
        StringBuilder sb = new StringBuilder(n);
        for (int i = 0; i < n; i++) sb.append(alphabet.charAt(r.nextInt(alphabet.length())));
        return sb.toString();
    }

    /** Distinct two-letter keys. */
    static List<String> distinctKeys(Rng r, int n) {
        Set<String> seen = new HashSet<>();
        List<String> out = new ArrayList<>();
        while (out.size() < n) {
            String k = pick(r, KEYS, 2);
            if (seen.add(k)) out.add(k);
        }
        return out;
    }

    public static Episode longContext(Rng r, Sizes z) {
        List<String> keys = distinctKeys(r, z.facts());
        StringBuilder p = new StringBuilder("L");
        List<String> values = new ArrayList<>();
        for (String k : keys) {
            String v = pick(r, VALUES, 2);
            values.add(v);
            p.append(' ').append(k).append('=').append(v);
        }
        p.append(' ').append(pick(r, FILLER, z.filler()));
        int q = r.nextInt(keys.size());
        p.append(" ?").append(keys.get(q)).append('=');
        String s = p.toString();
        return new Episode(s, values.get(q), s + values.get(q));
    }

    public static Episode multiRound(Rng r, Sizes z) {
        List<String> keys = new ArrayList<>();
        for (int i = 0; i < z.keys(); i++) keys.add(String.valueOf(KEYS.charAt(i)));
        Map<String, String> latest = new LinkedHashMap<>();
        Map<String, Integer> writes = new LinkedHashMap<>();
        StringBuilder p = new StringBuilder("M");
        for (int i = 0; i < z.writes(); i++) {
            String k = keys.get(r.nextInt(keys.size())), v = pick(r, VALUES, 2);
            latest.put(k, v);
            writes.merge(k, 1, Integer::sum);
            p.append(' ').append(k).append('=').append(v);
        }
        List<String> overwritten = new ArrayList<>();
        for (var e : writes.entrySet()) if (e.getValue() >= 2) overwritten.add(e.getKey());
        List<String> pool = overwritten.isEmpty() ? new ArrayList<>(latest.keySet()) : overwritten;
        String q = pool.get(r.nextInt(pool.size()));
        p.append(" ?").append(q).append('=');
        String s = p.toString();
        return new Episode(s, latest.get(q), s + latest.get(q));
    }

    public static Episode symbolMapping(Rng r, Sizes z) {
        List<String> symbols = new ArrayList<>();
        for (char c : KEYS.toCharArray()) symbols.add(String.valueOf(c));
        // a random injective mapping of z.symbols() symbols to two-letter values, made for this episode
        Map<String, String> map = new LinkedHashMap<>();
        Set<String> usedValues = new HashSet<>();
        while (map.size() < z.symbols()) {
            String sym = symbols.get(r.nextInt(symbols.size()));
            if (map.containsKey(sym)) continue;
            String v = pick(r, VALUES, 2);
            if (usedValues.add(v)) map.put(sym, v);
        }
        List<String> shown = new ArrayList<>(map.keySet());
        StringBuilder p = new StringBuilder("S");
        Set<String> seen = new HashSet<>();
        for (int i = 0; i < z.shots(); i++) {
            // every symbol is shown once before any repeats
            String sym = i < shown.size() ? shown.get(i) : shown.get(r.nextInt(shown.size()));
            seen.add(sym);
            p.append(' ').append(sym).append('>').append(map.get(sym));
        }
        List<String> askable = new ArrayList<>(seen);
        java.util.Collections.sort(askable);
        String q = askable.get(r.nextInt(askable.size()));
        p.append(' ').append(q).append('>');
        String s = p.toString();
        return new Episode(s, map.get(q), mappingSignature(map));
    }

    /** The mapping as sorted symbol>value pairs: the identity of an in-context task. */
    static String mappingSignature(Map<String, String> map) {
        List<String> pairs = new ArrayList<>();
        map.forEach((k, v) -> pairs.add(k + ">" + v));
        java.util.Collections.sort(pairs);
        return String.join(" ", pairs);
    }

    /** Training text and held-out test items of the three in-context tasks. */
    public record TaskSet(byte[] text, Map<String, List<Item>> tests, Set<String> trainSignatures) {}

    interface Generator { Episode next(Rng r, Sizes z); }

    static final Map<String, Generator> KINDS = new LinkedHashMap<>();
    static {
        KINDS.put(LONG_CONTEXT, MemoryTasks::longContext);
        KINDS.put(MULTI_ROUND, MemoryTasks::multiRound);
        KINDS.put(IN_CONTEXT, MemoryTasks::symbolMapping);
    }

    /**
     * {@code bytes} of training text (episodes of the three kinds in random order, one per line) and
     * {@code testItems} test items per kind whose signatures do not occur in it.
     */
    public static TaskSet generate(long seed, Sizes z, int bytes, int testItems) {
        Rng r = new Rng(seed);
        List<Generator> gens = new ArrayList<>(KINDS.values());
        Set<String> signatures = new HashSet<>();
        StringBuilder sb = new StringBuilder(bytes + 256);
        while (sb.length() < bytes) {
            Episode e = gens.get(r.nextInt(gens.size())).next(r, z);
            signatures.add(e.signature());
            sb.append(e.line());
        }
        // the text ends at a line end, so no test episode can hide in a cut line
        int end = sb.lastIndexOf("\n", bytes - 1) + 1;
        String text = sb.substring(0, end > 0 ? end : sb.length());
        Rng t = new Rng(seed ^ 0x7E57_1DEAL);
        Map<String, List<Item>> tests = new LinkedHashMap<>();
        for (var k : KINDS.entrySet()) {
            List<Item> items = new ArrayList<>();
            Set<String> taken = new HashSet<>();
            for (int tries = 0; items.size() < testItems && tries < 1000 * testItems; tries++) {
                Episode e = k.getValue().next(t, z);
                if (signatures.contains(e.signature()) || !taken.add(e.signature())) continue;
                items.add(new Item(e.prompt(), e.answer()));
            }
            tests.put(k.getKey(), List.copyOf(items));
        }
        return new TaskSet(text.getBytes(StandardCharsets.US_ASCII), tests, signatures);
    }

    // ---- closed-book fact capacity ----

    /** Values of a fact: two digits, 100 possibilities (log2 100 bits each). */
    public static final int FACT_VALUES = 100;

    /** N facts "@name=42" with distinct four-letter names. */
    public static List<Item> facts(long seed, int n) {
        Rng r = new Rng(seed);
        Set<String> names = new HashSet<>();
        List<Item> out = new ArrayList<>();
        String letters = KEYS + VALUES;
        while (out.size() < n) {
            String name = pick(r, letters, 4);
            if (!names.add(name)) continue;
            out.add(new Item("@" + name + "=", String.format("%02d", r.nextInt(FACT_VALUES))));
        }
        return out;
    }

    /** The facts, each once per repeat, in a new random order each repeat, one per line. */
    public static byte[] factText(List<Item> facts, int repeats, long seed) {
        Rng r = new Rng(seed + 1);
        StringBuilder sb = new StringBuilder();
        int[] order = new int[facts.size()];
        for (int i = 0; i < order.length; i++) order[i] = i;
        for (int rep = 0; rep < repeats; rep++) {
            for (int i = order.length - 1; i > 0; i--) {
                int j = r.nextInt(i + 1), x = order[i];
                order[i] = order[j];
                order[j] = x;
            }
            for (int i : order) sb.append(facts.get(i).prompt()).append(facts.get(i).answer()).append('\n');
        }
        return sb.toString().getBytes(StandardCharsets.US_ASCII);
    }

    /**
     * Bits stored: correct answers above chance (N/100 expected by guessing) times log2 100, at least 0.
     */
    public static double storedBits(double accuracy, int n) {
        return Math.max(0, accuracy * n - (double) n / FACT_VALUES) * (Math.log(FACT_VALUES) / Math.log(2));
    }

    // ---- scoring ----

    /**
     * Exact-match accuracy with greedy decoding: an item counts when every answer byte is the model's
     * argmax after the prompt and the answer bytes before it. With the correct bytes before it that is
     * exactly what greedy generation produces, so one teacher-forced forward per batch scores it.
     * Each item is one row of the batch, after a newline (episodes start lines in training), padded with
     * newlines; a causal model does not see the padding.
     */
    public static double accuracy(Model model, List<Item> items, int seqLen) {
        if (items.isEmpty()) return Double.NaN;
        int B = 16, T = seqLen, V = model.config().vocabSize;
        int[] in = new int[B * T];
        int correct = 0;
        model.setTraining(false);
        try {
            for (int start = 0; start < items.size(); start += B) {
                int n = Math.min(B, items.size() - start);
                java.util.Arrays.fill(in, '\n');
                int[] answerAt = new int[n];
                for (int b = 0; b < n; b++) {
                    // one byte per char (the items are ASCII; Latin-1 keeps any byte value a char can name)
                    byte[] seq = ("\n" + items.get(start + b).prompt() + items.get(start + b).answer()).getBytes(StandardCharsets.ISO_8859_1);
                    if (seq.length > T) throw new IllegalArgumentException("test item longer than seq_len " + T);
                    for (int i = 0; i < seq.length; i++) in[b * T + i] = seq[i] & 0xFF;
                    answerAt[b] = seq.length - items.get(start + b).answer().length();
                }
                float[] logits = model.logits(in, B, T);
                for (int b = 0; b < n; b++) {
                    String ans = items.get(start + b).answer();
                    boolean ok = true;
                    for (int j = 0; j < ans.length() && ok; j++) {
                        int pos = answerAt[b] + j - 1;
                        ok = argmax(logits, (b * T + pos) * V, V) == (ans.charAt(j) & 0xFF);
                    }
                    if (ok) correct++;
                }
            }
        } finally {
            model.setTraining(true);
        }
        return (double) correct / items.size();
    }

    static int argmax(float[] a, int off, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) if (a[off + i] > a[off + best]) best = i;
        return best;
    }
}
