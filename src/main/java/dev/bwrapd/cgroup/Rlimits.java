package dev.bwrapd.cgroup;

import dev.bwrapd.process.Libc;

/**
 * The limits enforced per process, set with prlimit(2) on the sandbox's init while bwrap holds it
 * before the command (everything the init starts inherits them). Only ever lowered: a limit above
 * the current hard limit is capped there (raising it would need privilege and is not asked for).
 */
public final class Rlimits {
    private Rlimits() {}

    /** Applies the rlimit-backed limits of {@code limits} to process {@code pid}. */
    public static void apply(int pid, Limits limits) throws Libc.Error {
        if (limits.cpuMs() != null) {
            // Whole seconds: SIGXCPU at the soft limit (which ends a process that does not handle it),
            // SIGKILL at the hard limit one second later for one that does.
            long seconds = Math.max(1, (limits.cpuMs() + 999) / 1000);
            set(pid, Libc.RLIMIT_CPU, seconds, seconds + 1);
        }
        if (limits.fileSizeBytes() != null) set(pid, Libc.RLIMIT_FSIZE, limits.fileSizeBytes(), limits.fileSizeBytes());
        if (limits.openFiles() != null) set(pid, Libc.RLIMIT_NOFILE, limits.openFiles(), limits.openFiles());
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
