package dev.ultramem.data;

import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingType;
import com.knuddels.jtokkit.api.IntArrayList;

import java.io.ByteArrayOutputStream;

/**
 * OpenAI's BPE vocabularies through jtokkit, which carries their rank files in its jar: {@code r50k_base}
 * (GPT-2 and GPT-3) and {@code cl100k_base} (GPT-3.5/4). Text is encoded as ordinary text: a special
 * token's spelling in the input (such as {@code <|endoftext|>}) becomes the tokens of those characters,
 * never the special id, so training text cannot inject control tokens. The special ids still decode to
 * their spelling.
 */
final class TiktokenTokenizer implements Tokenizer {
    private final String name;
    private final Encoding encoding;
    private final int vocabSize;
    /** Bytes per id, filled on first use; -1 for ids that name no token. */
    private int[] lengths;

    private TiktokenTokenizer(String name, Encoding encoding, int vocabSize) {
        this.name = name;
        this.encoding = encoding;
        this.vocabSize = vocabSize;
    }

    /**
     * The vocabulary sizes are those of the published encodings: r50k_base has ranks 0..50255 and
     * {@code <|endoftext|>} = 50256; cl100k_base has ranks 0..100255 and special ids up to
     * {@code <|endofprompt|>} = 100276 (100256 and 100261..100275 are unused).
     */
    static TiktokenTokenizer of(String name) {
        return switch (name) {
            case "r50k_base" -> new TiktokenTokenizer(name, Encodings.newLazyEncodingRegistry().getEncoding(EncodingType.R50K_BASE), 50257);
            case "cl100k_base" -> new TiktokenTokenizer(name, Encodings.newLazyEncodingRegistry().getEncoding(EncodingType.CL100K_BASE), 100277);
            default -> throw new IllegalArgumentException("not a tiktoken encoding: " + name);
        };
    }

    @Override public String name() { return name; }

    @Override public int vocabSize() { return vocabSize; }

    @Override public int[] encode(String text) {
        return encoding.encodeOrdinary(Tokenizer.withoutLoneSurrogates(text)).toArray();
    }

    @Override public byte[] decodeBytes(int[] ids) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(ids.length * 4);
        for (int id : ids) {
            if (id < 0 || id >= vocabSize) throw new IllegalArgumentException("token id out of range: " + id);
            byte[] b = tokenBytes(id);
            out.write(b, 0, b.length);
        }
        return out.toByteArray();
    }

    @Override public int byteLength(int id) {
        if (lengths == null) {
            int[] l = new int[vocabSize];
            for (int i = 0; i < vocabSize; i++) {
                byte[] b = tokenBytes(i);
                l[i] = b == Tokenizer.REPLACEMENT ? -1 : b.length;
            }
            lengths = l;
        }
        int l = lengths[id];
        return l < 0 ? Tokenizer.REPLACEMENT.length : l;
    }

    /** One token's bytes; jtokkit refuses ids it does not know, which here give U+FFFD. */
    private byte[] tokenBytes(int id) {
        IntArrayList one = new IntArrayList(1);
        one.add(id);
        try {
            return encoding.decodeBytes(one);
        } catch (RuntimeException e) {  // jtokkit throws NullPointerException for an unknown id
            return Tokenizer.REPLACEMENT;
        }
    }
}
