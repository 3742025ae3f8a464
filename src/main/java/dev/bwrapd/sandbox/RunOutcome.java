package dev.bwrapd.sandbox;

import dev.bwrapd.cleanup.CleanupReport;

/** How one run ended, in the sandbox layer's terms (the protocol layer words it for the wire). */
public record RunOutcome(
        String sandboxId,
        Status status,
        /** The command's exit code (128+N when a signal ended it), or null if it never ran. */
        Integer exitCode,
        /** The signal's name (SIGKILL) when status is SIGNALED, TIMED_OUT or CANCELLED by a kill, else null. */
        String signal,
        /** bwrap's own words when status is SETUP_FAILED, else null. */
        String setupError,
        long durationNanos,
        Usage usage,
        /** What the command wrote, when that stream was captured; else null. Whoever takes the outcome closes them. */
        Capture stdout,
        Capture stderr,
        CleanupReport cleanup,
        /** The limit that ended or hampered the run (memory, pids, cpu, fileSize), or null. */
        String limitExceeded) {

    public enum Status { EXITED, SIGNALED, SETUP_FAILED, TIMED_OUT, CANCELLED }

    /** The whole sandbox's CPU time and peak memory. */
    public record Usage(long userCpuMicros, long systemCpuMicros, long maxRssKiB) {}
}
