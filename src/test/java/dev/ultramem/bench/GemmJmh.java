package dev.ultramem.bench;

import dev.ultramem.core.Parallel;
import dev.ultramem.kernel.Kernels;
import org.openjdk.jmh.annotations.*;

import java.util.Random;
import java.util.concurrent.TimeUnit;

/**
 * JMH benchmark of the GEMM kernels on 1024³ and on the shapes of a training step (d = 256, 4096 tokens).
 * Score is time per call; GFLOP/s = 2·M·N·K / time. {@code -prof gc} shows the bytes allocated per call.
 *
 * <pre>
 * mvn -q test-compile org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath \
 *     -Dmdep.outputFile=target/cp.txt -Dmdep.includeScope=test
 * java --add-modules jdk.incubator.vector -cp target/test-classes:target/classes:$(cat target/cp.txt) \
 *      org.openjdk.jmh.Main GemmJmh -p threads=1,2 -prof gc
 * </pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class GemmJmh {

    /** layout:M:N:K */
    @Param({"NT:1024:1024:1024", "NN:1024:1024:1024", "TN:1024:1024:1024",
            "NT:4096:768:256", "NT:4096:2048:256", "NT:4096:256:1024",
            "NN:4096:256:768", "TN:768:256:4096", "TN:256:1024:4096", "NT:1:2048:256"})
    public String shape;

    @Param({"2"})
    public int threads;

    private String layout;
    private int m, n, k;
    private float[] a, b, c;
    private Kernels kn;

    @Setup
    public void setup() {
        String[] p = shape.split(":");
        layout = p[0];
        m = Integer.parseInt(p[1]);
        n = Integer.parseInt(p[2]);
        k = Integer.parseInt(p[3]);
        Random r = new Random(1);
        a = new float[m * k];
        b = new float[n * k];
        c = new float[m * n];
        for (int i = 0; i < a.length; i++) a[i] = r.nextFloat() - 0.5f;
        for (int i = 0; i < b.length; i++) b[i] = r.nextFloat() - 0.5f;
        Parallel.setThreads(threads);
        kn = Kernels.get();
    }

    @Benchmark
    public float[] gemm() {
        switch (layout) {
            case "NT" -> kn.gemmNT(m, n, k, a, 0, b, 0, c, 0, false);
            case "NN" -> kn.gemmNN(m, n, k, a, 0, b, 0, c, 0, false);
            default -> kn.gemmTN(m, n, k, a, 0, b, 0, c, 0, false);
        }
        return c;
    }
}
