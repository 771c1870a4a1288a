package dev.ultramem.memory;

import dev.ultramem.core.Parallel;
import dev.ultramem.core.UserError;
import dev.ultramem.kernel.Kernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * Product-key retrieval shared by PKM and Memory+ (Lample et al. 2019): per head a row query and a
 * column query are scored against {@code knum} row keys and {@code knum} column keys, the best
 * {@code k1} of each side form an additive {@code k1 × k1} grid {@code s_row[i] + s_col[j]}, the best
 * {@code knn} grid cells are kept (in descending order) with value index {@code i·knum + j} (i, j = key
 * ids), and a softmax over those {@code knn} scores per head gives the lookup weights. The pooled
 * lookup {@code o[t] = Σ_heads Σ_k w·V[idx]} reads rows of an off-heap value table.
 *
 * <p>Layouts: query {@code [n][H][2][kdim]} (side 0 = row, 1 = column), keys {@code [H][2][knum][kdim]},
 * selections {@code [n][H·knn]} with heads concatenated. Buffers grow with n and are reused.
 *
 * <p>Top-k selections carry no gradient: only keys that scored a selected grid cell receive one, and
 * only selected value rows receive a (scatter-added) gradient.
 */
final class ProductKeys {

    final int heads, knum, kdim, k1, knn;
    private final int slots; // H·knn selections per token

    // forward state (valid after forward, read by backward)
    private int n;
    private float[] queryT = new float[0];   // [H][2][n][kdim]
    private float[] scores = new float[0];   // [H][2][n][knum]
    private int[] index = new int[0];        // [n][H·knn] value row i·knum + j
    private float[] raw = new float[0];      // [n][H·knn] additive grid score
    private float[] weight = new float[0];   // [n][H·knn] softmax per head
    // (row, pair) grouping of the selections: pairs sorted by value row, one CSR run per distinct row
    private long[] sortedPairs = new long[0];
    private int[] rowStart = new int[0];
    private int distinctRows;

    // backward scratch
    private float[] dRaw = new float[0];

    private Scratch[] scratch = new Scratch[0];

    private static final class Scratch {
        final int[] rowIdx, colIdx, gridIdx;
        final float[] rowVal, colVal, grid, gridVal;
        float[] acc, row;

        Scratch(int k1, int knn) {
            rowIdx = new int[k1]; colIdx = new int[k1]; rowVal = new float[k1]; colVal = new float[k1];
            grid = new float[k1 * k1]; gridIdx = new int[knn]; gridVal = new float[knn];
            acc = new float[0];
            row = new float[0];
        }

        float[] row(int len) {
            if (row.length < len) row = new float[len];
            return row;
        }

        float[] acc(int len) {
            if (acc.length < len) acc = new float[len];
            return acc;
        }
    }

    ProductKeys(int heads, int knum, int kdim, int stage1Knn, int knn) {
        if (stage1Knn > knum) throw new UserError("config: row/column top-k (" + stage1Knn + ") exceeds mem_knum (" + knum + ")");
        if ((long) stage1Knn * stage1Knn < knn) throw new UserError("config: mem_knn (" + knn + ") exceeds the grid size " + stage1Knn + "²");
        if ((long) knum * knum > Integer.MAX_VALUE) throw new UserError("config: mem_knum² must be below 2^31, got mem_knum " + knum);
        this.heads = heads; this.knum = knum; this.kdim = kdim; this.k1 = stage1Knn; this.knn = knn;
        this.slots = heads * knn;
    }

    /** Selections per token (H·knn). */
    int slots() { return slots; }

    int[] indices() { return index; }

    float[] rawScores() { return raw; }

    float[] weights() { return weight; }

    /** Distinct value rows selected by the last forward (after {@link #groupByRow}). */
    int distinctRows() { return distinctRows; }

    private void ensure(int n) {
        int hs = heads * 2;
        if (queryT.length < (long) hs * n * kdim) {
            queryT = new float[hs * n * kdim];
        }
        if (scores.length < (long) hs * n * knum) {
            scores = new float[hs * n * knum];
        }
        if (index.length < n * slots) {
            index = new int[n * slots]; raw = new float[n * slots]; weight = new float[n * slots];
            dRaw = new float[n * slots]; sortedPairs = new long[n * slots]; rowStart = new int[n * slots + 1];
        }
        int t = Parallel.threads();
        if (scratch.length < t) {
            Scratch[] s = Arrays.copyOf(scratch, t);
            for (int i = scratch.length; i < t; i++) s[i] = new Scratch(k1, knn);
            scratch = s;
        }
    }

