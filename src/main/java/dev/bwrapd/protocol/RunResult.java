package dev.bwrapd.protocol;

import com.fasterxml.jackson.annotation.JsonInclude;
import dev.bwrapd.cleanup.CleanupReport;

/** The answer to {@code sandbox/run} as the wire has it (docs/protocol.md), made from a sandbox.RunOutcome. */
@JsonInclude(JsonInclude.Include.ALWAYS)
public record RunResult(
        String sandboxId,
        String status,
        Integer exitCode,
        String signal,
        String setupError,
        double durationMs,
        Usage usage,
        Captured stdout,
        Captured stderr,
        CleanupReport cleanup,
        String limitExceeded) {

    public record Usage(double userCpuMs, double systemCpuMs, long maxRssKiB) {}

    /** Captured output: text when it is valid UTF-8, base64 otherwise. */
    public record Captured(String text, String base64, boolean truncated) {}
}
