package dev.ultramem.kernel;

import dev.ultramem.core.Rng;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Comparator;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * MemoryKernels (scalar and vector) against naive loops written here: a sort-based top-k and plain
 * gather / dot / scatter loops in double. Float results are compared with a bound relative to
 * Σ|aᵢ·bᵢ| of each output (summation order differs between the paths).
 */
public class MemoryKernelsTest {

    static final MemoryKernels[] IMPLS = {MemoryKernels.of("scalar"), MemoryKernels.of("vector")};

    /** rowDots of many long rows through mk: the scores the layers compute for the stage-1 winners. */
    static float[] winnerScores(MemoryKernels mk, float[] q, float[] rows, int[] idx, int m, int dim) {
        float[] out = new float[m];
        mk.rowDots(m, 1, dim, q, 0, rows, 0, idx, 0, out, 0);
        return out;
    }

    /**
     * The kernels the layers get ({@link MemoryKernels#get()}) are identified by what they compute, not by
     * their name: on long dot products the scalar and vector paths round differently (different summation
     * order), and the default's results equal, bit for bit, those of the path the property selects
     * (vector unless {@code -Dultramem.kernels=scalar}); they also match a double-precision loop.
     */
    @Test
    void defaultKernelsAreTheConfiguredPathByBehaviour() {
        Rng rng = new Rng(12);
        int dim = 1000, m = 64;
        float[] q = new float[dim], rows = new float[m * dim];
        rng.fillNormal(q, 1.0);
        rng.fillNormal(rows, 1.0);
        int[] idx = rng.permutation(m);
        float[] scalar = winnerScores(MemoryKernels.of("scalar"), q, rows, idx, m, dim);
        float[] vector = winnerScores(MemoryKernels.of("vector"), q, rows, idx, m, dim);
        assertFalse(Arrays.equals(scalar, vector), "the two paths must be told apart by their rounding");
        float[] used = winnerScores(MemoryKernels.get(), q, rows, idx, m, dim);
        float[] expected = System.getProperty("ultramem.kernels", "vector").equals("scalar") ? scalar : vector;
        assertArrayEquals(expected, used, 0f);
        for (int i = 0; i < m; i++) {
            double ref = 0, mag = 0;
            for (int j = 0; j < dim; j++) { double v = (double) q[j] * rows[idx[i] * dim + j]; ref += v; mag += Math.abs(v); }
            assertEquals(ref, used[i], 1e-6 * mag, "row " + i);
        }
    }

    static int[] naiveTopK(float[] x, int off, int n, int k) {
        Integer[] idx = IntStream.range(0, n).boxed().toArray(Integer[]::new);
        // numeric order (-0.0 == 0.0), then lower index first
        Arrays.sort(idx, (a, b) -> x[off + a] > x[off + b] ? -1 : x[off + a] < x[off + b] ? 1 : Integer.compare(a, b));
        int[] out = new int[k];
        for (int i = 0; i < k; i++) out[i] = idx[i];
        return out;
    }

    @Test
    void topKMatchesSortIncludingTies() {
        Rng rng = new Rng(1);
        for (MemoryKernels mk : IMPLS)
            for (int n : new int[]{1, 2, 7, 13, 16, 17, 31, 33, 100, 257, 1000, 5000})
                for (int k : new int[]{1, 2, 3, 5, 16, 40, 100, 200}) {
                    if (k > n) continue;
                    for (int rep = 0; rep < 4; rep++) {
                        float[] x = new float[n + 5];
                        // rep 1: few distinct values (many ties); rep 2: sorted ascending (every element enters);
                        // rep 3: infinities and signed zeros
                        float[] special = {Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY, -0.0f, 0.0f, -1f, 1f};
                        for (int i = 0; i < x.length; i++)
                            x[i] = rep == 1 ? rng.nextInt(4) : rep == 2 ? i * 0.5f : rep == 3 ? special[rng.nextInt(6)] : (float) rng.nextGaussian();
                        int[] idx = new int[k + 2];
                        float[] val = new float[k + 3];
                        mk.topK(x, 3, n, k, idx, 2, val, 3);
                        int[] ref = naiveTopK(x, 3, n, k);
                        for (int i = 0; i < k; i++) {
                            assertEquals(ref[i], idx[2 + i], mk.name() + " n " + n + " k " + k + " rep " + rep + " pos " + i);
                            assertEquals(x[3 + ref[i]], val[3 + i], 0f);
                        }
                    }
                }
    }

