package dev.ultramem.kernel;

import java.util.function.Supplier;

final class KernelsHolder {
    static final Kernels INSTANCE = select(configured());

    private KernelsHolder() {}

    static Kernels select(String name) { return byName(name, ScalarKernels::new, VectorKernels::new); }

    /** The name in the system property {@code ultramem.kernels} (default vector). */
    static String configured() { return System.getProperty("ultramem.kernels", "vector"); }

    /** The scalar reference or the vector path by name, for {@link Kernels} and {@link MemoryKernels} alike. */
    static <T> T byName(String name, Supplier<T> scalar, Supplier<T> vector) {
        return switch (name) {
            case "scalar" -> scalar.get();
            case "vector" -> vector.get();
            default -> throw new IllegalArgumentException("ultramem.kernels must be scalar or vector, got " + name);
        };
    }
}
