package dev.bwrapd.cleanup;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Set;

/**
 * A directory only bwrapd's user can use, for what bwrapd keeps between runs of itself: made with
 * mode 0700 if missing (its parents too, 0700), and trusted only if it is a directory, not a link,
 * of this user with mode 0700 — so nobody else can plant, replace or read a file in it.
 */
public final class PrivateDirectory {
    private static final Set<PosixFilePermission> PRIVATE = PosixFilePermissions.fromString("rwx------");

    private PrivateDirectory() {}

    /** {@code dir}, made if need be, once it is checked private to {@code uid}; an IOException says why not. */
    public static Path open(Path dir, int uid) throws IOException {
        try {
            Files.createDirectories(dir.getParent(), PosixFilePermissions.asFileAttribute(PRIVATE));
            Files.createDirectory(dir, PosixFilePermissions.asFileAttribute(PRIVATE));
        } catch (java.nio.file.FileAlreadyExistsException e) {
            // checked below
        } catch (UnsupportedOperationException e) {
            throw new IOException("no POSIX permissions here: " + dir);
        }
        PosixFileAttributes a = Files.readAttributes(dir, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        boolean mine = (int) Files.getAttribute(dir, "unix:uid", LinkOption.NOFOLLOW_LINKS) == uid;
        if (!a.isDirectory() || !mine || !a.permissions().equals(PRIVATE)) {
            throw new IOException(dir + " is not a private directory of this user");
        }
        return dir;
    }
}
