package dev.bwrapd.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static dev.bwrapd.it.Runs.assertExited;
import static dev.bwrapd.it.Runs.mount;
import static dev.bwrapd.it.Runs.run;
import static dev.bwrapd.it.Runs.sh;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What a run leaves in its root: nothing. Compares the whole root tree before and after, checks
 * that cleanup.removed names exactly what bwrap created, that cleanup never follows a link the
 * command planted, and that concurrent runs on one root do not pull mounts from under each other.
 */
class SandboxCleanupIT {
    static BwrapdProcess bwrapd;
    TestRoot root;
    Path host;

    @BeforeAll
    static void start() throws Exception {
        bwrapd = BwrapdProcess.start();
        Runs.initialize(bwrapd);
    }

    @AfterAll
    static void stop() throws Exception {
        Runs.closeChecked(bwrapd);
    }

    @BeforeEach
    void freshRoot() throws Exception {
        root = TestRoot.create();
        host = Runs.hostDir("bwrapd-it-cleanup-");
    }

    @AfterEach
    void removeRoot() throws Exception {
        root.close();
        TestRoot.deleteTree(host);
    }

    static Set<String> removed(JsonNode result) {
        Set<String> removed = new TreeSet<>();
        result.get("cleanup").get("removed").forEach(p -> removed.add(p.asText()));
        return removed;
    }

    static List<String> failedPaths(JsonNode result) {
        List<String> failed = new ArrayList<>();
        result.get("cleanup").get("failed").forEach(f -> failed.add(f.get("path").asText()));
        return failed;
    }

    /** Each removed path comes before its parent. */
    static void assertChildrenFirst(JsonNode result) {
        List<String> order = new ArrayList<>();
        result.get("cleanup").get("removed").forEach(p -> order.add(p.asText()));
        for (int i = 0; i < order.size(); i++) {
            String path = order.get(i);
            String parent = path.substring(0, path.lastIndexOf('/'));
            int at = order.indexOf(parent);
            int child = i;
            assertTrue(at < 0 || at > child, () -> parent + " removed before its child " + path + ": " + order);
        }
    }

    @Test
    void cleanupRemovesExactlyWhatTheRunCreated() throws Exception {
        Path sync = Files.createDirectory(host.resolve("sync"));
        Path data = Files.createDirectory(host.resolve("data"));
        Path file = Files.writeString(host.resolve("file.txt"), "content\n");
        TreeMap<String, String> before = root.snapshot();

        // The command reports ready, then waits until the test has looked at the root from outside.
        ObjectNode p = sh(root, "touch /sync/ready; while [ ! -e /sync/go ]; do sleep 0.02; done; test -f /x/y/file.txt");
        p.put("devShm", true);
        p.set("mounts", Runs.JSON.createArrayNode()
                .add(mount(sync.toString(), "/sync", false))
                .add(mount(data.toString(), "/a/b/c", true))
                .add(mount(file.toString(), "/x/y/file.txt", true)));
        CompletableFuture<JsonNode> response = bwrapd.requestAsync("sandbox/run", p);
        Runs.awaitFile(sync.resolve("ready"), Duration.ofSeconds(30));
        TreeMap<String, String> during = root.snapshot();
        Files.writeString(sync.resolve("go"), "");
        JsonNode result = response.get(60, TimeUnit.SECONDS).get("result");

        assertExited(result, 0);
        assertTrue(result.get("cleanup").get("ok").asBoolean(), result::toString);
        Runs.assertSameTree(before, root.snapshot(), "the root must be exactly as before");
        Set<String> created = new TreeSet<>(during.keySet());
        created.removeAll(before.keySet());
        assertEquals(created, removed(result), "cleanup.removed must be exactly what appeared in the root during the run");
        assertEquals(new TreeSet<>(List.of("/proc", "/tmp", "/dev", "/dev/full", "/dev/null", "/dev/random", "/dev/urandom",
                "/dev/zero", "/dev/shm", "/sync", "/a", "/a/b", "/a/b/c", "/x", "/x/y", "/x/y/file.txt")), removed(result));
        assertChildrenFirst(result);
        assertEquals("content\n", Files.readString(file), "a mount source is never touched");
    }

