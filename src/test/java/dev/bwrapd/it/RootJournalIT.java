package dev.bwrapd.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static dev.bwrapd.it.Runs.assertExited;
import static dev.bwrapd.it.Runs.mount;
import static dev.bwrapd.it.Runs.run;
import static dev.bwrapd.it.Runs.sh;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The root journal (what bwrap may create in each root, for the next helper to remove) is out of
 * every sandbox's reach: a sandbox that could write there planted a record naming an empty
 * directory of another root ({@code .git/refs}), and the next run on that root removed it. Each
 * helper here keeps its journal in a directory the test made ({@code XDG_RUNTIME_DIR}).
 */
class RootJournalIT {
    TestRoot attacker;
    TestRoot victim;
    Path host;

    @BeforeEach
    void roots() throws Exception {
        attacker = TestRoot.create();
        victim = TestRoot.create();
        Files.createDirectories(victim.path().resolve(".git/refs"));
        host = Runs.hostDir("bwrapd-it-journal-");
    }

    @AfterEach
    void removeRoots() throws Exception {
        attacker.close();
        victim.close();
        TestRoot.deleteTree(host);
    }

    static BwrapdProcess helperWithRuntimeDir(Path runtimeDir) throws Exception {
        BwrapdProcess bwrapd = BwrapdProcess.startUnder(List.of("env", "XDG_RUNTIME_DIR=" + runtimeDir));
        Runs.initialize(bwrapd);
        return bwrapd;
    }

    /** The same, in a mount namespace of the test's own, run by {@code setup} (a shell command that makes its mounts, then execs "$@"). */
    static BwrapdProcess helperInAMountNamespace(Path runtimeDir, String setup) throws Exception {
        BwrapdProcess bwrapd = BwrapdProcess.startUnder(List.of("unshare", "-Urm", "--propagation", "private",
                "env", "XDG_RUNTIME_DIR=" + runtimeDir, "/bin/sh", "-c", setup, "sh"));
        Runs.initialize(bwrapd);
        return bwrapd;
    }

    /** The journal's directory of records of {@code root}: its device (major-minor, as statx gives it) and inode. */
    static String recordsName(Path root) throws Exception {
        long dev = (long) Files.getAttribute(root, "unix:dev");
        long major = ((dev >>> 8) & 0xfff) | ((dev >>> 32) & ~0xfffL);
        long minor = (dev & 0xff) | ((dev >>> 12) & ~0xffL);
        return ((major << 32) | minor) + "-" + Files.getAttribute(root, "unix:ino");
    }

    /** A shell script that plants, at {@code journal} as the sandbox sees it, a record of the victim naming its .git/refs. */
    String plant(String journal) throws Exception {
        String records = journal + "/" + recordsName(victim.path());
        return "mkdir -p " + records + " && printf '%s\\n' " + victim.path().toRealPath() + " .git .git/refs > " + records + "/left-1;"
                + " printf '%s\\n' " + victim.path().toRealPath() + " .git .git/refs > " + records + "/2147483646;"
                + " echo seen: $(ls -A " + journal + ")";
    }

    void assertVictimKeptAfterARunOnIt(BwrapdProcess bwrapd) throws Exception {
        JsonNode result = run(bwrapd, sh(victim, "true"));
        assertExited(result, 0);
        assertTrue(Files.isDirectory(victim.path().resolve(".git/refs")),
                "a record planted by a sandbox made bwrapd remove the victim's .git/refs: " + result.get("cleanup"));
    }

    /** The journal's parent (XDG_RUNTIME_DIR, or /tmp without it) mounted read-write: the sandbox sees an empty, read-only journal. */
    @Test
    void aSandboxGivenTheJournalsParentCannotPlantRecords() throws Exception {
        Path runtimeDir = Files.createDirectory(host.resolve("runtime"));
        try (BwrapdProcess bwrapd = helperWithRuntimeDir(runtimeDir)) {
            ObjectNode p = sh(attacker, plant("/state/bwrapd") + "; touch /state/bwrapd/lock 2>/dev/null && echo writable");
            p.set("mounts", Runs.JSON.createArrayNode().add(mount(runtimeDir.toString(), "/state", false)));
            JsonNode result = run(bwrapd, p);
            assertVictimKeptAfterARunOnIt(bwrapd);
            assertEquals("seen:\n", Runs.out(result), "the sandbox saw or wrote the journal: " + result);
            Runs.closeChecked(bwrapd);
        }
    }

