package dev.ultramem.memory;

import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Naive double-precision memory layers written from the specification (official-layers.md §2–§4 and
 * the decisions in spec/README.md), independent of the engine: plain loops over tokens, heads, keys and
 * ranks, top-k by a full stable sort, singular values by Jacobi on CᵀC, erf by its power series. Weights
 * are read by official tensor name from a map of double copies, so a test can perturb any coordinate
 * and re-evaluate (finite differences on this reference give gradients accurate to ~1e-9).
 */
public final class NaiveMemory {
    private NaiveMemory() {}

    /** Double copies of every tensor and buffer, by name (off-heap tables included). */
    public static Map<String, double[]> weights(List<Param> params) {
        Map<String, double[]> w = new HashMap<>();
        for (Param p : params) {
            double[] a = new double[Math.toIntExact(p.numel())];
            for (int i = 0; i < a.length; i++) a[i] = p.get(i);
            w.put(p.name, a);
        }
        return w;
    }

    public static Map<String, int[]> indexBuffers(List<IndexBuffer> bufs) {
        Map<String, int[]> m = new HashMap<>();
        for (IndexBuffer b : bufs) m.put(b.name(), b.data().clone());
        return m;
    }

    // ------------------------------------------------------------------ small pieces

    /** y = w ⊙ x / sqrt(mean(x²) + eps) over x[off, off+len). */
    static double[] rms(double[] x, int off, int len, double[] w, double eps) {
        double ss = 0;
        for (int i = 0; i < len; i++) ss += x[off + i] * x[off + i];
        double inv = 1 / Math.sqrt(ss / len + eps);
        double[] y = new double[len];
        for (int i = 0; i < len; i++) y[i] = w[i] * x[off + i] * inv;
        return y;
    }

    /** positions of a sorted by value descending, ties to the lower position (stable). */
    static Integer[] order(double[] a) {
        Integer[] o = new Integer[a.length];
        for (int i = 0; i < a.length; i++) o[i] = i;
        Arrays.sort(o, (i, j) -> Double.compare(a[j], a[i]));
        return o;
    }

    /**
     * How far the set of the top k of a sorted list is from a tie: the gap between the k-th and
     * (k+1)-th value, relative to the list's largest |value|. (The order within the k does not change
     * the output; tests match winners by index.)
     */
    static double relGap(double[] a, Integer[] o, int k) {
        double scale = 1e-30;
        for (double v : a) scale = Math.max(scale, Math.abs(v));
        return k < a.length ? (a[o[k - 1]] - a[o[k]]) / scale : Double.POSITIVE_INFINITY;
    }

    /** erf by its everywhere-convergent series (2/√π)·e^(−x²)·Σ 2ⁿx^(2n+1)/(1·3·…·(2n+1)), positive terms only. */
    static double erf(double x) {
        double term = x, sum = x;
        for (int n = 0; n < 400 && Math.abs(term) > 1e-18 * Math.abs(sum); n++) {
            term *= 2 * x * x / (2 * n + 3);
            sum += term;
        }
        return Math.min(1, Math.max(-1, 2 / Math.sqrt(Math.PI) * Math.exp(-x * x) * sum));
    }

    static double gelu(double x) { return 0.5 * x * (1 + erf(x / Math.sqrt(2))); }

    /** Eigen-decomposition of a symmetric r×r matrix by cyclic Jacobi: {eigenvalues, eigenvectors as columns}. */
    static double[][] symEig(double[] m, int r) {
        double[] a = m.clone(), v = new double[r * r];
        for (int i = 0; i < r; i++) v[i * r + i] = 1;
        for (int sweep = 0; sweep < 100; sweep++) {
            double off = 0;
            for (int p = 0; p < r; p++) for (int q = p + 1; q < r; q++) off += a[p * r + q] * a[p * r + q];
            if (off < 1e-40) break;
            for (int p = 0; p < r; p++)
                for (int q = p + 1; q < r; q++) {
                    if (a[p * r + q] == 0) continue;
                    double theta = (a[q * r + q] - a[p * r + p]) / (2 * a[p * r + q]);
                    double t = Math.signum(theta == 0 ? 1 : theta) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
                    double c = 1 / Math.sqrt(t * t + 1), s = t * c;
                    double[] J = new double[r * r];
                    for (int i = 0; i < r; i++) J[i * r + i] = 1;
                    J[p * r + p] = c; J[q * r + q] = c; J[p * r + q] = s; J[q * r + p] = -s;
                    a = mul(transpose(J, r), mul(a, J, r), r);
                    v = mul(v, J, r);
                }
        }
        double[] ev = new double[r];
        for (int i = 0; i < r; i++) ev[i] = a[i * r + i];
        return new double[][]{ev, v};
    }

