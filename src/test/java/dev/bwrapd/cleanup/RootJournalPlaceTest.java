package dev.bwrapd.cleanup;

import dev.bwrapd.process.Libc;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/** Where a tree shows the journal: known by device and inode, whatever the tree's name. */
class RootJournalPlaceTest {
    static Libc.FileStat dir(long device, long inode) {
        return new Libc.FileStat(Libc.S_IFDIR | 0700, device, inode, 0, 0);
    }

    final RootJournal.Place place = new RootJournal.Place(List.of(dir(1, 2), dir(5, 10), dir(5, 11), dir(5, 12)), List.of("run", "user", "bwrapd"));

    @Test
    void eachAncestorShowsTheJournalBelowIt() {
        assertEquals("run/user/bwrapd", place.below(dir(1, 2)));
        assertEquals("user/bwrapd", place.below(dir(5, 10)));
        assertEquals("bwrapd", place.below(dir(5, 11)));
        assertEquals("", place.below(dir(5, 12)), "the journal itself");
        assertEquals("/run/user/bwrapd", place.path());
        assertEquals(dir(5, 12), place.directory());
    }

    @Test
    void otherDirectoriesDoNot() {
        assertNull(place.below(dir(5, 13)));
        assertNull(place.below(dir(1, 10)), "the same inode on another device is another directory");
    }

    @Test
    void aRealJournalKnowsItsAncestorsByDeviceAndInode() throws Exception {
        Path parent = Files.createTempDirectory("bwrapd-place-");
        try {
            Path journal = PrivateDirectory.open(parent.resolve("bwrapd"), Libc.uid());
            RootJournal.Place real = RootJournal.Place.of(journal);
            assertEquals("bwrapd", real.below(Libc.stat(Libc.AT_FDCWD, parent.toString(), 0)));
            assertEquals(journal.toRealPath().toString(), real.path());
            assertEquals(journal.toRealPath().toString().substring(1), real.below(Libc.stat(Libc.AT_FDCWD, "/", 0)));
        } finally {
            Files.deleteIfExists(parent.resolve("bwrapd"));
            Files.delete(parent);
        }
    }
}