    @Test
    void topKWithLowerBoundHintMatchesSort() {
        Rng rng = new Rng(4);
        for (MemoryKernels mk : IMPLS)
            for (int n : new int[]{16, 64, 100, 256, 1024, 4096})
                for (int k : new int[]{1, 3, 4, 16, 32, 64}) {
                    if (k > n) continue;
                    for (int rep = 0; rep < 5; rep++) {
                        float[] x = new float[n];
                        for (int i = 0; i < n; i++) x[i] = rep == 1 ? rng.nextInt(3) : (float) rng.nextGaussian();
                        int[] ref = naiveTopK(x, 0, n, k);
                        float kth = x[ref[k - 1]];
                        // rep 0/1: min of k random cells (valid); 2: exactly the k-th value; 3: too high; 4: -inf
                        float bound;
                        if (rep <= 1) {
                            bound = Float.POSITIVE_INFINITY;
                            int[] perm = rng.permutation(n);
                            for (int q = 0; q < k; q++) bound = Math.min(bound, x[perm[q]]);
                        } else bound = rep == 2 ? kth : rep == 3 ? kth + 1 : Float.NEGATIVE_INFINITY;
                        int[] idx = new int[k];
                        float[] val = new float[k];
                        mk.topK(x, 0, n, k, idx, 0, val, 0, bound);
                        assertArrayEquals(ref, idx, mk.name() + " n " + n + " k " + k + " rep " + rep);
                    }
                }
    }

