package dev.bwrapd.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.node.TextNode;
import dev.bwrapd.it.ProcessSupport.Client;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static dev.bwrapd.it.BwrapdProcess.JSON;
import static dev.bwrapd.it.ProcessSupport.assertNoSurvivors;
import static dev.bwrapd.it.ProcessSupport.awaitMarked;
import static dev.bwrapd.it.ProcessSupport.awaitNoSurvivors;
import static dev.bwrapd.it.ProcessSupport.mount;
import static dev.bwrapd.it.ProcessSupport.runParams;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Signals, suspend/resume, terminate, timeouts and cancellation (docs/protocol.md)
 * against the built helper, real bwrap and real processes. One helper serves every test here;
 * each test marks its commands (see {@link ProcessSupport}) and checks that nothing of them
 * outlives the run.
 */
class ProcessControlIT {
    private static final Duration START = Duration.ofSeconds(20); // a loaded CI machine starts sandboxes slowly
    private static TestRoot root;
    private static BwrapdProcess bwrapd;
    private static Client client;

    private String marker;
    private Path out;

    @BeforeAll
    static void startHelper() throws Exception {
        root = TestRoot.create();
        bwrapd = BwrapdProcess.start();
        client = new Client(bwrapd);
        bwrapd.call("initialize", Map.of("clientName", "ProcessControlIT"));
    }

    @AfterAll
    static void stopHelper() throws Exception {
        if (bwrapd != null) {
            bwrapd.closeStdin();
            assertEquals(0, bwrapd.waitFor(Duration.ofSeconds(10)), "exit code after end of input; stderr:\n" + bwrapd.stderr());
            assertEquals(List.of(), bwrapd.stdoutViolations());
        }
        if (root != null) root.close();
    }

    @BeforeEach
    void prepare() throws Exception {
        marker = ProcessSupport.newMarker();
        out = Files.createTempDirectory(Path.of("/tmp"), "bwrapd-out-",
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwxr-xr-x")));
    }

    @AfterEach
    void cleanUp() throws Exception {
        try {
            awaitNoSurvivors(marker, Duration.ofSeconds(3), "the test");
        } finally {
            TestRoot.deleteTree(out);
        }
    }

    private static String newId(String prefix) {
        return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
    }

    private CompletableFuture<JsonNode> run(ObjectNode params) throws Exception {
        return bwrapd.requestAsync("sandbox/run", params);
    }

    private static JsonNode result(CompletableFuture<JsonNode> response, Duration timeout) throws Exception {
        JsonNode r = response.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        if (!r.has("result")) throw new AssertionError("sandbox/run failed: " + r);
        return r.get("result");
    }

    private static JsonNode control(String method, String sandboxId) throws Exception {
        return bwrapd.call(method, Map.of("sandboxId", sandboxId));
    }

    private static JsonNode listEntry(String sandboxId) throws Exception {
        for (JsonNode entry : bwrapd.call("sandbox/list", null)) {
            if (entry.path("sandboxId").asText().equals(sandboxId)) return entry;
        }
        return null;
    }

    private static long size(Path file) throws Exception {
        return Files.exists(file) ? Files.size(file) : 0;
    }

    private static void awaitGrowth(Path file, long beyond, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (size(file) <= beyond) {
            if (System.nanoTime() > deadline) throw new AssertionError(file + " did not grow beyond " + beyond + " bytes");
            Thread.sleep(10);
        }
    }

    /** Waits until every marked process in the process group {@code pgrp} is stopped (state T), or frozen with its cgroup. */
    private void awaitStopped(int pgrp, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            List<String> running = new ArrayList<>();
            int stopped = 0;
            for (int pid : ProcessSupport.marked(marker).keySet()) {
                ProcessSupport.Stat s;
                try {
                    s = ProcessSupport.stat(pid);
                } catch (java.io.IOException gone) {
                    continue; // a sleep that ended before the stop
                }
                if (s.pgrp() != pgrp) continue;
                if (s.state() == 'T' || ProcessSupport.isFrozen(pid)) stopped++;
                else running.add(ProcessSupport.describe(pid));
            }
            if (running.isEmpty() && stopped > 0) return;
            if (System.nanoTime() > deadline) throw new AssertionError("not stopped after suspend: " + running);
            Thread.sleep(10);
        }
    }

