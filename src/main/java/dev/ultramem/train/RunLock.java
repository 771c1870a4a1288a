package dev.ultramem.train;

import dev.ultramem.core.UserError;
import dev.ultramem.io.AtomicFiles;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

/**
 * The exclusive lock a process holds on a run folder for as long as it writes there, so two runs can
 * never write into one folder. It is an OS lock on {@code <folder>/.lock}: the kernel releases it when
 * the process ends in any way (kill -9 included), so a lock left by a dead process never blocks the
 * next run. The file itself stays (removing it would let a third process lock a different inode);
 * it holds the owner's pid and start time, which the error message of a second process names.
 */
public final class RunLock implements AutoCloseable {
    public static final String FILE = ".lock";

    /** The name of the CLI's write probe, created as a temporary file of this name ({@link AtomicFiles#isTempOf}). */
    public static final String WRITE_PROBE = "write-test";

    /**
     * The files of a run folder whose temporary files ({@link AtomicFiles#isTempOf}) are removed as
     * stale: the atomic writers' targets and the write probe; nothing else is touched.
     */
    private static final List<String> TEMP_OWNERS =
            List.of(Checkpoint.LATEST, "config.json", "metrics.csv", "loss.png", "memory.csv", WRITE_PROBE);

    private final Path dir;
    private final FileChannel channel;
    private final FileLock lock;
    /** The folder did not exist before: a run that fails before writing anything leaves no empty folder. */
    private final boolean created;

    private RunLock(Path dir, FileChannel channel, FileLock lock, boolean created) {
        this.dir = dir;
        this.channel = channel;
        this.lock = lock;
        this.created = created;
    }

    /**
     * Locks a run folder (creating it), or fails with a one-line error naming the process that holds
     * it. The caller closes the lock when it stops writing; the JVM's exit releases it too.
     */
    public static RunLock acquire(Path dir) {
        FileChannel ch = null;
        try {
            boolean created = !Files.exists(dir);
            Files.createDirectories(dir);
            Path f = dir.resolve(FILE);
            ch = FileChannel.open(f, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
            FileLock l;
            try {
                l = ch.tryLock();
            } catch (OverlappingFileLockException e) {
                l = null;  // held by this very process (another run inside the same JVM)
            }
            if (l == null) {
                String owner = owner(ch);
                ch.close();
                throw new UserError(dir + " is in use by another ultramem run (" + owner
                        + "); wait for it to finish or choose another --out");
            }
            ch.truncate(0);
            ch.write(ByteBuffer.wrap(("pid " + ProcessHandle.current().pid() + ", started " + Instant.now() + "\n")
                    .getBytes(StandardCharsets.UTF_8)), 0);
            return new RunLock(dir, ch, l, created);
        } catch (IOException e) {
            if (ch != null) try { ch.close(); } catch (IOException ignored) { }
            throw new UserError(dir + ": cannot lock the run folder (" + e.getMessage() + ")");
        }
    }

    private static String owner(FileChannel ch) {
        try {
            ByteBuffer b = ByteBuffer.allocate(200);
            ch.read(b, 0);
            String s = new String(b.array(), 0, b.position(), StandardCharsets.UTF_8).strip();
            return s.isEmpty() ? "pid unknown" : s;
        } catch (IOException e) {
            return "pid unknown";
        }
    }

    public Path dir() { return dir; }

    /**
     * Removes the temporary files that a killed writer left in the folder (only names matching the
     * writers' own temp pattern); safe because this process holds the lock. Returns the removed files.
     */
    public List<Path> removeStaleTempFiles() {
        List<Path> removed = new ArrayList<>();
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, RunLock::isStaleTemp)) {
            for (Path p : ds) {
                if (Files.isRegularFile(p) && Files.deleteIfExists(p)) removed.add(p);
            }
        } catch (IOException e) {
            throw new UserError(dir + ": cannot remove stale temporary files (" + e.getMessage() + ")");
        }
        return removed;
    }

    static boolean isStaleTemp(Path file) {
        for (String owner : TEMP_OWNERS) if (AtomicFiles.isTempOf(file, owner)) return true;
        return false;
    }

    @Override
    public void close() {
        try {
            if (created) removeIfUnused();
            if (lock.isValid()) lock.release();
            channel.close();
        } catch (IOException ignored) {
            // the lock goes with the process anyway
        }
    }

    private void removeIfUnused() {
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
            for (Path p : ds) if (!p.getFileName().toString().equals(FILE)) return;
            Files.deleteIfExists(dir.resolve(FILE));
            Files.deleteIfExists(dir);
        } catch (IOException ignored) {
            // an empty folder left behind is harmless
        }
    }
}
