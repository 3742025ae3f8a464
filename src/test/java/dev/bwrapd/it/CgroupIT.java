package dev.bwrapd.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.bwrapd.it.ProcessSupport.Client;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static dev.bwrapd.it.ProcessSupport.awaitMarked;
import static dev.bwrapd.it.ProcessSupport.assertNoSurvivors;
import static dev.bwrapd.it.ProcessSupport.awaitNoSurvivors;
import static dev.bwrapd.it.ProcessSupport.mount;
import static dev.bwrapd.it.ProcessSupport.runParams;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * PROTOCOL.md section 8 against the built helper, real bwrap and a busybox root: resource limits,
 * what the result says about them, and sandboxes whose processes leave their group and session.
 * As root here every limit is enforced (cgroup v1 memory/pids/cpu, rlimits); unprivileged here
 * only the rlimits are, and the others must be refused by name.
 */
class CgroupIT {
    /** Generous: these machines run several builds at once (load averages of 20 and more). */
    private static final Duration START = Duration.ofSeconds(60);
    private static TestRoot root;
    private static JsonNode capabilities;
    private String marker;

    @BeforeAll
    static void setUp() throws Exception {
        root = TestRoot.create();
        try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
            capabilities = bwrapd.call("initialize", null).path("capabilities");
        }
    }

    @AfterAll
    static void tearDown() throws Exception {
        if (root != null) root.close();
    }

    @BeforeEach
    void newMarker() {
        marker = ProcessSupport.newMarker();
    }

    private static boolean enforces(String limit) {
        return capabilities.path("limits").has(limit);
    }

    private static boolean hasCgroup() {
        return capabilities.path("cgroup").path("available").asBoolean();
    }

    private ObjectNode limited(String script, String limit, long value) {
        ObjectNode params = runParams(root, null, marker, script);
        params.putObject("limits").put(limit, value);
        return params;
    }

    /**
     * Where the command may not make a user namespace (root on a host with cgroup v1), the tests of
     * what a cgroup namespace could do grant it CAP_SYS_ADMIN, which makes one in the sandbox's own:
     * a client may grant it, and the sandbox's cgroups must still hold then.
     */
    private static ObjectNode withCgroupNamespaces(ObjectNode params) {
        if (!capabilities.path("nestedUserNamespaces").asBoolean()) params.putArray("capabilities").add("CAP_SYS_ADMIN");
        return params;
    }

    /**
     * Review finding: as root on a hybrid host, a command made a user, mount and cgroup namespace and
     * mounted a v1 hierarchy in which the sandbox has no cgroup of its own: its root there was
     * bwrapd's cgroup (here the host's root cgroup), whose processes it could freeze and whose
     * limits it could raise. Such sandboxes may make no user namespace now; an unprivileged bwrapd's
     * still may (they map to its own user). Nothing is written: the mount alone is the finding.
     */
    @Test
    void aRootRunCommandCannotMountTheHostsCgroupV1Hierarchies() throws Exception {
        List<String> hierarchies = dev.bwrapd.HostFacts.cgroupV1Hierarchies();
        boolean rootOnV1 = dev.bwrapd.HostFacts.rootOnCgroupV1();
        boolean userNamespaces = capabilities.path("userNamespaces").asBoolean();
        assertEquals(userNamespaces && !rootOnV1, capabilities.path("nestedUserNamespaces").asBoolean(), capabilities.toString());
        assumeTrue(rootOnV1 && userNamespaces, "root on a host with cgroup v1 hierarchies");
        buildUsernsShell();
        StringBuilder script = new StringBuilder("userns-shell sh -c '");
        for (String h : hierarchies) {
            String options = h.startsWith("name=") ? "none," + h : h;
            script.append("mkdir -p /tmp/h; mount -t cgroup -o ").append(options).append(" none /tmp/h 2>/dev/null && echo mounted ")
                    .append(h).append(" && umount /tmp/h; ");
        }
        script.append("echo done'; echo exit $?");
        try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
            JsonNode r = bwrapd.call("sandbox/run", runParams(root, null, marker, script.toString()));
            String out = r.at("/stdout/text").asText();
            assertTrue(out.contains("exit "), r.toString());
            assertFalse(out.contains("mounted"), "a v1 hierarchy of the host was mounted: " + r);
            assertTrue(r.at("/stderr/text").asText().contains("unshare user"), "the user namespace was refused: " + r);
        }
    }

    @Test
    void initializeReportsWhatThisUserCanEnforce() {
        // rlimits need no privilege: every host with bwrap's status pipe enforces them.
        for (String limit : List.of("cpuMs", "fileSizeBytes", "openFiles")) assertTrue(enforces(limit), capabilities.toString());
        JsonNode cgroup = capabilities.path("cgroup");
        assertTrue(cgroup.path("controllers").isArray(), cgroup.toString());
        if (hasCgroup()) {
            assertTrue(Files.isDirectory(Path.of(cgroup.path("path").asText())), cgroup.toString());
        } else {
            assertFalse(enforces("memoryBytes") && !cgroup.path("controllers").toString().contains("memory"), capabilities.toString());
        }
    }

    @Test
    void aLimitTheHostCannotEnforceIsRefusedByName() throws Exception {
        List<String> refused = new ArrayList<>();
        for (String limit : List.of("memoryBytes", "pids", "cpus")) if (!enforces(limit)) refused.add(limit);
        assumeTrue(!refused.isEmpty(), "this user can enforce every limit here");
        try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
            for (String limit : refused) {
                JsonNode answer = bwrapd.request("sandbox/run", limited("true", limit, 1L << 26));
                assertEquals(-32602, answer.path("error").path("code").asInt(), answer.toString());
                assertTrue(answer.path("error").path("message").asText().startsWith("limits." + limit + ": "), answer.toString());
            }
        }
    }

    @Test
    void memoryHogIsKilledAndReported() throws Exception {
        assumeTrue(enforces("memoryBytes"), "no memory controller for this user here");
        try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
            // Doubles a shell string until the kernel's OOM killer ends it within the sandbox's 64 MiB.
            JsonNode r = bwrapd.call("sandbox/run", limited("a=x; while :; do a=$a$a; done", "memoryBytes", 64L << 20));
            assertEquals("signaled", r.path("status").asText(), r.toString());
            assertEquals("SIGKILL", r.path("signal").asText(), r.toString());
            assertEquals("memory", r.path("limitExceeded").asText(), r.toString());
            long peakKiB = r.path("usage").path("maxRssKiB").asLong();
            assertTrue(peakKiB > 16 << 10 && peakKiB <= 64 << 10, "the cgroup's peak, within the limit: " + r);
        }
    }

    @Test
    void forkLoopCannotExceedThePidsLimitAndIsReported() throws Exception {
        assumeTrue(enforces("pids"), "no pids controller for this user here");
        try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
            // A subshell starts 100 background sleeps (busybox's shell gives up at the first fork that
            // fails); then the processes of the sandbox's PID namespace (its init included) are
            // counted with shell builtins only: at the limit, nothing more can be forked.
            String script = "(i=0; while [ $i -lt 100 ]; do sleep 60 & i=$((i+1)); done) 2>/dev/null; "
                    + "n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n";
            JsonNode r = bwrapd.call("sandbox/run", limited(script, "pids", 32));
            int processes = Integer.parseInt(r.path("stdout").path("text").asText().trim());
            assertTrue(processes <= 33, "32 of the sandbox's plus bwrap's init, at most: " + r);
            assertTrue(processes >= 20, "the loop did fork up to about the limit: " + r);
            assertEquals("pids", r.path("limitExceeded").asText(), r.toString());
        }
    }

    /** Runs {@code script} under {@code cpuMs}: it must be stopped, and reported, at its CPU time. */
    private JsonNode stoppedAtItsCpuTime(String script, long cpuMs) throws Exception {
        try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
            JsonNode r = bwrapd.call("sandbox/run", limited(script, "cpuMs", cpuMs));
            assertEquals("signaled", r.path("status").asText(), r.toString());
            assertEquals("cpu", r.path("limitExceeded").asText(), r.toString());
            return r;
        }
    }

    private static double cpuMsOf(JsonNode result) {
        return result.path("usage").path("userCpuMs").asDouble() + result.path("usage").path("systemCpuMs").asDouble();
    }

    @Test
    void busyLoopIsStoppedWithinASecondOfItsCpuTime() throws Exception {
        JsonNode r = stoppedAtItsCpuTime("while :; do :; done", 500);
        assertTrue(cpuMsOf(r) >= 400 && cpuMsOf(r) <= 1500, "stopped within a second of 500 ms of CPU: " + r);
    }

    @Test
    void cpuMsCoversTheWholeSandboxWhereItsCgroupCountsCpu() throws Exception {
        String mechanism = capabilities.path("limits").path("cpuMs").asText();
        assumeTrue(mechanism.startsWith("cgroup"), "cpuMs is per process here: " + mechanism);
        // Two busy loops: under a per-process limit each would run 600 ms (RLIMIT_CPU: a whole
        // second), together at least twice that; the sandbox's limit stops their sum.
        JsonNode r = stoppedAtItsCpuTime("while :; do :; done & while :; do :; done", 600);
        assertEquals("SIGKILL", r.path("signal").asText(), "the whole cgroup killed: " + r);
        assertTrue(cpuMsOf(r) >= 550 && cpuMsOf(r) <= 1100, "both loops together stopped at about 600 ms of CPU: " + r);
    }

    @Test
    void writeBeyondTheFileSizeLimitFailsWithEfbig() throws Exception {
        try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
            String script = "trap '' XFSZ; dd if=/dev/zero of=/tmp/big bs=1024 count=64 2>&1; echo \"status $?\"; wc -c < /tmp/big";
            JsonNode r = bwrapd.call("sandbox/run", limited(script, "fileSizeBytes", 10000));
            String out = r.path("stdout").path("text").asText();
            assertTrue(out.contains("File too large"), "EFBIG: " + r);
            assertTrue(out.contains("status 1"), r.toString());
            assertTrue(out.trim().endsWith("10000"), "the file stops at the limit: " + r);
            assertEquals("exited", r.path("status").asText(), r.toString());
        }
    }

    /**
     * A build step gets the soft limit on open files its client's children get, not the one
     * bwrapd's runtime raised its own to (a native image always does, HotSpot by default); bwrapd
     * keeps that for itself, and an openFiles limit still wins.
     */
    @Test
    void theCommandGetsTheClientsSoftLimitOnOpenFiles() throws Exception {
        try (BwrapdProcess bwrapd = BwrapdProcess.startUnderShell("ulimit -S -n 256")) {
            bwrapd.call("initialize", null);
            long hard = openFilesLimits(bwrapd.process().pid())[1];
            assertTrue(hard > 256, "this test needs a hard limit above 256: " + hard);
            long helper = bwrapd.process().children().findFirst().orElseThrow().pid();
            assertEquals(hard, openFilesLimits(helper)[0], "bwrapd itself runs with its soft limit raised");
            String script = "echo $(ulimit -S -n) $(ulimit -H -n)";
            JsonNode r = bwrapd.call("sandbox/run", runParams(root, null, marker, script));
            assertEquals("256 " + hard, r.path("stdout").path("text").asText().trim(), "the client's soft limit, the hard one unchanged: " + r);
            r = bwrapd.call("sandbox/run", limited(script, "openFiles", 100));
            assertEquals("100 100", r.path("stdout").path("text").asText().trim(), "openFiles wins: " + r);
        }
    }

    /** {soft, hard} "Max open files" of process {@code pid}. */
    private static long[] openFilesLimits(long pid) throws java.io.IOException {
        for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/" + pid + "/limits"))) {
            if (!line.startsWith("Max open files")) continue;
            String[] words = line.substring("Max open files".length()).trim().split("\\s+");
            return new long[] {Long.parseLong(words[0]), Long.parseLong(words[1])};
        }
        throw new AssertionError("no open files limit for " + pid);
    }

    /** A child that double-forks into a session of its own, outside the command's process group. */
    private static final String ESCAPEE = "setsid sh -c 'sleep 3600 & sleep 3600' & sleep 3600";

    @Test
    void terminateLeavesNoEscapee() throws Exception {
        try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
            Client client = new Client(bwrapd);
            var run = bwrapd.requestAsync("sandbox/run", runParams(root, "escapee", marker, ESCAPEE));
            client.awaitStarted("escapee", START);
            awaitMarked(marker, "sleep", 3, START);
            bwrapd.call("sandbox/terminate", BwrapdProcess.JSON.createObjectNode().put("sandboxId", "escapee"));
            JsonNode r = run.get(START.toSeconds(), TimeUnit.SECONDS).path("result");
            assertEquals("signaled", r.path("status").asText(), r.toString());
            awaitNoSurvivors(marker, Duration.ofSeconds(10), "terminate");
            assertNoCgroupsOf(bwrapd);
        }
    }

    @Test
    void timeoutLeavesNoEscapee() throws Exception {
        try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
            ObjectNode params = runParams(root, null, marker, ESCAPEE);
            params.put("timeoutMs", 1500).put("killGraceMs", 0);
            JsonNode r = bwrapd.call("sandbox/run", params);
            assertEquals("timed-out", r.path("status").asText(), r.toString());
            awaitNoSurvivors(marker, Duration.ofSeconds(10), "the timeout");
            assertNoCgroupsOf(bwrapd);
        }
    }

    @Test
    void suspendFreezesTheEscapeeToo() throws Exception {
        assumeTrue(hasCgroup(), "without a cgroup, suspend stops only the command's process group");
        Path shared = Files.createTempDirectory("cgroup-it");
        try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
            Client client = new Client(bwrapd);
            ObjectNode params = runParams(root, "frozen", marker,
                    "setsid sh -c 'i=0; while :; do i=$((i+1)); echo $i > /shared/n; sleep 0.02; done' & sleep 3600");
            ProcessSupport.mount(params, shared, "/shared");
            var run = bwrapd.requestAsync("sandbox/run", params);
            client.awaitStarted("frozen", START);
            Path counter = shared.resolve("n");
            long deadline = System.nanoTime() + START.toNanos();
            while (!Files.exists(counter) && System.nanoTime() < deadline) Thread.sleep(10);
            ObjectNode id = BwrapdProcess.JSON.createObjectNode().put("sandboxId", "frozen");
            assertTrue(bwrapd.call("sandbox/suspend", id).path("delivered").asBoolean());
            awaitFrozen(bwrapd.process().pid()); // a freeze takes effect asynchronously: until the kernel says it is done
            String frozen = Files.readString(counter);
            Thread.sleep(500);
            assertEquals(frozen, Files.readString(counter), "the setsid child is frozen with the rest");
            assertTrue(bwrapd.call("sandbox/resume", id).path("delivered").asBoolean());
            String now = frozen; // resumed, the loop writes again: within START, however slowly a loaded machine runs it
            for (long until = System.nanoTime() + START.toNanos(); (now = Files.readString(counter)).equals(frozen) && System.nanoTime() < until; ) Thread.sleep(10);
            assertNotEquals(frozen, now, "and runs again once resumed");
            bwrapd.call("sandbox/terminate", id);
            run.get(START.toSeconds(), TimeUnit.SECONDS);
            awaitNoSurvivors(marker, Duration.ofSeconds(10), "terminate after resume");
        } finally {
            try (Stream<Path> files = Files.walk(shared)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /**
     * The setup window: the helper is SIGKILLed 0 to 20 ms after a burst of 8 runs, while their
     * bwraps are starting, setting up, or held. Nothing may survive it, and the watchdog removes
     * every cgroup the helper made. 100 rounds, as issue #15 asks.
     */
    @Test
    void sigkillOfTheHelperInTheSetupWindowLeavesNothing() throws Exception {
        int rounds = 0;
        List<String> failures = new ArrayList<>();
        while (rounds < 100) {
            rounds++;
            try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
                bwrapd.call("initialize", null); // the probe is done: runs start at once
                for (int i = 0; i < 8; i++) bwrapd.requestAsync("sandbox/run", runParams(root, null, marker, ESCAPEE));
                Thread.sleep(ThreadLocalRandom.current().nextInt(21));
                String killedAt = Files.readString(Path.of("/proc/uptime")).split(" ")[0];
                bwrapd.process().destroyForcibly();
                assertTrue(bwrapd.process().waitFor(5, TimeUnit.SECONDS));
                try {
                    // The watchdog's look through /proc takes seconds on a loaded machine (a soak beside it took 13 s)
                    awaitNoSurvivors(marker, Duration.ofSeconds(30), "round " + rounds);
                    awaitNoCgroupsOf(bwrapd.process().pid(), Duration.ofSeconds(30));
                } catch (AssertionError e) {
                    failures.add(e.getMessage() + "\n  the helper's watchdog now: " + watchdogOf(bwrapd.process().pid())
                            + "\n  helper " + bwrapd.process().pid() + " killed at uptime " + killedAt + " s, now " + Files.readString(Path.of("/proc/uptime")).split(" ")[0]);
                    for (int pid : ProcessSupport.marked(marker).keySet()) new ProcessBuilder("kill", "-9", "" + pid).start().waitFor();
                }
            }
        }
        System.err.println("CgroupIT: " + rounds + " rounds of 8 runs, helper SIGKILLed 0-20 ms after sending them");
        assertEquals(List.of(), failures, "survivors in " + failures.size() + " of " + rounds + " rounds");
    }

    /** The helper's watchdog shell (its command line names the helper's mark), described, or "gone". */
    private static String watchdogOf(long helperPid) throws IOException {
        for (int pid : ProcessSupport.allPids()) {
            String cmdline = ProcessSupport.cmdline(pid);
            if (cmdline.startsWith("bwrapd-watchdog") && cmdline.contains("held-" + helperPid + "-")) return ProcessSupport.describe(pid);
        }
        return "gone";
    }

    // ----- cgroups the helper made -----

    private static void assertNoCgroupsOf(BwrapdProcess bwrapd) throws Exception {
        awaitNoCgroupsOf(bwrapd.process().pid(), Duration.ZERO);
    }

    /** The helper's sandbox cgroups are named bwrapd-PID-N: none may be left, v2 or v1. */
    private static void awaitNoCgroupsOf(long helperPid, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        Set<String> left;
        while (!(left = cgroupsOf(helperPid)).isEmpty() && System.nanoTime() < deadline) Thread.sleep(20);
        assertEquals(Set.of(), left, "cgroups of helper " + helperPid + " left behind");
    }

    /**
     * Waits (up to START) until every freezer among the helper's cgroups says it is frozen: v2's
     * cgroup.events "frozen 1", v1's freezer.state FROZEN. Fails if there is none, or it never gets there.
     */
    private static void awaitFrozen(long helperPid) throws Exception {
        long deadline = System.nanoTime() + START.toNanos();
        List<Path> states = new ArrayList<>();
        while (true) {
            states.clear();
            boolean all = true;
            for (String dir : cgroupsOf(helperPid)) {
                Path v2 = Path.of(dir, "cgroup.events"), v1 = Path.of(dir, "freezer.state");
                try {
                    if (Files.exists(Path.of(dir, "cgroup.freeze"))) {
                        states.add(v2);
                        all &= Files.readString(v2).lines().anyMatch("frozen 1"::equals);
                    } else if (Files.exists(v1)) {
                        states.add(v1);
                        all &= Files.readString(v1).strip().equals("FROZEN");
                    }
                } catch (IOException e) {
                    all = false; // removed meanwhile
                }
            }
            if (all && !states.isEmpty()) return;
            if (System.nanoTime() > deadline) throw new AssertionError("not frozen after suspend: " + (states.isEmpty() ? "no freezer among " + cgroupsOf(helperPid) : states));
            Thread.sleep(10);
        }
    }

    private static Set<String> cgroupsOf(long helperPid) throws IOException {
        Set<String> found = new TreeSet<>();
        String prefix = "bwrapd-" + helperPid + "-";
        Path top = Path.of("/sys/fs/cgroup");
        if (!Files.isDirectory(top)) return found;
        // Deep enough for a test under a systemd service or a user's session scope (user.slice/.../app.slice/x.scope/bwrapd-…/s).
        try (Stream<Path> dirs = Files.walk(top, 16)) {
            dirs.filter(p -> p.getFileName() != null && p.getFileName().toString().startsWith(prefix)).forEach(p -> found.add(p.toString()));
        } catch (java.io.UncheckedIOException e) {
            // a cgroup removed while walking
        }
        return found;
    }

    /**
     * The sandbox's cgroup is made while bwrap starts. Should the kernel refuse it (here its parent,
     * given with --cgroup-parent, allows no descendants), the held init never runs the command, and
     * the result says why.
     */
    @Test
    void aCgroupTheKernelRefusesFailsTheSetupAndTheCommandNeverRuns() throws Exception {
        Path base = Path.of(capabilities.path("cgroup").path("path").asText("/nonexistent"));
        assumeTrue(hasCgroup() && Files.isWritable(base.resolve("cgroup.procs")), "no writable cgroup v2 for this user here");
        // Not named with the marker: the helper's command line carries the name, and it must not count as the sandbox's.
        Path parent = Files.createDirectory(base.resolve("bwrapd-it-" + Long.toHexString(ThreadLocalRandom.current().nextLong())));
        Path out = Files.createTempDirectory("bwrapd-cgroup-refused");
        try {
            try (BwrapdProcess bwrapd = BwrapdProcess.start("--cgroup-parent", parent.toString())) {
                JsonNode cgroup = bwrapd.call("initialize", null).path("capabilities").path("cgroup");
                assertEquals(parent.toString(), cgroup.path("path").asText(), cgroup.toString());
                Files.writeString(parent.resolve("cgroup.max.descendants"), "0"); // once the helper has looked at it
                ObjectNode params = mount(runParams(root, null, marker, "touch /out/ran; sleep 300"), out, "/out");
                JsonNode r = bwrapd.call("sandbox/run", params);
                assertEquals("setup-failed", r.path("status").asText(), r.toString());
                assertTrue(r.path("setupError").asText().startsWith("cannot make the sandbox's cgroup: "), r.toString());
                assertFalse(Files.exists(out.resolve("ran")), "the command ran");
                assertNoSurvivors(marker, "after a refused cgroup");
                try (Stream<Path> left = Files.list(parent)) {
                    assertEquals(List.of(), left.filter(Files::isDirectory).toList(), "cgroups left below " + parent);
                }
            }
        } finally {
            Files.deleteIfExists(out.resolve("ran"));
            Files.delete(out);
            Files.delete(parent);
        }
    }

    /**
     * Review finding: a command made a user, mount and cgroup namespace (no filter forbids it by
     * default), mounted cgroupfs there, whose root is the cgroup it is in, and wrote -1 and "max"
     * into its own memory and pids limits: as root its uid 0 is the host's, which owns them. It
     * used 210 MiB under a 64 MiB limit, 62 processes under 8. The limits are now on the cgroup
     * above its own, which it cannot see: the same command still meets them.
     */
    @Test
    void aCommandCannotRaiseItsOwnLimitsThroughACgroupNamespace() throws Exception {
        assumeTrue(enforces("memoryBytes") && enforces("pids"), "no memory and pids controllers for this user here");
        buildUsernsShell();
        // Mounts the hierarchy that holds each limit here (v1 or v2, as initialize says) and raises it as far as it goes.
        String raise = "mkdir -p /tmp/memory /tmp/pids; userns-shell sh -c '"
                + mountAndRaise("memoryBytes", "memory", "echo -1 > M/memory.memsw.limit_in_bytes; echo -1 > M/memory.limit_in_bytes", "echo max > M/memory.max")
                + mountAndRaise("pids", "pids", "echo max > M/pids.max", "echo max > M/pids.max")
                + "' 2>/dev/null; ";
        try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
            JsonNode memory = bwrapd.call("sandbox/run", withCgroupNamespaces(limited(raise
                    + "dd if=/dev/zero of=/tmp/fill bs=1M count=200 2>/dev/null; echo filled $(wc -c < /tmp/fill)", "memoryBytes", 64L << 20)));
            assumeTrue(memory.at("/stdout/text").asText().contains("mounted memory"), "no user namespaces for the command here: " + memory);
            assertEquals("memory", memory.path("limitExceeded").asText(), memory.toString());
            assertFalse(memory.at("/stdout/text").asText().contains("filled 209715200"), memory.toString());

            JsonNode pids = bwrapd.call("sandbox/run", withCgroupNamespaces(limited(raise
                    + "(i=0; while [ $i -lt 60 ]; do sleep 60 & i=$((i+1)); done) 2>/dev/null; n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo processes $n",
                    "pids", 8)));
            String out = pids.at("/stdout/text").asText();
            assumeTrue(out.contains("mounted pids"), "no user namespaces for the command here: " + pids);
            int processes = Integer.parseInt(out.substring(out.indexOf("processes ") + 10).trim());
            assertTrue(processes <= 9, "8 of the sandbox's and bwrap's init at most: " + pids);
            assertEquals("pids", pids.path("limitExceeded").asText(), pids.toString());
        }
    }

    /** src/test/resources/userns-shell.c, built into the test root's /bin (what a hostile command could bring). */
    private static void buildUsernsShell() throws Exception {
        Path program = root.path().resolve("bin/userns-shell");
        if (Files.exists(program)) return;
        Process gcc = new ProcessBuilder("gcc", "-static", "-O2", "-o", program.toString(),
                BwrapdProcess.home().resolve("src/test/resources/userns-shell.c").toString()).redirectErrorStream(true).start();
        String log = new String(gcc.getInputStream().readAllBytes());
        assertTrue(gcc.waitFor(120, TimeUnit.SECONDS) && gcc.exitValue() == 0, "gcc (installed by .ci/run): " + log);
    }

    /**
     * Review finding: on a host with only v1 cgroups, a command froze a process of its own in a
     * freezer cgroup it made below the sandbox's (a v1 frozen process dies of SIGKILL only once
     * thawed): its timeout killed nothing and the run was never answered, and after bwrapd's death
     * the watchdog left the process and the cgroups. Every cgroup below is thawed now. Here a
     * hybrid host is made v1-only for bwrapd by hiding its v2 mount (root only).
     */
    @Test
    void aProcessFrozenBelowTheSandboxsFreezerIsStillKilled() throws Exception {
        assumeTrue("root".equals(System.getProperty("user.name")) && Files.isDirectory(Path.of("/sys/fs/cgroup/freezer"))
                && Files.exists(Path.of("/sys/fs/cgroup/unified/cgroup.procs")), "a root on a hybrid host (v2 at /sys/fs/cgroup/unified, a v1 freezer)");
        buildUsernsShell();
        String freezeOne = "mkdir -p /tmp/f; mount -t cgroup -o freezer none /tmp/f && mkdir /tmp/f/x && "
                + "{ sleep 1000 & echo $! > /tmp/f/x/cgroup.procs; echo FROZEN > /tmp/f/x/freezer.state; echo frozen; }; sleep 1000";
        ObjectNode params = withCgroupNamespaces(runParams(root, null, marker, "userns-shell sh -c '" + freezeOne + "' " + marker));
        params.put("timeoutMs", 2000).put("killGraceMs", 0);
        try (BwrapdProcess bwrapd = BwrapdProcess.startUnder(List.of("unshare", "-m", "--propagation", "private",
                "/bin/sh", "-c", "umount /sys/fs/cgroup/unified && exec \"$@\"", "sh"))) {
            JsonNode cgroup = bwrapd.call("initialize", null).path("capabilities").path("cgroup");
            assumeTrue(cgroup.path("available").asBoolean(), "bwrapd without v2 takes the v1 freezer: " + cgroup);
            JsonNode r = bwrapd.request("sandbox/run", params).path("result");
            assumeTrue(r.at("/stdout/text").asText().contains("frozen"), "the command could not freeze (no user namespaces?): " + r);
            assertEquals("timed-out", r.path("status").asText(), r.toString());
            awaitNoSurvivors(marker, Duration.ofSeconds(30), "a run whose command froze a process below its cgroup");
        }
    }

    /** Shell that mounts the hierarchy holding {@code limit} at /tmp/DIR and runs the v1 or v2 writes (M: the mount). */
    private static String mountAndRaise(String limit, String dir, String v1Writes, String v2Writes) {
        boolean v1 = capabilities.path("limits").path(limit).asText().contains("v1");
        String mount = v1 ? "mount -t cgroup -o " + dir + " none /tmp/" + dir : "mount -t cgroup2 none /tmp/" + dir;
        return mount + " && echo mounted " + dir + " && { " + (v1 ? v1Writes : v2Writes).replace("M/", "/tmp/" + dir + "/") + "; }; ";
    }

    @Test
    void eachRunRemovesItsCgroups() throws Exception {
        try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
            Map<String, Object> limits = enforces("memoryBytes") ? Map.of("memoryBytes", 1L << 28) : Map.of("openFiles", 256);
            ObjectNode params = runParams(root, null, marker, "cat /proc/self/cgroup; echo seen > /tmp/listed; while [ ! -e /tmp/go ]; do sleep 0.01; done");
            params.set("limits", BwrapdProcess.JSON.valueToTree(limits));
            Path tmp = Files.createTempDirectory("bwrapd-cgroup-it-");
            Files.setPosixFilePermissions(tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rwxrwxrwx"));
            mount(params, tmp, "/tmp");
            CompletableFuture<JsonNode> run = bwrapd.requestAsync("sandbox/run", params);
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (!Files.exists(tmp.resolve("listed")) && System.nanoTime() < deadline) Thread.sleep(10);
            // The positive control: while it runs, the walk finds the sandbox's cgroups (else "none left" proves nothing).
            if (hasCgroup()) assertFalse(cgroupsOf(bwrapd.process().pid()).isEmpty(), "the run's cgroups are found while it runs");
            Files.writeString(tmp.resolve("go"), "");
            JsonNode r = run.get(60, TimeUnit.SECONDS).get("result");
            assertEquals(0, r.path("exitCode").asInt(-1), r.toString());
            String own = r.path("stdout").path("text").asText();
            if (hasCgroup()) assertTrue(own.contains("/bwrapd-" + bwrapd.process().pid() + "-"), "the command ran in the sandbox's cgroup: " + own);
            assertNoCgroupsOf(bwrapd);
            TestRoot.deleteTree(tmp);
        }
    }
}
