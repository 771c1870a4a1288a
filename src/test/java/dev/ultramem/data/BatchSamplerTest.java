package dev.ultramem.data;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class BatchSamplerTest {
    private final byte[] data = SyntheticCorpus.generate(1, 5000);

    @Test
    void sameSeedGivesSameBatchesAndTargetsAreTheNextBytes() {
        int B = 4, T = 32;
        BatchSampler a = new BatchSampler(data, 9), b = new BatchSampler(data, 9), c = new BatchSampler(data, 10);
        int[] ia = new int[B * T], ta = new int[B * T], ib = new int[B * T], tb = new int[B * T], ic = new int[B * T], tc = new int[B * T];
        boolean differs = false;
        for (int s = 0; s < 20; s++) {
            a.next(ia, ta, B, T);
            b.next(ib, tb, B, T);
            c.next(ic, tc, B, T);
            assertArrayEquals(ia, ib);
            assertArrayEquals(ta, tb);
            differs |= !java.util.Arrays.equals(ia, ic);
            for (int r = 0; r < B; r++) {
                assertTrue(occursAt(ia, ta, r * T, T), "window is not a slice of the data");
                for (int t = 0; t + 1 < T; t++) assertEquals(ia[r * T + t + 1], ta[r * T + t]);
            }
        }
        assertTrue(differs, "another seed should give other batches");
    }

    @Test
    void restoredStateContinuesTheSameSequence() {
        int B = 3, T = 16;
        BatchSampler a = new BatchSampler(data, 5);
        int[] in = new int[B * T], tg = new int[B * T];
        for (int s = 0; s < 7; s++) a.next(in, tg, B, T);
        long[] st = a.state();
        int[] want = new int[B * T], wantT = new int[B * T];
        a.next(want, wantT, B, T);
        BatchSampler b = new BatchSampler(data, 12345);
        b.setState(st);
        b.next(in, tg, B, T);
        assertArrayEquals(want, in);
        assertArrayEquals(wantT, tg);
    }

    @Test
    void evalBatchesAreFixedAndInsideTheData() {
        int B = 2, T = 50;
        int[] i1 = new int[B * T], t1 = new int[B * T], i2 = new int[B * T], t2 = new int[B * T];
        for (int k = 0; k < 4; k++) {
            BatchSampler.evalBatch(data, k, 4, i1, t1, B, T);
            BatchSampler.evalBatch(data, k, 4, i2, t2, B, T);
            assertArrayEquals(i1, i2);
            for (int r = 0; r < B; r++) assertTrue(occursAt(i1, t1, r * T, T));
        }
    }

    /** Whether inputs[off..off+T) followed by its last target appears in the data. */
    private boolean occursAt(int[] in, int[] tg, int off, int T) {
        outer:
        for (int s = 0; s + T < data.length; s++) {
            for (int t = 0; t < T; t++) if ((data[s + t] & 0xFF) != in[off + t]) continue outer;
            if ((data[s + T] & 0xFF) == tg[off + T - 1]) return true;
        }
        return false;
    }
}