    static double[] mul(double[] a, double[] b, int r) {
        double[] c = new double[r * r];
        for (int i = 0; i < r; i++) for (int j = 0; j < r; j++) for (int k = 0; k < r; k++) c[i * r + j] += a[i * r + k] * b[k * r + j];
        return c;
    }

    static double[] transpose(double[] a, int r) {
        double[] t = new double[r * r];
        for (int i = 0; i < r; i++) for (int j = 0; j < r; j++) t[j * r + i] = a[i * r + j];
        return t;
    }

    /** Singular values of the r×r matrix m, descending: square roots of the eigenvalues of mᵀm. */
    static double[] singularValues(double[] m, int r) {
        double[] ev = symEig(mul(transpose(m, r), m, r), r)[0];
        double[] s = new double[r];
        for (int i = 0; i < r; i++) s[i] = Math.sqrt(Math.max(0, ev[i]));
        Arrays.sort(s);
        for (int i = 0; i < r / 2; i++) { double t = s[i]; s[i] = s[r - 1 - i]; s[r - 1 - i] = t; }
        return s;
    }

    /**
     * Leading singular pair of m: {u, v} with m·v = σ₁·u (v the top eigenvector of mᵀm), sign chosen so
     * that u·uRef ≥ 0 (the sign is a convention; the spec keeps it consistent over steps).
     */
    public static double[][] leadingPair(double[] m, int r, float[] uRef, int uOff) {
        double[][] e = symEig(mul(transpose(m, r), m, r), r);
        int top = 0;
        for (int i = 1; i < r; i++) if (e[0][i] > e[0][top]) top = i;
        double[] v = new double[r], u = new double[r];
        for (int i = 0; i < r; i++) v[i] = e[1][i * r + top];
        double sig = Math.sqrt(e[0][top]), dot = 0;
        for (int i = 0; i < r; i++) {
            for (int j = 0; j < r; j++) u[i] += m[i * r + j] * v[j];
            u[i] /= sig;
            dot += u[i] * uRef[uOff + i];
        }
        if (dot < 0) for (int i = 0; i < r; i++) { u[i] = -u[i]; v[i] = -v[i]; }
        return new double[][]{u, v};
    }

    // ------------------------------------------------------------------ UltraMem v1 / UltraMemV2

    /**
     * Replaces {@code p + "tucker_core_u"/"_v"} in w by the leading singular pair of each head's summed
     * core Σ_c C_c[h], computed here (sign taken from the map's current u, the engine's); returns the
     * largest difference to the values it replaced.
     */
    public static double refreshRankOne(Tucker s, Map<String, double[]> w, String p) {
        int r = s.rank();
        double[] uOld = w.get(p + "tucker_core_u"), vOld = w.get(p + "tucker_core_v");
        double[] u = new double[uOld.length], v = new double[vOld.length];
        float[] uRef = new float[uOld.length];
        for (int i = 0; i < uOld.length; i++) uRef[i] = (float) uOld[i];
        double diff = 0;
        for (int h = 0; h < s.heads(); h++) {
            double[] m = new double[r * r];
            for (int c = 0; c < s.cores(); c++) for (int i = 0; i < r * r; i++) m[i] += w.get(p + "tucker_core." + c)[h * r * r + i];
            double[][] uv = leadingPair(m, r, uRef, h * r);
            for (int i = 0; i < r; i++) {
                u[h * r + i] = uv[0][i]; v[h * r + i] = uv[1][i];
                diff = Math.max(diff, Math.max(Math.abs(u[h * r + i] - uOld[h * r + i]), Math.abs(v[h * r + i] - vOld[h * r + i])));
            }
        }
        w.put(p + "tucker_core_u", u);
        w.put(p + "tucker_core_v", v);
        return diff;
    }


