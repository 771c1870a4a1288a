package dev.ultramem.bench;

import dev.ultramem.core.Param;
import dev.ultramem.core.Parallel;
import dev.ultramem.core.Rng;
import dev.ultramem.layer.TokenLayer;
import dev.ultramem.memory.SharedMemory;
import dev.ultramem.memory.UltraMemV1;
import dev.ultramem.memory.UltraMemV2;
import dev.ultramem.model.LayerConfigs;
import dev.ultramem.model.ModelConfig;

/**
 * Forward and backward time of one UltraMem v1 and one UltraMemV2 layer on a training-sized batch
 * (best of several samples), with 1 thread and with all threads. Usage: MemoryBench [tokens].
 */
public final class MemoryBench {
    private MemoryBench() {}

    public static void main(String[] args) {
        int n = args.length > 0 ? Integer.parseInt(args[0]) : 2048;
        ModelConfig c = new ModelConfig();
        c.dModel = 256; c.nLayers = 4; c.mlpHiddenSize = 1024;
        c.memKdim = 64; c.memVdim = 128; c.memPreVdim = 64; c.memKnn = 32; c.memHead = 1;
        c.memShareRatio = 0.5; c.memQueryMode = "paper";
        Rng rng = new Rng(1);
        c.memType = "ultramem_v2"; c.memKnum = 128;
        SharedMemory sh = SharedMemory.create(LayerConfigs.memory(c), 4, "");
        sh.initialize(LayerConfigs.memory(c), rng);
        UltraMemV2 v2 = new UltraMemV2(LayerConfigs.memory(c), 1, 4, sh, "");
        v2.initialize(rng);
        ModelConfig c1 = c.copy();
        c1.memType = "ultramem_v1"; c1.memKnum = 128; c1.memQueryMode = "released";
        UltraMemV1 v1 = new UltraMemV1(LayerConfigs.memory(c1), 4, "");
        v1.initialize(rng);
        int threads = Parallel.threads();
        for (int t : new int[]{1, threads}) {
            Parallel.setThreads(t);
            run("ultramem_v2 keys " + v2.keyNum + " values " + v2.valueNum, v2, n, c.dModel, rng);
            run("ultramem_v1 keys " + v1.keyNum + " values " + v1.valueNum, v1, n, c.dModel, rng);
        }
        Parallel.setThreads(threads);
    }

    static void run(String what, TokenLayer l, int n, int d, Rng rng) {
        float[] x = new float[n * d], y = new float[n * d], g = new float[n * d], dx = new float[n * d];
        rng.fillNormal(x, 1);
        rng.fillNormal(g, 1);
        double bestF = 1e99, bestB = 1e99, cpuF = 1e99, cpuB = 1e99;
        var mx = java.lang.management.ManagementFactory.getThreadMXBean();
        for (int rep = 0; rep < 40; rep++) {
            long c0 = mx.getCurrentThreadCpuTime(), t0 = System.nanoTime();
            l.forward(x, y, n);
            long c1 = mx.getCurrentThreadCpuTime(), t1 = System.nanoTime();
            l.backward(x, g, dx, n);
            long c2 = mx.getCurrentThreadCpuTime(), t2 = System.nanoTime();
            for (Param p : l.params()) p.zeroGrad();
            if (rep >= 20) {
                bestF = Math.min(bestF, (t1 - t0) / 1e6); bestB = Math.min(bestB, (t2 - t1) / 1e6);
                cpuF = Math.min(cpuF, (c1 - c0) / 1e6); cpuB = Math.min(cpuB, (c2 - c1) / 1e6);
            }
        }
        // with 1 thread the CPU time of the calling thread is the work itself, robust to other load
        System.out.printf("%-45s threads %d tokens %d: forward %.1f ms, backward %.1f ms (wall, best); %s%n",
                what, Parallel.threads(), n, bestF, bestB,
                Parallel.threads() == 1 ? String.format("cpu %.1f + %.1f ms = %.1f us/token", cpuF, cpuB, (cpuF + cpuB) * 1e3 / n) : "");
    }
}