    @Test
    void lowRankProductMatchesNaive() {
        Rng rng = new Rng(6);
        for (MemoryKernels mk : IMPLS)
            for (int[] sh : new int[][]{{1, 1, 1}, {32, 32, 2}, {5, 13, 3}, {7, 17, 1}, {9, 33, 4}}) {
                int m = sh[0], n = sh[1], r = sh[2];
                float[] a = new float[m * r], bt = new float[r * n], out = new float[m * n];
                rng.fillNormal(a, 1.0);
                rng.fillNormal(bt, 1.0);
                mk.lowRankProduct(m, n, r, a, bt, out);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double ref = 0, mag = 0;
                        for (int s = 0; s < r; s++) {
                            ref += (double) a[i * r + s] * bt[s * n + j];
                            mag += Math.abs((double) a[i * r + s] * bt[s * n + j]);
                        }
                        assertEquals(ref, out[i * n + j], 1e-6 * mag + 1e-30, mk.name() + " " + m + "x" + n + "x" + r);
                    }
            }
    }

    @Test
    void rowDotsMatchNaive() {
        Rng rng = new Rng(7);
        for (MemoryKernels mk : IMPLS)
            for (int parts : new int[]{1, 2, 3})
                for (int dim : new int[]{1, 5, 8, 32, 37}) {
                    int rowsN = 11, m = 6;
                    float[] q = new float[2 + parts * dim], rows = new float[1 + rowsN * parts * dim], out = new float[1 + m * parts];
                    rng.fillNormal(q, 1.0);
                    rng.fillNormal(rows, 1.0);
                    int[] idx = {9, 0, 3, 10, 3, 7, 2};
                    mk.rowDots(m, parts, dim, q, 2, rows, 1, idx, 1, out, 1);
                    for (int i = 0; i < m; i++)
                        for (int p = 0; p < parts; p++) {
                            double ref = 0, mag = 0;
                            for (int j = 0; j < dim; j++) {
                                double v = (double) q[2 + p * dim + j] * rows[1 + (idx[1 + i] * parts + p) * dim + j];
                                ref += v;
                                mag += Math.abs(v);
                            }
                            assertEquals(ref, out[1 + i * parts + p], 1e-6 * mag + 1e-30, mk.name() + " parts " + parts + " dim " + dim + " row " + i);
                        }
                }
    }

    /** The two directions of the winners' key/query gradients: many rows into one, one row into many. */
    @Test
    void rowsWeightedSumAndScatterRowsMatchNaive() {
        Rng rng = new Rng(9);
        int[] idx = {9, 0, 3, 10, 3, 7, 2};
        for (MemoryKernels mk : IMPLS)
            for (int dim : new int[]{1, 5, 8, 32, 37}) {
                int rowsN = 11, m = 6, wStride = 2;
                float[] w = new float[1 + m * wStride], rows = new float[3 + rowsN * dim], one = new float[2 + dim];
                rng.fillNormal(w, 1.0);
                rng.fillNormal(rows, 1.0);
                rng.fillNormal(one, 1.0);
                float[] rows0 = rows.clone(), one0 = one.clone();
                double[] ref1 = new double[one.length], mag1 = new double[one.length], refR = new double[rows.length], magR = new double[rows.length];
                for (int q = 0; q < one.length; q++) { ref1[q] = one0[q]; mag1[q] = Math.abs(one0[q]); }
                for (int q = 0; q < rows.length; q++) { refR[q] = rows0[q]; magR[q] = Math.abs(rows0[q]); }
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < dim; j++) {
                        double g = w[1 + i * wStride], toOne = g * rows0[3 + idx[1 + i] * dim + j], toRows = g * one0[2 + j];
                        ref1[2 + j] += toOne;
                        mag1[2 + j] += Math.abs(toOne);
                        refR[3 + idx[1 + i] * dim + j] += toRows;
                        magR[3 + idx[1 + i] * dim + j] += Math.abs(toRows);
                    }
                mk.rowsWeightedSum(m, dim, w, 1, wStride, rows, 3, idx, 1, one, 2);
                for (int q = 0; q < one.length; q++) assertEquals(ref1[q], one[q], 1e-6 * mag1[q] + 1e-30, mk.name() + " gather dim " + dim + " at " + q);
                mk.scatterRows(m, dim, w, 1, wStride, one0, 2, idx, 1, rows, 3);
                for (int q = 0; q < rows.length; q++) assertEquals(refR[q], rows[q], 1e-6 * magR[q] + 1e-30, mk.name() + " scatter dim " + dim + " at " + q);
            }
    }

    @Test
    void topKRejectsBadK() {
        for (MemoryKernels mk : IMPLS)
            assertThrows(IllegalArgumentException.class, () -> mk.topK(new float[4], 0, 4, 5, new int[5], 0, new float[5], 0));
    }

    record Case(int nTok, int R, int C, int width, int rows, int groups) {}

    static final Case[] CASES = {
            new Case(5, 3, 2, 32, 11, 1), new Case(4, 4, 2, 34, 7, 3), new Case(3, 5, 1, 17, 9, 2),
            new Case(6, 2, 3, 48, 5, 1), new Case(2, 6, 2, 2, 4, 2), new Case(7, 3, 1, 96, 40, 4),
            // chunks of exactly 4 or 8 vectors take straight-line bodies (8 lanes: 32 and 64 floats; 16 lanes: 64 and 128)
            new Case(5, 3, 2, 64, 11, 1), new Case(4, 3, 1, 64, 9, 2), new Case(3, 4, 3, 96, 7, 1),
            new Case(3, 2, 2, 128, 6, 2), new Case(4, 2, 1, 128, 5, 1), new Case(3, 3, 2, 256, 5, 1)};

    /** The bf16 value nearest to f (ties to an even last bit), found by comparing the two neighbours in double. */
    public static float nearestBf16(float f) {
        int b = Float.floatToRawIntBits(f);
        float down = Float.intBitsToFloat(b & 0xffff0000), up = Float.intBitsToFloat((b & 0xffff0000) + 0x10000);
        double dd = Math.abs((double) f - down), du = Math.abs((double) up - f);
        if (dd != du) return dd < du ? down : up;
        return ((Float.floatToRawIntBits(down) >>> 16) & 1) == 0 ? down : up;
    }

    @Test
    void bf16RoundingIsNearestEvenOnEveryKindOfValue() {
        Rng rng = new Rng(9);
        for (int i = 0; i < 200_000; i++) {
            float f = i < 100_000 ? (float) rng.nextGaussian() * (float) Math.pow(10, rng.nextInt(20) - 10) : Float.intBitsToFloat((int) rng.nextLong());
            if (Float.isNaN(f) || Math.abs(f) > 3.3e38f) continue; // beyond the largest bf16 the upper neighbour is infinity
            assertEquals(Float.floatToRawIntBits(nearestBf16(f)) >>> 16, dev.ultramem.core.Bf16.round(f) & 0xffff, "bits of " + f);
            assertEquals(nearestBf16(f), dev.ultramem.core.Bf16.toFloat(dev.ultramem.core.Bf16.round(f)));
        }
        // ties: exactly half way rounds to the even neighbour
        assertEquals(0x3f80, dev.ultramem.core.Bf16.round(Float.intBitsToFloat(0x3f808000)) & 0xffff);
        assertEquals(0x3f82, dev.ultramem.core.Bf16.round(Float.intBitsToFloat(0x3f818000)) & 0xffff);
        assertTrue(Float.isNaN(dev.ultramem.core.Bf16.toFloat(dev.ultramem.core.Bf16.round(Float.NaN))));
        assertEquals(Float.POSITIVE_INFINITY, dev.ultramem.core.Bf16.toFloat(dev.ultramem.core.Bf16.round(Float.POSITIVE_INFINITY)));
    }

    static MemorySegment table(Arena a, Rng rng, long n) {
        MemorySegment s = a.allocate(n * 4, 64);
        for (long i = 0; i < n; i++) s.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) rng.nextGaussian());
        return s;
    }

    @Test
    void gatherDotAndScatterMatchNaive() {
        Rng rng = new Rng(2);
        try (Arena arena = Arena.ofConfined()) {
            for (Case c : CASES)
                for (MemoryKernels mk : IMPLS) {
                    int m = c.nTok * c.R, cw = c.width / c.C, stride = c.groups * c.width + 3;
                    MemorySegment tab = table(arena, rng, (long) c.rows * c.width);
                    int[] row = new int[m], col = new int[m];
                    for (int e = 0; e < m; e++) { row[e] = rng.nextInt(c.rows); col[e] = rng.nextInt(c.groups) * c.width; }
                    float[] w = new float[m * c.C];
                    rng.fillNormal(w, 1);
                    float[] vec = new float[c.nTok * stride];
                    rng.fillNormal(vec, 1);
                    // gather-weighted-sum (accumulating into a non-zero output)
                    float[] out = new float[c.nTok * stride];
                    rng.fillNormal(out, 1);
                    float[] out0 = out.clone();
                    double[] ref = new double[out.length], mag = new double[out.length];
                    for (int i = 0; i < out.length; i++) { ref[i] = out[i]; mag[i] = Math.abs(out[i]); }
                    for (int e = 0; e < m; e++)
                        for (int j = 0; j < c.width; j++) {
                            double p = w[e * c.C + j / cw] * tab.getAtIndex(ValueLayout.JAVA_FLOAT, (long) row[e] * c.width + j);
                            ref[(e / c.R) * stride + col[e] + j] += p;
                            mag[(e / c.R) * stride + col[e] + j] += Math.abs(p);
                        }
                    mk.gatherWeightedSum(c.nTok, c.R, c.C, c.width, tab, row, col, w, out, stride);
                    for (int i = 0; i < out.length; i++) assertEquals(ref[i], out[i], 1e-6 * mag[i] + 1e-30, mk.name() + " gather " + c);
                    // gathered dot
                    float[] dots = new float[m * c.C];
                    mk.gatherDot(c.nTok, c.R, c.C, c.width, tab, row, col, vec, stride, dots);
                    for (int e = 0; e < m; e++)
                        for (int cc = 0; cc < c.C; cc++) {
                            double s = 0, a = 0;
                            for (int j = cc * cw; j < (cc + 1) * cw; j++) {
                                double p = tab.getAtIndex(ValueLayout.JAVA_FLOAT, (long) row[e] * c.width + j) * vec[(e / c.R) * stride + col[e] + j];
                                s += p; a += Math.abs(p);
                            }
                            assertEquals(s, dots[e * c.C + cc], 1e-6 * a + 1e-30, mk.name() + " dot " + c);
                        }
                    // row-grouped scatter-add into a gradient table
                    MemorySegment grad = table(arena, rng, (long) c.rows * c.width);
                    double[] gref = new double[c.rows * c.width], gmag = new double[gref.length];
                    for (int i = 0; i < gref.length; i++) { gref[i] = grad.getAtIndex(ValueLayout.JAVA_FLOAT, i); gmag[i] = Math.abs(gref[i]); }
                    for (int e = 0; e < m; e++)
                        for (int j = 0; j < c.width; j++) {
                            double p = w[e * c.C + j / cw] * vec[(e / c.R) * stride + col[e] + j];
                            gref[row[e] * c.width + j] += p;
                            gmag[row[e] * c.width + j] += Math.abs(p);
                        }
                    Integer[] ord = IntStream.range(0, m).boxed().toArray(Integer[]::new);
                    Arrays.sort(ord, Comparator.comparingInt(e -> row[e]));
                    int[] order = new int[m], segStart = new int[m + 1], segRow = new int[m];
                    int nSeg = 0;
                    for (int q = 0; q < m; q++) {
                        order[q] = ord[q];
                        if (q == 0 || row[ord[q]] != row[ord[q - 1]]) { segStart[nSeg] = q; segRow[nSeg++] = row[ord[q]]; }
                    }
                    segStart[nSeg] = m;
                    // the row-ordered gathered dot gives exactly the token-ordered one
                    float[] dotsRows = new float[m * c.C];
                    mk.gatherDotRows(nSeg, segStart, segRow, order, c.R, c.C, c.width, tab, col, vec, stride, dotsRows);
                    assertArrayEquals(dots, dotsRows, mk.name() + " row-ordered dot " + c);
                    // row-ordered weighted sum against the same double reference (other summation order)
                    float[] outRows = new float[c.nTok * stride];
                    mk.gatherWeightedSumRows(c.nTok, c.R, c.C, c.width, tab, order, row, col, w, outRows, stride);
                    for (int i = 0; i < outRows.length; i++)
                        assertEquals(ref[i] - out0[i], outRows[i], 1e-6 * mag[i] + 1e-30, mk.name() + " row-ordered gather " + c);
                    // a bf16 table: the kernels read the widened values, in the order of the float32 kernels
                    MemorySegment half = arena.allocate((long) c.rows * c.width * 2, 64), widened = arena.allocate((long) c.rows * c.width * 4, 64);
                    double[] hv = new double[c.rows * c.width];
                    for (int i = 0; i < hv.length; i++) {
                        float f = tab.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                        float h = nearestBf16(f);
                        half.setAtIndex(ValueLayout.JAVA_SHORT, i, (short) (Float.floatToRawIntBits(h) >>> 16));
                        widened.setAtIndex(ValueLayout.JAVA_FLOAT, i, h);
                        hv[i] = h;
                    }
                    float[] outH = new float[c.nTok * stride], outW = new float[c.nTok * stride];
                    mk.gatherWeightedSumRowsBf16(c.nTok, c.R, c.C, c.width, half, order, row, col, w, outH, stride);
                    mk.gatherWeightedSumRows(c.nTok, c.R, c.C, c.width, widened, order, row, col, w, outW, stride);
                    assertArrayEquals(outW, outH, mk.name() + " bf16 gather = float32 gather of the widened table " + c);
                    double[] refH = new double[outH.length];
                    for (int e = 0; e < m; e++)
                        for (int j = 0; j < c.width; j++) refH[(e / c.R) * stride + col[e] + j] += w[e * c.C + j / cw] * hv[row[e] * c.width + j];
                    for (int i = 0; i < outH.length; i++)
                        assertEquals(refH[i], outH[i], 1e-6 * mag[i] + 1e-30, mk.name() + " bf16 gather " + c);
                    float[] dotsH = new float[m * c.C], dotsW = new float[m * c.C];
                    mk.gatherDotRowsBf16(nSeg, segStart, segRow, order, c.R, c.C, c.width, half, col, vec, stride, dotsH);
                    mk.gatherDotRows(nSeg, segStart, segRow, order, c.R, c.C, c.width, widened, col, vec, stride, dotsW);
                    assertArrayEquals(dotsW, dotsH, mk.name() + " bf16 dot = float32 dot of the widened table " + c);
                    for (int e = 0; e < m; e++)
                        for (int cc = 0; cc < c.C; cc++) {
                            double sd = 0, a = 0;
                            for (int j = cc * cw; j < (cc + 1) * cw; j++) {
                                double p = hv[row[e] * c.width + j] * vec[(e / c.R) * stride + col[e] + j];
                                sd += p; a += Math.abs(p);
                            }
                            assertEquals(sd, dotsH[e * c.C + cc], 1e-6 * a + 1e-30, mk.name() + " bf16 dot " + c);
                        }
                    mk.scatterAddRows(nSeg, segStart, segRow, order, c.R, c.C, c.width, w, vec, stride, col, grad);
                    for (int i = 0; i < gref.length; i++)
                        assertEquals(gref[i], grad.getAtIndex(ValueLayout.JAVA_FLOAT, i), 1e-6 * gmag[i] + 1e-30, mk.name() + " scatter " + c);
                }
        }
    }
}
