package dev.ultramem.io;

import dev.ultramem.core.UserError;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;

/** Small files written whole: to a temporary file beside the target, then renamed over it. */
public final class AtomicFiles {
    private AtomicFiles() {}

    /** Writes text as UTF-8; a crash leaves the old file or the new one, never a part. */
    public static void write(Path target, CharSequence text) throws IOException {
        Path dir = target.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, "." + target.getFileName() + ".", ".tmp");
        try {
            // temp files are created owner-only; the renamed file gets the usual rw-r--r--
            if (tmp.getFileSystem().supportedFileAttributeViews().contains("posix"))
                Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rw-r--r--"));
            Files.writeString(tmp, text, StandardCharsets.UTF_8);
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /** The one-line error for a failed write, naming a full disk as such. */
    public static UserError writeError(Path file, IOException e) {
        String m = String.valueOf(e.getMessage());
        if (m.contains("No space left on device")) return new UserError("no space left on device while writing " + file);
        return new UserError("cannot write " + file + " (" + m + ")");
    }
}
