package dev.bwrapd.process;

import org.junit.jupiter.api.Test;

import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The watchdog's script, run as bwrapd runs it: it kills the groups it holds when its input ends. */
class WatchdogTest {

    /** A process in a new session of its own (so its pid is its process-group id). */
    private static Process sessionLeader() throws Exception {
        Process p = new ProcessBuilder("setsid", "--wait", "sleep", "300").start();
        // setsid --wait forks when it is a group leader already; the sleep's group is what matters.
        // Up to 10 s (a loaded machine): until then group() would name the JVM's own group.
        for (int i = 0; i < 1000 && p.children().findAny().isEmpty() && !isLeader(p.pid()); i++) Thread.sleep(10);
        assertTrue(p.children().findAny().isPresent() || isLeader(p.pid()), "setsid made its session");
        return p;
    }

    private static boolean isLeader(long pid) throws Exception {
        String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
        String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        return Long.parseLong(fields[2]) == pid; // pgrp
    }

    private static long group(Process p) throws Exception {
        long pid = p.children().findFirst().map(ProcessHandle::pid).orElse(p.pid());
        String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
        return Long.parseLong(stat.substring(stat.lastIndexOf(')') + 2).split(" ")[2]);
    }

    /** Waits (up to 10 s) until {@code p} runs the program named {@code name} (its /proc/PID/exe). */
    private static void awaitExec(Process p, String name) throws Exception {
        Path exe = Path.of("/proc/" + p.pid() + "/exe");
        for (int i = 0; i < 1000; i++) {
            try {
                if (Files.readSymbolicLink(exe).getFileName().toString().equals(name)) return;
            } catch (java.io.IOException e) {
                // not there yet, or gone
            }
            Thread.sleep(10);
        }
        throw new AssertionError(p.pid() + " did not exec " + name);
    }

    private static void runWatchdog(String input, String... mark) throws Exception {
        runWatchdogWithPath(null, input, mark);
    }

    /** {@code path}: the watchdog's PATH (null: this process's). */
    private static void runWatchdogWithPath(String path, String input, String... mark) throws Exception {
        java.util.List<String> command = new java.util.ArrayList<>(java.util.List.of("/bin/sh", "-c", Watchdog.SCRIPT, "bwrapd-watchdog"));
        command.addAll(java.util.List.of(mark));
        ProcessBuilder builder = new ProcessBuilder(command);
        if (path != null) builder.environment().put("PATH", path);
        Process watchdog = builder.start();
        try (OutputStream in = watchdog.getOutputStream()) {
            in.write(input.getBytes(StandardCharsets.US_ASCII));
        }
        // Generous: its scans of /proc take seconds on a machine loaded with many processes (a soak beside it took 13 s).
        assertTrue(watchdog.waitFor(60, TimeUnit.SECONDS), "the watchdog ends with its input");
    }

    /**
     * A watchdog that died (killed by someone, the OOM killer) was noticed by nobody: a later death
     * of bwrapd then left what it held. It is replaced at the next line by one told everything held.
     */
    @Test
    void aWatchdogThatDiedIsReplacedByOneToldWhatItHeld() throws Exception {
        for (boolean wholeSession : new boolean[] {true, false}) replacesADeadWatchdog(wholeSession);
    }

