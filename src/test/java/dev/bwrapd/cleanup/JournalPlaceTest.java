package dev.bwrapd.cleanup;

import dev.bwrapd.process.Libc;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Where a tree shows a journal: known by device and inode, whatever the tree's name, along every way the mount table shows. */
class JournalPlaceTest {
    static Libc.FileStat dir(long device, long inode) {
        return new Libc.FileStat(Libc.S_IFDIR | 0700, device, inode, 0, 0);
    }

    final JournalPlace place = new JournalPlace(List.of(
            new JournalPlace.Way(List.of(dir(1, 2), dir(5, 10), dir(5, 11), dir(5, 12)), List.of("run", "user", "bwrapd")),
            new JournalPlace.Way(List.of(dir(1, 2), dir(1, 30), dir(5, 11), dir(5, 12)), List.of("srv", "u", "bwrapd"))));

    @Test
    void eachAncestorOnEachWayShowsTheJournalBelowIt() {
        assertEquals(List.of("run/user/bwrapd", "srv/u/bwrapd"), place.below(dir(1, 2)));
        assertEquals(List.of("user/bwrapd"), place.below(dir(5, 10)));
        assertEquals(List.of("bwrapd"), place.below(dir(5, 11)), "once, though both ways pass it");
        assertEquals(List.of("u/bwrapd"), place.below(dir(1, 30)));
        assertEquals(List.of(""), place.below(dir(5, 12)), "the journal itself");
        assertEquals(List.of(dir(5, 12)), place.journals());
        assertEquals("/run/user/bwrapd, /srv/u/bwrapd", place.paths());
    }

    @Test
    void otherDirectoriesDoNot() {
        assertEquals(List.of(), place.below(dir(5, 13)));
        assertEquals(List.of(), place.below(dir(1, 10)), "the same inode on another device is another directory");
        assertTrue(JournalPlace.NOWHERE.below(dir(1, 2)).isEmpty());
    }

    static final String MOUNTINFO = String.join("\n",
            "22 1 252:0 / / rw,relatime - ext4 /dev/vda rw",
            "30 22 252:1 / /mnt/data rw - ext4 /dev/vdb rw",
            "31 22 252:1 /tmp /tmp rw - ext4 /dev/vdb rw",
            "32 22 252:1 /tmp /home/u/my\\040tmp rw - ext4 /dev/vdb rw",
            "33 22 252:1 /other /srv rw - ext4 /dev/vdb rw",
            "34 22 0:40 / /run/user/1000 rw - tmpfs tmpfs rw",
            "");

    @Test
    void theMountTableShowsTheJournalWhereverItsFileSystemIsMountedAboveIt() {
        List<JournalPlace.Mount> mounts = JournalPlace.mountTable(MOUNTINFO);
        assertEquals(new JournalPlace.Mount(32, "252:1", "/tmp", "/home/u/my tmp"), mounts.get(3), "octal escapes undone");
        assertEquals(List.of("/mnt/data/tmp/bwrapd-1000", "/home/u/my tmp/bwrapd-1000"), JournalPlace.otherPaths("/tmp/bwrapd-1000", mounts));
        assertEquals(List.of(), JournalPlace.otherPaths("/run/user/1000/bwrapd", mounts));
        assertEquals(List.of(), JournalPlace.otherPaths("/var/bwrapd", mounts), "on / alone");
        assertEquals(new JournalPlace.InFileSystem("252:1", "/tmp/bwrapd-1000"), JournalPlace.inFileSystem("/home/u/my tmp/bwrapd-1000", mounts));
        assertEquals(new JournalPlace.InFileSystem("0:40", "/bwrapd"), JournalPlace.inFileSystem("/run/user/1000/bwrapd", mounts));
    }

    @Test
    void aRealJournalKnowsItsAncestorsByDeviceAndInode() throws Exception {
        Path parent = Files.createTempDirectory("bwrapd-place-");
        try {
            Path journal = PrivateDirectory.open(parent.resolve("bwrapd"), Libc.uid());
            JournalPlace real = JournalPlace.of(List.of(journal));
            assertEquals(List.of("bwrapd"), real.below(Libc.stat(Libc.AT_FDCWD, parent.toString(), 0)));
            assertEquals(journal.toRealPath().toString(), real.paths());
            assertTrue(real.below(Libc.stat(Libc.AT_FDCWD, "/", 0)).contains(journal.toRealPath().toString().substring(1)));
        } finally {
            Files.deleteIfExists(parent.resolve("bwrapd"));
            Files.delete(parent);
        }
    }
}