    /**
     * A mount target below an earlier read-write mount ({@code /a} from a host directory, then
     * {@code /a/b/c}): bwrap makes {@code b/c} through the first mount, in its source, and the
     * cleanup, which looked only in the root, left them there after every run. Likewise below a
     * mount whose source is a directory of the root ({@code /w} from {@code /x}, then {@code /w/y}).
     */
    @Test
    void aMountTargetBelowAnEarlierMountIsCleanedInThatMountsSource() throws Exception {
        Path outer = Files.createDirectory(host.resolve("outer"));
        Files.writeString(outer.resolve("kept"), "the user's\n");
        Path inner = Files.createDirectory(host.resolve("inner"));
        Files.createDirectory(root.path().resolve("x"));
        TreeMap<String, String> rootBefore = root.snapshot();
        TreeMap<String, String> outerBefore = TestRoot.snapshot(outer);
        ObjectNode p = sh(root, "test -d /a/b/c && test -d /w/y && test -f /a/kept");
        p.set("mounts", Runs.JSON.createArrayNode()
                .add(mount(outer.toString(), "/a", false))
                .add(mount(inner.toString(), "/a/b/c", true))
                .add(mount(root.path().resolve("x").toString(), "/w", false))
                .add(mount(inner.toString(), "/w/y", true)));
        JsonNode result = run(bwrapd, p);
        assertExited(result, 0);
        Runs.assertSameTree(outerBefore, TestRoot.snapshot(outer), "bwrap's mount points were left in the mount's source: " + result.get("cleanup"));
        Runs.assertSameTree(rootBefore, root.snapshot(), "bwrap's mount points were left in the root: " + result.get("cleanup"));
        assertTrue(result.get("cleanup").get("ok").asBoolean(), result::toString);
        assertTrue(removed(result).containsAll(List.of("/a", "/a/b", "/a/b/c", "/w", "/w/y")), result.get("cleanup")::toString);
        assertChildrenFirst(result);
    }

    /**
     * A run on the host's root makes {@code b/c} in the source of its mount {@code /tmp/a} (from S)
     * too, for its mount {@code /tmp/a/b/c}, but leased nothing: a run on another root with S at
     * {@code /a} and a mount at {@code /a/b/c}, which took S's lease first, removed S/b/c when it
     * ended, and with it the host-root run's mount, from under its command (whose writes to
     * /tmp/a/b/c would then go to S, or nowhere). Both lease S, and the last one cleans it.
     */
    @Test
    void aRunOnTheHostRootKeepsItsMountPointInASourceAnotherRunCleans() throws Exception {
        Path source = Files.createDirectory(host.resolve("source"));
        Path sync = Files.createDirectory(host.resolve("sync"));
        Path data = Files.createDirectory(host.resolve("data"));
        Files.writeString(data.resolve("marker"), "data\n");
        Path other = Files.createDirectory(host.resolve("other"));
        TreeMap<String, String> sourceBefore = TestRoot.snapshot(source);

        JsonNode[] results = firstEndsWhileSecondRuns(sync,
                root, "/sync", Runs.JSON.createArrayNode()
                        .add(mount(source.toString(), "/a", false))
                        .add(mount(other.toString(), "/a/b/c", true)),
                null, "/tmp/sync", Runs.JSON.createArrayNode()
                        .add(mount(source.toString(), "/tmp/a", false))
                        .add(mount(data.toString(), "/tmp/a/b/c", true)),
                "/tmp/a/b/c/marker");
        JsonNode firstResult = results[0], hostResult = results[1];
        assertEquals("data\n", Runs.out(hostResult), "the host-root run's mount was pulled from under it: " + firstResult.get("cleanup"));
        Runs.assertSameTree(sourceBefore, TestRoot.snapshot(source), "bwrap's mount points were left in the mount's source: " + hostResult.get("cleanup"));
    }

