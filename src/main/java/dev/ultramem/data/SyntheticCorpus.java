package dev.ultramem.data;

import dev.ultramem.core.Rng;

import java.nio.charset.StandardCharsets;

/**
 * The built-in training text, generated from a seed (nothing is downloaded). It mixes sentence kinds
 * with learnable structure: a fixed table of invented countries and capitals (facts to memorise),
 * additions and subtractions with correct results, counting sequences, alphabet runs and opposites.
 * The same seed and size always give the same bytes.
 */
public final class SyntheticCorpus {
    public static final long DEFAULT_SEED = 20240601L;
    public static final int DEFAULT_BYTES = 1 << 20;

    private static final String[] ONSETS = {"b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "tr", "st", "kl"};
    private static final String[] VOWELS = {"a", "e", "i", "o", "u", "ai", "ou"};
    private static final String[][] OPPOSITES = {
            {"hot", "cold"}, {"big", "small"}, {"fast", "slow"}, {"old", "new"}, {"up", "down"}, {"light", "dark"},
            {"early", "late"}, {"wet", "dry"}, {"open", "closed"}, {"full", "empty"}, {"high", "low"}, {"near", "far"}};
    private static final String[] COLORS = {"red", "green", "blue", "yellow", "white", "black", "orange", "purple"};
    private static final String[] NUMBER_WORDS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"};

    private SyntheticCorpus() {}

    /** Generates exactly {@code bytes} bytes of ASCII text (cut at the size). */
    public static byte[] generate(long seed, int bytes) {
        if (bytes <= 0) throw new IllegalArgumentException("bytes must be > 0");
        Rng rng = new Rng(seed);
        int nCountries = 48;
        String[] country = new String[nCountries], capital = new String[nCountries], color = new String[nCountries];
        java.util.Set<String> used = new java.util.HashSet<>();
        for (int i = 0; i < nCountries; i++) {
            country[i] = capitalise(uniqueWord(rng, used, 2 + rng.nextInt(2))) + "ia";
            capital[i] = capitalise(uniqueWord(rng, used, 2 + rng.nextInt(2)));
            color[i] = COLORS[rng.nextInt(COLORS.length)];
        }
        StringBuilder sb = new StringBuilder(bytes + 128);
        while (sb.length() < bytes) {
            int kind = rng.nextInt(10);
            switch (kind) {
                case 0, 1, 2 -> {
                    int c = rng.nextInt(nCountries);
                    sb.append("the capital of ").append(country[c]).append(" is ").append(capital[c]).append(". ");
                }
                case 3 -> {
                    int c = rng.nextInt(nCountries);
                    sb.append(capital[c]).append(" is the capital of ").append(country[c]).append(". ");
                }
                case 4 -> {
                    int c = rng.nextInt(nCountries);
                    sb.append("the flag of ").append(country[c]).append(" is ").append(color[c]).append(". ");
                }
                case 5 -> {
                    int a = rng.nextInt(50), b = rng.nextInt(50);
                    sb.append(a).append(" + ").append(b).append(" = ").append(a + b).append(". ");
                }
                case 6 -> {
                    int a = rng.nextInt(100), b = rng.nextInt(a + 1);
                    sb.append(a).append(" - ").append(b).append(" = ").append(a - b).append(". ");
                }
                case 7 -> {
                    int start = rng.nextInt(20), step = 1 + rng.nextInt(3), len = 4 + rng.nextInt(4);
                    sb.append("count:");
                    for (int i = 0; i < len; i++) sb.append(i == 0 ? " " : ", ").append(start + i * step);
                    sb.append(". ");
                }
                case 8 -> {
                    String[] o = OPPOSITES[rng.nextInt(OPPOSITES.length)];
                    boolean flip = rng.nextInt(2) == 0;
                    sb.append("the opposite of ").append(flip ? o[1] : o[0]).append(" is ").append(flip ? o[0] : o[1]).append(". ");
                }
                default -> {
                    int a = rng.nextInt(6), b = rng.nextInt(5);
                    if (rng.nextInt(2) == 0) {
                        int s = rng.nextInt(20), len = 3 + rng.nextInt(5);
                        sb.append("letters:");
                        for (int i = 0; i < len; i++) sb.append(' ').append((char) ('a' + s + i));
                        sb.append(". ");
                    } else {
                        sb.append(NUMBER_WORDS[a]).append(" plus ").append(NUMBER_WORDS[b]).append(" is ").append(NUMBER_WORDS[a + b]).append(". ");
                    }
                }
            }
            if (rng.nextInt(8) == 0) sb.append('\n');
        }
        byte[] all = sb.toString().getBytes(StandardCharsets.US_ASCII);
        return java.util.Arrays.copyOf(all, bytes);
    }

    private static String uniqueWord(Rng rng, java.util.Set<String> used, int syllables) {
        while (true) {
            StringBuilder w = new StringBuilder();
            for (int s = 0; s < syllables; s++) w.append(ONSETS[rng.nextInt(ONSETS.length)]).append(VOWELS[rng.nextInt(VOWELS.length)]);
            if (used.add(w.toString())) return w.toString();
        }
    }

    private static String capitalise(String s) { return Character.toUpperCase(s.charAt(0)) + s.substring(1); }
}
