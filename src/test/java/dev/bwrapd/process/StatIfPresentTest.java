package dev.bwrapd.process;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Libc.statIfPresent: missing is null, not an exception; other failures still are errors. */
class StatIfPresentTest {
    @TempDir
    Path dir;

    @Test
    void missingPathsAreNull() throws Exception {
        Files.writeString(dir.resolve("file"), "x");
        assertNull(Libc.statIfPresent(Libc.AT_FDCWD, dir.resolve("nothing").toString(), Libc.AT_SYMLINK_NOFOLLOW));
        // ENOTDIR: a name on the way is a file
        assertNull(Libc.statIfPresent(Libc.AT_FDCWD, dir.resolve("file/below").toString(), Libc.AT_SYMLINK_NOFOLLOW));
    }

    /** birthNanos shares the rule: missing is null, a loop an error. */
    @Test
    void aMissingBirthIsNullAndALoopAnError() throws Exception {
        Files.writeString(dir.resolve("file"), "x");
        assertNull(Libc.birthNanos(Libc.AT_FDCWD, dir.resolve("nothing").toString(), Libc.AT_SYMLINK_NOFOLLOW));
        assertNull(Libc.birthNanos(Libc.AT_FDCWD, dir.resolve("file/below").toString(), Libc.AT_SYMLINK_NOFOLLOW));
        org.junit.jupiter.api.Assertions.assertNotNull(Libc.birthNanos(Libc.AT_FDCWD, dir.resolve("file").toString(), Libc.AT_SYMLINK_NOFOLLOW));
        Files.createSymbolicLink(dir.resolve("a"), Path.of("b"));
        Files.createSymbolicLink(dir.resolve("b"), Path.of("a"));
        assertEquals(Libc.ELOOP, assertThrows(Libc.Error.class, () -> Libc.birthNanos(Libc.AT_FDCWD, dir.resolve("a").toString(), 0)).errno);
    }

    @Test
    void aLinkIsSeenAsALinkAndAFileAsAFile() throws Exception {
        Files.writeString(dir.resolve("file"), "abc");
        Files.createSymbolicLink(dir.resolve("link"), Path.of("missing-target"));
        assertEquals(Libc.S_IFLNK, Libc.statIfPresent(Libc.AT_FDCWD, dir.resolve("link").toString(), Libc.AT_SYMLINK_NOFOLLOW).type());
        Libc.FileStat file = Libc.statIfPresent(Libc.AT_FDCWD, dir.resolve("file").toString(), Libc.AT_SYMLINK_NOFOLLOW);
        assertEquals(Libc.S_IFREG, file.type());
        assertEquals(3, file.size());
        // followed, the dangling link is missing
        assertNull(Libc.statIfPresent(Libc.AT_FDCWD, dir.resolve("link").toString(), 0));
    }

    @Test
    void otherFailuresAreStillErrors() {
        Libc.Error loop = assertThrows(Libc.Error.class, () -> {
            Files.createSymbolicLink(dir.resolve("a"), Path.of("b"));
            Files.createSymbolicLink(dir.resolve("b"), Path.of("a"));
            Libc.statIfPresent(Libc.AT_FDCWD, dir.resolve("a").toString(), 0);
        });
        assertEquals(Libc.ELOOP, loop.errno);
        assertThrows(Libc.Error.class, () -> Libc.stat(Libc.AT_FDCWD, dir.resolve("nothing").toString(), 0));
    }

    @Test
    void aPathWithANulNeverReachesTheKernel() throws Exception {
        Files.writeString(dir.resolve("file"), "x");
        // C would read "DIR/file" and find it: the whole string names nothing bwrapd checked
        String truncated = dir.resolve("file") + "\0/../../elsewhere";
        assertThrows(IllegalArgumentException.class, () -> Libc.statIfPresent(Libc.AT_FDCWD, truncated, 0));
        assertThrows(IllegalArgumentException.class, () -> Libc.open(truncated, Libc.O_PATH, 0));
    }
}