    // ----- suspend / resume -----

    @Test
    void suspendStopsTheCommandAndResumeRestartsIt() throws Exception {
        String id = newId("suspend");
        Path counter = out.resolve("count");
        CompletableFuture<JsonNode> response = run(mount(runParams(root, id, marker,
                "i=0; while :; do i=$((i+1)); echo $i >> /out/count; sleep 0.02; done"), out, "/out"));
        client.awaitStarted(id, START);
        awaitGrowth(counter, 0, START);

        assertEquals(true, control("sandbox/suspend", id).path("delivered").asBoolean(false));
        JsonNode entry = listEntry(id);
        assertEquals("suspended", entry.path("state").asText(), "list after suspend: " + entry);
        // Once every process of the group shows as stopped, no write can still be under way.
        awaitStopped(entry.path("pid").asInt(), START);
        long frozen = size(counter);
        Thread.sleep(300);
        assertEquals(frozen, size(counter), "the counter went on while suspended");

        assertEquals(true, control("sandbox/resume", id).path("delivered").asBoolean(false));
        entry = listEntry(id);
        assertEquals("running", entry.path("state").asText(), "list after resume: " + entry);
        awaitGrowth(counter, frozen, START);

        control("sandbox/terminate", id);
        assertEquals("signaled", result(response, START).path("status").asText());
    }

    @Test
    void terminateEndsASuspendedSandbox() throws Exception {
        String id = newId("suspended-term");
        CompletableFuture<JsonNode> response = run(runParams(root, id, marker, "sleep 3600; true"));
        client.awaitStarted(id, START);
        awaitMarked(marker, "sleep", 1, START);
        control("sandbox/suspend", id);
        long t0 = System.nanoTime();
        // A grace far beyond what a loaded machine needs to end a resumed shell on SIGTERM (it once was 5 s, bounded by 4)
        bwrapd.call("sandbox/terminate", Map.of("sandboxId", id, "graceMs", 60_000));
        JsonNode r = result(response, Duration.ofSeconds(90));
        long tookMs = (System.nanoTime() - t0) / 1_000_000;
        // SIGTERM reaches a stopped shell only once resumed: the server must resume it first (else SIGKILL after the grace).
        assertTrue(tookMs < 30_000, "a suspended sandbox took " + tookMs + " ms to end on SIGTERM: " + r);
        assertEquals("signaled", r.path("status").asText(), r.toString());
        assertEquals("SIGTERM", r.path("signal").asText(), r.toString());
        assertNoSurvivors(marker, "terminate of a suspended sandbox");
    }

    // ----- sandbox/signal -----

    @Test
    void sigtermEndsTheCommandAsSignaled() throws Exception {
        String id = newId("term");
        CompletableFuture<JsonNode> response = run(runParams(root, id, marker, "sleep 3600; true"));
        client.awaitStarted(id, START);
        awaitMarked(marker, "sleep", 1, START);
        assertEquals(true, bwrapd.call("sandbox/signal", Map.of("sandboxId", id, "signal", "SIGTERM")).path("delivered").asBoolean(false));
        JsonNode r = result(response, START);
        assertEquals("signaled", r.path("status").asText(), r.toString());
        assertEquals("SIGTERM", r.path("signal").asText(), r.toString());
        assertEquals(143, r.path("exitCode").asInt(), r.toString());
        assertNoSurvivors(marker, "SIGTERM");
    }