    /** The same, the journal's ancestor reached through a bind mount of another name (the same directory: same device and inode). */
    @Test
    void aSandboxGivenTheJournalsAncestorUnderAnotherNameCannotPlantRecords() throws Exception {
        Path runtimeDir = Files.createDirectories(host.resolve("a/runtime"));
        try (BwrapdProcess bwrapd = helperWithRuntimeDir(runtimeDir)) {
            ObjectNode p = sh(attacker, plant("/up/runtime/bwrapd"));
            p.set("mounts", Runs.JSON.createArrayNode().add(mount(host.resolve("a").toString(), "/up", false)));
            JsonNode result = run(bwrapd, p);
            assertVictimKeptAfterARunOnIt(bwrapd);
            assertEquals("seen:\n", Runs.out(result), "the sandbox saw or wrote the journal: " + result);
            Runs.closeChecked(bwrapd);
        }
    }

    /**
     * The journal mounted again below a mount source (a bind mount of its parent there: bwrap
     * binds recursively), in a mount namespace of the test's own: found in the mount table.
     */
    @Test
    void aSandboxGivenADirectoryTheJournalIsMountedInCannotPlantRecords() throws Exception {
        Path runtimeDir = Files.createDirectory(host.resolve("runtime"));
        Path other = Files.createDirectories(host.resolve("other/alias"));
        String setup = "mount --bind " + runtimeDir + " " + other + " && exec \"$@\"";
        try (BwrapdProcess bwrapd = helperInAMountNamespace(runtimeDir, setup)) {
            ObjectNode p = sh(attacker, plant("/state/alias/bwrapd"));
            p.set("mounts", Runs.JSON.createArrayNode().add(mount(host.resolve("other").toString(), "/state", false)));
            JsonNode result = run(bwrapd, p);
            assertVictimKeptAfterARunOnIt(bwrapd);
            assertEquals("seen:\n", Runs.out(result), "the sandbox saw or wrote the journal: " + result);
            Runs.closeChecked(bwrapd);
        }
    }

