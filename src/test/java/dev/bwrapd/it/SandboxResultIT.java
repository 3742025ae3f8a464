package dev.bwrapd.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.TreeMap;

import static dev.bwrapd.it.Runs.assertContains;
import static dev.bwrapd.it.Runs.assertExited;
import static dev.bwrapd.it.Runs.mount;
import static dev.bwrapd.it.Runs.out;
import static dev.bwrapd.it.Runs.params;
import static dev.bwrapd.it.Runs.run;
import static dev.bwrapd.it.Runs.sh;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The result of sandbox/run: one test per status (cancelled is covered with $/cancelRequest
 * elsewhere), and the usage and duration figures.
 */
class SandboxResultIT {
    static BwrapdProcess bwrapd;
    static TestRoot root;

    @BeforeAll
    static void start() throws Exception {
        bwrapd = BwrapdProcess.start();
        root = TestRoot.create();
        Runs.initialize(bwrapd);
    }

    @AfterAll
    static void stop() throws Exception {
        Runs.closeChecked(bwrapd, root);
    }

    static void assertShape(JsonNode result) {
        for (String field : List.of("sandboxId", "status", "exitCode", "signal", "setupError", "durationMs", "usage", "stdout", "stderr", "cleanup")) {
            assertTrue(result.has(field), () -> "result lacks " + field + ": " + result);
        }
        assertTrue(result.get("durationMs").isNumber());
        for (String field : List.of("userCpuMs", "systemCpuMs", "maxRssKiB")) {
            assertTrue(result.get("usage").get(field).isNumber(), () -> "usage." + field + ": " + result);
        }
        assertTrue(result.get("cleanup").get("ok").isBoolean());
        assertTrue(result.get("cleanup").get("removed").isArray());
        assertTrue(result.get("cleanup").get("failed").isArray());
    }

    @Test
    void exited() throws Exception {
        JsonNode result = run(bwrapd, sh(root, "echo before; exit 3"));
        assertShape(result);
        assertExited(result, 3);
        assertTrue(result.get("signal").isNull());
        assertTrue(result.get("setupError").isNull());
        assertEquals("before\n", out(result));
        assertTrue(result.get("cleanup").get("ok").asBoolean(), result::toString);
    }

    @Test
    void exitOneIsAnExitNotASetupFailure() throws Exception {
        JsonNode result = run(bwrapd, sh(root, "echo 'bwrap: looks like a setup error' >&2; exit 1"));
        assertExited(result, 1);
        assertTrue(result.get("setupError").isNull(), result::toString);
        JsonNode plain = run(bwrapd, params(root, "false"));
        assertExited(plain, 1);
        assertTrue(plain.get("setupError").isNull());
    }

    @Test
    void signaled() throws Exception {
        JsonNode result = run(bwrapd, sh(root, "echo dying; kill -KILL $$; echo survived"));
        assertShape(result);
        assertEquals("signaled", result.get("status").asText(), result::toString);
        assertEquals("SIGKILL", result.get("signal").asText());
        assertTrue(result.get("setupError").isNull());
        assertEquals("dying\n", out(result));

        JsonNode term = run(bwrapd, sh(root, "kill -TERM $$"));
        assertEquals("signaled", term.get("status").asText(), term::toString);
        assertEquals("SIGTERM", term.get("signal").asText());
    }

    @Test
    void timedOut() throws Exception {
        // durationMs counts bwrap's setup too, which takes seconds on a loaded CI: a grace (and a sleep) far
        // beyond that, so that only a run that waited for the grace (no SIGTERM) goes past the bound
        ObjectNode p = params(root, "sleep", "300");
        p.put("timeoutMs", 300).put("killGraceMs", 120_000);
        JsonNode result = run(bwrapd, p);
        assertShape(result);
        assertEquals("timed-out", result.get("status").asText(), result::toString);
        assertEquals("SIGTERM", result.get("signal").asText(), result::toString);
        double ms = result.get("durationMs").asDouble();
        assertTrue(ms >= 300 && ms < 30_000, "SIGTERM should have ended sleep well before the grace ran out: " + ms);
        assertTrue(result.get("cleanup").get("ok").asBoolean(), result::toString);
    }

    @Test
    void timedOutIgnoringSigtermIsKilledAfterTheGrace() throws Exception {
        ObjectNode p = sh(root, "trap '' TERM; echo ready; while :; do sleep 0.05; done");
        p.put("timeoutMs", 200).put("killGraceMs", 400);
        JsonNode result = run(bwrapd, p);
        assertEquals("timed-out", result.get("status").asText(), result::toString);
        assertEquals("ready\n", out(result));
        double ms = result.get("durationMs").asDouble();
        assertTrue(ms >= 600 && ms < 20000, "ended after " + ms + " ms, expected timeout + grace = 600");
    }

    @Test
    void aFastCommandDoesNotTimeOut() throws Exception {
        ObjectNode p = params(root, "true");
        p.put("timeoutMs", 30000);
        assertExited(run(bwrapd, p), 0);
    }