    /**
     * The same with a read-only mount of the source: a run with S read-only at {@code /a} mounts at
     * {@code /a/b/c}, which another run's bwrap made in S, and leased nothing there (it makes
     * nothing): the other run removed S/b/c when it ended, and the mount with it.
     */
    @Test
    void aReadOnlyMountsSourceKeepsTheMountPointsARunUsesThere() throws Exception {
        Path source = Files.createDirectory(host.resolve("source"));
        Path sync = Files.createDirectory(host.resolve("sync"));
        Path data = Files.createDirectory(host.resolve("data"));
        Files.writeString(data.resolve("marker"), "data\n");
        TreeMap<String, String> sourceBefore = TestRoot.snapshot(source);

        JsonNode[] results = firstEndsWhileSecondRuns(sync,
                root, "/sync", Runs.JSON.createArrayNode()
                        .add(mount(source.toString(), "/a", false))
                        .add(mount(data.toString(), "/a/b/c", true)),
                root, "/sync", Runs.JSON.createArrayNode()
                        .add(mount(source.toString(), "/a", true))
                        .add(mount(data.toString(), "/a/b/c", true)),
                "/a/b/c/marker");
        JsonNode makerResult = results[0], userResult = results[1];
        assertEquals("data\n", Runs.out(userResult), "the read-only mount's run lost its mount: " + makerResult.get("cleanup"));
        Runs.assertSameTree(sourceBefore, TestRoot.snapshot(source), "bwrap's mount points were left in the mount's source: " + userResult.get("cleanup"));
        assertTrue(removed(userResult).containsAll(List.of("/a/b", "/a/b/c")), userResult.get("cleanup")::toString);
    }

    /**
     * Two runs that overlap: the first starts, then the second, then the first ends while the
     * second still runs, and the second ends by printing {@code marker} (what its mount shows by
     * then). Each sees {@code sync} at its {@code *SyncAt} (a root of null: the host's), mounted
     * ahead of its {@code *Mounts}. Both results, in that order.
     */
    private JsonNode[] firstEndsWhileSecondRuns(Path sync, TestRoot firstRoot, String firstSyncAt, ArrayNode firstMounts,
                                                TestRoot secondRoot, String secondSyncAt, ArrayNode secondMounts, String marker) throws Exception {
        ObjectNode first = sh(firstRoot, "touch " + firstSyncAt + "/first; while [ ! -e " + firstSyncAt + "/go-first ]; do sleep 0.02; done");
        first.set("mounts", Runs.JSON.createArrayNode().add(mount(sync.toString(), firstSyncAt, false)).addAll(firstMounts));
        CompletableFuture<JsonNode> firstResponse = bwrapd.requestAsync("sandbox/run", first);
        Runs.awaitFile(sync.resolve("first"), Duration.ofSeconds(30));

        ObjectNode second = sh(secondRoot, "touch " + secondSyncAt + "/second; while [ ! -e " + secondSyncAt + "/go-second ]; do sleep 0.02; done; cat " + marker);
        second.set("mounts", Runs.JSON.createArrayNode().add(mount(sync.toString(), secondSyncAt, false)).addAll(secondMounts));
        CompletableFuture<JsonNode> secondResponse = bwrapd.requestAsync("sandbox/run", second);
        Runs.awaitFile(sync.resolve("second"), Duration.ofSeconds(30));

        Files.writeString(sync.resolve("go-first"), "");
        JsonNode firstResult = firstResponse.get(60, TimeUnit.SECONDS).get("result");
        assertExited(firstResult, 0);
        Files.writeString(sync.resolve("go-second"), "");
        JsonNode secondResult = secondResponse.get(60, TimeUnit.SECONDS).get("result");
        assertExited(secondResult, 0);
        return new JsonNode[] {firstResult, secondResult};
    }

    @Test
    void aRootThatHadTmpDevAndProcKeepsThem() throws Exception {
        for (String dir : List.of("tmp", "dev", "proc")) Files.createDirectories(root.path().resolve(dir));
        Files.writeString(root.path().resolve("tmp/kept"), "hidden by the tmpfs during the run");
        TreeMap<String, String> before = root.snapshot();
        ObjectNode p = sh(root, "ls /tmp; ls /dev");
        p.put("devShm", true);
        JsonNode result = run(bwrapd, p);
        assertExited(result, 0);
        assertEquals("full\nnull\nrandom\nshm\nurandom\nzero\n", Runs.out(result));
        assertTrue(result.get("cleanup").get("ok").asBoolean(), result::toString);
        assertEquals(Set.of("/dev/full", "/dev/null", "/dev/random", "/dev/urandom", "/dev/zero", "/dev/shm"), removed(result));
        Runs.assertSameTree(before, root.snapshot(), "the root changed");
    }

