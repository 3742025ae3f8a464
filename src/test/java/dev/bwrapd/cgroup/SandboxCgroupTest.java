package dev.bwrapd.cgroup;

import dev.bwrapd.process.Libc;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Real cgroups on this host (as root here; skipped where this user may make none, which
 * {@link CgroupHostTest#detectsThisHost} checks is reported). Each test starts a process held on
 * its stdin, moves it in, and only then lets it go: as bwrap's init is held by --block-fd.
 */
class SandboxCgroupTest {
    private static CgroupHost host;
    private final List<Process> processes = new ArrayList<>();
    private final List<SandboxCgroup> cgroups = new ArrayList<>();

    @BeforeAll
    static void detect() {
        host = CgroupHost.detect(null);
    }

    @AfterEach
    void cleanUp() {
        processes.forEach(p -> p.descendants().forEach(ProcessHandle::destroyForcibly));
        processes.forEach(Process::destroyForcibly);
        for (SandboxCgroup cgroup : cgroups) {
            cgroup.kill();
            cgroup.remove(2000);
        }
    }

    private SandboxCgroup create(Limits limits) throws Exception {
        SandboxCgroup cgroup = SandboxCgroup.create(host, limits);
        cgroups.add(cgroup);
        return cgroup;
    }

    /** Runs {@code script} in sh once released (stdin closed), already inside {@code cgroup}. */
    private Process startHeld(SandboxCgroup cgroup, String script) throws Exception {
        Process p = new ProcessBuilder("/bin/sh", "-c", "read -r _; " + script).redirectErrorStream(true).start();
        processes.add(p);
        cgroup.add((int) p.pid());
        return p;
    }

    private static void release(Process p) throws Exception {
        try (OutputStream in = p.getOutputStream()) {
            in.write('\n');
        }
    }

    /**
     * A plan names the directories (for the watchdog) without making them; a make that fails
     * removes what it made and nothing else: here the last directory is someone else's already.
     */
    @Test
    void aPlanMakesNothingUntilMadeAndAFailedMakeRemovesOnlyWhatItMade() throws Exception {
        assumeTrue(host.available(), "no cgroup for this user here");
        Limits limits = "v1".equals(host.version("memory")) ? new Limits(64L << 20, null, null, null, null, null) : Limits.NONE;
        SandboxCgroup.Plan plan = SandboxCgroup.plan(host, limits);
        List<Path> dirs = plan.directories();
        assertFalse(dirs.isEmpty());
        for (Path dir : dirs) assertFalse(Files.exists(dir), dir + " is not made by the plan");
        Path taken = dirs.getLast();
        Files.createDirectory(taken);
        try {
            java.io.IOException refused = org.junit.jupiter.api.Assertions.assertThrows(java.io.IOException.class, plan::make);
            assertTrue(refused.getMessage().contains("exists already"), refused.getMessage());
            assertTrue(Files.isDirectory(taken), "not made by this plan: left alone");
            for (Path dir : dirs.subList(0, dirs.size() - 1)) assertFalse(Files.exists(dir), dir + " made, then removed");
        } finally {
            Files.deleteIfExists(taken);
        }
    }

    /**
     * Review finding: a root-run sandbox mounted cgroupfs in a cgroup namespace of its own and made
     * a cgroup below its own, which then could not be removed (the run waited 2 s, the directory
     * stayed). Those below are removed first, deepest first.
     */
    @Test
    void removeTakesTheCgroupsTheSandboxMadeBelowItsOwn() throws Exception {
        assumeTrue(host.available(), "no cgroup for this user here");
        SandboxCgroup cgroup = create(Limits.NONE);
        java.util.List<Path> made = new java.util.ArrayList<>();
        for (Path dir : cgroup.directories()) made.add(Files.createDirectories(dir.resolve("leak/deeper")));
        assertTrue(cgroup.remove(2000), "removed, with what was made below");
        for (Path dir : cgroup.directories()) assertFalse(Files.exists(dir), dir + " is gone");
    }

    @Test
    void killEndsEveryProcessEvenThoseThatLeftTheirSession() throws Exception {
        assumeTrue(host.available(), "no cgroup for this user here");
        SandboxCgroup cgroup = create(Limits.NONE);
        Path marker = Files.createTempFile("cgroup-escapee", ".pid");
        Process p = startHeld(cgroup, "setsid sh -c 'echo $$ > " + marker + "; exec sleep 300' & sleep 300");
        release(p);
        long escapee = awaitPid(marker);
        assertTrue(ProcessHandle.of(escapee).isPresent());
        assertTrue(cgroup.kill());
        assertTrue(p.waitFor(5, TimeUnit.SECONDS), "the shell is killed");
        assertTrue(awaitGone(escapee), "the setsid grandchild is killed too");
        assertTrue(cgroup.remove(2000));
        for (Path dir : cgroup.directories()) assertFalse(Files.exists(dir), dir + " removed");
        Files.deleteIfExists(marker);
    }

    @Test
    void freezeStopsEveryProcessAndThawResumesThem() throws Exception {
        assumeTrue(host.available(), "no cgroup for this user here");
        SandboxCgroup cgroup = create(Limits.NONE);
        Path counter = Files.createTempFile("cgroup-counter", ".txt");
        Process p = startHeld(cgroup, "setsid sh -c 'i=0; while :; do i=$((i+1)); echo $i > " + counter + "; sleep 0.01; done' & wait");
        release(p);
        awaitContent(counter);
        assertTrue(cgroup.freeze(true));
        // The freeze takes effect asynchronously: wait (up to 10 s, a loaded machine) until the kernel says it is done
        awaitFrozen(cgroup);
        String frozen = Files.readString(counter);
        Thread.sleep(300);
        assertEquals(frozen, Files.readString(counter), "a frozen sandbox makes no progress, setsid child included");
        assertTrue(cgroup.freeze(false));
        // thawed, the loop writes again: within 10 s, however slowly a loaded machine runs it
        String now = frozen;
        for (int i = 0; i < 1000 && (now = Files.readString(counter)).equals(frozen); i++) Thread.sleep(10);
        assertFalse(frozen.equals(now), "thawed, it runs again");
        cgroup.kill(); // before the file goes: the loop would write it again
        assertTrue(p.waitFor(5, TimeUnit.SECONDS));
        Files.deleteIfExists(counter);
    }

    @Test
    void usageCountsTheCpuOfEveryProcessIncludingExitedOnes() throws Exception {
        assumeTrue(host.available(), "no cgroup for this user here");
        SandboxCgroup cgroup = create(Limits.NONE);
        // A child burns about 270 ms of CPU (measured here: 300000 rounds of dash arithmetic) and exits.
        Process p = startHeld(cgroup, "sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done'; exit 0");
        release(p);
        assertTrue(p.waitFor(10, TimeUnit.SECONDS));
        SandboxCgroup.Usage usage = cgroup.usage();
        assertTrue(usage.userMicros() + usage.systemMicros() >= 150_000, usage.toString());
        assertTrue(cgroup.countsCpu());
        long total = cgroup.cpuMicros(); // what cpuMs of the whole sandbox is watched by
        assertTrue(Math.abs(total - usage.userMicros() - usage.systemMicros()) < 20_000, total + " vs " + usage);
        assertNull(cgroup.limitExceeded());
    }

    @Test
    void memoryLimitKillsTheHogAndIsReported() throws Exception {
        assumeTrue(Mechanisms.of(host).containsKey("memoryBytes"), "no memory controller for this user here");
        SandboxCgroup cgroup = create(new Limits(64L << 20, null, null, null, null, null));
        // Doubles a string until the kernel's OOM killer ends it inside the cgroup.
        Process p = startHeld(cgroup, "exec /usr/bin/python3 -c \"a=[]\nwhile True: a.append(bytearray(8 << 20))\"");
        release(p);
        assertTrue(p.waitFor(30, TimeUnit.SECONDS), "the hog ends");
        assertEquals(137, p.exitValue(), "killed by SIGKILL");
        assertEquals("memory", cgroup.limitExceeded());
        long peak = cgroup.usage().peakBytes();
        assertTrue(peak > 32L << 20 && peak <= 65L << 20, "peak " + peak);
    }

    @Test
    void pidsLimitStopsAForkLoopAndIsReported() throws Exception {
        assumeTrue(Mechanisms.of(host).containsKey("pids"), "no pids controller for this user here");
        SandboxCgroup cgroup = create(new Limits(null, 8L, null, null, null, null));
        Process p = startHeld(cgroup, "i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done 2>/dev/null; sleep 30");
        release(p);
        // the loop meets the limit when its fork fails: wait for the kernel's count of that (up to 10 s, a loaded machine)
        for (int i = 0; i < 1000 && cgroup.limitExceeded() == null; i++) Thread.sleep(10);
        int members = cgroup.members().size();
        assertTrue(members >= 2 && members <= 9, "the limit, plus one for bwrap's init (here the shell): " + members);
        assertEquals("pids", cgroup.limitExceeded());
    }

    /**
     * The process is in each cgroup's leaf, the limits on the cgroup above it: what a cgroup
     * namespace the sandbox makes shows as its root is the leaf, without them (a review raised
     * them from there). On v2, how deep and how many cgroups may be below is capped.
     */
    @Test
    void theProcessesAreBelowTheLimits() throws Exception {
        assumeTrue(host.available(), "no cgroup for this user here");
        SandboxCgroup cgroup = create(Limits.NONE);
        Process p = startHeld(cgroup, "exit 0");
        String cgroups = Files.readString(Path.of("/proc/" + p.pid() + "/cgroup"));
        for (Path dir : cgroup.directories()) {
            Path leaf = dir.resolve(SandboxCgroup.LEAF);
            assertEquals(Long.toString(p.pid()), Files.readString(leaf.resolve("cgroup.procs")).trim(), leaf.toString());
            assertEquals("", Files.readString(dir.resolve("cgroup.procs")).trim(), dir + " holds none");
            assertTrue(cgroups.contains("/" + dir.getFileName() + "/" + SandboxCgroup.LEAF + "\n"), cgroups);
        }
        Path v2 = cgroup.directories().getFirst();
        if (Files.exists(v2.resolve("cgroup.max.depth"))) {
            assertEquals(Integer.toString(SandboxCgroup.MAX_DEPTH), Files.readString(v2.resolve("cgroup.max.depth")).trim());
            assertEquals(Integer.toString(SandboxCgroup.MAX_DESCENDANTS), Files.readString(v2.resolve("cgroup.max.descendants")).trim());
        }
        release(p);
        assertTrue(p.waitFor(5, TimeUnit.SECONDS));
    }

    @Test
    void rlimitsAreSetOnAHeldProcessAndInherited() throws Exception {
        Path out = Files.createTempFile("rlimits", ".txt");
        Process p = new ProcessBuilder("/bin/sh", "-c", "read -r _; ulimit -t; ulimit -f; ulimit -n; sh -c 'ulimit -n'")
                .redirectOutput(out.toFile()).start();
        processes.add(p);
        Rlimits.apply((int) p.pid(), new Limits(null, null, 1500L, null, 1024L * 1024, 64L));
        release(p);
        assertTrue(p.waitFor(10, TimeUnit.SECONDS));
        // ulimit -f counts 512-byte blocks in dash; the child line shows a subshell inherits them
        assertEquals(List.of("2", "2048", "64", "64"), Files.readAllLines(out));
        long[] mine = Libc.getrlimit(0, Libc.RLIMIT_NOFILE);
        assertTrue(mine[0] > 64, "the caller's own limits are untouched");
        Files.deleteIfExists(out);
    }

    /**
     * Waits until every freezer of {@code cgroup} says it is frozen: v2's cgroup.events "frozen 1",
     * v1's freezer.state FROZEN (FREEZING while under way). A freezer that never gets there fails.
     */
    private static void awaitFrozen(SandboxCgroup cgroup) throws Exception {
        List<Path> states = new ArrayList<>();
        for (Path dir : cgroup.directories()) {
            if (Files.exists(dir.resolve("cgroup.freeze"))) states.add(dir.resolve("cgroup.events"));
            else if (Files.exists(dir.resolve("freezer.state"))) states.add(dir.resolve("freezer.state"));
        }
        assertFalse(states.isEmpty(), "a freezer among " + cgroup.directories());
        for (int i = 0; i < 1000; i++) {
            boolean all = true;
            for (Path state : states) {
                String text = Files.readString(state);
                all &= state.endsWith("cgroup.events") ? text.lines().anyMatch("frozen 1"::equals) : text.strip().equals("FROZEN");
            }
            if (all) return;
            Thread.sleep(10);
        }
        throw new AssertionError("not frozen after 10 s: " + states);
    }

    private static long awaitPid(Path file) throws Exception {
        return Long.parseLong(awaitContent(file).trim());
    }

    private static String awaitContent(Path file) throws Exception {
        for (int i = 0; i < 500; i++) {
            String text = Files.readString(file);
            if (!text.isBlank() && text.endsWith("\n")) return text;
            Thread.sleep(10);
        }
        throw new AssertionError("nothing written to " + file);
    }

    private static boolean awaitGone(long pid) throws Exception {
        for (int i = 0; i < 500; i++) {
            if (!Files.exists(Path.of("/proc/" + pid))) return true;
            Thread.sleep(10);
        }
        return false;
    }
}
