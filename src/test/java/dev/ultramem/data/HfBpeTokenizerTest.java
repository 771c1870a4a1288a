package dev.ultramem.data;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ultramem.core.UserError;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A tiny tokenizer.json written here, in the layout of GPT-NeoX's: the 256 byte symbols of GPT-2's
 * byte-to-unicode table with id = byte + 2, a few merges whose ids are deliberately not in merge order,
 * a special {@code <|endoftext|>} (id 0) and a non-special added token of three spaces (id 1). The
 * expected ids below are worked out by hand from the merge list.
 */
public class HfBpeTokenizerTest {
    @TempDir Path dir;

    static final ObjectMapper JSON = new ObjectMapper();

    /** GPT-2's table written from its definition: printable Latin-1 bytes map to themselves, the rest to U+0100, U+0101, ... in byte order. */
    static String sym(int b) {
        if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return String.valueOf((char) b);
        int n = 0;
        for (int x = 0; x < b; x++) if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
        return String.valueOf((char) (256 + n));
    }

    static int id(char c) { return c + 2; }  // the id of a printable ASCII byte's symbol

    static final String[][] MERGES = {{"l", "l"}, {"h", "e"}, {"he", "ll"}, {"hell", "o"}, {"Ġ", "w"}, {"b", "c"}, {"a", "b"}};
    static final int LL = 300, HE = 290, HELL = 280, HELLO = 270, GW = 305, AB = 310, BC = 311, ABC = 320;

    /** The tiny tokenizer.json as a file in dir (for the training and checkpoint tests). */
    public static Path writeTiny(Path dir) throws java.io.IOException {
        Path f = dir.resolve("tokenizer.json");
        Files.writeString(f, tokenizerJson(false).toString(), StandardCharsets.UTF_8);
        return f;
    }

    /** Its vocabulary size: the largest id is that of "abc". */
    public static final int TINY_VOCAB = 321;

    static ObjectNode tokenizerJson(boolean arrayMerges) {
        ObjectNode root = JSON.createObjectNode();
        ArrayNode added = root.putArray("added_tokens");
        added.addObject().put("id", 0).put("content", "<|endoftext|>").put("special", true).put("lstrip", false).put("rstrip", false);
        added.addObject().put("id", 1).put("content", "   ").put("special", false).put("normalized", true).put("lstrip", false);
        root.putObject("normalizer").put("type", "NFC");
        root.putObject("pre_tokenizer").put("type", "ByteLevel").put("add_prefix_space", false).put("trim_offsets", true);
        root.putNull("post_processor");
        root.putObject("decoder").put("type", "ByteLevel");
        ObjectNode model = root.putObject("model");
        model.put("type", "BPE").putNull("dropout").putNull("unk_token").putNull("continuing_subword_prefix").putNull("end_of_word_suffix");
        ObjectNode vocab = model.putObject("vocab");
        vocab.put("<|endoftext|>", 0);
        for (int b = 0; b < 256; b++) vocab.put(sym(b), b + 2);
        vocab.put("ll", LL).put("he", HE).put("hell", HELL).put("hello", HELLO).put("Ġw", GW).put("ab", AB).put("bc", BC).put("abc", ABC);
        ArrayNode m = model.putArray("merges");
        for (String[] p : MERGES) {
            if (arrayMerges) m.addArray().add(p[0]).add(p[1]);
            else m.add(p[0] + " " + p[1]);
        }
        return root;
    }

    Tokenizer write(ObjectNode json) throws Exception {
        Path f = dir.resolve("tokenizer-" + System.nanoTime() + ".json");
        Files.writeString(f, json.toString(), StandardCharsets.UTF_8);
        return Tokenizers.named("hf:" + f);
    }

    Tokenizer tiny() throws Exception { return write(tokenizerJson(false)); }

    @Test
    void theTableMatchesGpt2sKnownSymbols() {
        assertEquals("Ġ", sym(' '));   // GPT-2's vocabulary spells " the" as "Ġthe"
        assertEquals("Ċ", sym('\n'));  // and a newline as "Ċ"
        assertEquals("ĉ", sym('\t'));
        assertEquals("a", sym('a'));
    }