    /**
     * What is not hidden: a mount made after the helper read the mount table. A sandbox that sees
     * the journal that way still plants a record, but a record names nothing born before it: the
     * victim's .git/refs, older, stays.
     */
    @Test
    void aRecordPlantedThroughAMountMadeLaterNamesNothingOlderThanItself() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(Runs.keepsBirthTimes(host), "the journal's file system keeps no birth time: nothing is asked there");
        Path runtimeDir = Files.createDirectory(host.resolve("runtime"));
        Path other = Files.createDirectories(host.resolve("other/alias"));
        String setup = "(while [ ! -e " + host.resolve("go") + " ]; do sleep 0.05; done; mount --bind " + runtimeDir + " " + other
                + " && touch " + host.resolve("mounted") + ") & exec \"$@\"";
        try (BwrapdProcess bwrapd = helperInAMountNamespace(runtimeDir, setup)) {
            Files.writeString(host.resolve("go"), "");
            Runs.awaitFile(host.resolve("mounted"), java.time.Duration.ofSeconds(30));
            Thread.sleep(1200); // the victim's .git/refs is older than the record by more than a clock's tick can blur
            ObjectNode p = sh(attacker, plant("/state/alias/bwrapd"));
            p.set("mounts", Runs.JSON.createArrayNode().add(mount(host.resolve("other").toString(), "/state", false)));
            JsonNode result = run(bwrapd, p);
            assertTrue(Runs.out(result).contains("lock"), "the journal was hidden after all (then this test tests nothing): " + result);
            assertVictimKeptAfterARunOnIt(bwrapd);
            Runs.closeChecked(bwrapd);
        }
    }

    /** A run whose root holds the journal (XDG_RUNTIME_DIR inside the root) does not see it either. */
    @Test
    void aRootHoldingTheJournalDoesNotShowIt() throws Exception {
        Path runtimeDir = Files.createDirectory(attacker.path().resolve("runtime"));
        try (BwrapdProcess bwrapd = helperWithRuntimeDir(runtimeDir)) {
            JsonNode result = run(bwrapd, sh(attacker, plant("/runtime/bwrapd")));
            assertTrue(result.get("cleanup").get("ok").asBoolean(), result::toString);
            assertVictimKeptAfterARunOnIt(bwrapd);
            assertEquals("seen:\n", Runs.out(result), "the sandbox saw or wrote the journal: " + result);
            Runs.closeChecked(bwrapd);
        }
    }

    /**
     * The journal removed after the helper started ({@code /run/user/UID} goes at logout, tmpfiles
     * ages {@code /tmp/bwrapd-UID}) and made again, by another helper say: another
     * directory at the same path, which the helper, by that path, uses from then on. It is hidden
     * all the same.
     */
    @Test
    void aJournalRemovedAndMadeAgainIsHiddenToo() throws Exception {
        Path runtimeDir = Files.createDirectory(host.resolve("runtime"));
        try (BwrapdProcess bwrapd = helperWithRuntimeDir(runtimeDir)) {
            assertExited(run(bwrapd, sh(attacker, "true")), 0); // the journal in use
            // XDG_RUNTIME_DIR too, as at logout: its name on the way leads elsewhere now. Moved aside, not removed, until
            // the new one is made: a file system may give a new directory the inode number of one just removed.
            Path old = Files.move(runtimeDir, host.resolve("removed"));
            Files.createDirectories(runtimeDir.resolve("bwrapd"), java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                    java.nio.file.attribute.PosixFilePermissions.fromString("rwx------")));
            TestRoot.deleteTree(old);
            ObjectNode p = sh(attacker, plant("/state/bwrapd") + "; touch /state/bwrapd/lock 2>/dev/null && echo writable");
            p.set("mounts", Runs.JSON.createArrayNode().add(mount(runtimeDir.toString(), "/state", false)));
            JsonNode result = run(bwrapd, p);
            assertVictimKeptAfterARunOnIt(bwrapd);
            assertEquals("seen:\n", Runs.out(result), "the sandbox saw or wrote the journal: " + result);
            assertTrue(Files.isDirectory(runtimeDir.resolve("bwrapd")), "the journal is gone");
            Runs.closeChecked(bwrapd);
        }
    }

    /**
     * A directory or file inside the journal bound elsewhere before the helper started: a mount
     * source there is the journal's, however it is reached (walking up by {@code ..} from a bind
     * mount's root leaves the journal's file system behind: its parent is the mount point's).
     */
    @Test
    void aMountSourceBoundFromInsideTheJournalIsRefused() throws Exception {
        Path runtimeDir = Files.createDirectory(host.resolve("runtime"));
        Path journal = Files.createDirectory(runtimeDir.resolve("bwrapd"), java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                java.nio.file.attribute.PosixFilePermissions.fromString("rwx------")));
        Files.createDirectories(journal.resolve("1-2"));
        Files.write(journal.resolve("1-2/3"), new byte[0]);
        Files.write(journal.resolve("lock"), new byte[0]);
        Path dir = Files.createDirectories(host.resolve("other/dir"));
        Path file = Files.write(host.resolve("other/file"), new byte[0]);
        String setup = "mount --bind " + journal.resolve("1-2") + " " + dir + " && mount --bind " + journal.resolve("lock") + " " + file
                + " && exec \"$@\"";
        try (BwrapdProcess bwrapd = helperInAMountNamespace(runtimeDir, setup)) {
            for (Path source : List.of(dir, dir.resolve("3"), file)) {
                ObjectNode p = sh(attacker, "true");
                p.set("mounts", Runs.JSON.createArrayNode().add(mount(source.toString(), "/state", false)));
                JsonNode error = Runs.error(bwrapd, p);
                assertEquals(-32005, error.get("code").asInt(), source + ": " + error);
                Runs.assertContains(error.get("message").asText(), "journal");
            }
            ObjectNode beside = sh(attacker, "true"); // the mount points' own directory is no journal's
            beside.set("mounts", Runs.JSON.createArrayNode().add(mount(host.resolve("other").toString(), "/state", true)));
            assertExited(run(bwrapd, beside), 0);
            Runs.closeChecked(bwrapd);
        }
    }

    /** A cwd in the journal a root holds is -32005: bwrapd would make it there, on the host, before bwrap runs. */
    @Test
    void aCwdInTheJournalIsRefused() throws Exception {
        Path runtimeDir = Files.createDirectory(attacker.path().resolve("runtime"));
        try (BwrapdProcess bwrapd = helperWithRuntimeDir(runtimeDir)) {
            for (String cwd : List.of("/runtime/bwrapd/made-by-a-cwd", "/runtime/made-by-a-cwd")) {
                ObjectNode p = sh(attacker, "true");
                p.put("cwd", cwd);
                JsonNode error = Runs.error(bwrapd, p);
                assertEquals(-32005, error.get("code").asInt(), error::toString);
                Runs.assertContains(error.get("message").asText(), "journal");
            }
            assertTrue(Files.notExists(runtimeDir.resolve("bwrapd/made-by-a-cwd")), "bwrapd made the cwd in its journal");
            Runs.closeChecked(bwrapd);
        }
    }

    /**
     * A sandbox that can write the directory above the journal's parent moves that parent aside
     * and makes a directory of its own where the journal was: the helper, or the next one, would
     * take the records planted there. Nothing on the way to the journal may be moved.
     */
    @Test
    void aSandboxCannotMoveTheJournalAsideAndPlantOneOfItsOwn() throws Exception {
        Path runtimeDir = Files.createDirectories(host.resolve("up/runtime"));
        try (BwrapdProcess bwrapd = helperWithRuntimeDir(runtimeDir)) {
            ObjectNode p = sh(attacker, "mv /up/runtime /up/moved; mkdir -p /up/runtime/bwrapd && chmod 700 /up/runtime/bwrapd; "
                    + plant("/up/runtime/bwrapd"));
            p.set("mounts", Runs.JSON.createArrayNode().add(mount(host.resolve("up").toString(), "/up", false)));
            JsonNode result = run(bwrapd, p);
            assertVictimKeptAfterARunOnIt(bwrapd);
            assertTrue(Files.isDirectory(runtimeDir.resolve("bwrapd")), "the journal was moved: " + result);
            Runs.closeChecked(bwrapd);
        }
    }

    /**
     * A record is read back by the lines it was written with: only a newline ends one. A sandbox
     * that could write its root planted a link {@code /data -> "/x\r../VICTIM"}; a later run with a
     * mount target {@code /data/out} (placed at {@code x\r../VICTIM/out}, inside the root) was
     * recorded, its helper was killed, and the next helper read the record with a reader that also
     * ends a line at a carriage return: {@code ../VICTIM}, and it removed the empty directory beside
     * the root that the test made meanwhile.
     */
    @Test
    void aCarriageReturnInARecordedPathLeadsNoCleanupOutOfTheRoot() throws Exception {
        Path runtimeDir = Files.createDirectory(host.resolve("runtime"));
        Path victimDir = attacker.path().resolveSibling("bwrapd-it-victim-" + ProcessHandle.current().pid() + "-" + System.nanoTime());
        Path sync = Files.createDirectory(host.resolve("sync"));
        try {
            try (BwrapdProcess bwrapd = helperWithRuntimeDir(runtimeDir)) {
                JsonNode planted = run(bwrapd, sh(attacker, "ln -s \"$(printf '/x\\r../" + victimDir.getFileName() + "')\" /data && echo planted"));
                assertEquals("planted\n", Runs.out(planted), planted::toString);
                Runs.closeChecked(bwrapd);
            }
            BwrapdProcess killed = helperWithRuntimeDir(runtimeDir);
            try {
                ObjectNode p = sh(attacker, "touch /data/out/ready; sleep 1000");
                p.set("mounts", Runs.JSON.createArrayNode().add(mount(sync.toString(), "/data/out", false)));
                killed.requestAsync("sandbox/run", p);
                Runs.awaitFile(sync.resolve("ready"), java.time.Duration.ofSeconds(30));
                Files.createDirectory(victimDir); // after the record: its birth does not keep it
            } finally {
                killed.process().destroyForcibly(); // SIGKILL: its record is the next helper's to take
                killed.waitFor(java.time.Duration.ofSeconds(30));
                killed.close();
            }
            try (BwrapdProcess next = helperWithRuntimeDir(runtimeDir)) {
                JsonNode result = run(next, sh(attacker, "true"));
                assertExited(result, 0);
                assertTrue(Files.isDirectory(victimDir), "the cleanup of a killed helper's record removed a directory beside the root: "
                        + next.stderr());
                try (var left = Files.list(attacker.path())) {
                    assertEquals(List.of(), left.filter(f -> f.getFileName().toString().startsWith("x")).toList(),
                            "what the killed helper's bwrap made is left in the root: " + next.stderr());
                }
                Runs.closeChecked(next);
            }
        } finally {
            TestRoot.deleteTree(victimDir);
        }
    }

    /**
     * Two helpers on one root that name it by two paths (the first sees it through a bind mount of
     * its own): the first to end hands its record over, and the last took it for another root's,
     * its path not the one it names the root by, and dropped it. What the first one's bwrap made
     * stayed in the root for good, and so did the last one's, which it had counted as pre-existing.
     */
    @Test
    void helpersThatNameOneRootByTwoPathsLeaveItClean() throws Exception {
        Path runtimeDir = Files.createDirectory(host.resolve("runtime"));
        Path alias = Files.createDirectory(host.resolve("alias"));
        Path sync = Files.createDirectory(host.resolve("sync"));
        java.util.TreeMap<String, String> before = attacker.snapshot();
        try (BwrapdProcess first = helperInAMountNamespace(runtimeDir, "mount --bind " + attacker.path() + " " + alias + " && exec \"$@\"");
             BwrapdProcess last = helperWithRuntimeDir(runtimeDir)) {
            ObjectNode early = sh(null, "touch /s/first; while [ ! -e /s/go-first ]; do sleep 0.02; done; test -c /dev/null");
            early.put("root", alias.toString());
            early.set("mounts", Runs.JSON.createArrayNode().add(mount(sync.toString(), "/s", false)));
            var firstResponse = first.requestAsync("sandbox/run", early);
            Runs.awaitFile(sync.resolve("first"), java.time.Duration.ofSeconds(30));
            ObjectNode late = sh(attacker, "touch /s/last; while [ ! -e /s/go-last ]; do sleep 0.02; done; test -c /dev/null");
            late.set("mounts", Runs.JSON.createArrayNode().add(mount(sync.toString(), "/s", false)).add(mount(sync.toString(), "/m", true)));
            var lastResponse = last.requestAsync("sandbox/run", late);
            Runs.awaitFile(sync.resolve("last"), java.time.Duration.ofSeconds(30));
            Files.writeString(sync.resolve("go-first"), "");
            JsonNode firstResult = firstResponse.get(60, java.util.concurrent.TimeUnit.SECONDS).get("result");
            assertExited(firstResult, 0);
            assertTrue(firstResult.get("cleanup").get("deferred").asBoolean(), firstResult::toString);
            Files.writeString(sync.resolve("go-last"), "");
            JsonNode lastResult = lastResponse.get(60, java.util.concurrent.TimeUnit.SECONDS).get("result");
            assertExited(lastResult, 0);
            Runs.assertSameTree(before, attacker.snapshot(), "the root is left with bwrap's mount points: " + lastResult.get("cleanup"));
            Runs.closeChecked(first);
            Runs.closeChecked(last);
        }
    }

    /** A mount source in the journal, or the journal itself, is refused (-32005): nothing there is a sandbox's. */
    @Test
    void aMountSourceInTheJournalIsRefused() throws Exception {
        Path runtimeDir = Files.createDirectory(host.resolve("runtime"));
        try (BwrapdProcess bwrapd = helperWithRuntimeDir(runtimeDir)) {
            Files.write(runtimeDir.resolve("bwrapd/lock"), new byte[0]);
            Files.createDirectories(runtimeDir.resolve("bwrapd/1-2"));
            for (String source : List.of(runtimeDir.resolve("bwrapd").toString(), runtimeDir.resolve("bwrapd/lock").toString(),
                    runtimeDir.resolve("bwrapd/1-2").toString())) {
                ObjectNode p = sh(attacker, "true");
                p.set("mounts", Runs.JSON.createArrayNode().add(mount(source, "/state", false)));
                JsonNode error = Runs.error(bwrapd, p);
                assertEquals(-32005, error.get("code").asInt(), error::toString);
                Runs.assertContains(error.get("message").asText(), "journal");
            }
            Runs.closeChecked(bwrapd);
        }
    }
}