    @Test
    void eachRunCleansUpAfterItselfOnAReusedRoot() throws Exception {
        TreeMap<String, String> before = root.snapshot();
        for (int i = 0; i < 3; i++) {
            JsonNode result = run(bwrapd, sh(root, "test -c /dev/null && test -d /proc/self"));
            assertExited(result, 0);
            assertFalse(result.get("cleanup").get("deferred").asBoolean());
            Runs.assertSameTree(before, root.snapshot(), "after run " + i);
        }
    }

    /** A merged-/usr root (lib -> usr/lib): a mount below the link is created, and cleaned, under usr/lib. */
    @Test
    void mountTargetsBelowALinkInTheRootAreCleanedWhereBwrapMadeThem() throws Exception {
        Files.createDirectories(root.path().resolve("usr/lib"));
        Files.createSymbolicLink(root.path().resolve("lib"), Path.of("usr/lib"));
        Path data = Files.createDirectory(host.resolve("modules"));
        Files.writeString(data.resolve("m.ko"), "");
        TreeMap<String, String> before = root.snapshot();
        ObjectNode p = sh(root, "ls /lib/modules/6.1 && ls /usr/lib/modules/6.1");
        p.set("mounts", Runs.JSON.createArrayNode().add(mount(data.toString(), "/lib/modules/6.1", true)));
        JsonNode result = run(bwrapd, p);
        assertExited(result, 0);
        assertEquals("m.ko\nm.ko\n", Runs.out(result));
        assertTrue(result.get("cleanup").get("ok").asBoolean(), result.get("cleanup")::toString);
        assertTrue(removed(result).containsAll(List.of("/usr/lib/modules", "/usr/lib/modules/6.1")), result.get("cleanup")::toString);
        Runs.assertSameTree(before, root.snapshot(), "the root changed");
    }

    /**
     * The command, with the root writable, moves directories bwrap created aside and puts links
     * to a host directory in their place. The host directory is mounted nowhere; a cleaner that
     * followed the links would delete the canary's files (named like what it removes).
     */
    @Test
    void cleanupNeverFollowsLinksTheCommandPlanted() throws Exception {
        Path canary = Runs.hostDir("bwrapd-canary-");
        try {
            for (String name : List.of("null", "zero", "full", "random", "urandom", "keep")) {
                Files.writeString(canary.resolve(name), "canary " + name + "\n");
            }
            Files.createDirectories(canary.resolve("shm"));
            Files.createDirectories(canary.resolve("b/c"));
            Files.createDirectories(canary.resolve("q/r"));
            TreeMap<String, String> canaryBefore = TestRoot.snapshot(canary);
            Path source = Files.createDirectory(host.resolve("source"));
            Files.writeString(source.resolve("f"), "source file\n");
            TreeMap<String, String> sourceBefore = TestRoot.snapshot(source);

            String c = canary.toString();
            ObjectNode p = sh(root, String.join(" && ",
                    "mv /a /a.moved", "ln -s " + c + " /a",                        // over a bwrap-made mount-target parent
                    "mv /dev /dev.moved", "ln -s " + c + " /dev",                  // over /dev, with its device mount points
                    "ln -s " + c + "/q /p/q/evil",                                  // inside a bwrap-made directory
                    "mv /m /m.moved", "ln -s ../../../../../../.." + c + " /m",     // a relative link climbing out
                    "echo planted"));
            p.put("devShm", true);
            p.set("mounts", Runs.JSON.createArrayNode()
                    .add(mount(source.toString(), "/a/b/c", true))
                    .add(mount(source.toString(), "/p/q/r", true))
                    .add(mount(source.toString(), "/m/q/r", true)));
            JsonNode result = run(bwrapd, p);
            assertExited(result, 0);
            assertEquals("planted\n", Runs.out(result));

            Runs.assertSameTree(canaryBefore, TestRoot.snapshot(canary), "cleanup followed a link out of the root");
            Runs.assertSameTree(sourceBefore, TestRoot.snapshot(source), "source changed");
            assertFalse(result.get("cleanup").get("ok").asBoolean(), result::toString);
            List<String> failed = failedPaths(result);
            for (String path : List.of("/a", "/a/b", "/a/b/c", "/dev", "/dev/null", "/dev/zero", "/dev/shm", "/m", "/m/q/r", "/p", "/p/q")) {
                assertTrue(failed.contains(path), () -> path + " should be reported as not cleaned: " + result.get("cleanup"));
            }
            Set<String> removed = removed(result);
            assertEquals(Set.of("/proc", "/tmp", "/p/q/r"), removed, result.get("cleanup")::toString);
            // What the command left is reported and left in place, links included.
            assertTrue(Files.isSymbolicLink(root.path().resolve("dev")));
            assertTrue(Files.isSymbolicLink(root.path().resolve("a")));
            assertTrue(Files.isDirectory(root.path().resolve("dev.moved")));
            result.get("cleanup").get("failed").forEach(f -> assertFalse(f.get("error").asText().isBlank(), f::toString));
        } finally {
            TestRoot.deleteTree(canary);
        }
    }

