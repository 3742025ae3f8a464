package dev.bwrapd.cleanup;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Cleanup of a root on a plain temporary directory, with bwrap's leftovers made by hand: only what
 * did not exist before is removed, the last user of a root cleans, and no symbolic link is followed.
 */
class RootLeasesTest {
    static final List<String> DEFAULT_PATHS =
            List.of("dev", "dev/full", "dev/null", "dev/urandom", "dev/random", "dev/zero", "dev/shm", "tmp", "proc");
    static final List<String> DEVICES = List.of("full", "null", "urandom", "random", "zero");

    @TempDir
    Path tmp;
    Path root;
    Path host;
    RootLeases leases;
    final Map<Path, Integer> opened = new java.util.HashMap<>();

    /** The root's descriptor, as a run holds it (one per root for the whole test). */
    dev.bwrapd.process.Libc.FileStat stat(Path dir) {
        try {
            return dev.bwrapd.process.Libc.stat(fd(dir), "", dev.bwrapd.process.Libc.AT_EMPTY_PATH);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    int fd(Path dir) {
        return opened.computeIfAbsent(dir, d -> {
            try {
                return dev.bwrapd.process.Libc.open(d.toString(), dev.bwrapd.process.Libc.O_PATH | dev.bwrapd.process.Libc.O_DIRECTORY, 0);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
    }

    @org.junit.jupiter.api.AfterEach
    void closeRoots() {
        opened.values().forEach(dev.bwrapd.process.Libc::close);
    }

    @BeforeEach
    void setUp() throws IOException {
        root = Files.createDirectory(tmp.resolve("root"));
        Files.createDirectories(root.resolve("bin"));
        Files.writeString(root.resolve("bin/sh"), "sh");
        host = Files.createDirectory(tmp.resolve("host"));
        leases = new RootLeases();
    }

    /** What bwrap leaves behind for the default devices plus devShm: a directory, empty mount-point files. */
    void bwrapLeftovers() throws IOException {
        Files.createDirectories(root.resolve("dev/shm"));
        for (String d : DEVICES) if (!Files.exists(root.resolve("dev/" + d))) Files.createFile(root.resolve("dev/" + d));
        Files.createDirectories(root.resolve("tmp"));
        Files.createDirectories(root.resolve("proc"));
    }

    static TreeMap<String, String> snapshot(Path dir) throws IOException {
        TreeMap<String, String> tree = new TreeMap<>();
        try (Stream<Path> paths = Files.walk(dir)) {
            for (Path p : paths.toList()) {
                String kind = Files.isSymbolicLink(p) ? "link->" + Files.readSymbolicLink(p)
                        : Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS) ? "dir" : "file:" + Files.readString(p);
                tree.put("/" + dir.relativize(p), kind);
            }
        }
        return tree;
    }

    @Test
    void removesWhatBwrapCreatedChildrenFirst() throws Exception {
        TreeMap<String, String> before = snapshot(root);
        leases.acquire(fd(root), stat(root), DEFAULT_PATHS);
        bwrapLeftovers();
        CleanupReport report = leases.release(fd(root), stat(root));
        assertTrue(report.ok(), report::toString);
        assertFalse(report.deferred());
        assertEquals(List.of(), report.failed());
        assertEquals(List.of("/proc", "/tmp", "/dev/shm", "/dev/zero", "/dev/random", "/dev/urandom", "/dev/null", "/dev/full", "/dev"),
                report.removed());
        assertEquals(before, snapshot(root));
        assertEquals(0, leases.inUse());
    }

    /**
     * Nested roots: R/inner/proc is the outer lease's mount target /inner/proc and the inner
     * lease's /proc. The first to end leaves it (and its parents) to the other, whichever made it.
     */
    @Test
    void aMountPointOfANestedRootIsLeftToTheLastLeaseThatReliesOnIt() throws Exception {
        Path inner = Files.createDirectory(root.resolve("inner"));
        TreeMap<String, String> before = snapshot(root);
        leases.acquire(fd(root), stat(root), List.of("inner", "inner/proc", "tmp"));
        Files.createDirectories(root.resolve("inner/proc")); // the outer run's bwrap
        Files.createDirectories(root.resolve("tmp"));
        leases.acquire(fd(inner), stat(inner), List.of("proc")); // finds it there: pre-existing, for this lease
        CleanupReport outer = leases.release(fd(root), stat(root));
        assertTrue(outer.ok() && outer.deferred(), outer::toString);
        assertEquals(List.of("/tmp"), outer.removed(), "the inner lease's /proc stays");
        assertTrue(Files.isDirectory(inner.resolve("proc")));
        CleanupReport innerReport = leases.release(fd(inner), stat(inner));
        assertEquals(List.of("/proc"), innerReport.removed(), "handed over: the inner lease removes it");
        assertEquals(before, snapshot(root));
    }

    /** What a lease is handed over is in its journal record from then on: a helper killed now leaves it for the next to remove. */
    @Test
    void aMountPointHandedOverToANestedLeaseIsInItsJournalRecord() throws Exception {
        Path journalDir = tmp.resolve("run");
        RootLeases withJournal = new RootLeases(journalIn(journalDir));
        Path inner = Files.createDirectory(root.resolve("inner"));
        withJournal.acquire(fd(root), stat(root), List.of("inner", "inner/proc"));
        Files.createDirectories(root.resolve("inner/proc"));
        withJournal.acquire(fd(inner), stat(inner), List.of("proc"));
        Path innerRecord = journalDir.resolve("bwrapd/" + recordsName(inner) + "/" + ProcessHandle.current().pid());
        assertFalse(Files.exists(innerRecord), "nothing to record yet: /proc was there");
        assertTrue(withJournal.release(fd(root), stat(root)).deferred());
        assertEquals(List.of(inner.toRealPath().toString(), "proc"), Files.readAllLines(innerRecord));
        assertEquals(List.of("/proc"), withJournal.release(fd(inner), stat(inner)).removed());
        assertFalse(Files.exists(innerRecord));
    }

    @Test
    void theInnerLeaseEndingFirstLeavesTheOuterOnesMountPoint() throws Exception {
        Path inner = Files.createDirectory(root.resolve("inner"));
        TreeMap<String, String> before = snapshot(root);
        leases.acquire(fd(inner), stat(inner), List.of("proc"));
        Files.createDirectories(inner.resolve("proc")); // the inner run's bwrap
        leases.acquire(fd(root), stat(root), List.of("inner", "inner/proc"));
        CleanupReport innerReport = leases.release(fd(inner), stat(inner));
        assertTrue(innerReport.ok() && innerReport.deferred(), innerReport::toString);
        assertEquals(List.of(), innerReport.removed());
        CleanupReport outer = leases.release(fd(root), stat(root));
        assertEquals(List.of("/inner/proc"), outer.removed());
        assertEquals(before, snapshot(root));
    }

    @Test
    void rootsSideBySideDoNotKeepEachOthersMountPoints() throws Exception {
        Path other = Files.createDirectory(tmp.resolve("other"));
        leases.acquire(fd(root), stat(root), List.of("proc"));
        leases.acquire(fd(other), stat(other), List.of("proc"));
        Files.createDirectories(root.resolve("proc"));
        Files.createDirectories(other.resolve("proc"));
        CleanupReport report = leases.release(fd(root), stat(root));
        assertFalse(report.deferred(), report::toString);
        assertEquals(List.of("/proc"), report.removed());
        assertEquals(List.of("/proc"), leases.release(fd(other), stat(other)).removed());
    }

    @Test
    void pathsOfTwoRootsMayBeOneFileWhenTheirLastNamesAreTheSame() {
        assertTrue(RootLeases.mayBeOneFile("inner/proc", "proc"));
        assertTrue(RootLeases.mayBeOneFile("proc", "a/b/proc"));
        assertTrue(RootLeases.mayBeOneFile("proc", "proc"), "the same path of two roots: one directory where one root holds a bind mount of the other");
        assertTrue(RootLeases.mayBeOneFile("a/proc", "sub/proc"), "a bind mount of sub at a");
        assertFalse(RootLeases.mayBeOneFile("inner/xproc", "proc"));
        assertFalse(RootLeases.mayBeOneFile("proc", "xproc"));
        assertFalse(RootLeases.mayBeOneFile("dev/null", "dev"));
        assertFalse(RootLeases.mayBeOneFile("proc", "proc/x"));
    }

    @Test
    void whatExistedBeforeIsLeftAlone() throws Exception {
        Files.createDirectories(root.resolve("dev"));
        Files.writeString(root.resolve("dev/null"), "a regular file the root came with");
        Files.createDirectories(root.resolve("tmp/keep"));
        Files.createDirectories(root.resolve("proc"));
        TreeMap<String, String> before = snapshot(root);
        leases.acquire(fd(root), stat(root), DEFAULT_PATHS);
        bwrapLeftovers();
        CleanupReport report = leases.release(fd(root), stat(root));
        assertTrue(report.ok(), report::toString);
        assertEquals(List.of("/dev/shm", "/dev/zero", "/dev/random", "/dev/urandom", "/dev/full"), report.removed());
        assertEquals(before, snapshot(root));
    }

    @Test
    void pathsAlreadyGoneAreNotReported() throws Exception {
        leases.acquire(fd(root), stat(root), DEFAULT_PATHS);
        Files.createDirectories(root.resolve("dev"));
        Files.createFile(root.resolve("dev/null"));
        CleanupReport report = leases.release(fd(root), stat(root));
        assertTrue(report.ok(), report::toString);
        assertEquals(List.of("/dev/null", "/dev"), report.removed());
    }

    @Test
    void aNonEmptyDirectoryIsReportedAndKept() throws Exception {
        leases.acquire(fd(root), stat(root), List.of("a", "a/b", "a/b/c"));
        Files.createDirectories(root.resolve("a/b/c"));
        Files.writeString(root.resolve("a/b/left-by-the-command"), "data");
        CleanupReport report = leases.release(fd(root), stat(root));
        assertFalse(report.ok());
        assertEquals(List.of("/a/b/c"), report.removed());
        assertEquals(List.of("/a/b", "/a"), report.failed().stream().map(CleanupReport.Failure::path).toList());
        assertEquals("data", Files.readString(root.resolve("a/b/left-by-the-command")));
    }

    /** The sandboxed command moved /dev away and put a link to a host directory in its place. */
    @Test
    void devReplacedByALinkToAHostDirectory() throws Exception {
        for (String name : DEVICES) Files.writeString(host.resolve(name), "host's " + name);
        Files.createDirectories(host.resolve("shm/inner"));
        Files.writeString(host.resolve("shm/inner/file"), "deep");
        TreeMap<String, String> hostBefore = snapshot(host);

        leases.acquire(fd(root), stat(root), DEFAULT_PATHS);
        bwrapLeftovers();
        Files.move(root.resolve("dev"), root.resolve("dev.moved"));
        Files.createSymbolicLink(root.resolve("dev"), host);

        CleanupReport report = leases.release(fd(root), stat(root));
        assertEquals(hostBefore, snapshot(host), "cleanup followed the link into the host directory");
        assertFalse(report.ok());
        assertEquals(List.of("/proc", "/tmp"), report.removed());
        Map<String, String> failed = report.failed().stream()
                .collect(Collectors.toMap(CleanupReport.Failure::path, CleanupReport.Failure::error));
        assertEquals(List.of("/dev/shm", "/dev/zero", "/dev/random", "/dev/urandom", "/dev/null", "/dev/full", "/dev"),
                report.failed().stream().map(CleanupReport.Failure::path).toList());
        failed.values().forEach(error -> assertTrue(error.contains("link"), error));
        assertTrue(Files.isSymbolicLink(root.resolve("dev")), "the link is reported, and left in place");
    }

    @Test
    void relativeLinkOutOfTheRootIsNotFollowedEither() throws Exception {
        for (String name : DEVICES) Files.writeString(host.resolve(name), name);
        TreeMap<String, String> hostBefore = snapshot(host);
        leases.acquire(fd(root), stat(root), DEFAULT_PATHS);
        bwrapLeftovers();
        Files.move(root.resolve("dev"), root.resolve("dev.moved"));
        Files.createSymbolicLink(root.resolve("dev"), Path.of("../host"));
        CleanupReport report = leases.release(fd(root), stat(root));
        assertEquals(hostBefore, snapshot(host));
        assertFalse(report.ok());
    }

    @Test
    void aLeafReplacedByALinkIsNotFollowed() throws Exception {
        Files.createDirectories(host.resolve("sub"));
        TreeMap<String, String> hostBefore = snapshot(host);
        leases.acquire(fd(root), stat(root), List.of("proc", "a", "a/b"));
        Files.createSymbolicLink(root.resolve("proc"), host);
        Files.createDirectories(root.resolve("a"));
        Files.createSymbolicLink(root.resolve("a/b"), host.resolve("sub"));
        CleanupReport report = leases.release(fd(root), stat(root));
        assertEquals(hostBefore, snapshot(host));
        assertEquals(List.of("/a/b", "/a", "/proc"), report.failed().stream().map(CleanupReport.Failure::path).toList());
        assertEquals(List.of(), report.removed(), "/a still holds the link, so it stays");
        assertTrue(Files.isSymbolicLink(root.resolve("proc")));
    }

    @Test
    void theLastUserOfARootCleans() throws Exception {
        leases.acquire(fd(root), stat(root), DEFAULT_PATHS);
        bwrapLeftovers();
        leases.acquire(fd(root), stat(root), DEFAULT_PATHS); // a second run on the same root: /dev now exists, but not thanks to the root
        assertEquals(1, leases.inUse());

        CleanupReport first = leases.release(fd(root), stat(root));
        assertTrue(first.deferred());
        assertTrue(first.ok());
        assertEquals(List.of(), first.removed());
        assertTrue(Files.exists(root.resolve("dev/null")), "removed while another run still used it");

        CleanupReport last = leases.release(fd(root), stat(root));
        assertFalse(last.deferred());
        assertTrue(last.ok(), last::toString);
        assertTrue(last.removed().containsAll(List.of("/dev/null", "/dev", "/tmp", "/proc")), last::toString);
        assertFalse(Files.exists(root.resolve("dev"), LinkOption.NOFOLLOW_LINKS));
        assertEquals(0, leases.inUse());
    }

    @Test
    void pathsNamedOnlyByALaterRunAreCleanedToo() throws Exception {
        leases.acquire(fd(root), stat(root), List.of("dev", "dev/null", "tmp", "proc"));
        leases.acquire(fd(root), stat(root), List.of("dev", "dev/null", "tmp", "proc", "dev/shm", "mnt", "mnt/x"));
        Files.createDirectories(root.resolve("dev/shm"));
        Files.createFile(root.resolve("dev/null"));
        Files.createDirectories(root.resolve("mnt/x"));
        assertTrue(leases.release(fd(root), stat(root)).deferred());
        CleanupReport report = leases.release(fd(root), stat(root));
        assertTrue(report.ok(), report::toString);
        assertEquals(List.of("/bin", "/bin/sh"), snapshot(root).keySet().stream().filter(p -> !p.equals("/")).toList());
    }

    @Test
    void rootsAreIndependent() throws Exception {
        Path other = Files.createDirectory(tmp.resolve("other"));
        leases.acquire(fd(root), stat(root), List.of("tmp"));
        leases.acquire(fd(other), stat(other), List.of("tmp"));
        Files.createDirectories(root.resolve("tmp"));
        Files.createDirectories(other.resolve("tmp"));
        assertEquals(2, leases.inUse());
        assertEquals(List.of("/tmp"), leases.release(fd(root), stat(root)).removed());
        assertTrue(Files.isDirectory(other.resolve("tmp")));
        assertEquals(List.of("/tmp"), leases.release(fd(other), stat(other)).removed());
    }

    @Test
    void releasingAnUnknownRootDoesNothing() {
        CleanupReport report = leases.release(fd(root), stat(root));
        assertTrue(report.ok());
        assertFalse(report.deferred());
        assertEquals(List.of(), report.removed());
    }

    /** The journal in {@code dir}/bwrapd, a private directory of this user; {@code dir} is made. */
    private static RootJournal journalIn(Path dir) throws IOException {
        Files.createDirectory(dir);
        RootJournal journal = RootJournal.open(dir.toString(), (int) Files.getAttribute(dir, "unix:uid"));
        assertTrue(journal != null);
        return journal;
    }

    /** The name of {@code dir}'s directory of records: its device and inode. */
    private String recordsName(Path dir) throws IOException {
        dev.bwrapd.process.Libc.FileStat stat = dev.bwrapd.process.Libc.stat(fd(dir), "", dev.bwrapd.process.Libc.AT_EMPTY_PATH);
        return stat.device() + "-" + stat.inode();
    }

    /**
     * A record planted by whoever could write in the journal (a sandbox that saw it) names an
     * empty directory of the root that was there before the record: not bwrap's, and left in
     * place; what was made after the record goes.
     */
    @Test
    void aRecordNamesNothingOlderThanItself() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(dev.bwrapd.process.Libc.birthNanos(dev.bwrapd.process.Libc.AT_FDCWD, tmp.toString(), 0)
                != dev.bwrapd.process.Libc.BIRTH_UNKNOWN, "the journal's file system keeps no birth time: nothing is asked there");
        Files.createDirectories(root.resolve(".git/refs"));
        Thread.sleep(RootCleaner.BIRTH_SLACK_NANOS / 1_000_000 + 100);
        Path journalDir = tmp.resolve("run");
        RootJournal journal = journalIn(journalDir);
        Path records = recordsIn(journalDir);
        record(records, "left-1", ".git", ".git/refs", "made-after");
        Files.createDirectories(root.resolve("made-after"));
        RootLeases withJournal = new RootLeases(journal);
        withJournal.acquire(fd(root), stat(root), List.of("proc"));
        assertTrue(Files.isDirectory(root.resolve(".git/refs")), "a planted record removed what was there before it");
        assertFalse(Files.exists(root.resolve("made-after")));
        withJournal.release(fd(root), stat(root));
    }

    /**
     * A record planted by whoever could write in the journal names paths that climb out of the root
     * by {@code ..}, or stand still by {@code .}: bwrap makes nothing there, and cleanup goes only
     * below the root, whatever the record's age (the victims are made after it).
     */
    @Test
    void aRecordNamesNothingOutsideTheRoot() throws Exception {
        Path journalDir = tmp.resolve("run");
        RootJournal journal = journalIn(journalDir);
        Path records = recordsIn(journalDir);
        record(records, "left-1", "..", "../victim", "../file", "./x/../../victim2", "", "..\0x/victim3");
        Path victim3 = Files.createDirectory(tmp.resolve("victim3")); // ..\0x is .. to a libc call that reads it up to the NUL
        Path victim = Files.createDirectory(tmp.resolve("victim"));
        Path file = Files.createFile(tmp.resolve("file"));
        Path victim2 = Files.createDirectory(tmp.resolve("victim2"));
        Files.createDirectory(root.resolve("x"));
        RootLeases withJournal = new RootLeases(journal);
        withJournal.acquire(fd(root), stat(root), List.of("proc"));
        assertTrue(Files.isDirectory(victim), "a record removed a directory beside the root");
        assertTrue(Files.isRegularFile(file), "a record removed a file beside the root");
        assertTrue(Files.isDirectory(victim2), "a record removed a directory beside the root");
        assertTrue(Files.isDirectory(victim3), "a record removed a directory beside the root");
        assertTrue(Files.isDirectory(root), "a record removed the root");
        withJournal.release(fd(root), stat(root));
    }

    /**
     * The journal removed after it was opened (tmpfiles, a logout): the next lease makes it again,
     * records there, and the sandboxes' hiding knows that directory, not the one gone.
     */
    @Test
    void aJournalRemovedIsMadeAgainAndKnownAgain() throws Exception {
        Path journalDir = tmp.resolve("run");
        RootJournal journal = journalIn(journalDir);
        Path gone = Files.move(journalDir.resolve("bwrapd"), tmp.resolve("gone")); // moved aside: its inode number is not reused
        RootLeases withJournal = new RootLeases(journal);
        withJournal.acquire(fd(root), stat(root), List.of("proc"));
        Path record = journalDir.resolve("bwrapd/" + recordsName(root) + "/" + ProcessHandle.current().pid());
        assertTrue(Files.isRegularFile(record), "the lease's record is not in the journal made again");
        try (Stream<Path> left = Files.list(gone)) {
            assertEquals(List.of(), left.filter(p -> !p.getFileName().toString().equals("lock")).toList(), "recorded in the journal gone");
        }
        dev.bwrapd.process.Libc.FileStat now = dev.bwrapd.process.Libc.stat(dev.bwrapd.process.Libc.AT_FDCWD, journalDir.resolve("bwrapd").toString(), 0);
        assertTrue(journal.place().journals().stream().anyMatch(j -> j.sameFile(now)), "the journal made again is not hidden");
        withJournal.release(fd(root), stat(root));
        assertFalse(Files.exists(record.getParent()), "a clean root has no record left");
    }

    /** A record left by a bwrapd that died (no such pid): the next lease removes what it names, and only that. */
    @Test
    void aDeadHelpersRecordIsCleanedByTheNextLease() throws Exception {
        Path journalDir = tmp.resolve("run");
        RootJournal journal = journalIn(journalDir);
        Files.createDirectories(root.resolve("dev"));
        Files.createFile(root.resolve("dev/null"));
        Files.createDirectories(root.resolve("tmp"));
        Files.createDirectories(root.resolve("a/b"));
        Files.writeString(root.resolve("a/kept"), "the command's"); // a/ not empty: stays, reported
        Path records = recordsIn(journalDir);
        record(records, "2147483646", "dev", "dev/null", "tmp", "a", "a/b", "bin");
        Files.write(records.resolve("2147483645"), List.of("/elsewhere", "bin/sh"));
        record(records, "2147483644.new", "bin"); // its writer died writing it

        RootLeases withJournal = new RootLeases(journal);
        withJournal.acquire(fd(root), stat(root), List.of("proc"));
        assertFalse(Files.exists(root.resolve("dev")));
        assertFalse(Files.exists(root.resolve("tmp")));
        assertFalse(Files.exists(root.resolve("a/b")));
        assertTrue(Files.exists(root.resolve("a/kept")));
        assertEquals("sh", Files.readString(root.resolve("bin/sh")), "a record for another path (a reused inode) is not used");
        try (Stream<Path> left = Files.list(records)) {
            assertEquals(Set.of(records.resolve(Long.toString(ProcessHandle.current().pid()))),
                    left.collect(Collectors.toSet()),
                    "the dead records (and the unfinished one) are gone; this process's own is there while the root is in use");
        }
        withJournal.release(fd(root), stat(root));
        assertFalse(Files.exists(records), "a clean root has no record left");
    }

    /**
     * A record that names the root by another path: the root's own, named otherwise (a bind mount,
     * a rename), when the root is older than its directory of records; another root that got the
     * same inode (a reused one) when it is newer, whose record is not used.
     */
    @Test
    void aRecordOfTheRootByAnotherPathIsUsedOnlyWhereTheRootIsOlderThanTheRecords() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(dev.bwrapd.process.Libc.birthNanos(dev.bwrapd.process.Libc.AT_FDCWD, tmp.toString(), 0)
                != dev.bwrapd.process.Libc.BIRTH_UNKNOWN, "no birth times: the path decides alone");
        Path journalDir = tmp.resolve("run");
        RootJournal journal = journalIn(journalDir);
        Thread.sleep(20);
        Files.createDirectories(root.resolve("proc"));
        Files.write(recordsIn(journalDir).resolve("2147483646"), List.of("/by/another/name", "proc"));
        RootLeases withJournal = new RootLeases(journal);
        withJournal.acquire(fd(root), stat(root), List.of("tmp"));
        assertFalse(Files.exists(root.resolve("proc")), "the root's own record, by another name, was not used");
        withJournal.release(fd(root), stat(root));

        Path early = Files.createDirectories(journalDir.resolve("bwrapd/early")); // the records' directory, before the root is
        Thread.sleep(20);
        Path newer = Files.createDirectory(tmp.resolve("newer"));
        Files.createDirectories(newer.resolve("proc"));
        Files.write(early.resolve("2147483646"), List.of("/the/root/that/had/this/inode", "proc"));
        dev.bwrapd.process.Libc.FileStat newerStat = stat(newer);
        Files.move(early, journalDir.resolve("bwrapd/" + newerStat.device() + "-" + newerStat.inode()));
        withJournal.acquire(fd(newer), newerStat, List.of("tmp"));
        assertTrue(Files.exists(newer.resolve("proc")), "a record of an older root of the same inode was used");
        withJournal.release(fd(newer), newerStat);
    }

    /**
     * A root whose path holds a newline ({@code x\nkeep}): the record's first line, its path, must
     * not spill into the paths it names, or the next lease takes {@code keep} for one of them.
     */
    @Test
    void aRootsPathWithANewlineNamesNothingInTheRecord() throws Exception {
        Path journalDir = tmp.resolve("run");
        RootJournal journal = journalIn(journalDir);
        Path odd = Files.createDirectory(tmp.resolve("x\nkeep"));
        new RootLeases(journal).acquire(fd(odd), stat(odd), List.of("proc")); // a helper that dies with its lease
        Path records = journalDir.resolve("bwrapd/" + stat(odd).device() + "-" + stat(odd).inode());
        Files.move(records.resolve(Long.toString(ProcessHandle.current().pid())), records.resolve("2147483646"));
        Files.createDirectory(odd.resolve("keep"));
        RootLeases next = new RootLeases(journal);
        next.acquire(fd(odd), stat(odd), List.of("tmp"));
        assertTrue(Files.isDirectory(odd.resolve("keep")), "a piece of the root's path was taken for a path the record names");
        next.release(fd(odd), stat(odd));
    }

    /**
     * Another bwrapd that is alive (its record's pid, 1, runs) uses the root: its sandboxes may be
     * mounted on what bwrap made there, and removing a mount point unmounts it in their mount
     * namespaces. Nothing is removed while it is there, neither a dead helper's leftovers nor this
     * lease's own, which are handed over; the next lease on the root once it has gone removes both.
     */
    @Test
    void nothingIsRemovedWhileAnotherLiveHelperUsesTheRoot() throws Exception {
        Path journalDir = tmp.resolve("run");
        RootJournal journal = journalIn(journalDir);
        Files.createDirectories(root.resolve("dev"));
        Files.createDirectories(root.resolve("tmp"));
        Path records = recordsIn(journalDir);
        Path other = record(records, "1", "dev");
        record(records, "2147483646", "tmp"); // dead

        RootLeases withJournal = new RootLeases(journal);
        withJournal.acquire(fd(root), stat(root), List.of("dev", "tmp", "proc"));
        assertTrue(Files.exists(root.resolve("tmp")), "a dead helper's mount point may be mounted on by the live one's sandboxes");
        Files.createDirectory(root.resolve("proc")); // as bwrap does
        CleanupReport report = withJournal.release(fd(root), stat(root));
        assertTrue(report.deferred(), report::toString);
        assertTrue(Files.exists(root.resolve("proc")), "this lease's mount point is left to the last helper on the root");
        assertTrue(Files.exists(root.resolve("dev")));

        Files.delete(other); // the other helper has finished with the root
        withJournal.acquire(fd(root), stat(root), List.of("dev"));
        assertFalse(Files.exists(root.resolve("proc")), "what was handed over is removed once nobody uses the root");
        assertFalse(Files.exists(root.resolve("tmp")), "and what the dead helper left");
        assertTrue(Files.exists(root.resolve("dev")), "what the other helper made and did not hand over stays");
        withJournal.release(fd(root), stat(root));
        assertFalse(Files.exists(records), "a clean root has no record left");
    }

    /**
     * Review finding: a lease of a root this helper already holds does not take a dead helper's
     * records (restore is the first lease's), and what they name counts as pre-existing to it; it
     * recorded nothing, so the next helper to take them removed them from under its sandboxes. It
     * records itself now, even a record of nothing, beside any record but its own.
     */
    @Test
    void aLeaseRecordsItselfBesideADeadHelpersRecord() throws Exception {
        Path journalDir = tmp.resolve("run");
        RootJournal journal = journalIn(journalDir);
        Files.createDirectories(root.resolve("tmp"));
        RootLeases withJournal = new RootLeases(journal);
        withJournal.acquire(fd(root), stat(root), List.of("tmp")); // held meanwhile, by another run of this helper
        Path records = journalDir.resolve("bwrapd/" + recordsName(root));
        assertFalse(Files.exists(records), "a prepared root, nobody else: no record");
        Files.createDirectories(records);
        record(records, "2147483646", "proc"); // a helper killed after its bwrap made /proc
        Files.createDirectory(root.resolve("proc"));
        withJournal.acquire(fd(root), stat(root), List.of("proc"));
        assertTrue(Files.exists(records.resolve(Long.toString(ProcessHandle.current().pid()))), "this helper tells whoever takes the dead record");
        withJournal.release(fd(root), stat(root));
        withJournal.release(fd(root), stat(root));
    }

    /** A lease's release, once nobody else uses the root, removes what was handed over to it too, and reports it. */
    @Test
    void theLastHelperRemovesWhatWasHandedOver() throws Exception {
        Path journalDir = tmp.resolve("run");
        RootJournal journal = journalIn(journalDir);
        Path records = recordsIn(journalDir);
        Path other = record(records, "1", "dev", "dev/null");
        Files.createDirectories(root.resolve("dev"));
        Files.createFile(root.resolve("dev/null"));

        RootLeases withJournal = new RootLeases(journal);
        withJournal.acquire(fd(root), stat(root), List.of("dev", "dev/null", "proc"));
        assertTrue(Files.exists(records.resolve(Long.toString(ProcessHandle.current().pid()))), "this lease tells the other it is here");
        Files.createDirectory(root.resolve("proc"));
        Files.move(other, records.resolve("left-1-1")); // the other ends first, and hands its record over
        CleanupReport report = withJournal.release(fd(root), stat(root));
        assertFalse(report.deferred(), report::toString);
        assertEquals(Set.of("/proc", "/dev/null", "/dev"), Set.copyOf(report.removed()));
        assertTrue(report.removed().indexOf("/dev/null") < report.removed().indexOf("/dev"), "children first: " + report.removed());
        assertFalse(Files.exists(records), "a clean root has no record left");
    }

    /**
     * A killed helper's record of R names R/inner/proc, which a live lease of this helper on
     * R/inner has its /proc mounted on: the next lease of R leaves it to that lease, which
     * removes it when it ends.
     */
    @Test
    void aDeadHelpersRecordLeavesWhatANestedLeaseUses() throws Exception {
        Path journalDir = tmp.resolve("run");
        RootJournal journal = journalIn(journalDir);
        Path inner = Files.createDirectory(root.resolve("inner"));
        record(recordsIn(journalDir), "2147483646", "inner", "inner/proc"); // dead
        Files.createDirectory(inner.resolve("proc")); // the dead helper's bwrap
        RootLeases withJournal = new RootLeases(journal);
        withJournal.acquire(fd(inner), stat(inner), List.of("proc")); // finds it there, and mounts on it
        withJournal.acquire(fd(root), stat(root), List.of("tmp"));
        assertTrue(Files.isDirectory(inner.resolve("proc")), "the dead helper's record took the nested lease's mount point");
        withJournal.release(fd(root), stat(root));
        assertTrue(Files.isDirectory(inner.resolve("proc")));
        assertEquals(List.of("/proc"), withJournal.release(fd(inner), stat(inner)).removed(), "left to the inner lease: it removes it");
    }

    /** The same with a record another helper handed over to this one's release of R. */
    @Test
    void aRecordHandedOverLeavesWhatANestedLeaseUses() throws Exception {
        Path journalDir = tmp.resolve("run");
        RootJournal journal = journalIn(journalDir);
        Path inner = Files.createDirectory(root.resolve("inner"));
        Path records = recordsIn(journalDir);
        Path other = record(records, "1", "inner/proc"); // alive
        Files.createDirectory(inner.resolve("proc")); // its bwrap
        RootLeases withJournal = new RootLeases(journal);
        withJournal.acquire(fd(root), stat(root), List.of("tmp"));
        withJournal.acquire(fd(inner), stat(inner), List.of("proc"));
        Files.move(other, records.resolve("left-1-1")); // the other ends, and hands its record over
        CleanupReport report = withJournal.release(fd(root), stat(root));
        assertTrue(Files.isDirectory(inner.resolve("proc")), "the handed-over record took the nested lease's mount point: " + report);
        assertEquals(List.of("/proc"), withJournal.release(fd(inner), stat(inner)).removed(), "left to the inner lease: it removes it");
    }

    /** A root where bwrap creates nothing (its mount points already there) costs the journal nothing: no record, no directory. */
    @Test
    void aPreparedRootIsNotRecorded() throws Exception {
        Path journalDir = tmp.resolve("run");
        RootJournal journal = journalIn(journalDir);
        Files.createDirectories(root.resolve("proc"));
        Files.createDirectories(root.resolve("tmp"));
        RootLeases withJournal = new RootLeases(journal);
        withJournal.acquire(fd(root), stat(root), List.of("proc", "tmp"));
        try (Stream<Path> left = Files.list(journalDir.resolve("bwrapd"))) {
            assertEquals(List.of("lock"), left.map(p -> p.getFileName().toString()).toList(), "only the helpers' lock");
        }
        withJournal.acquire(fd(root), stat(root), List.of("proc", "dev")); // a second run whose bwrap creates dev: now recorded
        Path record = journalDir.resolve("bwrapd/" + recordsName(root) + "/" + ProcessHandle.current().pid());
        assertEquals(List.of(root.toString(), "dev"), Files.readAllLines(record));
        withJournal.release(fd(root), stat(root));
        withJournal.release(fd(root), stat(root));
        assertFalse(Files.exists(record), "removed once the root is clean");
        assertFalse(Files.exists(record.getParent()), "and the root's directory with its last record: the next lease lists nothing");
        withJournal.acquire(fd(root), stat(root), List.of("proc", "dev")); // recorded again: the directory is made again
        assertEquals(List.of(root.toString(), "dev"), Files.readAllLines(record));
        withJournal.release(fd(root), stat(root));
    }

    /**
     * Any process that can open the journal's lock file for reading can hold a lock on it (a
     * sandbox that sees the journal's directory, which it should not): leases wait for it a
     * bounded time, then go on without it, rather than every run of the user's helpers hanging.
     */
    @Test
    void aLockHeldByAnotherProcessIsWaitedForABoundedTime() throws Exception {
        Path journalDir = tmp.resolve("run");
        RootJournal journal = journalIn(journalDir);
        Path lockFile = journalDir.resolve("bwrapd/lock");
        Files.writeString(lockFile, "");
        Process holder = new ProcessBuilder("python3", "-c",
                "import fcntl, sys, time; f = open(sys.argv[1]); fcntl.lockf(f, fcntl.LOCK_SH); print('held', flush=True); time.sleep(60)",
                lockFile.toString()).redirectErrorStream(true).start();
        try {
            assertEquals("held", new String(holder.getInputStream().readNBytes(4), java.nio.charset.StandardCharsets.US_ASCII));
            RootLeases withJournal = new RootLeases(journal);
            long started = System.nanoTime();
            assertTimeoutPreemptively(java.time.Duration.ofSeconds(20), () -> {
                withJournal.acquire(fd(root), stat(root), List.of("proc"));
                Files.createDirectory(root.resolve("proc"));
                assertEquals(List.of("/proc"), withJournal.release(fd(root), stat(root)).removed());
            });
            long tookMs = (System.nanoTime() - started) / 1_000_000;
            // Waited once; then not asked for again for a minute (a review: a lock held for good made every run wait 2 s, twice).
            assertTrue(tookMs >= RootJournal.LOCK_WAIT_MS && tookMs < 2 * RootJournal.LOCK_WAIT_MS, "waited for the lock once: " + tookMs + " ms");
        } finally {
            holder.destroyForcibly();
            holder.waitFor();
        }
    }

    /** The journal's directory of records of {@code root}, made. */
    private Path recordsIn(Path journalDir) throws java.io.IOException {
        return Files.createDirectories(journalDir.resolve("bwrapd/" + recordsName(root)));
    }

    /** A record of {@code root} by {@code writer} (a pid, or a name as a dead or handing-over helper leaves it), naming {@code paths}. */
    private Path record(Path records, String writer, String... paths) throws java.io.IOException {
        List<String> lines = new java.util.ArrayList<>(List.of(root.toString()));
        lines.addAll(List.of(paths));
        return Files.write(records.resolve(writer), lines);
    }
}