    @Test
    void mergesApplyInListOrderAndIdsComeFromTheVocabulary() throws Exception {
        Tokenizer t = tiny();
        // h e l l o: (l,l) rank 0, then (h,e), (he,ll), (hell,o)
        assertArrayEquals(new int[]{HELLO}, t.encode("hello"));
        // pre-tokens "hello" and " world": Ġ w merges (rank 4), nothing else applies to "orld"
        assertArrayEquals(new int[]{HELLO, GW, id('o'), id('r'), id('l'), id('d')}, t.encode("hello world"));
        // a b c: (b,c) is listed before (a,b), so bc wins although "ab" has the lower id; (a,bc) is no merge,
        // and "abc" is in the vocabulary but no listed pair makes it
        assertArrayEquals(new int[]{id('a'), BC}, t.encode("abc"));
        // "hel": (h,e) then (he,l) is not listed
        assertArrayEquals(new int[]{HE, id('l')}, t.encode("hel"));
        // GPT-2's split: "a", " " (a space run keeps its last space for the next word), " b"
        assertArrayEquals(new int[]{id('a'), id(' '), id(' '), id('b')}, t.encode("a  b"));
        assertEquals(ABC + 1, t.vocabSize());  // the largest id is "abc"
        assertArrayEquals(t.encode("hello world abc"), write(tokenizerJson(true)).encode("hello world abc"), "[left, right] merges");
    }

    @Test
    void addedTokensAsDocumented() throws Exception {
        Tokenizer t = tiny();
        // the non-special three spaces are cut out first
        assertArrayEquals(new int[]{id('a'), 1, id('b')}, t.encode("a   b"));
        assertArrayEquals(new int[]{1, 1, id(' '), id('x')}, t.encode("       x"));
        // the special token's spelling is ordinary text: "<|", "endoftext", "|>" with no merges among them
        int[] ids = t.encode("<|endoftext|>");
        byte[] b = "<|endoftext|>".getBytes(StandardCharsets.US_ASCII);
        int[] want = new int[b.length];
        for (int i = 0; i < b.length; i++) want[i] = b[i] + 2;
        assertArrayEquals(want, ids);
        assertEquals("<|endoftext|>", t.decode(new int[]{0}));
        assertEquals("hello   world", t.decode(new int[]{HELLO, 1, id('w'), id('o'), id('r'), id('l'), id('d')}));
    }

    @Test
    void nfcNormalizationAndBytesBeyondAscii() throws Exception {
        Tokenizer t = tiny();
        // e + combining acute is NFC é = U+00E9 = C3 A9
        assertArrayEquals(new int[]{0xC3 + 2, 0xA9 + 2}, t.encode("e\u0301"));
        assertArrayEquals(new int[]{0xF0 + 2, 0x9F + 2, 0x99 + 2, 0x82 + 2}, t.encode("🙂"));
        for (String s : new String[]{"", "hello world", "日本語のテキスト", "emoji 🙂🚀👍🏽 mixed\nlines\t", "naïve café", "x   y    z\n\n", "<|endoftext|>"}) {
            assertEquals(s, t.decode(t.encode(s)), s);
        }
        // invalid input: lone surrogates and invalid UTF-8 become U+FFFD
        assertArrayEquals(t.encode("a\uFFFD"), t.encode("a\uD800"));
        assertEquals("a\uFFFDb", t.decode(t.encode(new byte[]{'a', (byte) 0xC3, 'b'})));
        // the gap ids 258..269 name no token
        assertEquals("\uFFFD", t.decode(new int[]{260}));
        assertThrows(IllegalArgumentException.class, () -> t.decodeBytes(new int[]{ABC + 1}));
    }

    @Test
    void whatCannotBeReproducedIsRefused() throws Exception {
        refused(j -> ((ObjectNode) j.get("normalizer")).put("type", "Lowercase"), "normalizer");
        refused(j -> ((ObjectNode) j.get("model")).put("type", "WordPiece"), "not BPE");
        refused(j -> ((ObjectNode) j.get("decoder")).put("type", "Metaspace"), "ByteLevel");
        refused(j -> ((ObjectNode) j.get("pre_tokenizer")).put("type", "Whitespace"), "pre-tokenizer");
        refused(j -> ((ObjectNode) j.get("model")).put("dropout", 0.1), "dropout");
        refused(j -> ((ObjectNode) j.get("model").get("vocab")).remove(sym(0)), "byte 0x0");
        refused(j -> ((ArrayNode) j.get("model").get("merges")).add("x yz"), "not in the vocabulary");
        refused(j -> ((ObjectNode) j.get("added_tokens").get(1)).put("lstrip", true), "lstrip");
        Path f = dir.resolve("broken.json");
        Files.writeString(f, "{\"model\": ");
        assertTrue(assertThrows(UserError.class, () -> Tokenizers.named("hf:" + f)).getMessage().contains("not a tokenizer.json"));
    }

    private void refused(Consumer<ObjectNode> change, String part) throws Exception {
        ObjectNode j = tokenizerJson(false);
        change.accept(j);
        UserError e = assertThrows(UserError.class, () -> write(j));
        assertTrue(e.getMessage().contains(part), e.getMessage());
    }
}
