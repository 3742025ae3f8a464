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
}
