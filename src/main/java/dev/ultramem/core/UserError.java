package dev.ultramem.core;

/**
 * A problem with the user's input (file, config, checkpoint, data) that the CLI reports as one line
 * and a non-zero exit, never a stack trace.
 */
public class UserError extends RuntimeException {
    public UserError(String message) { super(message); }
    public UserError(String message, Throwable cause) { super(message, cause); }

    /**
     * Checks that a path names a regular file before it is opened: opening a FIFO blocks until a
     * writer appears, and a device may never end.
     */
    public static void requireRegularFile(java.nio.file.Path file) {
        if (java.nio.file.Files.isRegularFile(file)) return;
        if (!java.nio.file.Files.exists(file)) throw new UserError(file + ": file not found");
        if (java.nio.file.Files.isDirectory(file)) throw new UserError(file + ": is a folder, not a file");
        throw new UserError(file + ": not a regular file (a pipe, device or socket cannot be read here)");
    }

    /** The one-line error for a file that could not be read, naming the cause a user can act on. */
    public static UserError cannotRead(java.nio.file.Path file, java.io.IOException e) {
        if (e instanceof java.nio.file.NoSuchFileException) return new UserError(file + ": file not found");
        if (e instanceof java.nio.file.AccessDeniedException) return new UserError(file + ": permission denied");
        if (java.nio.file.Files.isDirectory(file)) return new UserError(file + ": is a folder, not a file");
        return new UserError(file + ": cannot read (" + e.getMessage() + ")", e);
    }

    /**
     * A string from a file, fit for a one-line message: quoted, control characters escaped, and cut
     * to its first 100 characters.
     */
    public static String quote(String s) {
        StringBuilder b = new StringBuilder("'");
        int end = s.offsetByCodePoints(0, Math.min(100, s.codePointCount(0, s.length())));
        s.substring(0, end).codePoints().forEach(c -> {
            if (Character.isISOControl(c) || (c >= Character.MIN_SURROGATE && c <= Character.MAX_SURROGATE) || c == 0x2028 || c == 0x2029)
                b.append(String.format("\\u%04x", c));
            else b.appendCodePoint(c);
        });
        if (end < s.length()) b.append("...");
        return b.append('\'').toString();
    }
}