    /** Scores, two-stage top-k and softmax weights for n tokens. */
    void forward(int n, float[] query, float[] keys) {
        ensure(n);
        this.n = n;
        Kernels K = Kernels.get();
        int hs = heads * 2, qStride = hs * kdim;
        // side-major copy of the query so that each (head, side) scoring is one GEMM against its keys
        Parallel.forRange(n, 64, (s, e) -> {
            for (int t = s; t < e; t++)
                for (int p = 0; p < hs; p++)
                    System.arraycopy(query, t * qStride + p * kdim, queryT, (p * n + t) * kdim, kdim);
        });
        for (int p = 0; p < hs; p++)
            K.gemmNT(n, knum, kdim, queryT, p * n * kdim, keys, p * knum * kdim, scores, p * n * knum, false);

        forEachChunk(n, 16, (sc, s, e) -> {
            for (int t = s; t < e; t++)
                for (int h = 0; h < heads; h++) selectHead(sc, t, h);
        });
        System.arraycopy(raw, 0, weight, 0, n * slots);
        K.softmaxRows(n * heads, knn, weight, 0, knn);
    }

    private void selectHead(Scratch sc, int t, int h) {
        int rowOff = ((2 * h) * n + t) * knum, colOff = ((2 * h + 1) * n + t) * knum;
        topK(scores, rowOff, knum, k1, sc.rowIdx, sc.rowVal);
        topK(scores, colOff, knum, k1, sc.colIdx, sc.colVal);
        float[] g = sc.grid;
        for (int i = 0; i < k1; i++) {
            float r = sc.rowVal[i];
            for (int j = 0; j < k1; j++) g[i * k1 + j] = r + sc.colVal[j];
        }
        topK(g, 0, k1 * k1, knn, sc.gridIdx, sc.gridVal);
        int o = t * slots + h * knn;
        for (int k = 0; k < knn; k++) {
            int cell = sc.gridIdx[k];
            index[o + k] = sc.rowIdx[cell / k1] * knum + sc.colIdx[cell % k1];
            raw[o + k] = sc.gridVal[k];
        }
    }

    /**
     * Backward of {@link #forward}: dWeights {@code [n][H·knn]} is ∂L/∂(softmax weights). Writes
     * ∂L/∂query into dQuery (overwrite, layout of the query) and adds ∂L/∂keys into dKeys.
     * Only the keys of selected grid cells take part, so the cost is O(n·H·knn·kdim), not O(knum).
     */
    void backward(int n, float[] dWeights, float[] query, float[] keys, float[] dQuery, float[] dKeys) {
        if (n != this.n) throw new IllegalStateException("backward called with n=" + n + " after a forward with n=" + this.n);
        Kernels K = Kernels.get();
        int hs = heads * 2, qStride = hs * kdim;
        // softmax backward per head: draw_k = w_k (dw_k − Σ_j w_j dw_j)
        Parallel.forRange(n * heads, 256, (s, e) -> {
            for (int r = s; r < e; r++) {
                int o = r * knn;
                double dot = 0;
                for (int k = 0; k < knn; k++) dot += (double) weight[o + k] * dWeights[o + k];
                for (int k = 0; k < knn; k++) dRaw[o + k] = (float) (weight[o + k] * (dWeights[o + k] - dot));
            }
        });
        Arrays.fill(dQuery, 0, n * qStride, 0f);
        // the grid score s_row[i] + s_col[j] passes its gradient to both key scores it was built from;
        // one (head, side) per task, so each task owns its keys' gradient and its query slots
        Parallel.forRange(hs, 1, (ps, pe) -> {
            for (int p = ps; p < pe; p++) {
                int h = p >> 1, side = p & 1;
                int keyBase = p * knum * kdim;
                for (int t = 0; t < n; t++) {
                    int o = t * slots + h * knn, qOff = t * qStride + p * kdim;
                    for (int k = 0; k < knn; k++) {
                        int z = index[o + k];
                        int key = side == 0 ? z / knum : z % knum;
                        float gs = dRaw[o + k];
                        K.axpy(kdim, gs, keys, keyBase + key * kdim, dQuery, qOff);
                        K.axpy(kdim, gs, query, qOff, dKeys, keyBase + key * kdim);
                    }
                }
            }
        });
    }

    /**
     * Groups the last forward's (token, slot) pairs by value row so that each row is read once and
     * its gradient is written by one thread. Returns the number of distinct rows.
     */
    int groupByRow() {
        int m = n * slots;
        for (int p = 0; p < m; p++) sortedPairs[p] = ((long) index[p] << 32) | p;
        Arrays.sort(sortedPairs, 0, m);
        int runs = 0;
        long prev = -1;
        for (int p = 0; p < m; p++) {
            long row = sortedPairs[p] >>> 32;
            if (row != prev) { rowStart[runs++] = p; prev = row; }
        }
        rowStart[runs] = m;
        distinctRows = runs;
        return runs;
    }

