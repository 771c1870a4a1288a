package dev.ultramem.data;

import java.nio.charset.StandardCharsets;

/**
 * Text to token ids and back. Every tokenizer here is byte-level: a token stands for a byte string,
 * so decoding concatenates the tokens' bytes and any text the tokenizer encodes decodes to itself
 * (to its normal form, for a tokenizer.json with a Unicode normalizer such as GPT-NeoX's NFC).
 *
 * <p>Invalid input, handled the same way by every tokenizer: a Java string with an unpaired surrogate
 * is encoded as if U+FFFD stood there; bytes that are not UTF-8 are kept exactly by the byte tokenizer
 * and replaced by U+FFFD (one per maximal invalid sequence, as Java's UTF-8 decoder does) by the
 * others, which tokenize text. Decoded bytes that are not UTF-8 (a model may emit them) become U+FFFD
 * in {@link #decode}; {@link #decodeBytes} returns them as they are.
 */
public interface Tokenizer {
    /** The {@code model.tokenizer} value that selects this tokenizer. */
    String name();

    /** Token ids lie in [0, vocabSize): the model's vocabulary must be at least this large. */
    int vocabSize();

    int[] encode(String text);

    /** Encodes UTF-8 bytes (see the class comment for bytes that are not UTF-8). */
    default int[] encode(byte[] utf8) { return encode(new String(utf8, StandardCharsets.UTF_8)); }

    /**
     * The concatenated bytes of the tokens. Ids outside [0, vocabSize) are an
     * IllegalArgumentException; ids inside it that name no token (gaps in a vocabulary) give U+FFFD.
     */
    byte[] decodeBytes(int[] ids);

    default String decode(int[] ids) { return new String(decodeBytes(ids), StandardCharsets.UTF_8); }

    /**
     * What a checkpoint embeds to rebuild this tokenizer without its source file (an hf: tokenizer's
     * tokenizer.json text), or null when the name alone is enough.
     */
    default String definition() { return null; }

    /** The number of bytes token id stands for (bits per byte divide by the bytes of the scored tokens). */
    default int byteLength(int id) { return decodeBytes(new int[]{id}).length; }

    /** The text with each unpaired surrogate replaced by U+FFFD, the encoders' common input. */
    static String withoutLoneSurrogates(String s) {
        StringBuilder b = new StringBuilder(s.length());
        boolean changed = false;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                b.append(c).append(s.charAt(++i));
            } else if (Character.isSurrogate(c)) {
                b.append('\uFFFD');
                changed = true;
            } else {
                b.append(c);
            }
        }
        return changed ? b.toString() : s;
    }

    /** The UTF-8 bytes of U+FFFD, what an id that names no token decodes to. */
    byte[] REPLACEMENT = "\uFFFD".getBytes(StandardCharsets.UTF_8);
}