    @Test
    void setupFailedCarriesBwrapsMessage() throws Exception {
        TreeMap<String, String> before = root.snapshot();
        // A mount point bwrap cannot make (below a file); a missing source is refused before bwrap runs.
        String source = "/etc/passwd/bwrapd-it-mount-target";
        // stderr as given; stdout captured, except in the last case (merged into a discarded stdout).
        for (String stderr : List.of("capture", "discard", "stream", "stdout", "stdout+discard")) {
            ObjectNode p = params(root, "true");
            p.set("mounts", Runs.JSON.createArrayNode().add(mount(root.path().resolve("bin").toString(), source, true)));
            p.put("stderr", stderr.replace("+discard", ""));
            if (stderr.endsWith("+discard")) p.put("stdout", "discard");
            JsonNode result = run(bwrapd, p);
            assertShape(result);
            assertEquals("setup-failed", result.get("status").asText(), () -> "stderr " + stderr + ": " + result);
            assertTrue(result.get("exitCode").isNull(), result::toString);
            assertTrue(result.get("signal").isNull());
            assertTrue(result.get("setupError").asText().contains(source), () -> "stderr " + stderr + ": " + result);
            assertFalse(result.get("setupError").asText().startsWith("bwrap: "), "just bwrap's message, without its prefix");
        }
        Runs.assertSameTree(before, root.snapshot(), "a failed setup must be cleaned up too");
    }

    @Test
    void setupFailedWithStderrToAFile() throws Exception {
        Path dir = Runs.hostDir("bwrapd-it-setup-");
        try {
            Path log = dir.resolve("err.log");
            ObjectNode p = params(root, "true");
            p.set("mounts", Runs.JSON.createArrayNode().add(mount(dir.toString(), "/etc/passwd/target-for-file-case", false)));
            p.putObject("stderr").put("file", log.toString());
            JsonNode result = run(bwrapd, p);
            assertEquals("setup-failed", result.get("status").asText(), result::toString);
            assertContains(result.get("setupError").asText(), "/etc/passwd/target-for-file-case");
            // Appended to a large file: the message is read back from its end, not the whole file.
            Files.writeString(log, "earlier output\n".repeat(600_000));
            p.putObject("stderr").put("file", log.toString()).put("append", true);
            JsonNode appended = run(bwrapd, p);
            assertEquals("setup-failed", appended.get("status").asText(), appended::toString);
            assertContains(appended.get("setupError").asText(), "/etc/passwd/target-for-file-case");
            // Only this run's part of an appended file: an earlier run's bwrap line is not this run's message.
            Files.writeString(log, "bwrap: a message of an earlier run\n");
            JsonNode stale = run(bwrapd, p);
            assertEquals("setup-failed", stale.get("status").asText(), stale::toString);
            assertFalse(stale.get("setupError").asText().contains("earlier run"), stale::toString);
            // A message longer than a page (its path near PATH_MAX) is read back from its start.
            // (bwrap's line then passes 4 KiB, the window that used to lose its start: 3,879 bytes would not tell.)
            String longTarget = "/etc/passwd" + ("/" + "d".repeat(200)).repeat(19) + "/" + "e".repeat(230);
            p.set("mounts", Runs.JSON.createArrayNode().add(mount(dir.toString(), longTarget, false)));
            p.putObject("stderr").put("file", log.toString());
            JsonNode long_ = run(bwrapd, p);
            assertEquals("setup-failed", long_.get("status").asText(), long_::toString);
            assertContains(long_.get("setupError").asText(), longTarget);
        } finally {
            TestRoot.deleteTree(dir);
        }
    }

    @Test
    void usageIsTheSandboxedProcessesCpu() throws Exception {
        // Spin until the shell itself has used 0.3 s of user CPU (field 14 of /proc/PID/stat, in 1/100 s).
        JsonNode result = run(bwrapd, sh(root,
                "while :; do i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; set -- $(cat /proc/$$/stat); [ \"${14}\" -ge 30 ] && break; done"));
        assertExited(result, 0);
        JsonNode usage = result.get("usage");
        assertTrue(usage.get("userCpuMs").asDouble() >= 200, () -> "the sandbox's CPU time is missing: " + usage);
        assertTrue(usage.get("maxRssKiB").asLong() > 0, usage::toString);
        assertTrue(result.get("durationMs").asDouble() >= usage.get("userCpuMs").asDouble() * 0.9,
                () -> "one busy thread cannot use more CPU than wall time: " + result);
    }

    @Test
    void durationIsWallTimeAndSleepingUsesLittleCpu() throws Exception {
        JsonNode result = run(bwrapd, params(root, "sleep", "0.3"));
        assertExited(result, 0);
        double ms = result.get("durationMs").asDouble();
        assertTrue(ms >= 300 && ms < 30000, "durationMs " + ms);
        assertTrue(result.get("usage").get("userCpuMs").asDouble() < 150, result::toString);
        assertTrue(run(bwrapd, params(root, "true")).get("durationMs").asDouble() > 0);
    }
}