    /**
     * The shape of one Tucker memory layer, derived here from the config by the spec's formulas (§2.1, §3.2).
     *
     * @param rowSlot query slot (of kdim) of head h, rank ρ for the row side: {@code [h·r + ρ]}; colSlot likewise
     */
    public record Tucker(int d, int kdim, int heads, int keyNum, int rank, int cores, int knn1, int knn, int nSlots,
                         int[] rowSlot, int[] colSlot, int vdim, int preVdim, boolean gelu, int groups, boolean concat,
                         long valueNum, long allValueNum, long offset, double penalty, double tau, double balance) {

        /** width of the pooled lookup before values_proj. */
        int outWidth() { return concat ? groups * vdim : vdim; }
    }

    /** v1 (§2.1): key_num = √E·knum, the layer's own knum² table, E concatenated virtual blocks, shared row/column query. */
    public static Tucker v1(MemoryConfig c) {
        int ket = (int) Math.round(Math.sqrt(c.v1ValueExpand()));
        int[][] s = sharedSlots(c.heads(), c.tuckerRank());
        long vn = (long) c.knum() * c.knum();
        return new Tucker(c.dModel(), c.kdim(), c.heads(), ket * c.knum(), c.tuckerRank(), c.tuckerCores(), stage1(c), c.knn(),
                2 * ((c.heads() + 1) / 2), s[0], s[1], c.vdim(), 0, false, c.v1ValueExpand(), true, vn, vn, 0,
                c.tuckerPenalty(), c.tuckerTau(), 0);
    }

    /**
     * V2 (§3.2–3.5): ring window of the shared table, knum_l = floor(sqrt(all·share)), offset layer·knum²,
     * key_num = key_expand·knum_l, groups = key_expand² summed (value_expand 1) or concatenated; query per
     * decision table: "paper" a row and a column query per rank, "released"/"shared" one pair for all ranks.
     */
    public static Tucker v2(MemoryConfig c, int layerId, int memLayers) {
        long all = (long) c.knum() * c.knum() * memLayers;
        long kl = (long) Math.floor(Math.sqrt(all * c.shareRatio()));
        while ((kl + 1) * (kl + 1) <= all * c.shareRatio()) kl++;
        while (kl * kl > all * c.shareRatio()) kl--;
        int r = c.tuckerRank(), H = c.heads(), pairs = (H + 1) / 2, ket = c.keyExpandTime();
        int[][] s;
        int nSlots;
        if (c.queryMode().equals("paper")) {
            // [pair][side][rank][kdim]: row query of rank ρ = (side 0, ρ), column query = (side 1, ρ)
            s = new int[2][H * r];
            for (int h = 0; h < H; h++)
                for (int p = 0; p < r; p++) { s[0][h * r + p] = (h / 2) * 2 * r + p; s[1][h * r + p] = (h / 2) * 2 * r + r + p; }
            nSlots = 2 * r * pairs;
        } else {
            s = sharedSlots(H, r);
            nSlots = c.queryMode().equals("released") ? 2 * r : 2 * pairs;
        }
        return new Tucker(c.dModel(), c.kdim(), H, Math.toIntExact(ket * kl), r, c.tuckerCores(), stage1(c), c.knn(), nSlots,
                s[0], s[1], c.vdim(), c.preVdim(), c.useGluAct(), ket * ket, c.valueExpandTime() == ket * ket, kl * kl, all,
                (long) layerId * c.knum() * c.knum(), c.tuckerPenalty(), c.tuckerTau(), c.keyBalanceCoef());
    }

    private static int stage1(MemoryConfig c) { return c.stage1Knn() == 0 ? c.knn() : c.stage1Knn(); }

    /** Official shared query (§1.2, nhead_share_query = 2): heads 2g, 2g+1 read row slot 2g and column slot 2g+1 for every rank. */
    private static int[][] sharedSlots(int H, int r) {
        int[][] s = new int[2][H * r];
        for (int h = 0; h < H; h++) for (int p = 0; p < r; p++) { s[0][h * r + p] = 2 * (h / 2); s[1][h * r + p] = 2 * (h / 2) + 1; }
        return s;
    }

