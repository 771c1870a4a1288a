package dev.ultramem.data;

import java.nio.charset.StandardCharsets;

/** Byte-level tokenizer: every UTF-8 byte is a token (vocabulary 256), so any text round-trips exactly. */
public final class ByteTokenizer implements Tokenizer {
    public static final int VOCAB_SIZE = 256;
    public static final String NAME = "byte";

    @Override public String name() { return NAME; }

    @Override public int vocabSize() { return VOCAB_SIZE; }

    @Override public int[] encode(String text) {
        return encode(Tokenizer.withoutLoneSurrogates(text).getBytes(StandardCharsets.UTF_8));
    }

    /** Any bytes, UTF-8 or not, each as its own token. */
    @Override public int[] encode(byte[] bytes) {
        int[] ids = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) ids[i] = bytes[i] & 0xFF;
        return ids;
    }

    public byte[] toBytes(int[] ids, int from, int to) {
        byte[] b = new byte[to - from];
        for (int i = from; i < to; i++) {
            int id = ids[i];
            if (id < 0 || id >= VOCAB_SIZE) throw new IllegalArgumentException("token id out of range: " + id);
            b[i - from] = (byte) id;
        }
        return b;
    }

    @Override public byte[] decodeBytes(int[] ids) { return toBytes(ids, 0, ids.length); }

    @Override public int byteLength(int id) { return 1; }

    /** Decodes ids as UTF-8; byte sequences that are not valid UTF-8 (a model may emit them) become U+FFFD. */
    @Override public String decode(int[] ids) { return new String(toBytes(ids, 0, ids.length), StandardCharsets.UTF_8); }
}