    @Test
    void sigkillEndsTheCommandAsSignaled() throws Exception {
        String id = newId("kill");
        CompletableFuture<JsonNode> response = run(runParams(root, id, marker, "sleep 3600; true"));
        client.awaitStarted(id, START);
        awaitMarked(marker, "sleep", 1, START);
        bwrapd.call("sandbox/signal", Map.of("sandboxId", id, "signal", "SIGKILL"));
        JsonNode r = result(response, START);
        assertEquals("signaled", r.path("status").asText(), r.toString());
        assertEquals("SIGKILL", r.path("signal").asText(), r.toString());
        assertEquals(137, r.path("exitCode").asInt(), r.toString());
        assertNoSurvivors(marker, "SIGKILL");
    }

    @Test
    void sigusr1ReachesACommandThatTrapsIt() throws Exception {
        String id = newId("usr1");
        ObjectNode params = runParams(root, id, marker,
                "trap 'echo got-usr1 >&2; exit 7' USR1; echo ready; while :; do sleep 0.05; done");
        params.put("stdout", "stream");
        CompletableFuture<JsonNode> response = run(params);
        client.awaitOutput(id, "ready", START);
        bwrapd.call("sandbox/signal", Map.of("sandboxId", id, "signal", "SIGUSR1"));
        JsonNode r = result(response, START);
        assertEquals("exited", r.path("status").asText(), r.toString());
        assertEquals(7, r.path("exitCode").asInt(), r.toString());
        // (busybox sh also reports that its sleep died of the signal)
        assertTrue(r.path("stderr").path("text").asText().contains("got-usr1\n"), r.toString());
    }

    // ----- sandbox/terminate -----

    @Test
    void terminateEndsAWholeProcessTree() throws Exception {
        String id = newId("tree");
        ObjectNode params = runParams(root, id, marker,
                "sleep 3600 & sleep 3600 & sh -c 'sleep 3600 & sleep 3600 & echo inner; wait' & echo outer; wait");
        params.put("stdout", "stream");
        CompletableFuture<JsonNode> response = run(params);
        client.awaitOutput(id, "inner", START);
        client.awaitOutput(id, "outer", START);
        awaitMarked(marker, "sleep", 4, START);
        awaitMarked(marker, "sh", 2, START);

        assertEquals(true, control("sandbox/terminate", id).path("delivered").asBoolean(false));
        JsonNode r = result(response, START);
        assertNoSurvivors(marker, "the answer to sandbox/terminate");
        assertEquals("signaled", r.path("status").asText(), r.toString());
        assertEquals("SIGKILL", r.path("signal").asText(), r.toString());
        assertTrue(r.path("cleanup").path("ok").asBoolean(), r.toString());
    }

    /** A run that writes "got-term" to /out/log and exits 0 on SIGTERM, once it runs (its output said "ready"). */
    private CompletableFuture<JsonNode> startTrappingTerm(String id) throws Exception {
        ObjectNode params = mount(runParams(root, id, marker,
                "trap 'echo got-term >> /out/log; exit 0' TERM; echo ready; while :; do sleep 0.05; done"), out, "/out");
        params.put("stdout", "stream");
        CompletableFuture<JsonNode> response = run(params);
        client.awaitOutput(id, "ready", START);
        return response;
    }

    @Test
    void terminateWithGraceSendsSigtermFirst() throws Exception {
        String id = newId("grace");
        CompletableFuture<JsonNode> response = startTrappingTerm(id);
        long t0 = System.nanoTime();
        bwrapd.call("sandbox/terminate", Map.of("sandboxId", id, "graceMs", 20_000));
        JsonNode r = result(response, START);
        long tookMs = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(tookMs < 10_000, "the command ended on SIGTERM but the run took " + tookMs + " ms, as if it waited for the grace");
        assertEquals("got-term\n", Files.readString(out.resolve("log")));
        // It ended because it was told to: "signaled" by SIGTERM, with the exit code the trap chose.
        assertEquals("signaled", r.path("status").asText(), r.toString());
        assertEquals("SIGTERM", r.path("signal").asText(), r.toString());
        assertEquals(0, r.path("exitCode").asInt(-1), r.toString());
        assertNoSurvivors(marker, "terminate with grace");
    }

