package dev.bwrapd.cgroup;

import dev.bwrapd.process.Libc;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The limits enforced per process, set with prlimit(2) on the sandbox's init while bwrap holds it
 * before the command (everything the init starts inherits them). Only ever lowered: a limit above
 * the current hard limit is capped there (raising it would need privilege and is not asked for).
 */
public final class Rlimits {
    private Rlimits() {}

    /** Applies the rlimit-backed limits of {@code limits} to process {@code pid}. */
    public static void apply(int pid, Limits limits) throws Libc.Error {
        apply(pid, limits, -1);
    }

    /**
     * The same, and without an {@code openFiles} limit, the soft limit on open files lowered to
     * {@code clientOpenFiles} (from {@link #clientOpenFiles}; -1: left as inherited).
     */
    public static void apply(int pid, Limits limits, long clientOpenFiles) throws Libc.Error {
        if (limits.cpuMs() != null) {
            // Whole seconds: SIGXCPU at the soft limit (which ends a process that does not handle it),
            // SIGKILL at the hard limit one second later for one that does.
            long seconds = Math.max(1, (limits.cpuMs() + 999) / 1000);
            set(pid, Libc.RLIMIT_CPU, seconds, seconds + 1);
        }
        if (limits.fileSizeBytes() != null) set(pid, Libc.RLIMIT_FSIZE, limits.fileSizeBytes(), limits.fileSizeBytes());
        if (limits.openFiles() != null) set(pid, Libc.RLIMIT_NOFILE, limits.openFiles(), limits.openFiles());
        else if (clientOpenFiles >= 0) lowerSoft(pid, Libc.RLIMIT_NOFILE, clientOpenFiles);
    }

    /** Lowers only the soft limit (to the hard one at most), leaving the hard one as it is, infinite too. */
    private static void lowerSoft(int pid, int resource, long soft) throws Libc.Error {
        long hard = Libc.getrlimit(pid, resource)[1];
        Libc.setrlimit(pid, resource, hard == Libc.RLIM_INFINITY ? soft : Math.min(soft, hard), hard);
    }

    /**
     * The soft limit on open files that the client's own children get, where it is lower than
     * bwrapd's: its parent's (read from /proc/PID/limits once, at start). A native image raises its
     * soft limit to the hard one before any code of bwrapd's runs, and HotSpot does too
     * (-XX:+MaxFDLimit). bwrapd keeps that for itself, whose runs hold many descriptors at once,
     * but a build step should see the limit it would have seen spawned by its build tool: a program
     * that closes every descriptor up to the limit, or still uses select(2), behaves differently
     * under a soft limit of a million. -1 when it is not lower, or cannot be read.
     */
    public static long clientOpenFiles() {
        return clientOpenFiles(ProcessHandle.current().parent().map(ProcessHandle::pid).orElse(-1L));
    }

    /** The same, for a parent {@code parentPid}. */
    static long clientOpenFiles(long parentPid) {
        if (parentPid <= 0) return -1;
        try {
            long parent = softOpenFiles(Files.readString(Path.of("/proc/" + parentPid + "/limits")));
            long own = Libc.getrlimit(0, Libc.RLIMIT_NOFILE)[0];
            return parent >= 0 && (own == Libc.RLIM_INFINITY || parent < own) ? parent : -1;
        } catch (IOException | RuntimeException e) { // Libc.Error is an IOException
            return -1; // the parent is gone, or its limits are not ours to read: left as inherited
        }
    }

    /** The soft "Max open files" of a /proc/PID/limits text; -1 if missing or unlimited. */
    static long softOpenFiles(String limits) {
        for (String line : limits.split("\n")) {
            if (!line.startsWith("Max open files")) continue;
            String[] words = line.substring("Max open files".length()).trim().split("\\s+");
            return words[0].matches("[0-9]{1,18}") ? Long.parseLong(words[0]) : -1;
        }
        return -1;
    }

    private static void set(int pid, int resource, long soft, long hard) throws Libc.Error {
        long currentHard = Libc.getrlimit(pid, resource)[1];
        if (currentHard != Libc.RLIM_INFINITY) {
            hard = Math.min(hard, currentHard);
            soft = Math.min(soft, hard);
        }
        Libc.setrlimit(pid, resource, soft, hard);
    }
}
