package dev.bwrapd.protocol;

import dev.bwrapd.jsonrpc.Utf8;
import dev.bwrapd.sandbox.RunOutcome;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Base64;
import java.util.Locale;

/** A run's outcome as the answer to sandbox/run words it. */
final class RunResults {
    private RunResults() {}

    static RunResult of(RunOutcome o) {
        RunOutcome.Usage u = o.usage();
        return new RunResult(o.sandboxId(), status(o.status()), o.exitCode(), o.signal(), o.setupError(),
                Math.round(o.durationNanos() / 1000.0) / 1000.0,
                new RunResult.Usage(u.userCpuMicros() / 1000.0, u.systemCpuMicros() / 1000.0, u.maxRssKiB()),
                captured(o.stdout()), captured(o.stderr()), o.cleanup(), o.limitExceeded());
    }

    /** EXITED is "exited", SETUP_FAILED is "setup-failed". */
    static String status(RunOutcome.Status status) {
        return status.name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    /** Text when the bytes are valid UTF-8, base64 otherwise. */
    private static RunResult.Captured captured(RunOutcome.Captured c) {
        if (c == null) return null;
        if (Utf8.isValid(c.bytes(), 0, c.length())) {
            return new RunResult.Captured(new String(c.bytes(), 0, c.length(), StandardCharsets.UTF_8), null, c.truncated());
        }
        return new RunResult.Captured(null, Base64.getEncoder().encodeToString(Arrays.copyOf(c.bytes(), c.length())), c.truncated());
    }
}
