package dev.ultramem.core;

/** A named integer buffer saved with the model, e.g. a memory layer's {@code shuffle_index} (int64 on disk). */
public record IndexBuffer(String name, int[] data) {}