    /**
     * {@code wholeSession}: the shell and its awk are killed, and the next write fails (nothing is
     * reaped first); else the shell alone, whose awk goes on reading (the write succeeds): the
     * reaper's sight of its exit tells (here a sweep of the test's, the reaper's loop reaps every
     * child of this JVM).
     */
    private void replacesADeadWatchdog(boolean wholeSession) throws Exception {
        Process held = sessionLeader();
        Reaper reaper = new Reaper();
        Watchdog watchdog = new Watchdog(new Spawner(reaper));
        try {
            java.util.Set<Long> before = watchdogs().map(ProcessHandle::pid).collect(java.util.stream.Collectors.toSet());
            watchdog.watch((int) group(held), false, java.util.List.of()); // unmarked: killed as told
            ProcessHandle first = null;
            for (int i = 0; i < 1000 && first == null; i++) { // until it has exec'd
                first = watchdogs().filter(p -> !before.contains(p.pid())).findFirst().orElse(null);
                if (first == null) Thread.sleep(10);
            }
            assertTrue(first != null, "a watchdog started");
            Thread.sleep(200); // its awk started
            java.util.List<Long> killed = new java.util.ArrayList<>(java.util.List.of(first.pid()));
            if (wholeSession) first.children().forEach(awk -> killed.add(awk.pid()));
            new ProcessBuilder("kill", "-KILL", "--", wholeSession ? "-" + first.pid() : Long.toString(first.pid())).start().waitFor();
            long dead = first.pid();
            // until each has closed its files, the pipe's read end with them (a dying process loses its
            // command line before its files: a write then could still succeed)
            for (int i = 0; i < 1000 && !killed.stream().allMatch(WatchdogTest::exited); i++) Thread.sleep(10);
            assertTrue(killed.stream().allMatch(WatchdogTest::exited), "the first watchdog is dead");
            assertFalse(watchdogs().anyMatch(p -> p.pid() == dead), "the first watchdog is dead");
            if (!wholeSession) reaper.sweep(); // whole: the next write fails, before anything is reaped
            watchdog.forget(java.util.List.of(), false, 999_999); // the next line
            for (int i = 0; i < 1000 && watchdogs().noneMatch(p -> p.pid() != dead && !before.contains(p.pid())); i++) Thread.sleep(10);
            assertTrue(watchdogs().anyMatch(p -> p.pid() != dead && !before.contains(p.pid())), "another watchdog runs (whole session: " + wholeSession + ")");
            watchdog.closeInput();
            assertTrue(held.waitFor(30, TimeUnit.SECONDS), "the group the dead one held is killed by the new one");
        } finally {
            watchdog.closeInput();
            held.destroyForcibly();
            held.children().forEach(ProcessHandle::destroyForcibly);
        }
    }

    /** Whether {@code pid} is gone or a zombie (a zombie holds no descriptors). */
    private static boolean exited(long pid) {
        try {
            String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
            char state = stat.charAt(stat.lastIndexOf(')') + 2);
            return state == 'Z' || state == 'X';
        } catch (java.io.IOException e) {
            return true;
        }
    }

    /** This process's live watchdog shells (argv[0] bwrapd-watchdog; a zombie's command line is empty). */
    private static java.util.stream.Stream<ProcessHandle> watchdogs() {
        return ProcessHandle.current().children()
                .filter(p -> {
                    try {
                        return Files.readString(Path.of("/proc/" + p.pid() + "/cmdline")).startsWith("bwrapd-watchdog");
                    } catch (java.io.IOException e) {
                        return false;
                    }
                });
    }

    @Test
    void killsTheGroupsItHoldsWhenItsInputEnds() throws Exception {
        killsTheGroupsItHolds(null);
    }

    /** Without awk (a PATH that has none) the shell follows the lines itself, to the same end. */
    @Test
    void killsTheGroupsItHoldsWithoutAwk() throws Exception {
        killsTheGroupsItHolds("/nonexistent");
    }

    private void killsTheGroupsItHolds(String path) throws Exception {
        Process held = sessionLeader();
        Process forgotten = sessionLeader();
        try {
            long heldGroup = group(held), forgottenGroup = group(forgotten);
            runWatchdogWithPath(path, "+" + forgottenGroup + "\n+999999\n+" + heldGroup + "\n-" + forgottenGroup + "\n-999999\n");
            assertTrue(held.waitFor(5, TimeUnit.SECONDS), "a held group is killed");
            assertFalse(forgotten.waitFor(300, TimeUnit.MILLISECONDS), "a forgotten group is left alone");
        } finally {
            held.destroyForcibly();
            forgotten.destroyForcibly();
            forgotten.children().forEach(ProcessHandle::destroyForcibly);
            held.children().forEach(ProcessHandle::destroyForcibly);
        }
    }

