package dev.ultramem.data;

import dev.ultramem.core.Rng;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.*;

class ByteTokenizerTest {
    private final ByteTokenizer tok = new ByteTokenizer();

    @Test
    void roundTripsTextInManyScripts() {
        for (String s : new String[]{"", "hello, world.", "naïve café — Grüße", "日本語のテキスト", "emoji 🙂🚀 mixed\nlines\t", "\u0000ctrl"}) {
            int[] ids = tok.encode(s);
            assertEquals(s.getBytes(StandardCharsets.UTF_8).length, ids.length);
            assertEquals(s, tok.decode(ids));
        }
    }

    @Test
    void tokensAreTheUnsignedBytes() {
        Rng r = new Rng(3);
        byte[] b = new byte[1000];
        for (int i = 0; i < b.length; i++) b[i] = (byte) r.nextInt(256);
        int[] ids = tok.encode(b);
        for (int i = 0; i < b.length; i++) {
            assertTrue(ids[i] >= 0 && ids[i] < 256);
            assertEquals(Byte.toUnsignedInt(b[i]), ids[i]);
        }
        assertArrayEquals(b, tok.toBytes(ids, 0, ids.length));
        assertEquals(256, tok.vocabSize());
    }

    @Test
    void invalidUtf8DecodesWithReplacementInsteadOfFailing() {
        assertEquals("a\uFFFDb", tok.decode(new int[]{'a', 0xC3, 'b'}));
        assertThrows(IllegalArgumentException.class, () -> tok.decode(new int[]{300}));
    }
}