    @Test
    void terminateWithGraceKillsACommandIgnoringSigtermAfterTheGrace() throws Exception {
        String id = newId("grace-kill");
        ObjectNode params = runParams(root, id, marker, "trap '' TERM; echo ready; while :; do sleep 0.05; done");
        params.put("stdout", "stream");
        CompletableFuture<JsonNode> response = run(params);
        client.awaitOutput(id, "ready", START);
        long graceMs = 600;
        long t0 = System.nanoTime();
        bwrapd.call("sandbox/terminate", Map.of("sandboxId", id, "graceMs", graceMs));
        JsonNode r = result(response, START);
        long tookMs = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(tookMs >= graceMs, "killed after " + tookMs + " ms, before the grace of " + graceMs + " ms");
        assertTrue(tookMs < graceMs + 15_000, "killed only after " + tookMs + " ms"); // slack for a loaded CI
        assertEquals("signaled", r.path("status").asText(), r.toString());
        assertEquals("SIGKILL", r.path("signal").asText(), r.toString());
        assertNoSurvivors(marker, "terminate with grace of a TERM-ignoring command");
    }

    // ----- timeoutMs -----

    @Test
    void timeoutSendsSigtermThatTheCommandCanTrap() throws Exception {
        long timeoutMs = 1000;
        ObjectNode params = mount(runParams(root, newId("timeout-trap"), marker,
                "trap 'echo trapped >> /out/log; exit 3' TERM; while :; do sleep 0.05; done"), out, "/out");
        params.put("timeoutMs", timeoutMs).put("killGraceMs", 60_000); // far beyond the bound below
        JsonNode r = result(run(params), START);
        assertEquals("timed-out", r.path("status").asText(), r.toString());
        assertEquals("trapped\n", Files.readString(out.resolve("log")));
        assertEquals(3, r.path("exitCode").asInt(), r.toString());
        double ms = r.path("durationMs").asDouble();
        assertTrue(ms >= timeoutMs, "ended after " + ms + " ms, before the timeout");
        // durationMs counts bwrap's setup too (seconds on a loaded CI)
        assertTrue(ms < 30_000, "the command ended on SIGTERM yet the run lasted " + ms + " ms");
        assertNoSurvivors(marker, "a timed-out run");
    }

    @Test
    void timeoutKillsACommandIgnoringSigtermOnlyAfterTheGrace() throws Exception {
        long timeoutMs = 300, graceMs = 700;
        ObjectNode params = runParams(root, newId("timeout-kill"), marker, "trap '' TERM; while :; do sleep 0.05; done");
        params.put("timeoutMs", timeoutMs).put("killGraceMs", graceMs);
        JsonNode r = result(run(params), START);
        assertEquals("timed-out", r.path("status").asText(), r.toString());
        assertEquals("SIGKILL", r.path("signal").asText(), r.toString());
        double ms = r.path("durationMs").asDouble();
        assertTrue(ms >= timeoutMs + graceMs, "killed after " + ms + " ms, before timeout + grace");
        assertTrue(ms < timeoutMs + graceMs + 15_000, "killed only after " + ms + " ms"); // slack for a loaded CI
        assertNoSurvivors(marker, "a timed-out run");
    }

