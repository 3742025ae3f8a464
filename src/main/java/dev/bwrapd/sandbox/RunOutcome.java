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
        /** What the command wrote, when that stream was captured; else null. */
        Captured stdout,
        Captured stderr,
        CleanupReport cleanup,
        /** The limit that ended or hampered the run (memory, pids, cpu, fileSize), or null. */
        String limitExceeded) {

    public enum Status { EXITED, SIGNALED, SETUP_FAILED, TIMED_OUT, CANCELLED }

    /** The whole sandbox's CPU time and peak memory. */
    public record Usage(long userCpuMicros, long systemCpuMicros, long maxRssKiB) {}

    /** Captured bytes ({@code bytes[0..length)}), and whether more were written than the limit kept. */
    public record Captured(byte[] bytes, int length, boolean truncated) {}
}
