package dev.bwrapd.protocol;

import dev.bwrapd.sandbox.RunOutcome;

import java.util.Locale;

/** A run's outcome as the answer to sandbox/run words it. */
final class RunResults {
    private RunResults() {}

    static RunResult of(RunOutcome o) {
        RunOutcome.Usage u = o.usage();
        return new RunResult(o.sandboxId(), status(o.status()), o.exitCode(), o.signal(), o.setupError(),
                Math.round(o.durationNanos() / 1000.0) / 1000.0,
                new RunResult.Usage(u.userCpuMicros() / 1000.0, u.systemCpuMicros() / 1000.0, u.maxRssKiB()),
                o.stdout(), o.stderr(), o.cleanup(), o.limitExceeded());
    }

    /** EXITED is "exited", SETUP_FAILED is "setup-failed". */
    static String status(RunOutcome.Status status) {
        return status.name().toLowerCase(Locale.ROOT).replace('_', '-');
    }
}
