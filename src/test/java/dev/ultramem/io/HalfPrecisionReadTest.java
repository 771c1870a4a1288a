package dev.ultramem.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * BF16 and F16 tensors read as float32 exactly: every one of the 65,536 bit patterns of each, in a
 * hand-made file, against decoders written here from the formats' definitions.
 */
class HalfPrecisionReadTest {
    @TempDir Path dir;

    /** bfloat16: sign, 8 exponent bits (bias 127), 7 fraction bits — the upper half of a float32. */
    static double bf16Reference(int bits) {
        int sign = bits >>> 15, exp = (bits >>> 7) & 0xff, frac = bits & 0x7f;
        double s = sign == 1 ? -1 : 1;
        if (exp == 0xff) return frac == 0 ? s * Double.POSITIVE_INFINITY : Double.NaN;
        if (exp == 0) return s * frac * Math.pow(2, -126 - 7);
        return s * (1 + frac / 128.0) * Math.pow(2, exp - 127);
    }

    /** IEEE binary16: sign, 5 exponent bits (bias 15), 10 fraction bits, subnormals below 2^-14. */
    static double f16Reference(int bits) {
        int sign = bits >>> 15, exp = (bits >>> 10) & 0x1f, frac = bits & 0x3ff;
        double s = sign == 1 ? -1 : 1;
        if (exp == 0x1f) return frac == 0 ? s * Double.POSITIVE_INFINITY : Double.NaN;
        if (exp == 0) return s * frac * Math.pow(2, -24);
        return s * (1 + frac / 1024.0) * Math.pow(2, exp - 15);
    }

    @Test
    void everyBf16AndF16BitPatternConvertsExactly() throws Exception {
        int n = 1 << 16;
        ByteBuffer data = ByteBuffer.allocate(4 * n).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) data.putShort((short) i);
        for (int i = 0; i < n; i++) data.putShort((short) i);
        String header = "{\"b\":{\"dtype\":\"BF16\",\"shape\":[" + n + "],\"data_offsets\":[0," + 2 * n + "]},"
                + "\"h\":{\"dtype\":\"F16\",\"shape\":[256,256],\"data_offsets\":[" + 2 * n + "," + 4 * n + "]}}";
        Path f = SafetensorsBytes.write(dir.resolve("half.safetensors"), SafetensorsBytes.file(header, data.array()));
        try (Safetensors st = Safetensors.open(f)) {
            float[] b = new float[n], h = new float[n];
            st.get("b").copyAsFloat32(MemorySegment.ofArray(b));
            st.get("h").copyAsFloat32(MemorySegment.ofArray(h));
            for (int i = 0; i < n; i++) {
                check("BF16", i, bf16Reference(i), b[i]);
                check("F16", i, f16Reference(i), h[i]);
            }
        }
    }

    private static void check(String dtype, int bits, double want, float got) {
        String what = dtype + " 0x" + Integer.toHexString(bits);
        if (Double.isNaN(want)) {
            assertTrue(Float.isNaN(got), what);
            return;
        }
        assertEquals(want, got, 0.0, what);
        // signed zeros keep their sign
        assertEquals(Math.copySign(1.0, want), Math.copySign(1.0, got), what + " sign");
    }

    @Test
    void integerTensorsAreNotReadAsFloats() throws Exception {
        String header = "{\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        Path f = SafetensorsBytes.write(dir.resolve("int.safetensors"), SafetensorsBytes.file(header, new byte[8]));
        try (Safetensors st = Safetensors.open(f)) {
            SafetensorsBytes.assertRejected(f, "expected a floating-point tensor (F32, BF16 or F16), found I32",
                    () -> st.get("i").copyAsFloat32(MemorySegment.ofArray(new float[2])));
        }
    }
}