    /**
     * The command, with the root writable, moves the /dev bwrap made aside and puts a FIFO in its
     * place. The cleanup's way to /dev/null opened that name for reading, with no writer: the run
     * never answered, and the helper's other runs, on any root, waited for ever for the leases'
     * lock it held. A helper of its own, so that a hang stops only it.
     */
    @Test
    void aFifoPlantedOnTheWayHangsNoCleanup() throws Exception {
        try (BwrapdProcess own = BwrapdProcess.start(); TestRoot other = TestRoot.create()) {
            Runs.initialize(own);
            CompletableFuture<JsonNode> hostile = own.requestAsync("sandbox/run", sh(root, "mv /dev /dev.moved && mkfifo /dev && echo planted"));
            JsonNode result;
            try {
                result = hostile.get(30, TimeUnit.SECONDS).get("result");
            } catch (java.util.concurrent.TimeoutException e) {
                own.process().destroyForcibly();
                throw new AssertionError("the cleanup hangs on the FIFO the command put on its way: " + own.stderr());
            }
            assertExited(result, 0);
            assertEquals("planted\n", Runs.out(result), result::toString);
            assertFalse(result.get("cleanup").get("ok").asBoolean(), result::toString);
            List<String> failed = failedPaths(result);
            for (String path : List.of("/dev", "/dev/null")) {
                assertTrue(failed.contains(path), () -> path + " should be reported as not cleaned: " + result.get("cleanup"));
            }
            assertTrue(Files.exists(root.path().resolve("dev"), java.nio.file.LinkOption.NOFOLLOW_LINKS), "the FIFO is the command's: left");
            assertExited(run(own, sh(other, "true")), 0); // the helper goes on
            Runs.closeChecked(own);
        }
    }