    /**
     * Review finding: limits of centuries, which the protocol takes (up to 2^62 ms), wrapped when
     * made nanoseconds or microseconds: the run was timed out at once, a terminate's grace was
     * none, and as root a CPU limit reported "cpu" for a run that used milliseconds.
     */
    @Test
    void limitsOfCenturiesNeverEndARun() throws Exception {
        long centuries = Long.MAX_VALUE / 2; // the most the protocol takes
        ObjectNode params = runParams(root, newId("long-timeout"), marker, "sleep 0.3; echo done");
        params.put("timeoutMs", centuries).put("killGraceMs", centuries);
        params.putObject("limits").put("cpuMs", centuries);
        JsonNode r = result(run(params), START);
        assertEquals("exited", r.path("status").asText(), r.toString());
        assertEquals("done\n", r.at("/stdout/text").asText(), r.toString());
        assertTrue(r.path("limitExceeded").isNull(), r.toString());

        String id = newId("long-grace");
        CompletableFuture<JsonNode> response = startTrappingTerm(id);
        bwrapd.call("sandbox/terminate", Map.of("sandboxId", id, "graceMs", centuries));
        JsonNode t = result(response, START);
        assertEquals("got-term\n", Files.readString(out.resolve("log")), "the grace was none: killed before the trap ran");
        assertEquals("SIGTERM", t.path("signal").asText(), t.toString());
        assertNoSurvivors(marker, "limits of centuries");
    }

    // ----- $/cancelRequest -----

    @Test
    void cancelRequestTerminatesARunningSandbox() throws Exception {
        String id = newId("cancel");
        TextNode requestId = TextNode.valueOf("req-" + id);
        CompletableFuture<JsonNode> response = client.send(requestId, "sandbox/run",
                runParams(root, id, marker, "sleep 3600 & sleep 3600; true"));
        client.awaitStarted(id, START);
        awaitMarked(marker, "sleep", 2, START);
        bwrapd.notify("$/cancelRequest", Map.of("id", requestId.asText()));
        JsonNode r = response.get(START.toMillis(), TimeUnit.MILLISECONDS);
        assertNoSurvivors(marker, "the answer to a cancelled run");
        assertEquals(requestId, r.get("id"));
        assertEquals(-32800, r.path("error").path("code").asInt(), r.toString());
        assertEquals("cancelled", r.path("error").path("data").path("status").asText(), r.toString());
        assertEquals(id, r.path("error").path("data").path("sandboxId").asText(), r.toString());
    }

    @Test
    void cancelRequestRightAfterTheRequestIsNotLost() throws Exception {
        for (int i = 0; i < 3; i++) {
            String id = newId("cancel-now");
            TextNode requestId = TextNode.valueOf("req-" + id);
            CompletableFuture<JsonNode> response = client.send(requestId, "sandbox/run", runParams(root, id, marker, "sleep 30; true"));
            bwrapd.notify("$/cancelRequest", Map.of("id", requestId.asText()));
            JsonNode r = response.get(START.toMillis(), TimeUnit.MILLISECONDS);
            assertNoSurvivors(marker, "the answer to a cancelled run");
            assertEquals(-32800, r.path("error").path("code").asInt(), r.toString());
            assertEquals(null, listEntry(id));
        }
    }

    // ----- signals before sandbox/started -----

    @Test
    void signalSentRightAfterTheRequestIsNotLost() throws Exception {
        // Repeated: the windows where a signal can be lost (before the sandbox is registered, before its
        // process group exists, while the group holds only the init) are a few milliseconds wide.
        for (String signal : List.of("SIGTERM", "SIGKILL", "SIGINT", "SIGTERM", "SIGHUP", "SIGTERM", "SIGUSR1", "SIGTERM")) {
            String id = newId("early");
            CompletableFuture<JsonNode> response = run(runParams(root, id, marker, "sleep 30; true"));
            JsonNode delivered = bwrapd.request("sandbox/signal", Map.of("sandboxId", id, "signal", signal));
            assertEquals(true, delivered.path("result").path("delivered").asBoolean(false),
                    "a signal sent right after sandbox/run was refused: " + delivered);
            JsonNode r = result(response, START);
            assertEquals("signaled", r.path("status").asText(), r.toString());
            assertEquals(signal, r.path("signal").asText(), r.toString());
            assertTrue(r.path("durationMs").asDouble() < 20_000, r.toString());
            assertNoSurvivors(marker, "an early " + signal);
        }
    }

