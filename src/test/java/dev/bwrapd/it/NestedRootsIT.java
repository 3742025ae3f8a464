package dev.bwrapd.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static dev.bwrapd.it.Runs.assertExited;
import static dev.bwrapd.it.Runs.mount;
import static dev.bwrapd.it.Runs.sh;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Runs of one helper on nested roots, {@code R} and {@code R/inner}, at once: a mount point one
 * run's bwrap made ({@code R/inner/proc}, the outer run's mount target {@code /inner/proc}) is
 * the other's too (the inner run's {@code /proc}). Whichever run ends first must not remove it:
 * removing a mount point unmounts it in every mount namespace, so the other sandbox lost its
 * mount in the middle of its run. The last of them removes it.
 */
class NestedRootsIT {
    static BwrapdProcess bwrapd;
    TestRoot outer;
    Path inner;
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
    void roots() throws Exception {
        outer = TestRoot.create();
        inner = outer.path().resolve("inner");
        Process p = new ProcessBuilder("sh", BwrapdProcess.home().resolve("tools/make-rootfs.sh").toString(), inner.toString())
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0, out);
        host = Runs.hostDir("bwrapd-it-nested-");
        Files.writeString(host.resolve("marker"), "");
    }

    @AfterEach
    void removeRoots() throws Exception {
        outer.close();
        TestRoot.deleteTree(host);
    }

    /** The outer run: host's directory mounted at /inner/proc (its bwrap makes R/inner/proc), waits for {@code go}. */
    ObjectNode outerRun(String ready, String go) {
        return sh(outer, "touch /sync/" + ready + "; while [ ! -e /sync/" + go + " ]; do sleep 0.02; done;"
                + " test -f /inner/proc/marker && test -f /sync/marker && echo ok");
    }

    /** The inner run: its /proc is R/inner/proc, waits for {@code go}. */
    ObjectNode innerRun(String ready, String go) {
        ObjectNode p = sh(null, "touch /sync/" + ready + "; while [ ! -e /sync/" + go + " ]; do sleep 0.02; done;"
                + " test -d /proc/self && test -f /sync/marker && echo ok");
        p.put("root", inner.toString());
        return p;
    }

    ObjectNode withMounts(ObjectNode p, boolean outerRun) {
        var mounts = Runs.JSON.createArrayNode().add(mount(host.toString(), "/sync", false));
        if (outerRun) mounts.add(mount(host.toString(), "/inner/proc", true));
        p.set("mounts", mounts);
        return p;
    }

    void bothRunsKeepTheirMounts(boolean outerFirst) throws Exception {
        TreeMap<String, String> before = outer.snapshot();
        ObjectNode first = outerFirst ? withMounts(outerRun("first", "go-first"), true) : withMounts(innerRun("first", "go-first"), false);
        ObjectNode second = outerFirst ? withMounts(innerRun("second", "go-second"), false) : withMounts(outerRun("second", "go-second"), true);
        CompletableFuture<JsonNode> firstResponse = bwrapd.requestAsync("sandbox/run", first);
        Runs.awaitFile(host.resolve("first"), Duration.ofSeconds(30));
        CompletableFuture<JsonNode> secondResponse = bwrapd.requestAsync("sandbox/run", second);
        Runs.awaitFile(host.resolve("second"), Duration.ofSeconds(30));

        Files.writeString(host.resolve("go-first"), "");
        JsonNode firstResult = firstResponse.get(60, TimeUnit.SECONDS).get("result");
        assertExited(firstResult, 0);
        assertEquals("ok\n", Runs.out(firstResult), firstResult::toString);

        Files.writeString(host.resolve("go-second"), "");
        JsonNode secondResult = secondResponse.get(60, TimeUnit.SECONDS).get("result");
        assertEquals("ok\n", Runs.out(secondResult), () -> "the run still going lost its mount to the other's cleanup: " + secondResult
                + "\nthe first run's cleanup: " + firstResult.get("cleanup"));
        assertExited(secondResult, 0);
        assertTrue(firstResult.get("cleanup").get("ok").asBoolean(), firstResult::toString);
        assertTrue(firstResult.get("cleanup").get("deferred").asBoolean(), () -> "left to the other run: " + firstResult.get("cleanup"));
        assertTrue(secondResult.get("cleanup").get("ok").asBoolean(), secondResult::toString);
        for (String name : new String[] {"first", "second", "go-first", "go-second"}) Files.delete(host.resolve(name));
        Runs.assertSameTree(before, outer.snapshot(), "the last run must remove what both runs' bwraps made");
    }

    @Test
    void theOuterRunEndingFirstLeavesTheInnerRunsProc() throws Exception {
        bothRunsKeepTheirMounts(true);
    }

    @Test
    void theInnerRunEndingFirstLeavesTheOuterRunsMountPoint() throws Exception {
        bothRunsKeepTheirMounts(false);
    }

    /**
     * A run on one root cannot make the helper hand another root's directory over for removal: its
     * sandbox moves aside the directory bwrap made for a mount target ({@code /x} of {@code
     * /x/proc}) and puts a link to the other root there, so that {@code x/proc} in its root names
     * the other root's {@code proc}, which existed before that root's run. Followed, the link made
     * that directory look like a mount point both runs share, and the other run's cleanup removed it.
     */
    @Test
    void aLinkPlantedOnTheWayHandsNoOtherRootsDirectoryOver() throws Exception {
        try (TestRoot victim = TestRoot.create()) {
            Path victimsProc = Files.createDirectory(victim.path().resolve("proc")); // there before any run: never a run's to remove
            ObjectNode victimRun = sh(victim, "touch /sync/victim-ready; while [ ! -e /sync/victim-go ]; do sleep 0.02; done; echo ok");
            victimRun.set("mounts", Runs.JSON.createArrayNode().add(mount(host.toString(), "/sync", false)));
            CompletableFuture<JsonNode> victimResponse = bwrapd.requestAsync("sandbox/run", victimRun);
            Runs.awaitFile(host.resolve("victim-ready"), Duration.ofSeconds(30));

            ObjectNode hostile = sh(outer, "mv /x /x.moved && ln -s " + victim.path() + " /x && echo planted");
            hostile.set("mounts", Runs.JSON.createArrayNode().add(mount(host.toString(), "/x/proc", true)));
            JsonNode hostileResult = Runs.run(bwrapd, hostile);
            assertEquals("planted\n", Runs.out(hostileResult), hostileResult::toString);

            Files.writeString(host.resolve("victim-go"), "");
            JsonNode victimResult = victimResponse.get(60, TimeUnit.SECONDS).get("result");
            assertExited(victimResult, 0);
            assertTrue(Files.isDirectory(victimsProc), () -> "the other root's /proc, there before its run, was removed: "
                    + victimResult.get("cleanup") + "\nthe hostile run's cleanup: " + hostileResult.get("cleanup"));
        }
    }
}