    /**
     * Several clients each running one sandbox after another on the same root: a run that starts
     * while the previous last user is still cleaning must neither lose its mount points to that
     * cleanup nor mistake bwrap's leftovers for the root's own (and leave them there for good).
     */
    @Test
    void backToBackRunsFromSeveralClientsLeaveTheRootClean() throws Exception {
        TreeMap<String, String> before = root.snapshot();
        List<CompletableFuture<List<JsonNode>>> clients = new ArrayList<>();
        for (int c = 0; c < 4; c++) {
            clients.add(CompletableFuture.supplyAsync(() -> {
                List<JsonNode> results = new ArrayList<>();
                try {
                    for (int i = 0; i < 12; i++) {
                        ObjectNode p = sh(root, "test -c /dev/null && echo x > /dev/null && test -d /dev/shm && test -d /proc/self && echo ok");
                        p.put("devShm", true);
                        results.add(bwrapd.request("sandbox/run", p));
                    }
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
                return results;
            }, command -> Thread.ofPlatform().daemon().start(command)));
        }
        for (CompletableFuture<List<JsonNode>> client : clients) {
            for (JsonNode response : client.get(120, TimeUnit.SECONDS)) {
                JsonNode result = response.get("result");
                assertTrue(result != null, response::toString);
                assertExited(result, 0);
                assertEquals("ok\n", Runs.out(result));
                assertTrue(result.get("cleanup").get("ok").asBoolean(), result::toString);
            }
        }
        Runs.assertSameTree(before, root.snapshot(), "bwrap's leftovers stayed in the root");
    }

    /** 16 runs at once on one root: none loses a mount point to another's cleanup, and the root ends clean. */
    @Test
    void sixteenConcurrentRunsOnOneRoot() throws Exception {
        Path shared = Files.createDirectory(host.resolve("shared"));
        Files.writeString(shared.resolve("marker"), "");
        TreeMap<String, String> before = root.snapshot();
        List<CompletableFuture<JsonNode>> responses = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
            // Staggered lengths: runs end while others are still starting.
            String sleep = String.format(Locale.ROOT, "%.2f", 0.05 + (i % 8) * 0.05);
            ObjectNode p = sh(root, "sleep " + sleep + "; echo x > /dev/null && test -c /dev/null && test -c /dev/zero"
                    + " && test -d /dev/shm && touch /dev/shm/f && test -f /shared/marker && test -d /proc/self && touch /tmp/t && echo ok");
            p.put("sandboxId", "it-concurrent-" + i).put("devShm", true);
            p.set("mounts", Runs.JSON.createArrayNode().add(mount(shared.toString(), "/shared", true)));
            responses.add(bwrapd.requestAsync("sandbox/run", p));
        }
        int cleaners = 0;
        Set<String> ids = new HashSet<>();
        for (CompletableFuture<JsonNode> response : responses) {
            JsonNode r = response.get(120, TimeUnit.SECONDS);
            JsonNode result = r.get("result");
            assertTrue(result != null, r::toString);
            assertExited(result, 0);
            assertEquals("ok\n", Runs.out(result), result::toString);
            assertTrue(result.get("cleanup").get("ok").asBoolean(), result::toString);
            if (!result.get("cleanup").get("deferred").asBoolean()) cleaners++;
            ids.add(result.get("sandboxId").asText());
        }
        assertEquals(16, ids.size());
        assertTrue(cleaners >= 1, "the last run on the root must clean it");
        Runs.assertSameTree(before, root.snapshot(), "the root must be clean once every run has ended");
    }

    /**
     * Two helpers on one root (two build tools, each with its own bwrapd): the one whose run ends
     * first must not remove the mount points the other's running sandbox is mounted on. Removing a
     * mount point unmounts it in every other mount namespace: the other sandbox lost /dev, /proc
     * and /tmp in the middle of its run. The last helper to finish cleans for both.
     */
    @Test
    void aSecondHelperOnTheRootKeepsItsMountPointsWhileTheFirstCleans() throws Exception {
        Path sync = Files.createDirectory(host.resolve("sync"));
        TreeMap<String, String> before = root.snapshot();
        try (BwrapdProcess other = BwrapdProcess.start()) {
            Runs.initialize(other);
            // This helper's run comes first (its bwrap makes /dev, /proc, /tmp), and ends first.
            ObjectNode first = sh(root, "touch /sync/first; while [ ! -e /sync/second ]; do sleep 0.02; done");
            first.set("mounts", Runs.JSON.createArrayNode().add(mount(sync.toString(), "/sync", false)));
            CompletableFuture<JsonNode> firstResponse = bwrapd.requestAsync("sandbox/run", first);
            Runs.awaitFile(sync.resolve("first"), Duration.ofSeconds(30));
            ObjectNode second = sh(root, "touch /sync/second; while [ ! -e /sync/go ]; do sleep 0.02; done;"
                    + " echo x > /dev/null && test -c /dev/zero && test -d /proc/self && touch /tmp/t && echo ok");
            second.set("mounts", Runs.JSON.createArrayNode().add(mount(sync.toString(), "/sync", false)));
            CompletableFuture<JsonNode> secondResponse = other.requestAsync("sandbox/run", second);
            JsonNode firstResult = firstResponse.get(60, TimeUnit.SECONDS).get("result");
            assertExited(firstResult, 0);
            assertTrue(firstResult.get("cleanup").get("deferred").asBoolean(),
                    "another helper's sandbox still uses the root: " + firstResult);
            Files.writeString(sync.resolve("go"), "");
            JsonNode secondResult = secondResponse.get(60, TimeUnit.SECONDS).get("result");
            assertExited(secondResult, 0);
            assertEquals("ok\n", Runs.out(secondResult), secondResult::toString);
            assertTrue(secondResult.get("cleanup").get("ok").asBoolean(), secondResult::toString);
            Runs.closeChecked(other);
        }
        Runs.assertSameTree(before, root.snapshot(), "the last helper on the root must clean what both made");
    }
}