    /**
     * Pooled lookup {@code out[t] = Σ_slots w · V[rowOffset + idx]} over the table {@code [rows][vdim]}
     * (overwrites out {@code [n][vdim]}).
     */
    void lookup(MemorySegment table, long rowOffset, int vdim, float[] out) {
        Kernels K = Kernels.get();
        forEachChunk(n, 16, (sc, s, e) -> {
            float[] row = sc.row(vdim);
            for (int t = s; t < e; t++) {
                int oo = t * vdim;
                Arrays.fill(out, oo, oo + vdim, 0f);
                for (int k = 0; k < slots; k++) {
                    int p = t * slots + k;
                    MemorySegment.copy(table, ValueLayout.JAVA_FLOAT, (rowOffset + index[p]) * vdim * Float.BYTES, row, 0, vdim);
                    K.axpy(vdim, weight[p], row, 0, out, oo);
                }
            }
        });
    }

    /**
     * Backward of {@link #lookup}: {@code dWeights[p] = ⟨V[row], dOut[t]⟩} (overwrite) and the
     * scatter-add {@code dV[row] += Σ w · dOut[t]} into the touched rows only. Needs {@link #groupByRow}.
     */
    void lookupBackward(MemorySegment table, MemorySegment tableGrad, long rowOffset, int vdim, float[] dOut, float[] dWeights) {
        Kernels K = Kernels.get();
        forEachChunk(distinctRows, 8, (sc, s, e) -> {
            float[] acc = sc.acc(vdim), row = sc.row(vdim);
            for (int r = s; r < e; r++) {
                int p0 = rowStart[r], p1 = rowStart[r + 1];
                long byteOff = (rowOffset + (sortedPairs[p0] >>> 32)) * vdim * Float.BYTES;
                MemorySegment.copy(table, ValueLayout.JAVA_FLOAT, byteOff, row, 0, vdim);
                MemorySegment.copy(tableGrad, ValueLayout.JAVA_FLOAT, byteOff, acc, 0, vdim);
                for (int q = p0; q < p1; q++) {
                    int p = (int) sortedPairs[q];
                    int oo = (p / slots) * vdim;
                    dWeights[p] = K.dot(vdim, row, 0, dOut, oo);
                    K.axpy(vdim, weight[p], dOut, oo, acc, 0);
                }
                MemorySegment.copy(acc, 0, tableGrad, ValueLayout.JAVA_FLOAT, byteOff, vdim);
            }
        });
    }

    @FunctionalInterface
    private interface ScratchBody { void run(Scratch sc, int start, int end); }

    private void forEachChunk(int count, int minChunk, ScratchBody body) {
        int t = Math.min(scratch.length, Math.min(Parallel.threads(), Math.max(1, count / minChunk)));
        Parallel.forChunks(count, t, (c, s, e) -> body.run(scratch[c], s, e));
    }

    /**
     * The k largest of {@code s[off .. off+len)}, written in descending order (ties: lower position
     * first) into idx (positions relative to off) and val. A size-k min-heap selection, O(len·log k).
     */
    static void topK(float[] s, int off, int len, int k, int[] idx, float[] val) {
        int size = 0;
        for (int i = 0; i < len; i++) {
            float v = s[off + i];
            if (size < k) {
                // sift up: the root holds the worst kept candidate
                int c = size++;
                while (c > 0) {
                    int parent = (c - 1) >>> 1;
                    if (!worse(v, i, val[parent], idx[parent])) break;
                    val[c] = val[parent]; idx[c] = idx[parent];
                    c = parent;
                }
                val[c] = v; idx[c] = i;
            } else if (worse(val[0], idx[0], v, i)) {
                siftDown(idx, val, 0, size, v, i);
            }
        }
        // heap-sort in place: repeatedly move the worst to the end → descending order
        for (int end = size - 1; end > 0; end--) {
            float wv = val[0]; int wi = idx[0];
            float lv = val[end]; int li = idx[end];
            val[end] = wv; idx[end] = wi;
            siftDown(idx, val, 0, end, lv, li);
        }
    }

    /** True when candidate (a, ia) ranks below (b, ib). */
    private static boolean worse(float a, int ia, float b, int ib) {
        return a < b || (a == b && ia > ib);
    }

    private static void siftDown(int[] idx, float[] val, int c, int size, float v, int vi) {
        while (true) {
            int l = 2 * c + 1;
            if (l >= size) break;
            int r = l + 1;
            int m = (r < size && worse(val[r], idx[r], val[l], idx[l])) ? r : l;
            if (!worse(val[m], idx[m], v, vi)) break;
            val[c] = val[m]; idx[c] = idx[m];
            c = m;
        }
        val[c] = v; idx[c] = vi;
    }
}
