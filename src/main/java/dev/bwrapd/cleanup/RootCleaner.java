package dev.bwrapd.cleanup;

import dev.bwrapd.process.Libc;

import java.io.IOException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.DirectoryStream;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SecureDirectoryStream;
import java.nio.file.attribute.BasicFileAttributeView;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Removes what bwrap left in a root. Every step is taken relative to an opened directory and
 * never through a symbolic link: a sandboxed command that replaced {@code /dev} with a link to a
 * host directory gets its link reported, not followed. Only empty directories and empty
 * files are removed (what bwrap makes); EBUSY (a bind mount not yet gone) is retried, as BuildStream did.
 */
final class RootCleaner {
    private static final int BUSY_RETRIES = 200;
    private static final long BUSY_PAUSE_MS = 5;

    private RootCleaner() {}

    /** Removes each relative path (children listed before their parents). */
    static CleanupReport remove(Path root, List<String> paths) {
        return remove(root, paths, Set.of(), Libc.BIRTH_UNKNOWN);
    }

    /**
     * How much earlier than its record a file bwrap made may seem to be born: timestamps come from
     * a clock read coarsely (a tick, some milliseconds), the record's and the file's maybe not alike.
     */
    static final long BIRTH_SLACK_NANOS = 1_000_000_000L;

    /**
     * The same, where each of {@code recorded} (paths another bwrapd's record names) goes only if
     * born no earlier than {@code recordedSince} (less {@link #BIRTH_SLACK_NANOS}): bwrap made what
     * a record names after the record, and a record planted by whoever could write in the journal
     * (a sandbox that saw it: docs/protocol.md, Known limitations) cannot name anything older than
     * itself. Where the journal's file system keeps no birth time, nothing is asked.
     */
    static CleanupReport remove(Path root, List<String> paths, Set<String> recorded, long recordedSince) {
        if (paths.isEmpty()) return new CleanupReport(true, List.of(), List.of(), false); // a prepared root: nothing opened
        List<String> removed = new ArrayList<>();
        List<CleanupReport.Failure> failed = new ArrayList<>();
        int rootFd = -1;
        try {
            rootFd = Libc.open(root.toString(), Libc.O_PATH | Libc.O_DIRECTORY, 0);
        } catch (IOException e) {
            failed.add(new CleanupReport.Failure("/", describe(e)));
            return new CleanupReport(false, removed, failed, false);
        }
        try (DirectoryStream<Path> opened = Files.newDirectoryStream(Path.of("/proc/self/fd/" + rootFd))) {
            if (!(opened instanceof SecureDirectoryStream<Path> rootDir)) {
                failed.add(new CleanupReport.Failure("/", "this platform offers no link-safe directory access; nothing removed"));
                return new CleanupReport(false, removed, failed, false);
            }
            for (String path : paths) {
                try {
                    long bornSince = recorded.contains(path) && recordedSince != Libc.BIRTH_UNKNOWN
                            ? recordedSince - BIRTH_SLACK_NANOS : Libc.BIRTH_UNKNOWN;
                    if (removeOne(rootDir, rootFd, path, bornSince)) removed.add("/" + path);
                } catch (IOException e) {
                    failed.add(new CleanupReport.Failure("/" + path, describe(e)));
                }
            }
        } catch (IOException e) {
            failed.add(new CleanupReport.Failure("/", describe(e)));
        } finally {
            Libc.close(rootFd);
        }
        return new CleanupReport(failed.isEmpty(), removed, failed, false);
    }

    /**
     * When the file whose attributes the walk read was made: the JDK reads them with statx, whose
     * birth time no process can set, from the descriptor of the directory the walk opened, so it
     * is the file that would be removed (a look by path could be led elsewhere by a link planted
     * since). Where the file system keeps no birth time the JDK gives the last modification,
     * which is no earlier than the birth either.
     */
    private static long bornNanos(BasicFileAttributes attributes) {
        java.time.Instant born = attributes.creationTime().toInstant();
        return born.getEpochSecond() * 1_000_000_000L + born.getNano();
    }

