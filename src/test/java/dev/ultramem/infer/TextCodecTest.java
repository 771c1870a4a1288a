package dev.ultramem.infer;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class TextCodecTest {

    @Test
    void incrementalDecodingEqualsTheJdkDecodingOfTheWholeSequence() {
        TextCodec codec = TextCodec.bytes();
        Random rnd = new Random(3);
        String[] pieces = {"a", "é", "€", "😀", " ", "z"};
        for (int trial = 0; trial < 500; trial++) {
            StringBuilder sb = new StringBuilder();
            for (int i = 0, n = rnd.nextInt(12); i < n; i++) sb.append(pieces[rnd.nextInt(pieces.length)]);
            byte[] b = sb.toString().getBytes(StandardCharsets.UTF_8);
            // damage some: lone continuation bytes, cut sequences, bytes never valid in UTF-8
            if (trial % 2 == 1 && b.length > 0) b[rnd.nextInt(b.length)] = (byte) (0x80 + rnd.nextInt(128));
            if (trial % 3 == 1 && b.length > 1) b = java.util.Arrays.copyOf(b, b.length - 1);
            TextCodec.Decoder d = codec.newDecoder();
            StringBuilder out = new StringBuilder();
            for (byte x : b) out.append(d.append(x & 0xFF));
            out.append(d.finish());
            assertEquals(new String(b, StandardCharsets.UTF_8), out.toString(), "bytes " + java.util.Arrays.toString(b));
        }
    }

    @Test
    void aCharacterIsSentOnlyWhenAllItsBytesArrived() {
        TextCodec.Decoder d = TextCodec.bytes().newDecoder();
        byte[] euro = "€".getBytes(StandardCharsets.UTF_8);
        assertEquals("", d.append(euro[0] & 0xFF));
        assertEquals("", d.append(euro[1] & 0xFF));
        assertEquals("€", d.append(euro[2] & 0xFF));
        assertEquals("", d.finish());
    }

    @Test
    void aBpeTokenizerStreamsTheTextItsTokensDecodeTo() {
        dev.ultramem.data.Tokenizer tok = dev.ultramem.data.Tokenizers.named("cl100k_base");
        TextCodec codec = TextCodec.of(tok);
        String text = "emoji 👍🏽 and 是美國, then ascii";
        int[] ids = codec.encode(text);
        TextCodec.Decoder dec = codec.newDecoder();
        StringBuilder sb = new StringBuilder();
        for (int id : ids) sb.append(dec.append(id));
        sb.append(dec.finish());
        // the reference: the whole byte string decoded at once by the JDK
        assertEquals(new String(tok.decodeBytes(ids), java.nio.charset.StandardCharsets.UTF_8), sb.toString());
        assertEquals(text, sb.toString());
        assertEquals("\uFFFD", codec.newDecoder().append(tok.vocabSize() + 3), "an id past the tokenizer's vocabulary");
    }
}
