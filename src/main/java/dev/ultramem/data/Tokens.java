package dev.ultramem.data;

/**
 * A read-only sequence of token ids: the bytes of a text for the byte tokenizer (kept as bytes, four
 * times smaller than ints), or the ids a BPE tokenizer produced.
 */
public abstract sealed class Tokens {
    public abstract int length();

    public abstract int get(int i);

    public static Tokens of(byte[] bytes) { return new Bytes(bytes); }

    public static Tokens of(int[] ids) { return new Ids(ids); }

    private static final class Bytes extends Tokens {
        private final byte[] b;
        Bytes(byte[] b) { this.b = b; }
        @Override public int length() { return b.length; }
        @Override public int get(int i) { return b[i] & 0xFF; }
    }

    private static final class Ids extends Tokens {
        private final int[] a;
        Ids(int[] a) { this.a = a; }
        @Override public int length() { return a.length; }
        @Override public int get(int i) { return a[i]; }
    }
}