    /**
     * A group it holds whose members carry no mark is no sandbox's: the sandbox's processes are gone
     * and its number was given again (bwrapd reaps bwrap a moment before it tells the watchdog to
     * forget bwrap's group). It is left alone; a held group with a marked member is killed, its
     * unmarked members too (the look for marked processes alone would leave those), and so is a
     * group told as unmarked ("=": bwrap under linux32, whose argv[0] is not the mark).
     */
    @Test
    void killsOnlyTheGroupsThatStillHaveAMarkedMember() throws Exception {
        String mark = "bwrapd-held-" + ProcessHandle.current().pid() + "-groups:";
        Process renumbered = sessionLeader();
        Process unmarked = sessionLeader();
        // setsid execs in place (the JVM's child leads no group): sh, with the mark as its argv[0] as bwrap has it, leads the
        // group; its sleep is unmarked
        Process ours = new ProcessBuilder("setsid", "bash", "-c", "exec -a \"$0\" sh -c 'sleep 300; :'", mark).start();
        try {
            ProcessHandle sleeper = null;
            for (int i = 0; i < 200 && sleeper == null; i++) {
                sleeper = ours.children().findFirst().orElse(null);
                if (sleeper == null) Thread.sleep(10);
            }
            assertTrue(sleeper != null, "sh started its sleep");
            runWatchdog("+" + group(renumbered) + "\n+" + group(ours) + "\n+=" + group(unmarked) + "\n", Watchdog.pattern(mark), mark);
            assertTrue(unmarked.waitFor(5, TimeUnit.SECONDS), "a group told as unmarked is killed as told");
            assertTrue(sleeper.onExit().get(5, TimeUnit.SECONDS) != null && !sleeper.isAlive(), "the unmarked member of a marked group is killed");
            assertFalse(renumbered.waitFor(300, TimeUnit.MILLISECONDS), "a group without a marked member is left alone");
        } finally {
            renumbered.destroyForcibly();
            renumbered.children().forEach(ProcessHandle::destroyForcibly);
            unmarked.destroyForcibly();
            unmarked.children().forEach(ProcessHandle::destroyForcibly);
            ours.children().forEach(ProcessHandle::destroyForcibly);
            ours.destroyForcibly();
        }
    }

    /**
     * Review finding: the sandbox's command (uid 0 in the init's user namespace) rewrote the
     * init's command line through /proc/1/mem, so its group had no marked member and was spared
     * when bwrapd was killed, the init having been made to forget its parent-death signal too. A
     * group told with its leader's start time is killed while that leader lives, mark or none;
     * one whose number now belongs to another process (another start time) is left alone. Both
     * with awk and without.
     */
    @Test
    void killsALeadersGroupByItsStartTimeWhateverItsCommandLine() throws Exception {
        for (String path : new String[] {null, "/nonexistent"}) {
            Process unmarked = sessionLeader();
            Process renumbered = sessionLeader();
            Process forgotten = sessionLeader();
            try {
                long g = group(unmarked), r = group(renumbered), f = group(forgotten);
                String start = Watchdog.startTime((int) g);
                String otherStart = String.valueOf(Long.parseLong(Watchdog.startTime((int) r)) + 1);
                assertTrue(start != null, "the start time of a live process");
                runWatchdogWithPath(path, "+" + g + "@" + start + "\n+" + r + "@" + otherStart + "\n+" + f + "@" + Watchdog.startTime((int) f)
                        + "\n-" + f + "\n", Watchdog.pattern("bwrapd-held-1-no-such-mark:"), "bwrapd-held-1-no-such-mark:");
                assertTrue(unmarked.waitFor(5, TimeUnit.SECONDS), path + ": the group of a leader that is still the one told is killed");
                assertFalse(renumbered.waitFor(300, TimeUnit.MILLISECONDS), path + ": a leader with another start time is another process");
                assertFalse(forgotten.waitFor(100, TimeUnit.MILLISECONDS), path + ": forgotten by its number alone");
            } finally {
                for (Process p : new Process[] {unmarked, renumbered, forgotten}) {
                    p.destroyForcibly();
                    p.children().forEach(ProcessHandle::destroyForcibly);
                }
            }
        }
    }

    /**
     * Should the look for marked processes not finish (a command line whose read hangs; here a
     * timeout that gives up at once), a held group is killed as told, as without a mark.
     */
    @Test
    void killsEveryGroupItHoldsWhenItCannotLookForTheMark(@org.junit.jupiter.api.io.TempDir Path bin) throws Exception {
        Path timeout = Files.writeString(bin.resolve("timeout"), "#!/bin/sh\nexit 137\n");
        timeout.toFile().setExecutable(true);
        Process unmarked = sessionLeader();
        try {
            runWatchdogWithPath(bin + ":" + System.getenv("PATH"), "+" + group(unmarked) + "\n", Watchdog.pattern("bwrapd-held-1-cannot-look:"), "bwrapd-held-1-cannot-look:");
            assertTrue(unmarked.waitFor(5, TimeUnit.SECONDS), "a held group is killed when the look cannot be made");
        } finally {
            unmarked.destroyForcibly();
            unmarked.children().forEach(ProcessHandle::destroyForcibly);
        }
    }

