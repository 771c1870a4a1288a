package dev.ultramem.kernel;

final class KernelsHolder {
    static final Kernels INSTANCE = select(System.getProperty("ultramem.kernels", "vector"));

    private KernelsHolder() {}

    static Kernels select(String name) {
        return switch (name) {
            case "scalar" -> new ScalarKernels();
            case "vector" -> new VectorKernels();
            default -> throw new IllegalArgumentException("ultramem.kernels must be scalar or vector, got " + name);
        };
    }
}
