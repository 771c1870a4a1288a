package dev.ultramem.kernel;

/**
 * Vector API fast path. Every method not overridden here falls back to the scalar reference.
 */
public class VectorKernels extends ScalarKernels {
    @Override public String name() { return "vector"; }
}
