package dev.ultramem.kernel;

import dev.ultramem.core.Parallel;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The vector kernels against independent references: GEMM against a naive double-precision triple loop
 * written here, element-wise kernels against {@link ScalarKernels} (double accumulation). GEMM errors are
 * bounded relative to Σ|aₖbₖ| per output element, not to the result, so cancellation cannot hide a bug or
 * fail a correct kernel.
 */
class KernelsTest {

    static final float U = 0x1p-24f; // unit roundoff of float32
    static final int[] TAILS = {1, 7, 13, 15, 16, 17, 31, 33, 100, 257};

    final VectorKernels vk = new VectorKernels();
    final ScalarKernels sk = new ScalarKernels();

    static float[] rand(Random r, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) r.nextGaussian();
        return x;
    }

    enum Layout { NT, NN, TN }

    static void gemm(Kernels k, Layout l, int M, int N, int K, float[] a, int ao, float[] b, int bo, float[] c, int co, boolean acc) {
        switch (l) {
            case NT -> k.gemmNT(M, N, K, a, ao, b, bo, c, co, acc);
            case NN -> k.gemmNN(M, N, K, a, ao, b, bo, c, co, acc);
            case TN -> k.gemmTN(M, N, K, a, ao, b, bo, c, co, acc);
        }
    }

    /** Naive reference: A element (i,k) and B element (k,j) as each layout stores them. */
    static float aAt(Layout l, float[] a, int ao, int M, int K, int i, int k) {
        return l == Layout.TN ? a[ao + k * M + i] : a[ao + i * K + k];
    }

    static float bAt(Layout l, float[] b, int bo, int N, int K, int k, int j) {
        return l == Layout.NT ? b[bo + j * K + k] : b[bo + k * N + j];
    }

    /** Runs one GEMM case with offsets and guard zones, checks every element and that nothing else was written. */
    void checkGemm(Random r, Layout l, int M, int N, int K, boolean acc) {
        int ao = 3, bo = 5, co = 7, guard = 11;
        float[] a = rand(r, ao + M * K + guard), b = rand(r, bo + N * K + guard);
        float[] c = rand(r, co + M * N + guard);
        float[] c0 = c.clone();
        gemm(vk, l, M, N, K, a, ao, b, bo, c, co, acc);
        for (int i = 0; i < co; i++) assertEquals(c0[i], c[i], "C written before its offset");
        for (int i = co + M * N; i < c.length; i++) assertEquals(c0[i], c[i], "C written past its end");
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s = 0, sa = 0;
                for (int k = 0; k < K; k++) {
                    double p = (double) aAt(l, a, ao, M, K, i, k) * bAt(l, b, bo, N, K, k, j);
                    s += p;
                    sa += Math.abs(p);
                }
                double init = acc ? c0[co + i * N + j] : 0;
                double ref = init + s;
                // float32 recursive summation with FMA: at most one rounding per step (+1 for the final add).
                double bound = (K + 2) * (double) U * (sa + Math.abs(init)) + 1e-30;
                double got = c[co + i * N + j];
                if (!(Math.abs(got - ref) <= bound))
                    fail(String.format("%s %dx%dx%d acc=%b C[%d,%d]=%g ref %g bound %g", l, M, N, K, acc, i, j, got, ref, bound));
            }
    }

    @Test
    void gemmAllLayoutsOnTailShapes() {
        Random r = new Random(42);
        int[] small = {1, 7, 16, 17, 33};
        for (Layout l : Layout.values())
            for (int M : small) for (int N : small) for (int K : small)
                checkGemm(r, l, M, N, K, (M + N + K) % 2 == 0);
        // Every tail length along each axis, the others moderate; both accumulate modes.
        for (Layout l : Layout.values())
            for (int t : TAILS)
                for (boolean acc : new boolean[] {false, true}) {
                    checkGemm(r, l, t, 13, 31, acc);
                    checkGemm(r, l, 15, t, 17, acc);
                    checkGemm(r, l, 7, 33, t, acc);
                }
    }

    @Test
    void gemmOddShapesAroundTheRegisterTile() {
        // 1, 3, 17, 63, 65, 257 and the tile's own edges: MR ± 1 rows, NR ± 1 columns, KC ± 1 depth.
        Random r = new Random(11);
        int mr = VectorGemm.MR, nr = VectorGemm.NR, kc = VectorGemm.KC;
        int[] ms = {3, 17, 63, 65, mr - 1, mr + 1, 2 * mr + 1}, ns = {1, 3, 17, 63, 65, nr - 1, nr + 1}, ks = {1, 3, 65, 257, kc + 1};
        for (Layout l : Layout.values())
            for (int i = 0; i < ms.length; i++)
                for (int j = 0; j < ns.length; j++)
                    checkGemm(r, l, Math.max(1, ms[i]), Math.max(1, ns[j]), ks[(i + j) % ks.length], (i + j) % 2 == 0);
    }

    @Test
    void gemmPlanFitsTheRegistersAndReadsCacheSizes() {
        // accumulators + B vectors + one broadcast must fit 32 registers with 16 lanes (AVX-512), 16 otherwise
        int regs = VectorGemm.L >= 16 ? 32 : 16;
        assertTrue(VectorGemm.MR * VectorGemm.NV + VectorGemm.NV + 1 <= regs, VectorKernels.gemmDescription());
        assertTrue(VectorGemm.KC >= 1 && VectorGemm.MC % VectorGemm.MR == 0 && VectorGemm.NC % VectorGemm.NR == 0);
        assertEquals(32L << 10, GemmPlan.parseSize("32K"));
        assertEquals(32L << 20, GemmPlan.parseSize("32M"));
        assertEquals(4096, GemmPlan.parseSize("4096"));
    }

    @Test
    void gemmBlockedShapes() {
        // K > KC (several K blocks), N > NC (several N blocks), M not a multiple of MR; large enough to go parallel.
        Random r = new Random(7);
        int[][] shapes = {{100, 257, 31}, {37, 33, 600}, {61, 400, 300}, {2, 450, 260}, {130, 20, 513}};
        for (Layout l : Layout.values())
            for (int[] s : shapes) {
                checkGemm(r, l, s[0], s[1], s[2], false);
                checkGemm(r, l, s[0], s[1], s[2], true);
            }
    }

    @Test
    void gemvPathForSmallM() {
        Random r = new Random(9);
        for (Layout l : Layout.values())
            for (int m : new int[] {1, 2, 8, 9})
                for (int n : new int[] {1, 3, 17, 65, 300, 1100})
                    for (int k : new int[] {1, 7, 33, 257})
                        checkGemm(r, l, m, n, k, (m + n + k) % 2 == 1);
    }

    @Test
    void gemmZeroK() {
        float[] c = {1, 2, 3, 4, 5, 6};
        vk.gemmNT(2, 3, 0, new float[0], 0, new float[0], 0, c, 0, true);
        assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, c);
        vk.gemmNN(2, 3, 0, new float[0], 0, new float[0], 0, c, 0, false);
        assertArrayEquals(new float[6], c);
    }

    @Test
    void gemmResultDoesNotDependOnThreadCount() {
        Random r = new Random(3);
        int saved = Parallel.threads();
        try {
            // Multiple K and N blocks, row split, column split (few rows) and both GEMV paths; all above the parallel threshold.
            int[][] shapes = {{61, 400, 270}, {1, 2100, 300}, {9, 700, 100}, {5, 1100, 200}, {2, 1500, 100}};
            for (Layout l : Layout.values())
                for (int[] s : shapes) {
                    int M = s[0], N = s[1], K = s[2];
                    float[] a = rand(r, M * K), b = rand(r, N * K), c0 = rand(r, M * N);
                    for (boolean acc : new boolean[] {false, true}) {
                        float[] c1 = c0.clone(), c2 = c0.clone();
                        Parallel.setThreads(1);
                        gemm(vk, l, M, N, K, a, 0, b, 0, c1, 0, acc);
                        Parallel.setThreads(2);
                        gemm(vk, l, M, N, K, a, 0, b, 0, c2, 0, acc);
                        for (int i = 0; i < c1.length; i++)
                            assertEquals(Float.floatToRawIntBits(c1[i]), Float.floatToRawIntBits(c2[i]),
                                    l + " " + Arrays.toString(s) + " element " + i + " differs between 1 and 2 threads");
                    }
                }
        } finally {
            Parallel.setThreads(saved);
        }
    }

    @Test
    void frozenWeightsAreReadFromAPackedCopyWithIdenticalResults() {
        int saved = Parallel.threads();
        try {
            // Several K blocks with a short last one, N off the panel width, rows past the GEMV path (row split);
            // then few rows and many panels, so that 2 threads split the columns (panels at jc > 0).
            checkFrozen(new Random(8), 37, 3 * VectorGemm.NR + 5, VectorGemm.KC + 37);
            checkFrozen(new Random(9), VectorGemm.gemvMaxRows(VectorGemm.NT) + 3, 9 * VectorGemm.NR + 7, 300);
        } finally {
            Parallel.setThreads(saved);
        }
    }

    private void checkFrozen(Random r, int M, int N, int K) {
        int bo = 9;
        float[] a = rand(r, M * K), b = rand(r, bo + N * K), c0 = rand(r, M * N);
        try {
            for (boolean acc : new boolean[] {false, true}) {
                float[] unfrozen = c0.clone();
                vk.gemmNT(M, N, K, a, 0, b, bo, unfrozen, 0, acc);
                vk.freezeWeights(java.util.List.of(b));
                for (int threads : new int[] {1, 2}) {
                    Parallel.setThreads(threads);
                    float[] c = c0.clone();
                    vk.gemmNT(M, N, K, a, 0, b, bo, c, 0, acc);
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < N; j++) {
                            double s = acc ? c0[i * N + j] : 0, sa = Math.abs(s);
                            for (int k = 0; k < K; k++) {
                                double p = (double) a[i * K + k] * b[bo + j * K + k];
                                s += p;
                                sa += Math.abs(p);
                            }
                            assertEquals(s, c[i * N + j], (K + 2) * (double) U * sa, "frozen C[" + i + "," + j + "]");
                            assertEquals(Float.floatToRawIntBits(unfrozen[i * N + j]), Float.floatToRawIntBits(c[i * N + j]),
                                    "frozen and unfrozen products differ at " + i + "," + j + " on " + threads + " threads");
                        }
                }
                assertTrue(FrozenWeights.packedBytes(b) >= 4L * K * N, "no packed copy was made");
                // The copy is what is read: a change to the frozen array is not seen until it thaws.
                float saved = b[bo];
                b[bo] += 1f;
                float[] stale = c0.clone();
                vk.gemmNT(M, N, K, a, 0, b, bo, stale, 0, acc);
                assertEquals(Float.floatToRawIntBits(unfrozen[0]), Float.floatToRawIntBits(stale[0]), "the packed copy was not read");
                vk.thawWeights(java.util.List.of(b));
                assertEquals(0, FrozenWeights.packedBytes(b), "thaw drops the packed copies");
                float[] fresh = c0.clone();
                vk.gemmNT(M, N, K, a, 0, b, bo, fresh, 0, acc);
                double sa = Math.abs(unfrozen[0]) + Math.abs(a[0]);
                for (int k = 0; k < K; k++) sa += Math.abs((double) a[k] * b[bo + k]);
                assertEquals(unfrozen[0] + a[0], fresh[0], 2 * (K + 2) * (double) U * sa, "after thaw the new weight is read");
                b[bo] = saved;
            }
        } finally {
            vk.thawWeights(java.util.List.of(b));
        }
    }

    /** Σᵢ x[xo+i]·bf16(rows[ro + i·step]) and Σᵢ|…| over i < n, in double. */
    private static double[] bf16Dot(int n, float[] x, int xo, short[] rows, int ro, int step) {
        double s = 0, sa = 0;
        for (int i = 0; i < n; i++) {
            double p = (double) x[xo + i] * dev.ultramem.core.Bf16.toFloat(rows[ro + i * step]);
            s += p;
            sa += Math.abs(p);
        }
        return new double[] {s, sa};
    }

    @Test
    void bf16RoundingAndWideningMatchTheScalarConversionBitForBit() {
        Random r = new Random(22);
        int n = 1000, xo = 3, so = 5;
        float[] x = new float[xo + n];
        for (int i = 0; i < n; i++) {
            x[xo + i] = switch (i % 10) {
                case 0 -> Float.intBitsToFloat(r.nextInt());            // any bit pattern, NaNs and denormals included
                case 1 -> Float.intBitsToFloat(0x3f808000 + (r.nextBoolean() ? 0x10000 : 0));  // exact ties, both parities
                case 2 -> r.nextBoolean() ? Float.POSITIVE_INFINITY : Float.NEGATIVE_INFINITY;
                case 3 -> Float.intBitsToFloat(0x7f7fffff);             // rounds up to infinity
                default -> (float) (r.nextGaussian() * Math.pow(10, r.nextInt(12) - 6));
            };
        }
        short[] got = new short[so + n + 2];
        vk.roundToBf16(n, x, xo, got, so);
        for (int i = 0; i < n; i++)
            assertEquals(dev.ultramem.core.Bf16.round(x[xo + i]), got[so + i], "roundToBf16 of " + Float.toHexString(x[xo + i]));
        assertEquals(0, got[so + n], "roundToBf16 wrote past its end");
        float[] back = new float[xo + n + 2];
        vk.widenBf16(n, got, so, back, xo);
        for (int i = 0; i < n; i++)
            assertEquals(Float.floatToRawIntBits(dev.ultramem.core.Bf16.toFloat(got[so + i])), Float.floatToRawIntBits(back[xo + i]),
                    "widenBf16 element " + i);
        assertEquals(0f, back[xo + n], "widenBf16 wrote past its end");
    }

    @Test
    void bf16KvKernelsMatchTheDoubleReference() {
        Random r = new Random(21);
        for (int n : new int[] {1, 5, 33})
            for (int K : new int[] {1, 7, 16, 17, 64, 100}) {
                int qo = 3, ro = 5, oo = 2;
                float[] q = rand(r, qo + K), w = rand(r, qo + n);
                short[] rows = new short[ro + n * K + 7];
                for (int i = 0; i < rows.length; i++) rows[i] = dev.ultramem.core.Bf16.round((float) r.nextGaussian());
                float[] dots = new float[oo + n + 3], sums = new float[oo + K + 3];
                vk.dotsBf16(n, K, q, qo, rows, ro, dots, oo);
                vk.weightedSumBf16(n, K, w, qo, rows, ro, sums, oo);
                for (int j = 0; j < n; j++) {
                    double[] ref = bf16Dot(K, q, qo, rows, ro + j * K, 1);
                    assertEquals(ref[0], dots[oo + j], (K + 2) * (double) U * ref[1] + 1e-30, "dotsBf16 n " + n + " K " + K + " row " + j);
                }
                for (int k = 0; k < K; k++) {
                    double[] ref = bf16Dot(n, w, qo, rows, ro + k, K);
                    assertEquals(ref[0], sums[oo + k], (n + 2) * (double) U * ref[1] + 1e-30, "weightedSumBf16 n " + n + " K " + K + " column " + k);
                }
                assertEquals(0f, dots[oo + n], "dotsBf16 wrote past its end");
                assertEquals(0f, sums[oo + K], "weightedSumBf16 wrote past its end");
                assertEquals(0f, dots[oo - 1], "dotsBf16 wrote before its offset");
            }
    }

    @Test
    void dotAndAxpy() {
        Random r = new Random(5);
        for (int n : TAILS) {
            float[] a = rand(r, n + 5), b = rand(r, n + 9);
            double sa = 0, s = 0;
            for (int i = 0; i < n; i++) { s += (double) a[3 + i] * b[7 + i]; sa += Math.abs((double) a[3 + i] * b[7 + i]); }
            float got = vk.dot(n, a, 3, b, 7);
            assertEquals(s, got, (n + 2) * U * sa + 1e-30, "dot n=" + n);

            float alpha = (float) r.nextGaussian();
            float[] y = rand(r, n + 4), y0 = y.clone();
            vk.axpy(n, alpha, a, 2, y, 1);
            for (int i = 0; i < y.length; i++) {
                boolean in = i >= 1 && i <= n;
                double ax = in ? (double) alpha * a[2 + i - 1] : 0;
                assertEquals(y0[i] + ax, y[i], U * (Math.abs(y0[i]) + Math.abs(ax)) + 1e-30, "axpy n=" + n + " i=" + i);
            }
        }
    }

    @Test
    void rmsnormForwardAndBackward() {
        Random r = new Random(11);
        for (int d : TAILS) for (int rows : new int[] {3, VectorKernels.PARALLEL_ELEMENTS / d + 17}) {  // serial, split over threads
            float[] x = rand(r, 2 + rows * d), w = rand(r, d), dy = rand(r, 1 + rows * d);
            for (float[] wt : new float[][] {w, null}) {
                float[] y1 = new float[4 + rows * d], y2 = y1.clone(), rs1 = new float[rows + 1], rs2 = rs1.clone();
                vk.rmsnormForward(rows, d, x, 2, wt, 1e-5f, y1, 4, rs1, 1);
                sk.rmsnormForward(rows, d, x, 2, wt, 1e-5f, y2, 4, rs2, 1);
                for (int i = 0; i < rows; i++) assertEquals(rs2[1 + i], rs1[1 + i], 8 * (d / 8 + 4) * U * rs2[1 + i], "rstd d=" + d);
                for (int i = 0; i < y1.length; i++) assertEquals(y2[i], y1[i], (d / 8 + 8) * U * Math.abs(y2[i]) + 1e-30, "y d=" + d);

                for (boolean acc : new boolean[] {false, true}) {
                    float[] dx1 = rand(r, 3 + rows * d), dx2 = dx1.clone();
                    float[] dw1 = wt == null ? null : rand(r, d), dw2 = dw1 == null ? null : dw1.clone();
                    float[] dwInit = dw1 == null ? null : dw1.clone();
                    vk.rmsnormBackward(rows, d, x, 2, wt, rs2, 1, dy, 1, dx1, 3, dw1, acc);
                    sk.rmsnormBackward(rows, d, x, 2, wt, rs2, 1, dy, 1, dx2, 3, dw2, acc);
                    for (int row = 0; row < rows; row++) {
                        double rs = rs2[1 + row], sabs = 0;
                        for (int i = 0; i < d; i++) sabs += Math.abs((double) dy[1 + row * d + i] * (wt == null ? 1 : wt[i]) * x[2 + row * d + i]);
                        for (int i = 0; i < d; i++) {
                            int j = 3 + row * d + i;
                            double gi = Math.abs(dy[1 + row * d + i] * (wt == null ? 1.0 : wt[i]));
                            double scale = rs * gi + rs * rs * rs * sabs / d * Math.abs(x[2 + row * d + i]) + (acc ? Math.abs(dx2[j]) : 0);
                            assertEquals(dx2[j], dx1[j], (d / 4 + 8) * U * scale + 1e-30, "dx d=" + d + " acc=" + acc);
                        }
                    }
                    if (dw1 != null)
                        for (int i = 0; i < d; i++) {
                            double scale = Math.abs(dwInit[i]);
                            for (int row = 0; row < rows; row++)
                                scale += Math.abs((double) dy[1 + row * d + i] * x[2 + row * d + i] * rs2[1 + row]);
                            assertEquals(dw2[i], dw1[i], 4 * (rows + 1) * U * scale + 1e-30, "dw d=" + d);
                        }
                }
            }
        }
    }

    @Test
    void rmsnormSplitOverThreadsIsBitIdenticalToOneThread() {
        int d = 96, rows = 2 * VectorKernels.PARALLEL_ELEMENTS / d + 5;
        Random r = new Random(23);
        float[] x = rand(r, rows * d), w = rand(r, d), dy = rand(r, rows * d);
        float[][] y = new float[3][rows * d], rs = new float[3][rows], dx = new float[3][rows * d], dw = new float[3][d];
        int saved = Parallel.threads();
        try {
            for (int t = 1; t <= 2; t++) {
                Parallel.setThreads(t);
                vk.rmsnormForward(rows, d, x, 0, w, 1e-5f, y[t], 0, rs[t], 0);
                vk.rmsnormBackward(rows, d, x, 0, w, rs[t], 0, dy, 0, dx[t], 0, dw[t], false);
            }
        } finally {
            Parallel.setThreads(saved);
        }
        assertArrayEquals(y[1], y[2]);
        assertArrayEquals(rs[1], rs[2]);
        assertArrayEquals(dx[1], dx[2]);
        assertArrayEquals(dw[1], dw[2]);
    }

    @Test
    void softmaxRowsWithStrideAndMask() {
        Random r = new Random(13);
        for (int n : TAILS) {
            int rows = 4, stride = n + 3;
            float[] x1 = rand(r, 2 + rows * stride);
            for (int i = 0; i < x1.length; i++) x1[i] *= 8;
            int masked = 2 + stride + n / 2;
            if (n > 1) x1[masked] = Float.NEGATIVE_INFINITY; // a masked position
            float[] x2 = x1.clone();
            vk.softmaxRows(rows, n, x1, 2, stride);
            sk.softmaxRows(rows, n, x2, 2, stride);
            for (int i = 0; i < x1.length; i++)
                assertEquals(x2[i], x1[i], (n / 8 + 8) * U * Math.abs(x2[i]) + 1e-30, "softmax n=" + n + " i=" + i);
            if (n > 1) assertEquals(0f, x1[masked]);
            for (int row = 0; row < rows; row++) {
                double s = 0;
                for (int i = 0; i < n; i++) s += x1[2 + row * stride + i];
                assertEquals(1.0, s, 1e-5, "row sums to one");
            }
        }
    }

    @Test
    void maxAndExpScaledMatchTheDoubleReference() {
        Random r = new Random(29);
        for (int n : TAILS) {
            float[] x = rand(r, n + 3);
            for (int i = 0; i < x.length; i++) x[i] *= 20;
            float want = Float.NEGATIVE_INFINITY;
            for (int i = 0; i < n; i++) want = Math.max(want, x[3 + i]);
            assertEquals(want, vk.max(n, x, 3), "max n=" + n);
            assertEquals(want, sk.max(n, x, 3), "scalar max n=" + n);
            float scale = 0.37f, shift = 0.37f * want;
            float[] y = x.clone();
            float sum = vk.expScaled(n, y, 3, scale, shift);
            double ref = 0;
            for (int i = 0; i < n; i++) {
                double e = Math.exp((double) scale * x[3 + i] - shift);
                ref += e;
                // fma(scale, x, −shift) is exact to 1 ulp of the argument (|arg| ≤ 15 here), exp to 1 ulp
                assertEquals(e, y[3 + i], 40 * U * e + 1e-30, "expScaled n=" + n + " i=" + i);
            }
            for (int i = 0; i < 3; i++) assertEquals(x[i], y[i], "outside the row");
            assertEquals(ref, sum, (n + 40) * U * ref, "expScaled sum n=" + n);
        }
    }

    @Test
    void swigluSplitOverThreadsMatchesTheScalarReferenceAndOneThread() {
        int n = 3 * VectorKernels.PARALLEL_ELEMENTS + 13;  // split over threads, with a scalar tail
        Random r = new Random(19);
        float[] a = rand(r, n), g = rand(r, n), d = rand(r, n);
        float[][] out = new float[3][n], da = new float[3][n], dg = new float[3][n];
        int saved = Parallel.threads();
        try {
            for (int t = 1; t <= 2; t++) {
                Parallel.setThreads(t);
                vk.swigluForward(n, a, 0, g, 0, out[t], 0);
                vk.swigluBackward(n, a, 0, g, 0, d, 0, da[t], 0, dg[t], 0);
            }
        } finally {
            Parallel.setThreads(saved);
        }
        sk.swigluForward(n, a, 0, g, 0, out[0], 0);
        sk.swigluBackward(n, a, 0, g, 0, d, 0, da[0], 0, dg[0], 0);
        assertArrayEquals(out[1], out[2]);
        assertArrayEquals(da[1], da[2]);
        assertArrayEquals(dg[1], dg[2]);
        for (int i = 0; i < n; i++) {
            assertEquals(out[0][i], out[2][i], 8 * U * Math.abs(out[0][i]) + 1e-37, "swiglu at " + i);
            assertEquals(da[0][i], da[2][i], 8 * U * Math.abs(da[0][i]) + 1e-37, "da at " + i);
            assertEquals(dg[0][i], dg[2][i], 16 * U * (Math.abs(d[i] * a[i]) + Math.abs(dg[0][i])) + 1e-37, "dg at " + i);
        }
    }

    @Test
    void swigluForwardAndBackward() {
        Random r = new Random(17);
        for (int n : TAILS) {
            float[] a = rand(r, n + 1), g = rand(r, n + 2), d = rand(r, n + 3);
            for (int i = 0; i < g.length; i++) g[i] *= 6;
            if (n > 5) { g[2] = 90f; g[3] = -90f; } // saturated sigmoid
            float[] o1 = new float[n + 4], o2 = o1.clone();
            vk.swigluForward(n, a, 1, g, 2, o1, 4);
            sk.swigluForward(n, a, 1, g, 2, o2, 4);
            for (int i = 0; i < o1.length; i++) assertEquals(o2[i], o1[i], 8 * U * Math.abs(o2[i]) + 1e-37, "swiglu n=" + n);
            float[] da1 = new float[n + 5], dg1 = new float[n + 6], da2 = da1.clone(), dg2 = dg1.clone();
            vk.swigluBackward(n, a, 1, g, 2, d, 3, da1, 5, dg1, 6);
            sk.swigluBackward(n, a, 1, g, 2, d, 3, da2, 5, dg2, 6);
            for (int i = 0; i < da1.length; i++) assertEquals(da2[i], da1[i], 8 * U * Math.abs(da2[i]) + 1e-37, "da n=" + n);
            for (int i = 0; i < n; i++) {
                // dg = d·a·σ(1 + g(1−σ)): bound relative to the magnitude of its terms.
                float gv = g[2 + i];
                double sig = 1 / (1 + Math.exp(-gv));
                double scale = Math.abs(d[3 + i] * a[1 + i]) * sig * (1 + Math.abs(gv) * (1 - sig));
                assertEquals(dg2[6 + i], dg1[6 + i], 16 * U * scale + 1e-37, "dg n=" + n);
            }
        }
    }

    /**
     * The vector exp must give the bits of the same formula evaluated with scalar Java float arithmetic
     * (exactly rounded, so independent of the JIT): compiled kernels then match interpreted ones.
     */
    @Test
    void vectorExpLanesEqualTheScalarFormulaBitForBit() {
        int n = 1 << 14;
        float[] x = new float[n], y = new float[n];
        dev.ultramem.core.Rng rng = new dev.ultramem.core.Rng(77);
        for (int i = 0; i < n; i++) x[i] = (float) ((rng.nextDouble() * 2 - 1) * 95);
        x[0] = Float.NaN; x[1] = Float.POSITIVE_INFINITY; x[2] = Float.NEGATIVE_INFINITY; x[3] = -0f; x[4] = 88.72283f; x[5] = -103.97208f; x[6] = -87.5f;
        VectorKernels.expArray(n, x, 0, y, 0);
        for (int i = 0; i < n; i++) {
            float want = scalarExpFormula(x[i]);
            assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(y[i]), "exp(" + x[i] + "): " + y[i] + " vs " + want);
        }
    }

    /** Cody–Waite reduction, degree-5 polynomial, 2ⁿ in two halves — written out independently of the kernel. */
    private static float scalarExpFormula(float x) {
        if (x != x) return x;
        if (x < -103.97208f) return 0f;
        if (x > 88.72283f) return Float.POSITIVE_INFINITY;
        float n = Math.fma(x, 1.44269504f, 12582912f) - 12582912f;
        float r = Math.fma(n, -0.693145751953125f, x);
        r = Math.fma(n, -1.42860677e-6f, r);
        float p = 1.9875691500e-4f;
        for (float c : new float[]{1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f})
            p = Math.fma(p, r, c);
        p = Math.fma(p, r * r, r) + 1f;
        int k = (int) n, h = k >> 1;
        return p * Float.intBitsToFloat((h + 127) << 23) * Float.intBitsToFloat((k - h + 127) << 23);
    }

    @Test
    void vectorExpIsWithinOneUlp() {
        int n = 1 << 16;
        float[] x = new float[n], y = new float[n];
        for (int i = 0; i < n; i++) x[i] = -103f + (103f + 88.7f) * i / n;
        VectorKernels.expArray(n, x, 0, y, 0);
        double worst = 0;
        for (int i = 0; i < n; i++) {
            double ref = Math.exp(x[i]);
            worst = Math.max(worst, Math.abs(y[i] - ref) / Math.ulp((float) ref));
        }
        assertTrue(worst <= 1.0, "vector exp max error " + worst + " ulp");
        float[] special = {Float.NEGATIVE_INFINITY, -200f, 0f, 1f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        float[] out = new float[special.length];
        VectorKernels.expArray(special.length, special, 0, out, 0);
        assertEquals(0f, out[0]);
        assertEquals(0f, out[1]);
        assertEquals(1f, out[2]);
        assertEquals((float) Math.E, out[3], Math.ulp((float) Math.E));
    }

    @Test
    void vectorKernelsAreTheDefaultAndScalarCanBeSelected() {
        assertNull(System.getProperty("ultramem.kernels"), "tests run without an override");
        assertInstanceOf(VectorKernels.class, Kernels.get());
        assertEquals("vector", Kernels.get().name());
        Kernels s = KernelsHolder.select("scalar");
        assertEquals(ScalarKernels.class, s.getClass());
        assertEquals("scalar", s.name());
        assertInstanceOf(VectorKernels.class, KernelsHolder.select("vector"));
        assertThrows(IllegalArgumentException.class, () -> KernelsHolder.select("fast"));
        // The fast path really uses wide vectors on this JVM.
        assertTrue(VectorKernels.L >= 4, "vector species has " + VectorKernels.L + " lanes");
    }
}
