package dev.ultramem.data;

import dev.ultramem.core.UserError;

import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.ByteBuffer;

/**
 * The tokenizers {@code model.tokenizer} names: {@code byte} (the default: one token per UTF-8 byte),
 * {@code r50k_base} (GPT-2), {@code cl100k_base}, or {@code hf:PATH} for a Hugging Face tokenizer.json
 * byte-level BPE. A checkpoint embeds the tokenizer.json text it was trained with, so a run folder needs
 * nothing else: the PATH is read once, when the run (or import) starts.
 */
public final class Tokenizers {
    public static final String HF_PREFIX = "hf:";

    private Tokenizers() {}

    /** Checks a model.tokenizer value's form (the tokenizer itself is read when it is used). */
    public static void checkName(String name) {
        if (name == null || !(name.equals(ByteTokenizer.NAME) || name.equals("r50k_base") || name.equals("cl100k_base")
                || (name.startsWith(HF_PREFIX) && !name.substring(HF_PREFIX.length()).isBlank())))
            throw new UserError("config: tokenizer must be byte, r50k_base, cl100k_base or hf:PATH (a Hugging Face tokenizer.json), got "
                    + (name == null ? "nothing" : UserError.quote(name)));
    }

    public static boolean isHf(String name) { return name.startsWith(HF_PREFIX); }

    /** The tokenizer a model.tokenizer value names; an hf: tokenizer is read from its path. */
    public static Tokenizer named(String name) {
        checkName(name);
        if (isHf(name)) return fromHfJson(name, readHfFile(name));
        return builtin(name);
    }

    /** The tokenizer an hf: name stands for, from its tokenizer.json text (as a checkpoint embeds it); what names the source in errors. */
    public static Tokenizer fromHfJson(String name, String json, String what) {
        checkName(name);
        if (!isHf(name)) throw new IllegalArgumentException("not an hf: tokenizer: " + name);
        return HfBpeTokenizer.parse(name, json, what);
    }

    private static Tokenizer fromHfJson(String name, String json) { return fromHfJson(name, json, hfPath(name).toString()); }

    /** The built-in tokenizers (no file needed). */
    public static Tokenizer builtin(String name) {
        return switch (name) {
            case ByteTokenizer.NAME -> new ByteTokenizer();
            case "r50k_base", "cl100k_base" -> TiktokenTokenizer.of(name);
            default -> throw new IllegalArgumentException("not a built-in tokenizer: " + name);
        };
    }

    public static Path hfPath(String name) { return Path.of(name.substring(HF_PREFIX.length())); }

    /** The text of an hf: tokenizer's file, checked to be UTF-8. */
    public static String readHfFile(String name) {
        Path p = hfPath(name);
        UserError.requireRegularFile(p);
        try {
            byte[] b = Files.readAllBytes(p);
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(b)).toString();
        } catch (CharacterCodingException e) {
            throw new UserError(p + ": tokenizer.json is not UTF-8 text");
        } catch (IOException e) {
            throw UserError.cannotRead(p, e);
        }
    }

    /** Refuses a model whose vocabulary cannot hold every id the tokenizer produces. */
    public static void requireFits(Tokenizer tok, int modelVocab) {
        if (modelVocab < tok.vocabSize())
            throw new UserError("config: model.vocab_size (" + modelVocab + ") is below the " + tok.vocabSize()
                    + " token ids of tokenizer " + tok.name() + " (set model.vocab_size >= " + tok.vocabSize() + " or choose another model.tokenizer)");
    }
}
