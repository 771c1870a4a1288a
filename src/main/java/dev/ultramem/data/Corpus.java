package dev.ultramem.data;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ultramem.core.UserError;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.MalformedInputException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import java.util.zip.CRC32;

/**
 * Training text as bytes, split into a training part and a validation part (the last
 * {@code val_fraction} of the bytes). Files are checked to be valid UTF-8.
 *
 * @param source a JSON description of where the text came from, stored in checkpoints so that
 *               {@code resume} can load the same data
 */
public record Corpus(byte[] train, byte[] val, ObjectNode source) {

    /** The built-in synthetic corpus. */
    public static Corpus builtin(long seed, int bytes, double valFraction) {
        ObjectNode src = JsonNodeFactory.instance.objectNode();
        src.put("type", "builtin");
        src.put("seed", seed);
        src.put("bytes", bytes);
        return split(SyntheticCorpus.generate(seed, bytes), valFraction, src, "built-in corpus");
    }

    /** Files and folders (read recursively, in name order, hidden files skipped), joined by newlines. */
    public static Corpus load(List<Path> inputs, double valFraction) {
        byte[] all = readAll(inputs);
        ObjectNode src = JsonNodeFactory.instance.objectNode();
        src.put("type", "files");
        ArrayNode paths = src.putArray("paths");
        for (Path p : inputs) paths.add(p.toAbsolutePath().normalize().toString());
        return split(all, valFraction, src, inputs.size() == 1 ? inputs.get(0).toString() : inputs.size() + " inputs");
    }

    /** Rebuilds the corpus a checkpoint was trained on from its stored description. */
    public static Corpus fromSource(ObjectNode source, double valFraction) {
        if (source == null || !source.has("type")) throw new UserError("checkpoint does not record its training data; pass the data explicitly");
        return switch (source.get("type").asText()) {
            case "builtin" -> builtin(source.get("seed").asLong(), source.get("bytes").asInt(), valFraction);
            case "files" -> {
                List<Path> ps = new ArrayList<>();
                source.get("paths").forEach(n -> ps.add(Path.of(n.asText())));
                yield load(ps, valFraction);
            }
            default -> throw new UserError("checkpoint: unknown data source type '" + source.get("type").asText() + "'");
        };
    }

    /** Whether this corpus holds the bytes a stored source described (by its CRC-32, where it recorded one). */
    public boolean sameBytesAs(ObjectNode stored) {
        return !stored.has("crc32") || stored.get("crc32").asLong() == source.get("crc32").asLong();
    }

    /** Concatenated bytes of the inputs, each validated as UTF-8. */
    public static byte[] readAll(List<Path> inputs) {
        if (inputs.isEmpty()) throw new UserError("no input files given");
        List<Path> files = new ArrayList<>();
        for (Path p : inputs) {
            if (Files.isDirectory(p)) {
                try (Stream<Path> s = Files.walk(p)) {
                    s.filter(Files::isRegularFile)
                            .filter(f -> !f.getFileName().toString().startsWith("."))
                            .sorted()
                            .forEach(files::add);
                } catch (IOException | java.io.UncheckedIOException e) {
                    throw new UserError(p + ": cannot read folder (" + e.getMessage() + ")");
                }
                if (files.isEmpty()) throw new UserError(p + ": folder contains no files");
            } else {
                UserError.requireRegularFile(p);
                files.add(p);
            }
        }
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        for (Path f : files) {
            byte[] b;
            try {
                b = Files.readAllBytes(f);
            } catch (IOException e) {
                throw UserError.cannotRead(f, e);
            } catch (OutOfMemoryError e) {
                throw new UserError(f + ": file too large to load");
            }
            checkUtf8(f, b);
            if (out.size() > 0 && b.length > 0) out.write('\n');
            out.write(b, 0, b.length);
        }
        return out.toByteArray();
    }

    static void checkUtf8(Path f, byte[] b) {
        CharsetDecoder dec = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(b);
        try {
            dec.decode(in);
        } catch (MalformedInputException e) {
            throw new UserError(f + ": not UTF-8 text (invalid byte sequence near byte " + in.position() + ")");
        } catch (CharacterCodingException e) {
            throw new UserError(f + ": not UTF-8 text");
        }
    }

    static Corpus split(byte[] all, double valFraction, ObjectNode source, String what) {
        if (all.length == 0) throw new UserError(what + ": corpus is empty");
        int nVal = (int) Math.ceil(all.length * valFraction);
        int nTrain = all.length - nVal;
        byte[] train = java.util.Arrays.copyOfRange(all, 0, nTrain);
        byte[] val = java.util.Arrays.copyOfRange(all, nTrain, all.length);
        CRC32 crc = new CRC32();
        crc.update(all);
        source.put("length", all.length);
        source.put("crc32", crc.getValue());
        return new Corpus(train, val, source);
    }

    /** Checks that both splits hold at least one window of seqLen+1 bytes. */
    public Corpus requireWindows(int seqLen) {
        requireWindows(train.length, val.length, seqLen, "bytes");
        return this;
    }

    private static void requireWindows(int train, int val, int seqLen, String unit) {
        if (train < seqLen + 1 || val < seqLen + 1)
            throw new UserError("corpus too short: training split has " + train + " " + unit + " and validation split "
                    + val + " " + unit + ", each needs at least seq_len+1 = " + (seqLen + 1)
                    + " (use more text, a smaller seq_len or a larger val_fraction)");
    }

    /** The two splits as tokens of one tokenizer. */
    public record Encoded(Tokens train, Tokens val, Tokenizer tokenizer) {
        /** Checks that both splits hold at least one window of seqLen+1 tokens. */
        public Encoded requireWindows(int seqLen) {
            Corpus.requireWindows(train.length(), val.length(), seqLen,
                    tokenizer instanceof ByteTokenizer ? "bytes" : "tokens of " + tokenizer.name());
            return this;
        }
    }

    /**
     * Both splits encoded by tok, each on its own. The byte tokenizer reads the bytes as they are; the
     * others tokenize text, so a UTF-8 sequence that the byte split cut in two goes whole to the training part.
     */
    public Encoded encode(Tokenizer tok) {
        if (tok instanceof ByteTokenizer) return new Encoded(Tokens.of(train), Tokens.of(val), tok);
        int lead = 0;
        while (lead < val.length && (val[lead] & 0xC0) == 0x80) lead++;
        byte[] tr = java.util.Arrays.copyOf(train, train.length + lead);
        System.arraycopy(val, 0, tr, train.length, lead);
        byte[] va = java.util.Arrays.copyOfRange(val, lead, val.length);
        return new Encoded(Tokens.of(tok.encode(tr)), Tokens.of(tok.encode(va)), tok);
    }

    public long totalBytes() { return (long) train.length + val.length; }
}
