package dev.bwrapd.protocol;

import com.fasterxml.jackson.annotation.JsonInclude;
import dev.bwrapd.cleanup.CleanupReport;
import dev.bwrapd.sandbox.Capture;

/**
 * The answer to {@code sandbox/run} as the wire has it (docs/protocol.md), made from a
 * sandbox.RunOutcome. It holds the captured output (memory and spool files): close it once it has
 * been written.
 */
@JsonInclude(JsonInclude.Include.ALWAYS)
public record RunResult(
        String sandboxId,
        String status,
        Integer exitCode,
        String signal,
        String setupError,
        double durationMs,
        Usage usage,
        Capture stdout,
        Capture stderr,
        CleanupReport cleanup,
        String limitExceeded) implements AutoCloseable {

    public record Usage(double userCpuMs, double systemCpuMs, long maxRssKiB) {}

    @Override
    public void close() {
        if (stdout != null) stdout.close();
        if (stderr != null) stderr.close();
    }
}
