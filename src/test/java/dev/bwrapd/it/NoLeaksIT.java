package dev.bwrapd.it;

import com.fasterxml.jackson.databind.JsonNode;
import dev.bwrapd.it.ProcessSupport.Client;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static dev.bwrapd.it.ProcessSupport.assertNoSurvivors;
import static dev.bwrapd.it.ProcessSupport.awaitMarked;
import static dev.bwrapd.it.ProcessSupport.awaitNoSurvivors;
import static dev.bwrapd.it.ProcessSupport.runParams;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * docs/protocol.md, processes: no zombie and no stray process outlives its run, whether the helper is
 * killed, loses its client, is shut down, or just runs many sandboxes. Each test has a helper of
 * its own, since most of them end it.
 */
class NoLeaksIT {
    private static final Duration START = Duration.ofSeconds(20);
    private static TestRoot root;
    private String marker;

    @BeforeAll
    static void createRoot() throws Exception {
        root = TestRoot.create();
    }

    @AfterAll
    static void deleteRoot() throws Exception {
        if (root != null) root.close();
    }

    @BeforeEach
    void newMarker() {
        marker = ProcessSupport.newMarker();
    }

    private static String newId(String prefix) {
        return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
    }

    /** Starts {@code n} marked sandboxes, each a shell with two sleeps, and waits until all of them run. */
    private List<CompletableFuture<JsonNode>> startSleepers(BwrapdProcess bwrapd, Client client, int n) throws Exception {
        List<CompletableFuture<JsonNode>> runs = new ArrayList<>();
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            String id = newId("sleeper");
            ids.add(id);
            runs.add(bwrapd.requestAsync("sandbox/run", runParams(root, id, marker, "sleep 3600 & sleep 3600; true")));
        }
        for (String id : ids) client.awaitStarted(id, START);
        awaitMarked(marker, "sleep", 2L * n, START);
        return runs;
    }

    @Test
    void sigkillOfTheHelperTakesEverySandboxWithIt() throws Exception {
        try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
            Client client = new Client(bwrapd);
            List<String> ids = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                String id = newId("killed-helper");
                ids.add(id);
                bwrapd.requestAsync("sandbox/run", runParams(root, id, marker, "sleep 3600 & sleep 3600; true"));
            }
            // Killed as soon as the last sandbox/started comes, as a client would: no settling time.
            List<Integer> pids = new ArrayList<>();
            for (String id : ids) pids.add(client.awaitStarted(id, START).path("params").path("pid").asInt());
            for (int pid : pids) assertTrue(ProcessSupport.isMarked(pid, marker), "sandbox pid " + pid + ": " + ProcessSupport.describe(pid));
            bwrapd.process().destroyForcibly(); // SIGKILL
            assertTrue(bwrapd.process().waitFor(5, TimeUnit.SECONDS));
            // the watchdog's look through /proc takes seconds on a loaded machine (a soak beside it took 13 s)
            awaitNoSurvivors(marker, Duration.ofSeconds(30), "SIGKILL of the helper");
        }
    }

    @Test
    void endOfInputEndsEverySandboxCleansTheRootAndExitsZero() throws Exception {
        TreeMap<String, String> before = root.snapshot();
        try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
            List<CompletableFuture<JsonNode>> runs = startSleepers(bwrapd, new Client(bwrapd), 3);
            long t0 = System.nanoTime();
            bwrapd.closeStdin();
            // a bound for a hang (the sleepers would run an hour), with room for a loaded 2-core CI
            assertEquals(0, bwrapd.waitFor(Duration.ofSeconds(30)), "exit code within 30 s of end of input; stderr:\n" + bwrapd.stderr());
            long tookMs = (System.nanoTime() - t0) / 1_000_000;
            assertNoSurvivors(marker, "the helper's exit after end of input (" + tookMs + " ms)");
            for (CompletableFuture<JsonNode> run : runs) {
                assertTrue(run.isDone(), "a pending run was not answered before the exit");
                JsonNode r = run.get();
                assertEquals("signaled", r.path("result").path("status").asText(), r.toString());
            }
            assertEquals(List.of(), bwrapd.stdoutViolations());
        }
        assertEquals(before, root.snapshot(), "the root after end of input");
    }

    @Test
    void manySequentialRunsLeaveNoZombieAndNoChild() throws Exception {
        try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
            long helper = bwrapd.process().pid();
            String[] scripts = {
                    "true",
                    "exit 3",
                    "kill -KILL $$",
                    "sleep 3600 & exit 0", // an orphan: it must die with the sandbox
                    "echo out; echo err >&2",
            };
            for (int i = 0; i < 100; i++) {
                String script = scripts[i % scripts.length];
                JsonNode r = bwrapd.call("sandbox/run", runParams(root, null, marker, script));
                String expected = script.startsWith("kill") ? "signaled" : "exited";
                assertEquals(expected, r.path("status").asText(), script + ": " + r);
                if (script.contains("&")) assertNoSurvivors(marker, "run " + i + " (" + script + ")");
            }
            assertNoSurvivors(marker, "100 runs");
            List<String> zombies = new ArrayList<>();
            for (int child : ProcessSupport.children(helper)) {
                if (ProcessSupport.stat(child).state() == 'Z') zombies.add(ProcessSupport.describe(child));
            }
            assertEquals(List.of(), zombies, "zombie children of the helper");
            Map<Integer, String> remaining = new java.util.LinkedHashMap<>(ProcessSupport.processesWithParent(helper));
            List<Integer> watchdogs = remaining.keySet().stream().filter(ProcessSupport::isWatchdog).toList();
            assertEquals(1, watchdogs.size(), "the helper's watchdog among its children: " + remaining);
            watchdogs.forEach(remaining::remove);
            assertEquals(Map.of(), remaining, "children of the helper after every run ended");
            assertEquals(watchdogs, ProcessSupport.children(helper), "children of the helper after every run ended");
        }
    }

    @Test
    void shutdownEndsRunningSandboxesAndRefusesNewOnes() throws Exception {
        try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
            List<CompletableFuture<JsonNode>> runs = startSleepers(bwrapd, new Client(bwrapd), 2);
            JsonNode shutdown = bwrapd.call("shutdown", null);
            assertNoSurvivors(marker, "the answer to shutdown");
            assertEquals(2, shutdown.path("terminated").asInt(-1), shutdown.toString());
            for (CompletableFuture<JsonNode> run : runs) {
                JsonNode r = run.get(30, TimeUnit.SECONDS);
                assertEquals("signaled", r.path("result").path("status").asText(), r.toString());
            }
            // The runs' answers came before shutdown's (it once overtook them, 4 times in 5).
            List<String> frames = bwrapd.rawFrames();
            int answered = frames.indexOf(frames.stream().filter(f -> f.contains("\"terminated\"")).findFirst().orElseThrow());
            assertEquals(2, frames.subList(0, answered).stream().filter(f -> f.contains("\"status\":\"signaled\"")).count(),
                    "the runs' answers before shutdown's: " + frames);
            JsonNode refused = bwrapd.request("sandbox/run", runParams(root, null, marker, "true"));
            assertEquals(-32006, refused.path("error").path("code").asInt(), refused.toString());
            JsonNode list = bwrapd.request("sandbox/list", null); // shutdown is a barrier: every request but exit is refused
            assertEquals(-32006, list.path("error").path("code").asInt(), list.toString());
            bwrapd.notify("exit", null);
            assertEquals(0, bwrapd.waitFor(Duration.ofSeconds(30)), "exit code after shutdown and exit");
            assertEquals(List.of(), bwrapd.stdoutViolations());
        }
    }
}
