package dev.ultramem.io;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static dev.ultramem.io.SafetensorsBytes.assertRejected;
import static dev.ultramem.io.SafetensorsBytes.file;
import static dev.ultramem.io.SafetensorsBytes.write;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The reader follows the safetensors format strictly; each case mutates a small valid file byte by byte. */
class SafetensorsStrictTest {
    @TempDir Path dir;
    /** The valid file's bytes: tensors a (F32 [2, 3], bytes 0-24) and b (I64 [4], bytes 24-56), metadata k = v. */
    byte[] valid;
    byte[] data;
    static final String META = "\"__metadata__\":{\"k\":\"v\"}";
    static final String A = "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}";
    static final String B = "\"b\":{\"dtype\":\"I64\",\"shape\":[4],\"data_offsets\":[24,56]}";

    @BeforeEach
    void writeAValidFile() throws Exception {
        Path p = dir.resolve("valid.safetensors");
        Safetensors.write(p, List.of(Safetensors.Out.f32("a", new long[]{2, 3}, new float[]{1, 2, 3, 4, 5, 6}),
                Safetensors.Out.i64("b", new long[]{4}, new int[]{-1, 0, 7, Integer.MAX_VALUE})), Map.of("k", "v"));
        valid = Files.readAllBytes(p);
        data = SafetensorsBytes.data(valid);
        assertEquals("{" + META + "," + A + "," + B + "}", SafetensorsBytes.headerJson(valid));
        try (Safetensors st = Safetensors.open(p)) {
            assertArrayEquals(new float[]{1, 2, 3, 4, 5, 6}, st.get("a").toFloats());
        }
    }

    private Path variant(String name, String header) throws Exception { return variant(name, header, data); }

    private Path variant(String name, String header, byte[] body) throws Exception {
        return write(dir.resolve(name + ".safetensors"), file(header, body));
    }

    private void loads(Path p) {
        Safetensors.open(p).close();
    }

    @Test
    void dataOffsetsAreUnsigned64BitIntegersInsideTheData() throws Exception {
        // 2^64 and 2^64 + 24 wrap to 0 and 24 as signed 64-bit values
        String wrapped = A.replace("[0,24]", "[18446744073709551616,18446744073709551640]");
        assertRejected(variant("wrap64", "{" + META + "," + wrapped + "," + B + "}"), "'a' data lies outside the file");
        String big = A.replace("[0,24]", "[9223372036854775808,9223372036854775832]");
        assertRejected(variant("wrap63", "{" + META + "," + big + "," + B + "}"), "'a' data lies outside the file");
        String past = B.replace("[24,56]", "[24,64]");
        assertRejected(variant("past", "{" + META + "," + A + "," + past + "}"), "'b' data lies outside the file");
        for (String bad : List.of("[\"0\",\"24\"]", "[0.0,24.0]", "[0,2.4e1]", "[-8,24]", "[null,24]")) {
            String a = A.replace("[0,24]", bad);
            assertRejected(variant("offsets", "{" + META + "," + a + "," + B + "}"), "data_offsets must be two non-negative integers");
        }
        for (String bad : List.of("[0,24,56]", "[24]", "{\"begin\":0,\"end\":24}", "\"0,24\"")) {
            String a = A.replace("[0,24]", bad);
            assertRejected(variant("offsets2", "{" + META + "," + a + "," + B + "}"), "data_offsets must be an array of two integers");
        }
        String backwards = A.replace("[0,24]", "[24,0]");
        assertRejected(variant("backwards", "{" + META + "," + backwards + "," + B + "}"), "data_offsets end before they begin");
    }