    /**
     * Removes one path if it is there, and born no earlier than {@code bornSince}; false if it was
     * already gone. The way is walked by descriptors that only a directory gives (O_PATH |
     * O_DIRECTORY, no link followed): the JDK's own walk opens each name for reading, and a
     * FIFO a command put on the way (its /dev moved aside) kept that open waiting for a writer,
     * for ever, with the leases' lock held.
     */
    private static boolean removeOne(SecureDirectoryStream<Path> rootDir, int rootFd, String path, long bornSince) throws IOException {
        if (!isBelowTheRoot(path)) throw new IOException("not a path below the root; left alone");
        String[] names = path.split("/", -1);
        if (names.length == 1) return removeIn(rootDir, names[0], bornSince);
        int parent = -1;
        try {
            for (int i = 0; i < names.length - 1; i++) {
                int next = Libc.openat(parent < 0 ? rootFd : parent, names[i], Libc.O_PATH | Libc.O_DIRECTORY | Libc.O_NOFOLLOW);
                if (next < 0) {
                    int errno = Libc.errno();
                    if (errno == Libc.ENOENT) return false;
                    if (errno == Libc.EACCES) throw cannotEnter(names, i);
                    throw new IOException("/" + String.join("/", List.of(names).subList(0, i + 1))
                            + " is no longer a directory (a symbolic link?); not followed");
                }
                if (parent >= 0) Libc.close(parent);
                parent = next;
            }
            try (DirectoryStream<Path> opened = Files.newDirectoryStream(Path.of("/proc/self/fd/" + parent))) {
                if (!(opened instanceof SecureDirectoryStream<Path> dir)) throw new IOException("no link-safe directory access");
                return removeIn(dir, names[names.length - 1], bornSince);
            } catch (java.nio.file.AccessDeniedException e) {
                throw cannotEnter(names, names.length - 1);
            }
        } finally {
            if (parent >= 0) Libc.close(parent);
        }
    }

    /**
     * Whether {@code path} is made of plain names, as the paths bwrap makes are: a record planted
     * in the journal may climb out of the root by "..", or hold a NUL, which no C call takes.
     */
    static boolean isBelowTheRoot(String path) {
        if (path.indexOf('\0') >= 0) return false;
        for (String name : path.split("/", -1)) if (name.isEmpty() || name.equals(".") || name.equals("..")) return false;
        return true;
    }

    /** The directory that holds {@code names[i]} (it may not be searched or read). */
    private static IOException cannotEnter(String[] names, int i) {
        return new IOException("/" + String.join("/", List.of(names).subList(0, i)) + " cannot be entered (permission denied); left in place");
    }

    /** Removes {@code last} from {@code dir}, as {@link #removeOne} says. */
    private static boolean removeIn(SecureDirectoryStream<Path> dir, String last, long bornSince) throws IOException {
        Path name = Path.of(last);
        BasicFileAttributes attributes;
        try {
            attributes = dir.getFileAttributeView(name, BasicFileAttributeView.class, LinkOption.NOFOLLOW_LINKS).readAttributes();
        } catch (NoSuchFileException e) {
            return false;
        }
        if (attributes.isSymbolicLink()) {
            throw new IOException("replaced by a symbolic link during the run; left in place, not followed");
        }
        // bwrap makes directories and empty files (mount points for files and devices); anything else is not its.
        if (!attributes.isDirectory() && !(attributes.isRegularFile() && attributes.size() == 0)) {
            throw new IOException("not what bwrap made (" + (attributes.isRegularFile() ? "a file with content" : "a special file")
                    + "); left in place");
        }
        if (bornSince != Libc.BIRTH_UNKNOWN && bornNanos(attributes) < bornSince) {
            throw new IOException("older than the record that names it, so not bwrap's; left in place");
        }
        for (int attempt = 0; ; attempt++) {
            try {
                if (attributes.isDirectory()) dir.deleteDirectory(name);
                else dir.deleteFile(name);
                return true;
            } catch (NoSuchFileException e) {
                return false;
            } catch (DirectoryNotEmptyException e) {
                throw new IOException("directory not empty; left in place");
            } catch (FileSystemException e) {
                if (!isBusy(e) || attempt >= BUSY_RETRIES) throw e;
                pause();
            }
        }
    }

    private static boolean isBusy(FileSystemException e) {
        return e.getReason() != null && e.getReason().contains("busy");
    }

    private static void pause() {
        try {
            Thread.sleep(BUSY_PAUSE_MS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static String describe(IOException e) {
        if (e instanceof FileSystemException f && f.getReason() != null) return f.getReason();
        return e.getMessage();
    }
}
