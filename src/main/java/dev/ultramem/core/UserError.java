package dev.ultramem.core;

/**
 * A problem with the user's input (file, config, checkpoint, data) that the CLI reports as one line
 * and a non-zero exit, never a stack trace.
 */
public class UserError extends RuntimeException {
    public UserError(String message) { super(message); }
    public UserError(String message, Throwable cause) { super(message, cause); }
}