    /**
     * Whether a spawned bwrap shows the mark: yes when the mark is its argv[0]; not when the
     * configured bwrap is a script, whose interpreter the kernel starts with the script's path
     * instead (its groups are then told as unmarked and killed as told).
     */
    @Test
    void aBwrapShowsTheMarkUnlessItIsAScript(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        Watchdog direct = new Watchdog(null);
        Process marked = new ProcessBuilder("bash", "-c", "exec -a \"$0\" sleep 300", direct.mark).start();
        Path script = Files.writeString(dir.resolve("bwrap"), "#!/bin/sh\nexec sleep 300\n");
        script.toFile().setExecutable(true);
        Watchdog wrapped = new Watchdog(null);
        Process viaScript = new ProcessBuilder("bash", "-c", "exec -a \"$0\" \"$1\"", wrapped.mark, script.toString()).start();
        try {
            // both have exec'd (bash, then the script's sh, into sleep): waited for, up to 10 s on a loaded machine
            awaitExec(marked, "sleep");
            awaitExec(viaScript, "sleep");
            assertTrue(direct.showsMark((int) marked.pid()));
            assertFalse(wrapped.showsMark((int) viaScript.pid()));
        } finally {
            marked.destroyForcibly();
            viaScript.destroyForcibly();
            viaScript.children().forEach(ProcessHandle::destroyForcibly);
        }
    }

    /** A sandbox's cgroup, with a process that left its session inside: killed, then the cgroup removed, and those it made below. */
    @Test
    void killsAndRemovesTheCgroupsItHolds() throws Exception {
        dev.bwrapd.cgroup.CgroupHost host = dev.bwrapd.cgroup.CgroupHost.detect(null);
        org.junit.jupiter.api.Assumptions.assumeTrue(host.available(), "no cgroup for this user here");
        dev.bwrapd.cgroup.SandboxCgroup held = dev.bwrapd.cgroup.SandboxCgroup.create(host, dev.bwrapd.cgroup.Limits.NONE);
        dev.bwrapd.cgroup.SandboxCgroup forgotten = dev.bwrapd.cgroup.SandboxCgroup.create(host, dev.bwrapd.cgroup.Limits.NONE);
        Process inHeld = new ProcessBuilder("setsid", "sleep", "300").start();
        Process inForgotten = new ProcessBuilder("sleep", "300").start();
        try {
            held.add((int) inHeld.pid());
            forgotten.add((int) inForgotten.pid());
            for (Path dir : held.directories()) Files.createDirectories(dir.resolve("made-inside/deeper")); // by the sandbox
            StringBuilder input = new StringBuilder();
            for (Path dir : held.directories()) input.append('+').append(dir).append('\n');
            for (Path dir : forgotten.directories()) input.append('+').append(dir).append('\n').append('-').append(dir).append('\n');
            runWatchdog(input.toString());
            assertTrue(inHeld.waitFor(5, TimeUnit.SECONDS), "a process in a held cgroup is killed");
            for (Path dir : held.directories()) assertFalse(Files.exists(dir), dir + " is removed");
            assertFalse(inForgotten.waitFor(300, TimeUnit.MILLISECONDS), "a forgotten cgroup is left alone");
        } finally {
            inHeld.destroyForcibly();
            inForgotten.destroyForcibly().waitFor();
            held.remove(2000);
            forgotten.remove(2000);
        }
    }