    /**
     * One forward: y, the winners (virtual index z = row key·keyNum + column key, best first per head),
     * their summed and per-core scores, the stage-1 candidates, the aux loss (coefficients applied) and
     * the smallest relative gap of every top-k taken (how far the selection is from a tie).
     */
    public record Out(double[] y, int[] z, double[] sum, double[] core, int[] candidates, double aux, double minGap) {
        /** candidates followed by winners: equal for two evaluations iff every selection is the same. */
        public int[] selection() {
            int[] s = Arrays.copyOf(candidates, candidates.length + z.length);
            System.arraycopy(z, 0, s, candidates.length, z.length);
            return s;
        }
    }

    /**
     * @param p  layer prefix (query_proj, keys, norms, cores, u, v, values_proj, pre_values_proj)
     * @param tp prefix of the value tables (v1: the layer's, V2: full_memory_layer.)
     */
    public static Out tucker(Tucker s, Map<String, double[]> w, String p, String tp, int[] shuffle, double[] x, int n) {
        int d = s.d, kd = s.kdim, H = s.heads, kn = s.keyNum, r = s.rank, C = s.cores, k1 = s.knn1, knn = s.knn;
        double eps = 1e-5;
        double[] Wq = w.get(p + "query_proj.weight"), wq = w.get(p + "query_norm.weight"), keys = w.get(p + "keys"), wk = w.get(p + "keys_norm.weight");
        double[] uu = w.get(p + "tucker_core_u"), vv = w.get(p + "tucker_core_v");
        double[][] core = new double[C][];
        for (int c = 0; c < C; c++) core[c] = w.get(p + "tucker_core." + c);
        // K̂[h][side][k][ρ][j] = keys_norm over kdim of keys[h][side][k][:][ρ]
        double[][][][][] Kh = new double[H][2][kn][r][];
        for (int h = 0; h < H; h++)
            for (int side = 0; side < 2; side++)
                for (int k = 0; k < kn; k++)
                    for (int rho = 0; rho < r; rho++) {
                        double[] raw = new double[kd];
                        for (int j = 0; j < kd; j++) raw[j] = keys[(((h * 2 + side) * kn + k) * kd + j) * r + rho];
                        Kh[h][side][k][rho] = rms(raw, 0, kd, wk, eps);
                    }
        int W = s.outWidth(), part = s.vdim / C;
        double[] y = new double[n * d], sum = new double[n * H * knn], coreOut = new double[n * H * knn * C];
        int[] z = new int[n * H * knn], cand = new int[n * H * 2 * k1];
        double gap = Double.POSITIVE_INFINITY;
        double[][] a = new double[2][];
        double[][] pMean = new double[2][kn], freq = new double[2][kn];
        double[] V = w.get(tp + "values_for_look_up"), P = s.preVdim > 0 ? w.get(tp + "pre_values_for_look_up") : null;
        double[] Wv = w.get(p + "values_proj.weight"), Wp = s.preVdim > 0 ? w.get(p + "pre_values_proj.weight") : null;
        for (int t = 0; t < n; t++) {
            // query slots: query_norm(query_proj(x)) per kdim slot
            double[] raw = new double[s.nSlots * kd];
            for (int o = 0; o < s.nSlots * kd; o++)
                for (int i = 0; i < d; i++) raw[o] += Wq[o * d + i] * x[t * d + i];
            double[][] q = new double[s.nSlots][];
            for (int sl = 0; sl < s.nSlots; sl++) q[sl] = rms(raw, sl * kd, kd, wq, eps);
            double[] preIn = new double[s.preVdim];
            for (int o = 0; o < s.preVdim; o++) for (int i = 0; i < d; i++) preIn[o] += Wp[o * d + i] * x[t * d + i];
            double[] o = new double[W];
            for (int h = 0; h < H; h++) {
                // S_side[k][ρ] = q_side,ρ · K̂[h][side][k][ρ]; stage-1 score Σ_ρ S·u (row) or S·v (column)
                double[][][] S = new double[2][kn][r];
                int[][] best = new int[2][k1];
                for (int side = 0; side < 2; side++) {
                    a[side] = new double[kn];
                    for (int k = 0; k < kn; k++)
                        for (int rho = 0; rho < r; rho++) {
                            double[] qv = q[(side == 0 ? s.rowSlot : s.colSlot)[h * r + rho]];
                            double dot = 0;
                            for (int j = 0; j < kd; j++) dot += qv[j] * Kh[h][side][k][rho][j];
                            S[side][k][rho] = dot;
                            a[side][k] += dot * (side == 0 ? uu : vv)[h * r + rho];
                        }
                    Integer[] ord = order(a[side]);
                    gap = Math.min(gap, relGap(a[side], ord, k1));
                    for (int i = 0; i < k1; i++) {
                        best[side][i] = ord[i];
                        cand[((t * H + h) * 2 + side) * k1 + i] = ord[i];
                        freq[side][ord[i]] += 1.0 / ((double) n * H * k1);
                    }
                    // key balance: mean softmax of the stage-1 scores over tokens and heads
                    double mx = Double.NEGATIVE_INFINITY, zs = 0;
                    for (double v : a[side]) mx = Math.max(mx, v);
                    for (double v : a[side]) zs += Math.exp(v - mx);
                    for (int k = 0; k < kn; k++) pMean[side][k] += Math.exp(a[side][k] - mx) / zs / ((double) n * H);
                }
                // grid G_c[i][j] = S_row[i]·C_c[h]·S_col[j]ᵀ, summed over cores for stage 2
                double[] grid = new double[k1 * k1];
                double[][] gc = new double[C][k1 * k1];
                for (int i = 0; i < k1; i++)
                    for (int j = 0; j < k1; j++)
                        for (int c = 0; c < C; c++) {
                            double g = 0;
                            for (int pp = 0; pp < r; pp++)
                                for (int ss = 0; ss < r; ss++)
                                    g += S[0][best[0][i]][pp] * core[c][(h * r + pp) * r + ss] * S[1][best[1][j]][ss];
                            gc[c][i * k1 + j] = g;
                            grid[i * k1 + j] += g;
                        }
                Integer[] ord = order(grid);
                gap = Math.min(gap, relGap(grid, ord, knn));
                for (int qq = 0; qq < knn; qq++) {
                    int cell = ord[qq], i = cell / k1, j = cell % k1, e = (t * H + h) * knn + qq;
                    int zz = best[0][i] * kn + best[1][j];
                    z[e] = zz;
                    sum[e] = grid[cell];
                    // shuffle, virtual block g and physical row of the (ring) window
                    long zs = shuffle[zz], g = zs / s.valueNum, row = (zs % s.valueNum + s.offset) % s.allValueNum;
                    double pi = 1;
                    if (s.preVdim > 0) {
                        pi = 0;
                        for (int j2 = 0; j2 < s.preVdim; j2++) pi += P[(int) row * s.preVdim + j2] * preIn[j2];
                        if (s.gelu) pi = gelu(pi);
                    }
                    for (int c = 0; c < C; c++) {
                        coreOut[e * C + c] = gc[c][cell];
                        double wt = gc[c][cell] * pi;
                        int col = (s.concat ? (int) g * s.vdim : 0) + c * part;
                        for (int j2 = 0; j2 < part; j2++) o[col + j2] += wt * V[(int) row * s.vdim + c * part + j2];
                    }
                }
            }
            for (int oo = 0; oo < d; oo++)
                for (int i = 0; i < W; i++) y[t * d + oo] += Wv[oo * W + i] * o[i];
        }
        double aux = 0;
        if (s.balance > 0)
            for (int side = 0; side < 2; side++) {
                double b = 0;
                for (int k = 0; k < kn; k++) b += pMean[side][k] * freq[side][k];
                aux += s.balance * kn * b;
            }
        if (s.penalty > 0 && r > 1) {
            // α · mean over heads and i ≥ 2 of relu(λ_i − τ)², λ the singular values of Σ_c C_c[h]
            double pen = 0;
            for (int h = 0; h < H; h++) {
                double[] m = new double[r * r];
                for (int c = 0; c < C; c++) for (int i = 0; i < r * r; i++) m[i] += core[c][h * r * r + i];
                double[] sv = singularValues(m, r);
                for (int i = 1; i < r; i++) { double e = Math.max(0, sv[i] - s.tau); pen += e * e; }
            }
            aux += s.penalty * pen / (H * (r - 1));
        }
        return new Out(y, z, sum, coreOut, cand, aux, gap);
    }