    @Test
    void terminateSentRightAfterTheRequestIsNotLost() throws Exception {
        for (int i = 0; i < 3; i++) {
            String id = newId("early-term");
            CompletableFuture<JsonNode> response = run(runParams(root, id, marker, "sleep 30; true"));
            JsonNode delivered = bwrapd.request("sandbox/terminate", Map.of("sandboxId", id));
            assertEquals(true, delivered.path("result").path("delivered").asBoolean(false),
                    "a terminate sent right after sandbox/run was refused: " + delivered);
            JsonNode r = result(response, START);
            assertEquals("signaled", r.path("status").asText(), r.toString());
            assertTrue(r.path("durationMs").asDouble() < 20_000, r.toString());
            assertNoSurvivors(marker, "an early terminate");
        }
    }

    // ----- errors -----

    @Test
    void unknownSandboxIdsAreRefused() throws Exception {
        String unknown = newId("no-such");
        for (String method : List.of("sandbox/suspend", "sandbox/resume", "sandbox/terminate")) {
            JsonNode r = bwrapd.request(method, Map.of("sandboxId", unknown));
            assertEquals(-32001, r.path("error").path("code").asInt(), method + ": " + r);
        }
        JsonNode r = bwrapd.request("sandbox/signal", Map.of("sandboxId", unknown, "signal", "SIGTERM"));
        assertEquals(-32001, r.path("error").path("code").asInt(), r.toString());

        // A finished sandbox is unknown too.
        String id = newId("finished");
        assertEquals("exited", result(run(runParams(root, id, marker, "true")), START).path("status").asText());
        r = bwrapd.request("sandbox/signal", Map.of("sandboxId", id, "signal", "SIGTERM"));
        assertEquals(-32001, r.path("error").path("code").asInt(), r.toString());
    }

    @Test
    void aRunningSandboxIdCannotBeReused() throws Exception {
        String id = newId("dup");
        CompletableFuture<JsonNode> first = run(runParams(root, id, marker, "sleep 3600; true"));
        client.awaitStarted(id, START);
        JsonNode second = bwrapd.request("sandbox/run", runParams(root, id, marker, "echo second"));
        assertEquals(-32002, second.path("error").path("code").asInt(), second.toString());
        JsonNode entry = listEntry(id);
        assertEquals("running", entry == null ? null : entry.path("state").asText(), "the first sandbox after the refusal: " + entry);
        awaitMarked(marker, "sleep", 1, START);

        control("sandbox/terminate", id);
        assertEquals("signaled", result(first, START).path("status").asText());
        // Once finished, the id is free again.
        JsonNode again = result(run(runParams(root, id, marker, "echo again")), START);
        assertEquals("again\n", again.path("stdout").path("text").asText(), again.toString());
    }

    @Test
    void unsupportedSignalNamesAreInvalidParams() throws Exception {
        String id = newId("badsig");
        CompletableFuture<JsonNode> response = run(runParams(root, id, marker, "sleep 3600; true"));
        client.awaitStarted(id, START);
        for (Object name : List.of("SIGSEGV", "SIGWINCH", "TERM", "sigterm", "", "SIGRTMIN", 15)) {
            JsonNode r = bwrapd.request("sandbox/signal", Map.of("sandboxId", id, "signal", name));
            assertEquals(-32602, r.path("error").path("code").asInt(), name + ": " + r);
            assertTrue(r.path("error").path("message").asText().contains("signal"), "the message names the field: " + r);
        }
        // The sandbox is undisturbed.
        assertEquals("running", listEntry(id).path("state").asText());
        assertFalse(response.isDone(), "the run ended after bad signal requests: " + (response.isDone() ? response.get() : ""));
        control("sandbox/terminate", id);
        assertEquals("signaled", result(response, START).path("status").asText());
    }

