package dev.ultramem.infer;

import dev.ultramem.data.ByteTokenizer;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Text to token ids and back, for serving: the one place the server meets the tokenizer. Decoding is
 * incremental because a stream sends text as tokens arrive, and a character may span several tokens.
 */
public interface TextCodec {
    int vocabSize();

    int[] encode(String text);

    /** What an empty prompt is fed as (the model needs one token to predict from). */
    int[] emptyPrompt();

    /** A fresh incremental decoder for one sequence. */
    Decoder newDecoder();

    /** Turns a stream of token ids into text, holding back the tokens of an unfinished character. */
    interface Decoder {
        /** Appends a token and returns the text it completes (often empty mid-character). */
        String append(int token);

        /** The end of the sequence: what is still held back, with an unfinished character as U+FFFD. */
        String finish();
    }

    /** The byte tokenizer: each token is a UTF-8 byte; invalid byte sequences decode to U+FFFD. */
    static TextCodec bytes() { return of(new ByteTokenizer()); }

    /**
     * Any tokenizer of the engine (all are byte-level): a token's bytes go through the incremental UTF-8
     * decoder, so a character split over tokens comes out whole. An empty prompt is the tokenizer's
     * newline, as in the generate command; ids past the tokenizer's vocabulary (a padded model
     * vocabulary) decode to U+FFFD.
     */
    static TextCodec of(dev.ultramem.data.Tokenizer tok) {
        return new TextCodec() {
            @Override public int vocabSize() { return tok.vocabSize(); }
            @Override public int[] encode(String text) { return tok.encode(text); }
            @Override public int[] emptyPrompt() { return tok.encode("\n"); }
            @Override public Decoder newDecoder() {
                if (tok instanceof ByteTokenizer) return new Utf8Decoder();
                Utf8Decoder utf8 = new Utf8Decoder();
                int[] one = new int[1];
                return new Decoder() {
                    @Override public String append(int token) {
                        if (token < 0 || token >= tok.vocabSize()) return utf8.finish() + "\uFFFD";
                        one[0] = token;
                        StringBuilder sb = new StringBuilder();
                        for (byte b : tok.decodeBytes(one)) sb.append(utf8.append(b & 0xFF));
                        return sb.toString();
                    }
                    @Override public String finish() { return utf8.finish(); }
                };
            }
        };
    }

    /** Incremental UTF-8: at most 4 bytes wait for the end of their character. */
    final class Utf8Decoder implements Decoder {
        private final CharsetDecoder dec = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPLACE).onUnmappableCharacter(CodingErrorAction.REPLACE);
        private final ByteBuffer in = ByteBuffer.allocate(8);
        private final CharBuffer out = CharBuffer.allocate(16);

        @Override
        public String append(int token) {
            if (token < 0 || token > 255) throw new IllegalArgumentException("byte token out of range: " + token);
            in.put((byte) token);
            return drain(false);
        }

        @Override
        public String finish() { return drain(true); }

        private String drain(boolean end) {
            in.flip();
            out.clear();
            dec.decode(in, out, end);
            if (end) {
                dec.flush(out);
                dec.reset();
            }
            in.compact();
            out.flip();
            return out.toString();
        }
    }
}
