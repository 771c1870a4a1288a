package dev.ultramem.data;

import dev.ultramem.core.UserError;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.*;

class TokenizersTest {
    @Test
    void namesAreCheckedAndTheVocabularyMustFit() {
        for (String ok : new String[]{"byte", "r50k_base", "cl100k_base", "hf:some/tokenizer.json"}) Tokenizers.checkName(ok);
        for (String bad : new String[]{"gpt2", "", "hf:", "hf:  ", "BYTE"})
            assertThrows(UserError.class, () -> Tokenizers.checkName(bad), bad);
        Tokenizers.requireFits(Tokenizers.builtin("r50k_base"), 50257);
        UserError e = assertThrows(UserError.class, () -> Tokenizers.requireFits(Tokenizers.builtin("r50k_base"), 50000));
        assertTrue(e.getMessage().contains("vocab_size (50000)") && e.getMessage().contains("50257"), e.getMessage());
        assertThrows(UserError.class, () -> Tokenizers.requireFits(new ByteTokenizer(), 255));
        assertTrue(assertThrows(UserError.class, () -> Tokenizers.named("hf:/no/such/tokenizer.json")).getMessage().contains("not found"));
    }

    @Test
    void byteTokenizerKeepsInvalidUtf8AndReplacesLoneSurrogates() {
        ByteTokenizer t = new ByteTokenizer();
        byte[] bad = {'a', (byte) 0xC3, 'b', (byte) 0xFF};
        assertArrayEquals(bad, t.decodeBytes(t.encode(bad)));
        assertEquals("a\uFFFDb\uFFFD", t.decode(t.encode(bad)));
        assertArrayEquals(t.encode("x\uFFFDy"), t.encode("x\uD800y"));
        assertArrayEquals(t.encode("😀"), t.encode("\uD83D\uDE00"));
        assertEquals("😀", t.decode(t.encode("😀")));
        assertArrayEquals("\uFFFD".getBytes(StandardCharsets.UTF_8), Tokenizer.REPLACEMENT);
    }

    @Test
    void corpusSplitCutInsideACharacterGoesWholeToTheTrainingPart() {
        // 3-byte characters and a 10% split: the byte split falls inside one of them
        String text = "日本語".repeat(40) + "xy";
        Corpus c = Corpus.split(text.getBytes(StandardCharsets.UTF_8), 0.1, new com.fasterxml.jackson.databind.node.ObjectNode(
                com.fasterxml.jackson.databind.node.JsonNodeFactory.instance), "test");
        assertTrue((c.val()[0] & 0xC0) == 0x80, "the byte split cuts a character");
        Tokenizer t = Tokenizers.builtin("cl100k_base");
        Corpus.Encoded e = c.encode(t);
        String train = t.decode(ids(e.train())), val = t.decode(ids(e.val()));
        assertEquals(text, train + val);
        assertFalse((train + val).contains("\uFFFD"));
        Corpus.Encoded b = c.encode(new ByteTokenizer());
        assertEquals(c.train().length, b.train().length());
        assertEquals(c.val().length, b.val().length());
    }

    static int[] ids(Tokens t) {
        int[] a = new int[t.length()];
        for (int i = 0; i < a.length; i++) a[i] = t.get(i);
        return a;
    }
}