    @Test
    void headerLengthIsAnUnsigned64BitCountWithinTheLimitAndTheFile() throws Exception {
        byte[] b = valid.clone();
        Arrays.fill(b, 0, 8, (byte) 0xFF);
        assertRejected(write(dir.resolve("ff.safetensors"), b), "header length 18446744073709551615 is over the limit");
        b = valid.clone();
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, Long.MIN_VALUE);
        assertRejected(write(dir.resolve("min.safetensors"), b), "header length 9223372036854775808 is over the limit");
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, (100L << 20) + 1);
        assertRejected(write(dir.resolve("limit.safetensors"), b), "header length 104857601 is over the limit");
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, valid.length - 7);
        assertRejected(write(dir.resolve("past.safetensors"), b), "runs past the end of the file");
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 0);
        assertRejected(write(dir.resolve("zero.safetensors"), b), "header length 0");
    }

    @Test
    void aNameOrKeyTwiceIsRefused() throws Exception {
        // the JSON reader would keep the last one silently
        String other = A.replace("[0,24]", "[24,48]").replace("[2,3]", "[6]");
        assertRejected(variant("twice", "{" + META + "," + A + "," + B + "," + other.replace("\"a\"", "\"b\"") + "}"), "name 'b' appears twice");
        assertRejected(variant("meta2", "{" + META + "," + A + "," + META + "," + B + "}"), "name '__metadata__' appears twice");
        String dtypeTwice = A.replace("\"dtype\":\"F32\"", "\"dtype\":\"I32\",\"dtype\":\"F32\"");
        assertRejected(variant("key2", "{" + META + "," + dtypeTwice + "," + B + "}"), "a key appears twice in 'a'");
        assertRejected(variant("metakey2", "{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}," + A + "," + B + "}"), "a key appears twice in '__metadata__'");
    }

    @Test
    void onlySpacesMayFollowTheHeaderJson() throws Exception {
        String json = "{" + META + "," + A + "," + B + "}";
        loads(variant("spaces", json + "       "));
        loads(variant("inner-space", "{ " + META + " ,\n\t" + A + " , " + B + " }"));
        for (String tail : List.of("garbage", "\n", "\t  ", "}", " {}", "\0\0\0", "  x  "))
            assertRejected(variant("tail", json + tail), "follows the JSON object and is not a space");
        assertRejected(variant("lead", " " + json), "the header does not start with '{'");
        assertRejected(variant("array", "[" + json + "]"), "the header does not start with '{'");
        assertRejected(variant("cut", json.substring(0, json.length() - 1)), "invalid JSON");
        byte[] h = json.replace("\"k\"", "\"k\u00e9\"").getBytes(StandardCharsets.UTF_8);
        for (int i = 0; i < h.length; i++) if (h[i] == (byte) 0xC3) h[i] = (byte) 0xFF;  // the first byte of é, now invalid
        assertRejected(write(dir.resolve("utf8.safetensors"), file(h, data)), "is not valid UTF-8");
    }

    @Test
    void tensorsTileTheDataSectionExactly() throws Exception {
        byte[] more = Arrays.copyOf(data, 64);
        String gap = B.replace("[24,56]", "[32,64]");
        assertRejected(variant("gap", "{" + META + "," + A + "," + gap + "}", more), "8 bytes before the data of 'b' belong to no tensor");
        String late = A.replace("[0,24]", "[8,32]");
        assertRejected(variant("late", "{" + META + "," + late + "," + gap + "}", more), "8 bytes before the data of 'a' belong to no tensor");
        String overlap = B.replace("[24,56]", "[16,48]");
        assertRejected(variant("overlap", "{" + META + "," + A + "," + overlap + "}"), "the data of 'b' overlaps the data of 'a'");
        String same = A.replace("\"a\"", "\"c\"");
        assertRejected(variant("same", "{" + META + "," + A + "," + same + "," + B + "}"), "overlaps the data of");
        assertRejected(variant("after", "{" + META + "," + A + "," + B + "}", more), "8 bytes after the last tensor's data belong to no tensor");
        assertRejected(variant("empty", "{}", new byte[4]), "4 bytes after the last tensor's data");
        assertRejected(write(dir.resolve("appended.safetensors"), Arrays.copyOf(valid, valid.length + 1)), "1 bytes after the last tensor's data");
        // header order is free, and empty tensors take no room
        String z = "\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[24,24]}";
        loads(variant("reordered", "{" + B + "," + z + "," + META + "," + A + "}"));
        loads(variant("no-tensors", "{}", new byte[0]));
        String zInside = z.replace("[24,24]", "[8,8]");
        assertRejected(variant("empty-inside", "{" + META + "," + A + "," + zInside + "," + B + "}"), "the data of 'z' overlaps the data of 'a'");
    }

    @Test
    void entriesHaveExactlyTheirKeysWithTheirJsonTypes() throws Exception {
        String[][] cases = {
                {A.replace("\"F32\"", "5"), "'a': dtype must be a string"},
                {A.replace("\"F32\"", "[\"F32\"]"), "'a': dtype must be a string"},
                {A.replace("\"dtype\":\"F32\",", ""), "'a': dtype must be a string"},
                {A.replace("\"F32\"", "\"F33\""), "unsupported dtype 'F33' for 'a'"},
                {A.replace("[2,3]", "\"2,3\""), "'a': shape must be an array"},
                {A.replace("\"shape\":[2,3],", ""), "'a': shape must be an array"},
                {A.replace("[2,3]", "[\"2\",\"3\"]"), "'a': shape must hold non-negative integers"},
                {A.replace("[2,3]", "[2.0,3]"), "'a': shape must hold non-negative integers"},
                {A.replace("[2,3]", "[-2,-3]"), "'a': shape must hold non-negative integers"},
                {A.replace("[2,3]", "[2,true]"), "'a': shape must hold non-negative integers"},
                {A.replace("[2,3]", "[[2],3]"), "'a': shape must hold non-negative integers"},
                {A.replace("[2,3]", "[6,18446744073709551617]"), "'a': shape must hold non-negative integers"},
                {A.replace("[2,3]", "[4611686018427387904,4]"), "'a': shape [4611686018427387904, 4] is too large"},
                {A.replace("[2,3]", "[3,3]"), "'a': 24 bytes of data do not match its shape [3, 3] of F32"},
                {A.replace("\"data_offsets\"", "\"extra\":1,\"data_offsets\""), "entry 'a' has an unknown key 'extra'"},
                {"\"a\":[1,2]", "entry 'a' is not an object"},
                {"\"a\":null", "entry 'a' is not an object"},
        };
        for (String[] c : cases)
            assertRejected(variant("entry", "{" + META + "," + c[0] + "," + B + "}"), c[1]);
        String[][] meta = {
                {"\"__metadata__\":\"k=v\"", "__metadata__ is not an object"},
                {"\"__metadata__\":[\"k\",\"v\"]", "__metadata__ is not an object"},
                {"\"__metadata__\":{\"k\":5}", "__metadata__ value 'k' is not a string"},
                {"\"__metadata__\":{\"k\":null}", "__metadata__ value 'k' is not a string"},
                {"\"__metadata__\":{\"k\":{\"x\":\"y\"}}", "__metadata__ value 'k' is not a string"},
        };
        for (String[] c : meta)
            assertRejected(variant("meta", "{" + c[0] + "," + A + "," + B + "}"), c[1]);
        // names from the file are quoted with control characters escaped, so the message stays one line
        assertRejected(variant("newline", "{" + META + "," + A.replace("\"a\"", "\"a\\nb\"").replace("\"F32\"", "\"F64\"") + "," + B + "}"),
                "'a\\u000ab': 24 bytes of data do not match its shape [2, 3] of F64");
    }
}
