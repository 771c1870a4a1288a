package dev.ultramem.core;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * bfloat16: the upper 16 bits of a float32 (same exponent range, 8 significant bits). Widening is exact;
 * narrowing rounds to nearest, ties to even, as PyTorch's {@code tensor.to(torch.bfloat16)} does, so a table
 * converted here has the bits the official code would store.
 */
public final class Bf16 {
    private Bf16() {}

    public static float toFloat(short bits) { return Float.intBitsToFloat((bits & 0xffff) << 16); }

    /** Round to nearest even; a NaN stays a (quiet) NaN instead of rounding into infinity. */
    public static short round(float f) {
        int b = Float.floatToRawIntBits(f);
        if ((b & 0x7fffffff) > 0x7f800000) return (short) ((b >>> 16) | 0x0040);
        return (short) ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16);
    }

    /** Rounds n native-order floats of src into n native-order bf16 values of dst, in parallel slices. */
    public static void round(MemorySegment src, MemorySegment dst, long n) {
        long chunk = 1 << 16;
        int parts = (int) ((n + chunk - 1) / chunk);
        Parallel.forRange(parts, 1, (p0, p1) -> {
            for (long i = p0 * chunk, end = Math.min(n, p1 * chunk); i < end; i++)
                dst.setAtIndex(ValueLayout.JAVA_SHORT, i, round(src.getAtIndex(ValueLayout.JAVA_FLOAT, i)));
        });
    }
}
