package dev.ultramem.data;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The jtokkit-backed tokenizers against ids published outside this code base: the expectations of
 * tiktoken's own test suite (tests/test_encoding.py), Hugging Face's GPT-2 tokenizer documentation
 * ("Hello world" → [15496, 995]), and a golden case of a tokenizer port checked against Python tiktoken.
 */
class TiktokenTokenizerTest {
    static final Tokenizer R50K = Tokenizers.builtin("r50k_base"), CL100K = Tokenizers.builtin("cl100k_base");

    @Test
    void r50kBaseGivesThePublishedIds() {
        assertArrayEquals(new int[]{31373, 995}, R50K.encode("hello world"));
        assertArrayEquals(new int[]{15496, 995}, R50K.encode("Hello world"));
        assertArrayEquals(new int[]{18435, 995}, R50K.encode(" Hello world"));
        assertArrayEquals(new int[]{15}, R50K.encode("0"));
        assertArrayEquals(new int[]{830}, R50K.encode("000"));
        assertArrayEquals(new int[]{10535, 830}, R50K.encode("000000000"));
        assertArrayEquals(new int[]{8269, 405}, R50K.encode("0000000000"));
        assertArrayEquals(new int[0], R50K.encode(""));
        assertEquals("hello <|endoftext|>", R50K.decode(new int[]{31373, 220, 50256}));
        assertEquals(50257, R50K.vocabSize());
    }

    @Test
    void cl100kBaseGivesThePublishedIds() {
        assertArrayEquals(new int[]{15339, 1917}, CL100K.encode("hello world"));
        assertArrayEquals(new int[]{38149}, CL100K.encode("rer"));
        assertArrayEquals(new int[]{2351, 81}, CL100K.encode("'rer"));
        assertArrayEquals(new int[]{31213, 198, 220}, CL100K.encode("today\n "));
        assertArrayEquals(new int[]{31213, 27907}, CL100K.encode("today\n \n"));
        assertArrayEquals(new int[]{220, 126, 227, 15}, CL100K.encode(" \u00850"));
        assertArrayEquals(new int[]{9468, 239, 235}, CL100K.encode("👍"));
        assertArrayEquals(new int[]{21043, 58666, 12554, 233}, CL100K.encode("是美國"));
        assertEquals("hello <|endoftext|>", CL100K.decode(new int[]{15339, 220, 100257}));
        assertEquals(100277, CL100K.vocabSize());
    }

    @Test
    void roundTripsUtf8TextWithEmojiAndCjk() {
        String[] texts = {"", "hello", " hello  ", "请考试我的软件！12345", "日本語のテキスト", "emoji 🙂🚀👍🏽 mixed\nlines\t",
                "naïve café — Grüße", "\u0000ctrl\r\n", "    indented\n\n\n", "x".repeat(3000), "<|endoftext|> as text"};
        for (Tokenizer t : new Tokenizer[]{R50K, CL100K}) {
            for (String s : texts) {
                int[] ids = t.encode(s);
                assertEquals(s, t.decode(ids), t.name());
                assertArrayEquals(s.getBytes(StandardCharsets.UTF_8), t.decodeBytes(ids), t.name());
                long bytes = 0;
                for (int id : ids) bytes += t.byteLength(id);
                assertEquals(s.getBytes(StandardCharsets.UTF_8).length, bytes, t.name() + ": byte lengths of the tokens");
            }
        }
    }

    @Test
    void specialTokenSpellingsInTheTextAreOrdinaryText() {
        for (int id : R50K.encode("a<|endoftext|>b")) assertNotEquals(50256, id);
        for (int id : CL100K.encode("<|endoftext|> hello <|fim_prefix|>")) assertTrue(id < 100256, "no special id: " + id);
    }

    @Test
    void invalidInputIsReplacedAsDocumented() {
        // tiktoken: a lone surrogate is encoded as U+FFFD
        assertArrayEquals(CL100K.encode("\uFFFD"), CL100K.encode("\uD83D"));
        assertArrayEquals(R50K.encode("a\uFFFDb"), R50K.encode("a\uDC4Db"));
        // bytes that are not UTF-8: one U+FFFD per invalid sequence, as Java's decoder replaces them
        byte[] bad = {'a', (byte) 0xC3, 'b', (byte) 0xFF, (byte) 0xFE, 'c'};
        assertEquals(new String(bad, StandardCharsets.UTF_8), CL100K.decode(CL100K.encode(bad)));
        assertEquals("a\uFFFDb\uFFFD\uFFFDc", CL100K.decode(CL100K.encode(bad)));
        // one token of a multi-byte character is not UTF-8 on its own: decode replaces, decodeBytes keeps it
        byte[] thumb = "👍".getBytes(StandardCharsets.UTF_8);
        assertArrayEquals(new byte[]{thumb[0], thumb[1]}, CL100K.decodeBytes(new int[]{9468}));
        assertEquals("\uFFFD", CL100K.decode(new int[]{9468}));
        // ids in a gap of the vocabulary decode to U+FFFD; beyond it, an error
        assertEquals("\uFFFD", CL100K.decode(new int[]{100256}));
        assertThrows(IllegalArgumentException.class, () -> CL100K.decodeBytes(new int[]{100277}));
        assertThrows(IllegalArgumentException.class, () -> R50K.decodeBytes(new int[]{-1}));
    }
}
