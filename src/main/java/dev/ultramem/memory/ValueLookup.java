package dev.ultramem.memory;

import dev.ultramem.core.Param;
import dev.ultramem.core.Parallel;
import dev.ultramem.kernel.MemoryKernels;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Value addressing of the retrieval winners and the value read of every memory layer: shuffle, implicit
 * value expansion and the ring window of a shared table (UltraMem v1 and UltraMemV2; PKM and Memory+ read
 * their table directly, with no shuffle, one group and no offset).
 * {@code z' = shuffle[z]}, group {@code g = z' div valueNum}, physical row
 * {@code p = ((z' mod valueNum) + offset) mod allValueNum}; the output column block of an entry is
 * {@code g·vdim} when the groups are concatenated and 0 when they are summed.
 *
 * <p>Also builds the row-grouped (CSR) entry list used by the fused gather and scatter-add, so each
 * touched row is read once, in ascending order, and its gradient is written by one thread; the number
 * of distinct rows touched gives the bytes read per forward.
 */
public final class ValueLookup {
    public final long valueNum, allValueNum, offset;
    public final int vdim, groups;
    public final boolean concat;
    public final int[] shuffle;

    public int[] shuffled = new int[0], row = new int[0], col = new int[0];
    public int[] order = new int[0], segStart = new int[1], segRow = new int[0];
    public int nSeg;
    private int[] tmpOrder = new int[0];
    /** Fixed slices of the sort passes (fixed, so the order never depends on the threads; at most 8 run at once). */
    public static final int SORT_CHUNKS = 8;
    private int[] count = new int[0];

    /** @param shuffle the virtual-index permutation, or null for none (z addresses the table directly) */
    public ValueLookup(int[] shuffle, long valueNum, long allValueNum, long offset, int vdim, int groups, boolean concat) {
        if (offset < 0 || offset >= Math.max(1, allValueNum) || valueNum > allValueNum)
            throw new IllegalArgumentException("value lookup: need 0 <= offset < allValueNum and valueNum <= allValueNum, got offset "
                    + offset + ", valueNum " + valueNum + ", allValueNum " + allValueNum);
        this.shuffle = shuffle; this.valueNum = valueNum; this.allValueNum = allValueNum; this.offset = offset;
        this.vdim = vdim; this.groups = groups; this.concat = concat;
    }

    public int outWidth() { return concat ? groups * vdim : vdim; }

    /** Computes shuffled index, physical row and column block of the m entries, and their CSR grouping. */
    public void address(int[] z, int m) {
        if (row.length < m) {
            int c = Math.max(m, row.length * 3 / 2);
            shuffled = new int[c]; row = new int[c]; col = new int[c]; order = new int[c];
            segStart = new int[c + 1]; segRow = new int[c]; tmpOrder = new int[c];
        }
        Parallel.forRange(m, 4096, (e0, e1) -> {
            for (int e = e0; e < e1; e++) {
                int zs = shuffle == null ? z[e] : shuffle[z[e]];
                shuffled[e] = zs;
                // the group is 0 without key expansion; offset < allValueNum and valueNum ≤ allValueNum, so the
            // window wraps at most once
                long g = zs < valueNum ? 0 : zs / valueNum, p = zs - g * valueNum + offset;
                row[e] = (int) (p < allValueNum ? p : p - allValueNum);
                col[e] = concat ? (int) (g * vdim) : 0;
                tmpOrder[e] = e;
            }
        });
        // entries sorted by (row, e)
        if (m <= SMALL_SORT) sortSmall(m);
        else {
            // two stable counting passes over the low and high halves of the row bits
            int bits = 64 - Long.numberOfLeadingZeros(Math.max(1, allValueNum - 1)), lowBits = (bits + 1) / 2;
            radixPass(tmpOrder, order, m, 0, lowBits);
            radixPass(order, tmpOrder, m, lowBits, bits - lowBits);
            System.arraycopy(tmpOrder, 0, order, 0, m);
        }
        nSeg = 0;
        int prev = -1;
        for (int q = 0; q < m; q++) {
            int rw = row[order[q]];
            if (rw != prev) { segStart[nSeg] = q; segRow[nSeg] = rw; nSeg++; prev = rw; }
        }
        segStart[nSeg] = m;
    }

    /**
     * Up to this many entries (a decode step of a few tokens) are sorted as (row, e) keys on the calling thread:
     * the counting passes clear and prefix-sum {@link #SORT_CHUNKS} × 2^(bits/2) counters in parallel regions,
     * which costs far more than sorting a few hundred keys. Both give the one (row, e) order.
     */
    static final int SMALL_SORT = 512;
    private long[] keys = new long[0];

    private void sortSmall(int m) {
        if (keys.length < m) keys = new long[Math.max(m, SMALL_SORT)];
        for (int e = 0; e < m; e++) keys[e] = (long) row[e] << 32 | e;
        Arrays.sort(keys, 0, m);
        for (int q = 0; q < m; q++) order[q] = (int) keys[q];
    }

    /**
     * One stable counting pass on a digit of the row, over SORT_CHUNKS fixed slices of the entries:
     * each slice counts its digits, the slices' offsets are laid out bucket by bucket in slice order,
     * and each slice scatters its entries. A stable sort has one result, whatever the threads.
     */
    private void radixPass(int[] src, int[] dst, int m, int shift, int width) {
        int buckets = 1 << width, mask = buckets - 1;
        if (count.length < SORT_CHUNKS * buckets) count = new int[SORT_CHUNKS * buckets];
        int[] cnt = count;
        Arrays.fill(cnt, 0, SORT_CHUNKS * buckets, 0); // empty slices are skipped below and must count zero
        Parallel.forChunks(m, SORT_CHUNKS, (ch, q0, q1) -> {
            int o = ch * buckets;
            for (int q = q0; q < q1; q++) cnt[o + ((row[src[q]] >>> shift) & mask)]++;
        });
        int sum = 0;
        for (int b = 0; b < buckets; b++)
            for (int ch = 0; ch < SORT_CHUNKS; ch++) { int i = ch * buckets + b, c = cnt[i]; cnt[i] = sum; sum += c; }
        Parallel.forChunks(m, SORT_CHUNKS, (ch, q0, q1) -> {
            int o = ch * buckets;
            for (int q = q0; q < q1; q++) { int e = src[q]; dst[cnt[o + ((row[e] >>> shift) & mask)]++] = e; }
        });
    }

    /**
     * The fused value read {@code out[t, col[e] + chunk c] += Σ_e w[e·C + c] · table[row[e], chunk c]} over the
     * R entries of each of n tokens (out {@code [n][stride]}, added into), reading the rows in ascending order.
     */
    public void gather(int n, int R, int C, int width, Param table, float[] w, float[] out, int stride, boolean cols) {
        if (table.isBf16()) MemoryKernels.get().gatherWeightedSumRowsBf16(n, R, C, width, table.segment(), order, row, cols ? col : null, w, out, stride);
        else MemoryKernels.get().gatherWeightedSumRows(n, R, C, width, table.segment(), order, row, cols ? col : null, w, out, stride);
    }

    /**
     * The gathered inner products {@code dots[e·C + c] = ⟨table[row[e], chunk c], vec[t, col[e] + chunk c]⟩}
     * (overwrite): the gradient of the gather's weights, and the pre-value scores of UltraMemV2.
     */
    public void dots(int R, int C, int width, Param table, float[] vec, int stride, boolean cols, float[] dots) {
        if (table.isBf16()) MemoryKernels.get().gatherDotRowsBf16(nSeg, segStart, segRow, order, R, C, width, table.segment(), cols ? col : null, vec, stride, dots);
        else MemoryKernels.get().gatherDotRows(nSeg, segStart, segRow, order, R, C, width, table.segment(), cols ? col : null, vec, stride, dots);
    }

    /** Bytes of the distinct rows the last {@link #address} touched, for a table of this row width and storage. */
    public long rowBytes(int width, Param table) { return (long) nSeg * width * table.elementBytes(); }

    /**
     * The sparse scatter-add {@code grad[row[e], chunk c] += Σ_e w[e·C + c] · vec[t, col[e] + chunk c]} into
     * the touched rows only (the value-table gradient of {@link #gather}); each row is written by one thread.
     */
    public void scatterAdd(int R, int C, int width, float[] w, float[] vec, int stride, boolean cols, Param table) {
        MemoryKernels.get().scatterAddRows(nSeg, segStart, segRow, order, R, C, width, w, vec, stride, cols ? col : null, table.gradSegment());
    }

    /** Window-local row of a physical row (for usage statistics over the layer's own rows). */
    public long localRow(int physical) {
        long l = physical - offset; // both in [0, allValueNum): one wrap at most, no division
        return l < 0 ? l + allValueNum : l;
    }
}
