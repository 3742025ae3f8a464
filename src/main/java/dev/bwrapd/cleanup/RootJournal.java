package dev.bwrapd.cleanup;

import org.jboss.logging.Logger;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;

/**
 * A record, outside every root, of what bwrap may create in each root in use: written before
 * bwrap starts, removed once the root is clean. A bwrapd killed (SIGKILL) in the middle of a run
 * never cleans; the next bwrapd to use that root finds the record of the dead one and removes
 * what it names, the same link-safe way as any cleanup (only empty directories and empty files).
 *
 * <p>The records live in a directory of bwrapd's user only: {@code $XDG_RUNTIME_DIR/bwrapd},
 * else {@code /run/bwrapd} for root, else {@code /tmp/bwrapd-UID}; one that is not a directory
 * of this user with mode 0700 (a link, someone else's) disables the journal rather than trusting it.
 * A record is named after the root's device and inode and the writer's pid, and holds the root's
 * path: one whose writer still runs is left alone (a reused pid only leaves debris, as without a
 * journal), one whose path differs (a reused inode) is dropped unused. Records of roots never used
 * again stay, a few bytes each.
 */
public final class RootJournal {
    private static final Logger LOG = Logger.getLogger(RootJournal.class);

    private final Path dir;
    private final long pid = ProcessHandle.current().pid();

    private RootJournal(Path dir) {
        this.dir = dir;
    }

    /** The journal of this user, or null when no private directory can be had. Reads the environment: call from Main. */
    public static RootJournal open(String xdgRuntimeDir, int uid) {
        Path dir = xdgRuntimeDir != null && xdgRuntimeDir.startsWith("/") ? Path.of(xdgRuntimeDir, "bwrapd")
                : uid == 0 ? Path.of("/run/bwrapd") : Path.of("/tmp/bwrapd-" + uid);
        try {
            Files.createDirectory(dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        } catch (java.nio.file.FileAlreadyExistsException e) {
            // checked below
        } catch (IOException | UnsupportedOperationException e) {
            LOG.warnf("no root journal (%s): a bwrapd killed mid-run leaves its mount points in the root", e.getMessage());
            return null;
        }
        try {
            PosixFileAttributes a = Files.readAttributes(dir, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
            boolean mine = (int) Files.getAttribute(dir, "unix:uid", LinkOption.NOFOLLOW_LINKS) == uid;
            if (!a.isDirectory() || !mine || !a.permissions().equals(PosixFilePermissions.fromString("rwx------"))) {
                LOG.warnf("no root journal: %s is not a private directory of this user", dir);
                return null;
            }
        } catch (IOException e) {
            LOG.warnf("no root journal: %s", e.getMessage());
            return null;
        }
        return new RootJournal(dir);
    }

    /**
     * Records (replacing an earlier record of this process) what bwrap may create in {@code root},
     * found at {@code where}: a later root with the same device and inode (a reused inode) but
     * elsewhere is not this one.
     */
    void write(String root, String where, List<String> paths) {
        List<String> lines = new ArrayList<>();
        lines.add(where);
        for (String path : paths) if (path.indexOf('\n') < 0) lines.add(path);
        Path file = dir.resolve(root + "-" + pid);
        Path temporary = dir.resolve(root + "-" + pid + ".new");
        try {
            Files.write(temporary, lines, StandardCharsets.UTF_8);
            Files.move(temporary, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            LOG.warnf("cannot record the mount points of a run: %s", e.getMessage());
        }
    }

    /** The root is clean: this process's record of it goes. */
    void forget(String root) {
        try {
            Files.deleteIfExists(dir.resolve(root + "-" + pid));
        } catch (IOException e) {
            LOG.warnf("cannot remove a root record: %s", e.getMessage());
        }
    }

    /**
     * What bwrapd processes that died while using {@code root} recorded there (parents first), their
     * records removed: the caller cleans it.
     */
    List<String> takeOrphans(String root, String where) {
        List<String> paths = new ArrayList<>();
        try (DirectoryStream<Path> records = Files.newDirectoryStream(dir, root + "-*")) {
            for (Path record : records) {
                String writer = record.getFileName().toString().substring(root.length() + 1);
                if (!writer.matches("[0-9]+") || Files.exists(Path.of("/proc", writer))) continue; // alive, or not a record
                List<String> lines = Files.readAllLines(record, StandardCharsets.UTF_8);
                if (!lines.isEmpty() && lines.getFirst().equals(where)) {
                    for (String path : lines.subList(1, lines.size())) if (!paths.contains(path)) paths.add(path);
                }
                Files.delete(record);
            }
        } catch (IOException e) {
            LOG.warnf("cannot read the root records: %s", e.getMessage());
        }
        return paths;
    }
}