    /**
     * Review finding: on a host with cgroup v1 only, a frozen sandbox's memory or pids cgroup
     * empties only once its freezer cgroup is thawed, and the watchdog gave each cgroup 5 s in turn:
     * met before the freezer one, it was given up on and left for good, and the sandbox lived on
     * those 5 s. Every cgroup is now looked at in each round. Without awk the cgroups are visited in
     * the order told, the pids one first here.
     */
    @Test
    void aFrozenV1SandboxIsKilledAndItsCgroupsRemovedWhateverTheirOrder(@org.junit.jupiter.api.io.TempDir Path bin) throws Exception {
        Path pids = Path.of("/sys/fs/cgroup/pids"), freezer = Path.of("/sys/fs/cgroup/freezer");
        org.junit.jupiter.api.Assumptions.assumeTrue(Files.isWritable(pids) && Files.isWritable(freezer), "no writable v1 pids and freezer here");
        for (String tool : new String[] {"grep", "cat", "sleep", "rmdir", "timeout", "head", "kill"}) {
            Path found = null;
            for (String dir : System.getenv("PATH").split(":")) if (Files.isExecutable(Path.of(dir, tool))) { found = Path.of(dir, tool); break; }
            if (found != null) Files.createSymbolicLink(bin.resolve(tool), found);
        }
        String name = "bwrapd-watchdog-test-" + ProcessHandle.current().pid() + "-" + System.nanoTime();
        Path inPids = Files.createDirectory(pids.resolve(name)), inFreezer = Files.createDirectory(freezer.resolve(name));
        Process frozen = new ProcessBuilder("setsid", "sleep", "300").start();
        try {
            Files.writeString(inPids.resolve("cgroup.procs"), Long.toString(frozen.pid()));
            Files.writeString(inFreezer.resolve("cgroup.procs"), Long.toString(frozen.pid()));
            Files.writeString(inFreezer.resolve("freezer.state"), "FROZEN");
            long start = System.nanoTime();
            runWatchdogWithPath(bin.toString(), "+" + inPids + "\n+" + inFreezer + "\n");
            assertTrue(frozen.waitFor(5, TimeUnit.SECONDS), "the frozen process is killed");
            assertFalse(Files.exists(inPids), "the pids cgroup, met first, is removed too");
            assertFalse(Files.exists(inFreezer), "the freezer cgroup is removed");
            assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(4), "within a round or two, not after 5 s given to the first");
        } finally {
            if (Files.exists(inFreezer)) Files.writeString(inFreezer.resolve("freezer.state"), "THAWED");
            frozen.destroyForcibly().waitFor();
            Files.deleteIfExists(inPids);
            Files.deleteIfExists(inFreezer);
        }
    }

    /**
     * Second review: a cgroup's path may hold an '@' (systemd's user@UID.service); a forgotten
     * cgroup then dropped every other one with the same text before its '@', which was never killed.
     */
    @Test
    void aCgroupPathWithAnAtIsForgottenWhole(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        for (String path : new String[] {null, "/nonexistent"}) {
            Path kept = Files.createDirectories(dir.resolve("user@1000.service/kept-" + (path == null)));
            Path gone = Files.createDirectories(dir.resolve("user@1000.service/gone-" + (path == null)));
            Files.writeString(kept.resolve("cgroup.kill"), "");
            Files.writeString(gone.resolve("cgroup.kill"), "");
            runWatchdogWithPath(path, "+" + kept + "\n+" + gone + "\n-" + gone + "\n");
            assertTrue(Files.readString(kept.resolve("cgroup.kill")).startsWith("1"), path + ": the cgroup still held is killed");
            assertTrue(Files.readString(gone.resolve("cgroup.kill")).isEmpty(), path + ": the forgotten one is left alone");
        }
    }

    /** A bwrap it was never told of (spawned just before bwrapd died) is found by its argv[0], the helper's mark. */
    @Test
    void killsProcessesNamedWithTheMarkAndNoOthers() throws Exception {
        String mark = "bwrapd-held-4242-" + Long.toHexString(System.nanoTime()) + ":";
        Process marked = new ProcessBuilder("bash", "-c", "exec -a " + mark + " sleep 300").start();
        Process other = new ProcessBuilder("bash", "-c", "exec -a " + mark.replace(":", "0:") + " sleep 300").start();
        // Review finding: a sandbox reads the mark in its init's command line; a host process given an
        // argument it made (a file name with a newline, then the mark) was killed with the sandboxes.
        Process carrier = new ProcessBuilder("sh", "-c", "sleep 300; :", "out/x\n" + mark + "y.o").start();
        try {
            for (int i = 0; i < 1000 && !ProcessHandle.of(marked.pid()).flatMap(h -> h.info().commandLine()).orElse("").contains(mark); i++) Thread.sleep(10);
            awaitExec(carrier, Path.of("/bin/sh").toRealPath().getFileName().toString());
            runWatchdog("", Watchdog.pattern(mark), mark);
            assertTrue(marked.waitFor(5, TimeUnit.SECONDS), "argv[0] is the mark: killed");
            assertFalse(other.waitFor(300, TimeUnit.MILLISECONDS), "another helper's mark (a longer one) is left alone");
            assertTrue(carrier.isAlive(), "an argument with the mark after a newline is no mark: left alone");
        } finally {
            marked.destroyForcibly();
            other.destroyForcibly();
            carrier.destroyForcibly();
            carrier.children().forEach(ProcessHandle::destroyForcibly);
        }
    }

    /** A process that takes the mark a moment after the watchdog began to look (a bwrap exec'ing, an init being cloned) is found too. */
    @Test
    void keepsLookingForMarkedProcessesUntilNoneAppear() throws Exception {
        String mark = "bwrapd-held-4343-" + Long.toHexString(System.nanoTime()) + ":";
        Process late = new ProcessBuilder("bash", "-c", "sleep 0.03; exec -a " + mark + " sleep 300").start();
        try {
            runWatchdog("", Watchdog.pattern(mark), mark);
            assertTrue(late.waitFor(5, TimeUnit.SECONDS), "marked 30 ms after the watchdog's input ended: killed");
        } finally {
            late.destroyForcibly();
        }
    }
}
