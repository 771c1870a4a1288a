package dev.ultramem.kernel;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The register tile and the cache blocks of {@link VectorGemm}, chosen once per JVM from the vector width and the
 * cache sizes the kernel reports under {@code /sys/devices/system/cpu/cpu0/cache} (defaults when it cannot be read).
 *
 * <p>Tile: MR rows × NV vectors of C stay in registers while k runs. With 16 float lanes the JVM runs AVX-512, which
 * has 32 vector registers: 6 × 4 (24 accumulators + 4 B vectors + 1 broadcast = 29 registers). With fewer lanes the
 * tile must fit AVX2's 16 registers even when the compiler hoists every load of an iteration: 4 × 2 (8 + 2 + 1 = 11);
 * larger tiles (6 × 2, 4 × 3) spilled accumulators and ran at about half speed. 3 × 3 (15 registers) is the
 * previous AVX2 tile, kept selectable for comparison.
 *
 * <p>Blocks (BLIS order): the K block KC sets how many k a packed B micro-panel (KC × NR) holds, the M block MC keeps
 * the packed A block (MC × KC) in half of L2, and the N block NC keeps the packed B block (KC × NC) in an eighth of
 * L3. Each can be overridden with {@code -Dultramem.gemm.tile=6x4}, {@code .kc}, {@code .mc}, {@code .nc}.
 */
record GemmPlan(int mr, int nv, int kc, int mc, int nc) {

    /** The tiles {@link VectorGemm} has micro-kernels for, as MRxNV. */
    static final String[] TILES = {"4x2", "3x3", "6x4"};

    static GemmPlan forMachine(int lanes) {
        String tile = System.getProperty("ultramem.gemm.tile", lanes >= 16 ? "6x4" : "4x2");
        if (!java.util.Arrays.asList(TILES).contains(tile))
            throw new IllegalArgumentException("ultramem.gemm.tile must be one of " + String.join(", ", TILES) + ", got " + tile);
        int mr = tile.charAt(0) - '0', nv = tile.charAt(2) - '0', nr = nv * lanes;
        long l2 = cacheBytes(2, 1L << 20), l3 = cacheBytes(3, 32L << 20);
        // KC: a B micro-panel of a quarter of L2 (it streams from L2; measured as fast as an L1-sized panel with
        // far fewer passes over C), at most 512 so that the A block still holds a few hundred rows.
        int kc = Integer.getInteger("ultramem.gemm.kc", clamp(l2 / 4 / (4L * nr) / 16 * 16, 64, 512));
        int mc = Integer.getInteger("ultramem.gemm.mc", clamp(l2 / 2 / (4L * kc), mr, 1024));
        int nc = Integer.getInteger("ultramem.gemm.nc", clamp(l3 / 8 / (4L * kc) / nr, 1, 4096) * nr);
        if (kc < 1 || mc < 1 || nc < 1) throw new IllegalArgumentException("ultramem.gemm.kc/mc/nc must be >= 1");
        return new GemmPlan(mr, nv, kc, roundUp(mc, mr), roundUp(nc, nr));
    }

    private static int clamp(long v, int lo, int hi) { return (int) Math.max(lo, Math.min(hi, v)); }

    private static int roundUp(int v, int unit) { return (v + unit - 1) / unit * unit; }

    /** Size of the data (or unified) cache of the given level of cpu0, or the default when it is not reported. */
    static long cacheBytes(int level, long dflt) {
        Path dir = Path.of("/sys/devices/system/cpu/cpu0/cache");
        for (int i = 0; i < 8; i++) {
            Path idx = dir.resolve("index" + i);
            try {
                if (!Files.isDirectory(idx)) break;
                if (Integer.parseInt(Files.readString(idx.resolve("level")).trim()) != level) continue;
                if (Files.readString(idx.resolve("type")).trim().equals("Instruction")) continue;
                long v = parseSize(Files.readString(idx.resolve("size")).trim());
                if (v > 0) return v;
            } catch (IOException | RuntimeException e) {
                return dflt;
            }
        }
        return dflt;
    }

    /** "32K", "1024K", "32M" or a plain byte count. */
    static long parseSize(String s) {
        long mul = 1;
        char u = Character.toUpperCase(s.charAt(s.length() - 1));
        if (u == 'K') mul = 1L << 10; else if (u == 'M') mul = 1L << 20; else if (u == 'G') mul = 1L << 30;
        return Long.parseLong(mul == 1 ? s : s.substring(0, s.length() - 1)) * mul;
    }
}