    // ------------------------------------------------------------------ Memory+

    /** Memory+ output and its winners (index i·knum + j per head, best first) with raw scores and softmax weights. */
    public record PlusOut(double[] y, int[] idx, double[] raw, double[] weight, double minGap) {}

    /**
     * Memory+ (§4) with the keys normalised when keyNorm (the paper; the official code skips it):
     * q = query_norm(query_proj(x)) per [h][side] slot, additive grid of the best k1 row and column
     * keys, best knn cells, softmax per head, o = Σ w·V[idx], y = values_proj(o ⊙ SiLU(swilu_projection(x))).
     */
    public static PlusOut memoryPlus(MemoryConfig c, boolean keyNorm, Map<String, double[]> w, String p, String tp, double[] x, int n) {
        int d = c.dModel(), H = c.heads(), kn = c.knum(), kd = c.kdim(), knn = c.knn(), vd = c.vdim();
        int k1 = c.stage1Knn() > 0 ? c.stage1Knn() : knn;
        double eps = 1e-5;
        double[] Wq = w.get(p + "query_proj.weight"), wq = w.get(p + "query_norm.weight"), keys = w.get(p + "keys"), wk = w.get(p + "keys_norm.weight");
        double[] Ws = w.get(p + "swilu_projection.weight"), Wv = w.get(p + "values_proj.weight"), V = w.get(tp + "values_for_look_up");
        double[][][][] K = new double[H][2][kn][];
        for (int h = 0; h < H; h++)
            for (int side = 0; side < 2; side++)
                for (int k = 0; k < kn; k++) {
                    int off = ((h * 2 + side) * kn + k) * kd;
                    K[h][side][k] = keyNorm ? rms(keys, off, kd, wk, eps) : Arrays.copyOfRange(keys, off, off + kd);
                }
        double[] y = new double[n * d], raw = new double[n * H * knn], wt = new double[n * H * knn];
        int[] idx = new int[n * H * knn];
        double gap = Double.POSITIVE_INFINITY;
        for (int t = 0; t < n; t++) {
            double[] o = new double[vd];
            for (int h = 0; h < H; h++) {
                double[][] sc = new double[2][kn];
                int[][] best = new int[2][k1];
                for (int side = 0; side < 2; side++) {
                    int slot = h * 2 + side;
                    double[] qr = new double[kd];
                    for (int j = 0; j < kd; j++) for (int i = 0; i < d; i++) qr[j] += Wq[(slot * kd + j) * d + i] * x[t * d + i];
                    double[] q = rms(qr, 0, kd, wq, eps);
                    for (int k = 0; k < kn; k++) for (int j = 0; j < kd; j++) sc[side][k] += q[j] * K[h][side][k][j];
                    Integer[] ord = order(sc[side]);
                    gap = Math.min(gap, relGap(sc[side], ord, k1));
                    for (int i = 0; i < k1; i++) best[side][i] = ord[i];
                }
                double[] grid = new double[k1 * k1];
                for (int i = 0; i < k1; i++) for (int j = 0; j < k1; j++) grid[i * k1 + j] = sc[0][best[0][i]] + sc[1][best[1][j]];
                Integer[] ord = order(grid);
                gap = Math.min(gap, relGap(grid, ord, knn));
                double mx = grid[ord[0]], zs = 0;
                for (int q = 0; q < knn; q++) zs += Math.exp(grid[ord[q]] - mx);
                for (int q = 0; q < knn; q++) {
                    int e = (t * H + h) * knn + q, cell = ord[q];
                    idx[e] = best[0][cell / k1] * kn + best[1][cell % k1];
                    raw[e] = grid[cell];
                    wt[e] = Math.exp(grid[cell] - mx) / zs;
                    for (int j = 0; j < vd; j++) o[j] += wt[e] * V[idx[e] * vd + j];
                }
            }
            double[] hid = new double[vd];
            for (int j = 0; j < vd; j++) {
                double gp = 0;
                for (int i = 0; i < d; i++) gp += Ws[j * d + i] * x[t * d + i];
                hid[j] = o[j] * gp / (1 + Math.exp(-gp));
            }
            for (int oo = 0; oo < d; oo++) for (int j = 0; j < vd; j++) y[t * d + oo] += Wv[oo * vd + j] * hid[j];
        }
        return new PlusOut(y, idx, raw, wt, gap);
    }
}