    /**
     * A process outside the sandbox that holds the command's stdout open (a descriptor passed out
     * through a socket, or opened through /proc as here) never lets the pipe end: the run is
     * answered all the same once the sandbox's processes are gone, with what they wrote.
     */
    @Test
    void aRunIsAnsweredWhenItsOutputIsHeldOpenFromOutsideTheSandbox() throws Exception {
        String id = newId("held-out");
        // The command goes on only once its stdout is held (a fixed "sleep 1" could end first on a loaded machine)
        CompletableFuture<JsonNode> response = client.send(JSON.valueToTree(id), "sandbox/run",
                mount(runParams(root, id, marker, "echo before; while [ ! -e /out/go ]; do sleep 0.02; done; echo after"), out, "/out"));
        int pid = client.awaitStarted(id, START).path("params").path("pid").asInt();
        List<Integer> children = ProcessSupport.children(pid);
        assertFalse(children.isEmpty(), "the command runs");
        try (java.io.FileOutputStream held = new java.io.FileOutputStream("/proc/" + children.getFirst() + "/fd/1")) {
            Files.writeString(out.resolve("go"), "");
            JsonNode answer = response.get(START.toSeconds(), TimeUnit.SECONDS);
            JsonNode result = answer.get("result");
            assertTrue(result != null, answer.toString());
            assertEquals("exited", result.path("status").asText(), result.toString());
            assertEquals("before\nafter\n", Runs.out(result), result.toString());
        }
    }

    // ----- sandbox/started, sessions -----

    @Test
    void startedCarriesTheIdsAndTheLivePidOfTheSandboxInSessionOfItsOwn() throws Exception {
        String id = newId("started");
        JsonNode requestId = JSON.valueToTree(Math.abs(UUID.randomUUID().getMostSignificantBits() >> 12));
        CompletableFuture<JsonNode> response = client.send(requestId, "sandbox/run", runParams(root, id, marker, "sleep 3600; true"));
        JsonNode started = client.awaitStarted(id, START).get("params");
        assertEquals(id, started.path("sandboxId").asText(), started.toString());
        assertEquals(requestId, started.get("requestId"), started.toString());
        int pid = started.path("pid").asInt();
        assertTrue(pid > 0, started.toString());
        assertTrue(Files.isDirectory(Path.of("/proc/" + pid)), "/proc/" + pid + " is missing while the sandbox runs");
        // "once the command runs": the init has forked the command by then, its setup is over.
        assertFalse(ProcessSupport.children(pid).isEmpty(), "sandbox/started came before the command existed");
        assertTrue(ProcessSupport.isMarked(pid, marker), "pid " + pid + " is not of this sandbox: " + ProcessSupport.describe(pid));
        assertEquals(pid, listEntry(id).path("pid").asInt());

        awaitMarked(marker, "sleep", 1, START);
        ProcessSupport.Stat helper = ProcessSupport.stat(bwrapd.process().pid());
        List<String> checked = new ArrayList<>();
        for (int p : ProcessSupport.marked(marker).keySet()) {
            ProcessSupport.Stat s = ProcessSupport.stat(p);
            if (!s.comm().equals("sh") && !s.comm().equals("sleep")) continue;
            checked.add(ProcessSupport.describe(p));
            assertEquals(pid, s.pgrp(), "the command's process group is the sandbox pid: " + ProcessSupport.describe(p));
            assertNotEquals(helper.session(), s.session(), "the command shares the helper's session: " + ProcessSupport.describe(p));
            assertNotEquals(helper.pgrp(), s.pgrp(), "the command shares the helper's process group");
        }
        assertEquals(2, checked.size(), "expected the shell and its sleep: " + checked);

        control("sandbox/terminate", id);
        result(response, START);
        assertFalse(Files.exists(Path.of("/proc/" + pid)) && ProcessSupport.isMarked(pid, marker), "the sandbox init outlived its run");
    }
}
