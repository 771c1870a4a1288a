package dev.ultramem.memory;

import dev.ultramem.core.Parallel;
import dev.ultramem.core.Rng;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Value addressing and the row-grouped entry list against the formula and a plain sort (both sort paths). */
class ValueLookupTest {

    @Test
    void addressesAndGroupsEntriesByRow() {
        Rng rng = new Rng(3);
        int saved = Parallel.threads();
        try {
            for (int threads : new int[]{1, 2}) {
                Parallel.setThreads(threads);
                // (keys per side, value rows of the layer, rows of the shared table, window offset, concatenated groups)
                long[][] shapes = {{7, 49, 98, 49, 0}, {12, 36, 180, 144, 1}, {300, 90_000, 270_000, 180_000, 0}};
                for (long[] sh : shapes)
                    for (int m : new int[]{1, 3, 7, 9, 100, ValueLookup.SMALL_SORT, ValueLookup.SMALL_SORT + 1, 5000}) {
                        int keys = (int) sh[0], virtual = keys * keys, vdim = 4;
                        long valueNum = sh[1], all = sh[2], offset = sh[3];
                        int groups = (int) ((virtual + valueNum - 1) / valueNum);
                        boolean concat = sh[4] == 1;
                        int[] perm = rng.permutation(virtual), z = new int[m];
                        for (int e = 0; e < m; e++) z[e] = rng.nextInt(virtual);
                        ValueLookup lk = new ValueLookup(perm, valueNum, all, offset, vdim, groups, concat);
                        lk.address(z, m);
                        String what = "threads " + threads + " shape " + java.util.Arrays.toString(sh) + " m " + m;
                        for (int e = 0; e < m; e++) {
                            long zs = perm[z[e]];
                            assertEquals((zs % valueNum + offset) % all, lk.row[e], what);
                            assertEquals(concat ? (zs / valueNum) * vdim : 0, lk.col[e], what);
                            assertEquals(zs % valueNum, lk.localRow(lk.row[e]), what);
                        }
                        // order: every entry once, sorted by (row, entry); segments: maximal runs of one row
                        boolean[] seen = new boolean[m];
                        for (int q = 0; q < m; q++) {
                            int e = lk.order[q];
                            assertTrue(!seen[e], what);
                            seen[e] = true;
                            if (q > 0) {
                                int p = lk.order[q - 1];
                                assertTrue(lk.row[p] < lk.row[e] || (lk.row[p] == lk.row[e] && p < e), what + " at " + q);
                            }
                        }
                        int distinct = 0;
                        for (int q = 0; q < m; q++) if (q == 0 || lk.row[lk.order[q]] != lk.row[lk.order[q - 1]]) distinct++;
                        assertEquals(distinct, lk.nSeg, what);
                        assertEquals(m, lk.segStart[lk.nSeg], what);
                        for (int s = 0; s < lk.nSeg; s++)
                            for (int q = lk.segStart[s]; q < lk.segStart[s + 1]; q++) assertEquals(lk.segRow[s], lk.row[lk.order[q]], what);
                    }
            }
        } finally {
            Parallel.setThreads(saved);
        }
    }
}
