package dev.ultramem.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ultramem.TestModels;
import dev.ultramem.cli.Main;
import dev.ultramem.core.UserError;
import dev.ultramem.data.Corpus;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.train.JobConfig;
import dev.ultramem.train.Trainer;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static dev.ultramem.io.SafetensorsBytes.file;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Mutations of a real checkpoint's header: every one is refused with a one-line UserError naming the
 * file, or, where it left the file meaning the same (white space, entry order) or changed only
 * metadata values that no check can tell from real ones (e.g. the data sampler's RNG state), loads.
 * Never another exception, never an OutOfMemoryError.
 */
class CheckpointFuzzTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long SEED = 20250611L;
    private static final int RANDOM_MUTATIONS = 600;

    @TempDir Path dir;
    byte[] orig, header, data;
    String json;
    ObjectNode tree;
    Map<String, String> layout;

    /** What a variant must do: load (it means the same), fail, or either (a random mutation). */
    enum Expect { LOADS, FAILS, EITHER }

    record Variant(String label, byte[] bytes, Expect expect) {}

    @BeforeEach
    void aRealCheckpoint() throws Exception {
        JobConfig job = new JobConfig(TestModels.tinyUltraMemV2(), TestModels.tinyTrain(6));
        Trainer t = Trainer.fresh(job, Corpus.builtin(11, 4000, job.train.valFraction), dir.resolve("run"));
        for (int i = 0; i < 3; i++) t.trainStep();
        orig = Files.readAllBytes(t.save());
        header = SafetensorsBytes.header(orig);
        data = SafetensorsBytes.data(orig);
        json = SafetensorsBytes.headerJson(orig);
        tree = (ObjectNode) JSON.readTree(json);
        layout = layout(orig);
    }

    /** Names, dtypes, shapes and offsets of a file's tensors, as the reader sees them. */
    private Map<String, String> layout(byte[] bytes) throws Exception {
        Path p = dir.resolve("layout.safetensors");
        Files.write(p, bytes);
        Map<String, String> m = new LinkedHashMap<>();
        try (Safetensors st = Safetensors.open(p)) {
            long base = st.entries().values().stream().mapToLong(e -> e.data().address()).min().orElse(0);
            st.entries().forEach((n, e) -> m.put(n, e.dtype() + Arrays.toString(e.shape()) + "@" + (e.data().address() - base)));
        }
        return m;
    }

    // ------------------------------------------------------------------ building variants

    private byte[] withHeader(String h) { return file(h, data); }

    private byte[] withLength(long n) {
        byte[] b = orig.clone();
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, n);
        return b;
    }

    private byte[] edit(Consumer<ObjectNode> change) {
        ObjectNode t = tree.deepCopy();
        change.accept(t);
        return withHeader(t.toString());
    }

    private List<String> tensorNames() {
        List<String> n = new ArrayList<>();
        tree.fieldNames().forEachRemaining(n::add);
        n.remove("__metadata__");
        return n;
    }

    private ArrayNode offsets(ObjectNode t, String name) { return (ArrayNode) t.get(name).get("data_offsets"); }

    /** The first tensor's entry text as the writer put it, e.g. {@code "a":{"dtype":...,"data_offsets":[0,8]}}. */
    private String firstEntryText() {
        Matcher m = Pattern.compile("\"[^\"]+\":\\{\"dtype\":\"[A-Z0-9]+\",\"shape\":\\[[0-9,]*],\"data_offsets\":\\[[0-9]+,[0-9]+]}").matcher(json);
        assertTrue(m.find());
        return m.group();
    }

    private List<Variant> categoryVariants() {
        List<Variant> v = new ArrayList<>();
        List<String> names = tensorNames();
        String first = names.get(0), second = names.get(1), last = names.get(names.size() - 1);
        BigInteger two64 = BigInteger.ONE.shiftLeft(64), two63 = BigInteger.ONE.shiftLeft(63);
        // offsets beyond 64 bits or at 2^63 and more
        v.add(new Variant("offsets+2^64", edit(t -> {
            ArrayNode o = offsets(t, first);
            BigInteger b = o.get(0).bigIntegerValue(), e = o.get(1).bigIntegerValue();
            o.removeAll().add(b.add(two64)).add(e.add(two64));
        }), Expect.FAILS));
        v.add(new Variant("offset 2^63", edit(t -> offsets(t, last).set(1, two63)), Expect.FAILS));
        v.add(new Variant("offset 2^64-1", edit(t -> offsets(t, last).set(1, two64.subtract(BigInteger.ONE))), Expect.FAILS));
        v.add(new Variant("offset negative", edit(t -> offsets(t, first).set(0, -1)), Expect.FAILS));
        v.add(new Variant("offset float", edit(t -> offsets(t, first).set(0, 0.0)), Expect.FAILS));
        v.add(new Variant("offset string", edit(t -> offsets(t, first).set(0, "0")), Expect.FAILS));
        // header length
        v.add(new Variant("length 2^64-1", withLength(-1), Expect.FAILS));
        v.add(new Variant("length 2^63", withLength(Long.MIN_VALUE), Expect.FAILS));
        v.add(new Variant("length over the limit", withLength((100L << 20) + 8), Expect.FAILS));
        v.add(new Variant("length past the file", withLength(orig.length), Expect.FAILS));
        v.add(new Variant("length 0", withLength(0), Expect.FAILS));
        v.add(new Variant("length into the data", withLength(header.length + 8), Expect.FAILS));
        v.add(new Variant("length inside the JSON", withLength(json.length() - 1), Expect.FAILS));
        // a name twice
        String entry = firstEntryText();
        v.add(new Variant("name twice", withHeader(json.replace(entry, entry + "," + entry)), Expect.FAILS));
        v.add(new Variant("metadata twice", withHeader(json.replaceFirst("^\\{", "{\"__metadata__\":{},")), Expect.FAILS));
        v.add(new Variant("dtype twice", withHeader(json.replace(entry, entry.replace("\"dtype\":", "\"dtype\":\"F32\",\"dtype\":"))), Expect.FAILS));
        // bytes after the JSON in the header region
        for (String tail : List.of("garbage", "\n", "\t", "\0", "}", " x"))
            v.add(new Variant("tail " + JSON.valueToTree(tail), withHeader(json + tail), Expect.FAILS));
        v.add(new Variant("leading space", withHeader(" " + json), Expect.FAILS));
        // tiling
        v.add(new Variant("bytes after the data", file(header, Arrays.copyOf(data, data.length + 8)), Expect.FAILS));
        v.add(new Variant("one byte after the data", Arrays.copyOf(orig, orig.length + 1), Expect.FAILS));
        v.add(new Variant("overlap", edit(t -> {
            ArrayNode a = offsets(t, first), b = offsets(t, second);
            long len = b.get(1).asLong() - b.get(0).asLong(), at = a.get(0).asLong();
            b.removeAll().add(at).add(at + len);
        }), Expect.FAILS));
        v.add(new Variant("gap", edit(t -> {
            for (String n : names) {
                ArrayNode o = offsets(t, n);
                long b = o.get(0).asLong(), e = o.get(1).asLong();
                if (!n.equals(first)) o.removeAll().add(b + 8).add(e + 8);
            }
        }), Expect.FAILS));
        // wrong JSON types and unknown keys
        v.add(new Variant("dtype number", edit(t -> ((ObjectNode) t.get(first)).put("dtype", 32)), Expect.FAILS));
        v.add(new Variant("shape strings", edit(t -> {
            ArrayNode s = (ArrayNode) t.get(first).get("shape");
            ArrayNode s2 = s.deepCopy();
            s.removeAll();
            s2.forEach(d -> s.add(d.asText()));
        }), Expect.FAILS));
        v.add(new Variant("shape float", edit(t -> ((ArrayNode) t.get(first).get("shape")).set(0, 1.0 * t.get(first).get("shape").get(0).asLong())), Expect.FAILS));
        v.add(new Variant("shape negative", edit(t -> ((ArrayNode) t.get(first).get("shape")).set(0, -1)), Expect.FAILS));
        v.add(new Variant("metadata array", edit(t -> t.putArray("__metadata__")), Expect.FAILS));
        v.add(new Variant("metadata number", edit(t -> ((ObjectNode) t.get("__metadata__")).put("step", 3)), Expect.FAILS));
        v.add(new Variant("unknown entry key", edit(t -> ((ObjectNode) t.get(first)).put("extra", 1)), Expect.FAILS));
        v.add(new Variant("entry not an object", edit(t -> t.put(first, "F32")), Expect.FAILS));
        // a tensor the model does not account for (a well-formed file)
        v.add(new Variant("unknown tensor", edit(t -> {
            long end = data.length;
            ObjectNode e = t.putObject("extra.weight");
            e.put("dtype", "F32");
            e.putArray("shape").add(0);
            e.putArray("data_offsets").add(end).add(end);
        }), Expect.FAILS));
        v.add(new Variant("missing tensor", edit(t -> t.remove(last)), Expect.FAILS));  // its bytes belong to no tensor
        // the same meaning: white space inside the JSON, trailing spaces, entry order
        v.add(new Variant("spaces", withHeader(json.replace(",\"", ", \"").replace(":", " : ") + "   "), Expect.LOADS));
        v.add(new Variant("newlines", withHeader(json.replace("},", "},\n\t")), Expect.LOADS));
        v.add(new Variant("pretty", withHeader(tree.toPrettyString()), Expect.LOADS));
        v.add(new Variant("metadata last", edit(t -> t.set("__metadata__", t.remove("__metadata__"))), Expect.LOADS));
        // the checkpoint's checksum covers the tensors in header order, binding bytes to names: entries in
        // another order fail it, and so do two tensors of one shape whose data were swapped
        v.add(new Variant("reversed", edit(t -> {
            List<String> keys = new ArrayList<>();
            t.fieldNames().forEachRemaining(keys::add);
            ObjectNode copy = t.deepCopy();
            t.removeAll();
            for (int i = keys.size() - 1; i >= 0; i--) t.set(keys.get(i), copy.get(keys.get(i)));
        }), Expect.FAILS));
        String m = names.stream().filter(n -> n.startsWith("optim.m.")).findFirst().orElseThrow(), mv = "optim.v." + m.substring(8);
        v.add(new Variant("swapped m and v", edit(t -> {
            JsonNode a = t.get(m).get("data_offsets"), b = t.get(mv).get("data_offsets");
            ((ObjectNode) t.get(m)).set("data_offsets", b);
            ((ObjectNode) t.get(mv)).set("data_offsets", a);
        }), Expect.FAILS));
        v.add(new Variant("rewritten", withHeader(json), Expect.LOADS));
        return v;
    }

    private List<Variant> randomVariants(Random r) {
        List<Variant> v = new ArrayList<>();
        int hend = 8 + header.length;
        for (int i = 0; i < RANDOM_MUTATIONS; i++) {
            switch (i % 6) {
                case 0, 1 -> {  // flip 1-3 bits or bytes of the length or the header
                    byte[] b = orig.clone();
                    int n = 1 + r.nextInt(3);
                    StringBuilder what = new StringBuilder("flip");
                    for (int k = 0; k < n; k++) {
                        int at = r.nextInt(hend);
                        if (r.nextBoolean()) b[at] ^= (byte) (1 << r.nextInt(8));
                        else b[at] = (byte) r.nextInt(256);
                        what.append(' ').append(at);
                    }
                    v.add(new Variant(what.toString(), b, Expect.EITHER));
                }
                case 2 -> {  // truncate, mostly inside the header
                    int at = r.nextInt(4) == 0 ? r.nextInt(orig.length) : r.nextInt(hend + 16);
                    v.add(new Variant("truncate " + at, Arrays.copyOf(orig, at), Expect.EITHER));
                }
                case 3 -> {  // a random header length
                    long n = switch (r.nextInt(4)) {
                        case 0 -> r.nextLong();
                        case 1 -> r.nextInt(orig.length + 64);
                        case 2 -> header.length + r.nextInt(17) - 8;
                        default -> (long) r.nextInt(1 << 30);
                    };
                    v.add(new Variant("length " + Long.toUnsignedString(n), withLength(n), Expect.EITHER));
                }
                default -> v.add(jsonEdit(r));
            }
        }
        return v;
    }

    private static final Pattern NUMBER = Pattern.compile("-?[0-9]+");

    /** A random edit of the header JSON text or tree. */
    private Variant jsonEdit(Random r) {
        List<String> names = tensorNames();
        String n = names.get(r.nextInt(names.size()));
        switch (r.nextInt(8)) {
            case 0 -> {  // a number in the text (offsets, shapes, also inside the metadata strings) changed a little
                List<int[]> spans = new ArrayList<>();
                Matcher m = NUMBER.matcher(json);
                while (m.find()) spans.add(new int[]{m.start(), m.end()});
                int[] s = spans.get(r.nextInt(spans.size()));
                long old = Long.parseLong(json.substring(s[0], s[1]));
                long now = switch (r.nextInt(4)) { case 0 -> old + 1; case 1 -> old - 1; case 2 -> old * 2; default -> 0; };
                return new Variant("number " + old + "->" + now + " at " + s[0], withHeader(json.substring(0, s[0]) + now + json.substring(s[1])), Expect.EITHER);
            }
            case 1 -> { return new Variant("remove " + n, edit(t -> t.remove(n)), Expect.EITHER); }
            case 2 -> {
                String key = List.of("dtype", "shape", "data_offsets").get(r.nextInt(3));
                return new Variant("remove " + key + " of " + n, edit(t -> ((ObjectNode) t.get(n)).remove(key)), Expect.FAILS);
            }
            case 3 -> {
                String dt = List.of("F16", "BF16", "I32", "U32", "F64", "I64", "BOOL", "F8", "f32", "").get(r.nextInt(10));
                return new Variant("dtype " + dt + " for " + n, edit(t -> ((ObjectNode) t.get(n)).put("dtype", dt)), Expect.EITHER);
            }
            case 4 -> {
                String m = names.get(r.nextInt(names.size()));
                return new Variant("swap offsets " + n + " " + m, edit(t -> {
                    JsonNode a = t.get(n).get("data_offsets"), b = t.get(m).get("data_offsets");
                    ((ObjectNode) t.get(n)).set("data_offsets", b);
                    ((ObjectNode) t.get(m)).set("data_offsets", a);
                }), Expect.EITHER);
            }
            case 5 -> {
                String m = names.get(r.nextInt(names.size()));
                return new Variant("rename " + n + " to " + m, withHeader(json.replace("\"" + n + "\":{", "\"" + m + "\":{")), Expect.EITHER);
            }
            case 6 -> {  // a value of the wrong type or form
                String[] junk = {"null", "true", "[]", "{}", "\"\"", "[[[[[[[[1]]]]]]]]", "1e400", "9".repeat(400), "[-0,1]", "\"\\u0000\""};
                String j = junk[r.nextInt(junk.length)];
                String key = List.of("dtype", "shape", "data_offsets").get(r.nextInt(3));
                Matcher e = Pattern.compile("\"" + Pattern.quote(n) + "\":\\{[^}]*}").matcher(json);
                assertTrue(e.find(), n);
                String changed = e.group().replaceFirst("\"" + key + "\":(\"[^\"]*\"|\\[[^\\]]*])", Matcher.quoteReplacement("\"" + key + "\":" + j));
                return new Variant(key + " of " + n + " = " + j, withHeader(json.substring(0, e.start()) + changed + json.substring(e.end())), Expect.EITHER);
            }
            default -> {  // white space between tokens: the same meaning
                StringBuilder b = new StringBuilder();
                boolean inString = false;
                for (int i = 0; i < json.length(); i++) {
                    char c = json.charAt(i);
                    b.append(c);
                    if (inString && c == '\\') {
                        b.append(json.charAt(++i));
                        continue;
                    }
                    if (c == '"') inString = !inString;
                    if (!inString && (c == ',' || c == ':' || c == '{' || c == '[') && r.nextInt(4) == 0) b.append(" \t\n\r".charAt(r.nextInt(4)));
                }
                return new Variant("white space", withHeader(b.toString()), Expect.LOADS);
            }
        }
    }

    // ------------------------------------------------------------------ running them

    /** Loads a variant; returns null if it loaded, the error message if it was refused. */
    private String outcome(Variant v, Path file) throws Exception {
        Files.write(file, v.bytes());
        try {
            Checkpoint.load(file, true);
        } catch (UserError e) {
            String m = e.getMessage();
            assertNotNull(m, v.label());
            assertFalse(m.contains("\n") || m.contains("\r"), v.label() + ": one line: " + m);
            assertTrue(m.contains(file.toString()), v.label() + ": names the file: " + m);
            assertTrue(m.length() < 600, v.label() + ": short: " + m);
            return m;
        } catch (Throwable t) {
            throw new AssertionError(v.label() + ": " + t, t);
        }
        return null;
    }

    @Test
    void everyMutationIsRefusedInOneLineOrLoads() throws Exception {
        long t0 = System.nanoTime();
        List<Variant> all = new ArrayList<>(categoryVariants());
        int categories = all.size();
        all.addAll(randomVariants(new Random(SEED)));
        Path file = dir.resolve("fuzz.safetensors");
        int refused = 0, loaded = 0, loadedWithOtherMetadata = 0;
        for (Variant v : all) {
            String error = outcome(v, file);
            switch (v.expect()) {
                case FAILS -> assertNotNull(error, v.label() + " should be refused");
                case LOADS -> assertNull(error, v.label() + " means the same and should load");
                case EITHER -> { }
            }
            if (error != null) {
                refused++;
                continue;
            }
            loaded++;
            // a mutation that loads changed nothing the tensor table says; at most a metadata value no check covers
            assertEquals(layout, layout(v.bytes()), v.label() + " loaded with another tensor table");
            if (!SafetensorsBytes.headerJson(v.bytes()).equals(json)) {
                try (Safetensors st = Safetensors.open(file)) {
                    Map<String, String> meta = new LinkedHashMap<>(st.metadata());
                    Map<String, String> origMeta = new LinkedHashMap<>();
                    tree.get("__metadata__").properties().forEach(e -> origMeta.put(e.getKey(), e.getValue().asText()));
                    if (!meta.equals(origMeta)) loadedWithOtherMetadata++;
                }
            }
        }
        assertTrue(all.size() - categories >= 200);
        assertTrue(refused > all.size() / 2, "refused " + refused + " of " + all.size());
        double secs = (System.nanoTime() - t0) / 1e9;
        System.out.printf("checkpoint fuzz: %d variants (%d by category), %d refused, %d loaded (%d with other metadata values), %.1f s%n",
                all.size(), categories, refused, loaded, loadedWithOtherMetadata, secs);
    }

    @Test
    void theCliReportsAMutatedCheckpointInOneLineWithExitCode2() throws Exception {
        List<Variant> picks = categoryVariants().stream().filter(v -> v.expect() == Expect.FAILS).toList();
        int done = 0;
        for (int i = 0; i < picks.size(); i += 4) {
            Variant v = picks.get(i);
            Path file = dir.resolve("cli" + i + ".safetensors");
            Files.write(file, v.bytes());
            for (String cmd : List.of("eval", "info")) {
                StringWriter out = new StringWriter(), err = new StringWriter();
                String[] args = cmd.equals("eval") ? new String[]{"eval", file.toString(), "--builtin"} : new String[]{"info", file.toString()};
                int code = Main.run(args, new PrintWriter(out), new PrintWriter(err));
                assertEquals(2, code, v.label() + " " + cmd + ": " + err);
                List<String> lines = err.toString().lines().toList();
                assertEquals(1, lines.size(), v.label() + " " + cmd + ": " + err);
                assertTrue(lines.get(0).startsWith("error: ") && lines.get(0).contains(file.toString()), lines.get(0));
                done++;
            }
        }
        assertTrue(done >= 10, "ran " + done);
    }
}
