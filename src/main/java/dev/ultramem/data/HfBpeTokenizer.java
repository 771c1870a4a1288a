package dev.ultramem.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ultramem.core.UserError;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A Hugging Face {@code tokenizer.json} byte-level BPE (GPT-2, GPT-NeoX, Llama 3 style), read without
 * the tokenizers library. The pipeline follows that library:
 * <ol>
 * <li>normalizer: none, NFC, NFD, NFKC or NFKD (GPT-NeoX uses NFC, so only NFC text round-trips exactly);</li>
 * <li>added tokens: the non-special ones are cut out of the text first (leftmost, then longest match;
 *     GPT-NeoX's runs of spaces are such tokens). Special ones ({@code "special": true}, e.g.
 *     {@code <|endoftext|>}) are never matched in the text, which is encoded as ordinary characters
 *     (as HF's encode with {@code split_special_tokens}), so training text cannot inject control tokens;
 *     their ids still decode to their content;</li>
 * <li>pre-tokenizer: {@code ByteLevel} (with GPT-2's split regex unless {@code use_regex} is false, and
 *     {@code add_prefix_space}), optionally after {@code Split} steps with behavior {@code Isolated}
 *     in a {@code Sequence};</li>
 * <li>each piece's UTF-8 bytes through GPT-2's byte-to-unicode table, then BPE merges: while some
 *     adjacent pair of symbols is listed in {@code merges}, every occurrence (left to right) of the
 *     pair listed first is merged. Ranks come from the order of {@code merges}, ids from {@code vocab}.
 *     (jtokkit's BPE cannot do this: it ranks by the merged token's id and merges any pair whose
 *     concatenation is in the vocabulary, which differs from HF whenever ids are not in merge order
 *     or a token is reachable by a pair that is not listed.) With {@code ignore_merges} a piece that is
 *     itself a vocabulary token is taken whole.</li>
 * </ol>
 * No post-processor tokens are added (no BOS/EOS). Files that need anything else (other normalizers,
 * pre-tokenizers or decoders, dropout, subword prefixes or suffixes, added tokens with
 * lstrip/rstrip/single_word) are refused with a one-line error rather than tokenized differently.
 */
final class HfBpeTokenizer implements Tokenizer {
    /** GPT-2's pre-tokenizer regex, which the tokenizers library's ByteLevel uses. */
    static final Pattern GPT2_SPLIT = Pattern.compile(
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", Pattern.UNICODE_CHARACTER_CLASS);

    private static final ObjectMapper JSON = new ObjectMapper();

    private final String name;
    private final Normalizer.Form normalization;
    private final List<Pattern> splits = new ArrayList<>();
    private boolean byteLevelRegex = true, addPrefixSpace, ignoreMerges;
    private final Map<String, Integer> vocab = new HashMap<>();
    /** (left id, right id) → rank in the high half and the merged id in the low half. */
    private final Map<Long, Long> merges = new HashMap<>();
    /** Non-special added tokens, longest first, matched in the text. */
    private final List<String> matched = new ArrayList<>();
    private final Map<String, Integer> matchedIds = new HashMap<>();
    private byte[][] idBytes;
    private final int[] byteSymbol = new int[256];
    private final Map<String, int[]> cache = new HashMap<>();

    /** GPT-2's byte-to-unicode table: printable Latin-1 bytes stand for themselves, the other 68 for U+0100 onwards in byte order. */
    static char[] byteToChar() {
        char[] c = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            c[b] = printable ? (char) b : (char) (256 + n++);
        }
        return c;
    }

    private static final char[] BYTE_TO_CHAR = byteToChar();
    private static final Map<Character, Integer> CHAR_TO_BYTE = new HashMap<>();
    static {
        for (int b = 0; b < 256; b++) CHAR_TO_BYTE.put(BYTE_TO_CHAR[b], b);
    }

    /** Parses a tokenizer.json text; what names it in errors (the file or the checkpoint). */
    static HfBpeTokenizer parse(String name, String json, String what) {
        HfBpeTokenizer t = parse0(name, json, what);
        t.json = json;
        return t;
    }

    private String json;

    @Override public String definition() { return json; }

    private static HfBpeTokenizer parse0(String name, String json, String what) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (IOException e) {
            throw new UserError(what + ": not a tokenizer.json (" + firstLine(e.getMessage()) + ")");
        }
        if (root == null || !root.isObject()) throw new UserError(what + ": not a tokenizer.json (no JSON object)");
        return new HfBpeTokenizer(name, root, what);
    }

    private HfBpeTokenizer(String name, JsonNode root, String what) {
        this.name = name;
        JsonNode model = root.path("model");
        if (!"BPE".equals(model.path("type").asText(null)))
            throw new UserError(what + ": model type " + UserError.quote(model.path("type").asText("missing")) + " is not BPE");
        if (model.hasNonNull("dropout") && model.get("dropout").asDouble() != 0) throw new UserError(what + ": BPE dropout is not supported");
        for (String k : new String[]{"continuing_subword_prefix", "end_of_word_suffix"})
            if (model.hasNonNull(k) && !model.get(k).asText().isEmpty()) throw new UserError(what + ": BPE " + k + " is not supported");
        ignoreMerges = model.path("ignore_merges").asBoolean(false);
        normalization = normalizer(root.path("normalizer"), what);
        preTokenizer(root.path("pre_tokenizer"), what);
        String decoder = root.path("decoder").path("type").asText("missing");
        if (!decoder.equals("ByteLevel")) throw new UserError(what + ": decoder " + UserError.quote(decoder) + " is not ByteLevel (only byte-level BPE is supported)");

        JsonNode v = model.path("vocab");
        if (!v.isObject() || v.isEmpty()) throw new UserError(what + ": model.vocab is missing or empty");
        int maxId = -1;
        for (var e : v.properties()) {
            if (!e.getValue().isIntegralNumber() || !e.getValue().canConvertToInt() || e.getValue().asInt() < 0) throw new UserError(what + ": vocab id of " + UserError.quote(e.getKey()) + " is not a non-negative integer");
            vocab.put(e.getKey(), e.getValue().asInt());
            maxId = Math.max(maxId, e.getValue().asInt());
        }
        List<JsonNode> added = new ArrayList<>();
        root.path("added_tokens").forEach(added::add);
        for (JsonNode a : added) {
            if (!a.path("id").isIntegralNumber() || !a.path("id").canConvertToInt() || a.path("id").asInt() < 0 || !a.path("content").isTextual())
                throw new UserError(what + ": an added token lacks its id or content");
            maxId = Math.max(maxId, a.get("id").asInt());
        }
        if (maxId >= (1 << 24)) throw new UserError(what + ": token id " + maxId + " is beyond the supported 16,777,216");
        idBytes = new byte[maxId + 1][];
        for (var e : vocab.entrySet()) idBytes[e.getValue()] = unmap(e.getKey());
        for (JsonNode a : added) {
            String content = a.get("content").asText();
            idBytes[a.get("id").asInt()] = content.getBytes(StandardCharsets.UTF_8);
            if (a.path("special").asBoolean(false) || content.isEmpty()) continue;
            for (String k : new String[]{"single_word", "lstrip", "rstrip"})
                if (a.path(k).asBoolean(false)) throw new UserError(what + ": added token " + UserError.quote(content) + " sets " + k + ", which is not supported");
            matched.add(content);
            matchedIds.put(content, a.get("id").asInt());
        }
        matched.sort((x, y) -> y.length() - x.length());
        for (int b = 0; b < 256; b++) {
            Integer id = vocab.get(String.valueOf(BYTE_TO_CHAR[b]));
            if (id == null) throw new UserError(what + ": byte 0x" + Integer.toHexString(b) + " has no token (not a byte-level BPE vocabulary)");
            byteSymbol[b] = id;
        }
        JsonNode m = model.path("merges");
        int rank = 0;
        for (JsonNode e : m) {
            String left, right;
            if (e.isTextual()) {
                int sp = e.asText().indexOf(' ');
                if (sp <= 0) throw new UserError(what + ": merge " + UserError.quote(e.asText()) + " is not 'left right'");
                left = e.asText().substring(0, sp);
                right = e.asText().substring(sp + 1);
            } else if (e.isArray() && e.size() == 2 && e.get(0).isTextual() && e.get(1).isTextual()) {
                left = e.get(0).asText();
                right = e.get(1).asText();
            } else {
                throw new UserError(what + ": merge " + e + " is neither 'left right' nor [left, right]");
            }
            Integer l = vocab.get(left), r = vocab.get(right), lr = vocab.get(left + right);
            if (l == null || r == null || lr == null)
                throw new UserError(what + ": merge " + UserError.quote(left + " " + right) + " uses a token that is not in the vocabulary");
            merges.putIfAbsent(pair(l, r), ((long) rank << 32) | lr);
            rank++;
        }
    }

    private static Normalizer.Form normalizer(JsonNode n, String what) {
        if (n.isMissingNode() || n.isNull()) return null;
        String t = n.path("type").asText("missing");
        return switch (t) {
            case "NFC" -> Normalizer.Form.NFC;
            case "NFD" -> Normalizer.Form.NFD;
            case "NFKC" -> Normalizer.Form.NFKC;
            case "NFKD" -> Normalizer.Form.NFKD;
            default -> throw new UserError(what + ": normalizer " + UserError.quote(t) + " is not supported (none, NFC, NFD, NFKC or NFKD)");
        };
    }

    private void preTokenizer(JsonNode n, String what) {
        List<JsonNode> steps = new ArrayList<>();
        if ("Sequence".equals(n.path("type").asText())) n.path("pretokenizers").forEach(steps::add);
        else steps.add(n);
        boolean byteLevel = false;
        for (JsonNode s : steps) {
            String t = s.path("type").asText("missing");
            if (byteLevel) throw new UserError(what + ": pre-tokenizer " + UserError.quote(t) + " after ByteLevel is not supported");
            switch (t) {
                case "ByteLevel" -> {
                    byteLevel = true;
                    byteLevelRegex = s.path("use_regex").asBoolean(true);
                    addPrefixSpace = s.path("add_prefix_space").asBoolean(false);
                }
                case "Split" -> {
                    if (!"Isolated".equals(s.path("behavior").asText()) || s.path("invert").asBoolean(false))
                        throw new UserError(what + ": Split pre-tokenizers other than behavior Isolated are not supported");
                    JsonNode p = s.path("pattern");
                    String regex = p.hasNonNull("Regex") ? p.get("Regex").asText() : Pattern.quote(p.path("String").asText(""));
                    if (regex.isEmpty()) throw new UserError(what + ": Split pre-tokenizer has no pattern");
                    try {
                        splits.add(Pattern.compile(regex, Pattern.UNICODE_CHARACTER_CLASS));
                    } catch (java.util.regex.PatternSyntaxException e) {
                        throw new UserError(what + ": Split pattern is not a regex Java reads (" + firstLine(e.getDescription()) + ")");
                    }
                }
                default -> throw new UserError(what + ": pre-tokenizer " + UserError.quote(t) + " is not supported (ByteLevel, or Split then ByteLevel)");
            }
        }
        if (!byteLevel) throw new UserError(what + ": no ByteLevel pre-tokenizer (only byte-level BPE is supported)");
    }

    private static long pair(int l, int r) { return ((long) l << 32) | (r & 0xFFFFFFFFL); }

    private static byte[] unmap(String token) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(token.length());
        for (int i = 0; i < token.length(); i++) {
            Integer b = CHAR_TO_BYTE.get(token.charAt(i));
            if (b != null) out.write(b);
            else out.writeBytes(String.valueOf(token.charAt(i)).getBytes(StandardCharsets.UTF_8));
        }
        return out.toByteArray();
    }

    @Override public String name() { return name; }

    @Override public int vocabSize() { return idBytes.length; }

    @Override public int[] encode(String text) {
        String s = Tokenizer.withoutLoneSurrogates(text);
        if (normalization != null) s = Normalizer.normalize(s, normalization);
        IntList out = new IntList(s.length() / 3 + 16);
        int start = 0;
        for (int i = 0; i < s.length(); ) {
            String a = addedTokenAt(s, i);
            if (a == null) { i++; continue; }
            encodeText(s.substring(start, i), out);
            out.add(matchedIds.get(a));
            i += a.length();
            start = i;
        }
        encodeText(s.substring(start), out);
        return out.toArray();
    }

    private String addedTokenAt(String s, int i) {
        for (String a : matched) if (s.startsWith(a, i)) return a;
        return null;
    }

    private void encodeText(String text, IntList out) {
        if (text.isEmpty()) return;
        List<String> pieces = new ArrayList<>(List.of(text));
        for (Pattern p : splits) pieces = isolate(pieces, p);
        for (String piece : pieces) {
            // as the tokenizers library's ByteLevel: every piece it is given gets the space
            if (addPrefixSpace && !piece.startsWith(" ")) piece = " " + piece;
            if (byteLevelRegex) {
                for (String w : isolate(List.of(piece), GPT2_SPLIT)) out.addAll(word(w));
            } else {
                out.addAll(word(piece));
            }
        }
    }

    /** Splits each piece into the matches of p and the text between them (Split with behavior Isolated). */
    private static List<String> isolate(List<String> pieces, Pattern p) {
        List<String> out = new ArrayList<>();
        for (String s : pieces) {
            Matcher m = p.matcher(s);
            int last = 0;
            while (m.find()) {
                if (m.end() == m.start()) continue;
                if (m.start() > last) out.add(s.substring(last, m.start()));
                out.add(s.substring(m.start(), m.end()));
                last = m.end();
            }
            if (last < s.length()) out.add(s.substring(last));
        }
        return out;
    }

    /** The BPE of one pre-tokenized piece. */
    private int[] word(String piece) {
        int[] hit = cache.get(piece);
        if (hit != null) return hit;
        byte[] b = piece.getBytes(StandardCharsets.UTF_8);
        int[] sym = new int[b.length];
        for (int i = 0; i < b.length; i++) sym[i] = byteSymbol[b[i] & 0xFF];
        int n = sym.length;
        if (ignoreMerges) {
            StringBuilder mapped = new StringBuilder(b.length);
            for (byte x : b) mapped.append(BYTE_TO_CHAR[x & 0xFF]);
            Integer whole = vocab.get(mapped.toString());
            if (whole != null) { sym = new int[]{whole}; n = 1; }
        }
        while (n > 1) {
            long best = Long.MAX_VALUE;
            int bl = -1, br = -1;
            for (int i = 0; i + 1 < n; i++) {
                Long m = merges.get(pair(sym[i], sym[i + 1]));
                if (m != null && m < best) { best = m; bl = sym[i]; br = sym[i + 1]; }
            }
            if (bl < 0) break;
            int merged = (int) best, k = 0;
            for (int i = 0; i < n; i++) {
                if (i + 1 < n && sym[i] == bl && sym[i + 1] == br) { sym[k++] = merged; i++; }
                else sym[k++] = sym[i];
            }
            n = k;
        }
        int[] ids = Arrays.copyOf(sym, n);
        if (cache.size() > 200_000) cache.clear();
        cache.put(piece, ids);
        return ids;
    }

    @Override public byte[] decodeBytes(int[] ids) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(ids.length * 4);
        for (int id : ids) {
            if (id < 0 || id >= idBytes.length) throw new IllegalArgumentException("token id out of range: " + id);
            byte[] b = idBytes[id] == null ? Tokenizer.REPLACEMENT : idBytes[id];
            out.write(b, 0, b.length);
        }
        return out.toByteArray();
    }

    @Override public int byteLength(int id) { return idBytes[id] == null ? Tokenizer.REPLACEMENT.length : idBytes[id].length; }

    private static String firstLine(String s) {
        if (s == null) return "";
        int i = s.indexOf('\n');
        return i < 0 ? s : s.substring(0, i);
    }

    /** A growable int array. */
    private static final class IntList {
        private int[] a;
        private int n;
        IntList(int cap) { a = new int[Math.max(16, cap)]; }
        void add(int v) { if (n == a.length) a = Arrays.copyOf(a, n * 2); a[n++] = v; }
        void addAll(int[] v) { if (n + v.length > a.length) a = Arrays.copyOf(a, Math.max(n * 2, n + v.length)); System.arraycopy(v, 0, a, n, v.length); n += v.length; }
        int[] toArray() { return Arrays.copyOf(a, n); }
    }
}
