package dev.bwrapd.buildbarn;

import com.google.protobuf.Any;
import com.google.protobuf.Duration;
import dev.bwrapd.buildbarn.proto.POSIXResourceUsage;
import dev.bwrapd.buildbarn.proto.RunResponse;
import dev.bwrapd.process.Signals;
import dev.bwrapd.sandbox.RunOutcome;
import dev.bwrapd.sandbox.SandboxException;
import io.grpc.Status;

/** A run's outcome or failure in Buildbarn's terms: a pure function, unit-tested. */
final class Responses {
    private Responses() {}

    /**
     * The answer to Run: the command's exit code, 128+N when signal N ended it (what a shell
     * reports, and what bwrap says), and the sandbox's usage with the signal's name.
     */
    static RunResponse of(RunOutcome outcome) {
        String signal = outcome.signal();
        long exitCode = outcome.exitCode() != null ? outcome.exitCode() : 128 + Signals.number(signal);
        RunOutcome.Usage usage = outcome.usage();
        POSIXResourceUsage.Builder posix = POSIXResourceUsage.newBuilder()
                .setUserTime(duration(usage.userCpuMicros()))
                .setSystemTime(duration(usage.systemCpuMicros()))
                .setMaximumResidentSetSize(usage.maxRssKiB() * 1024);
        if (signal != null) posix.setTerminationSignal(signal.startsWith("SIG") ? signal.substring(3) : signal);
        return RunResponse.newBuilder().setExitCode(exitCode).addResourceUsage(Any.pack(posix.build())).build();
    }

    /** The outcomes that are not an answer: a sandbox bwrap could not set up (the command never ran). */
    static Status failure(RunOutcome outcome) {
        if (outcome.status() != RunOutcome.Status.SETUP_FAILED) return null;
        return described(Status.FAILED_PRECONDITION, "the sandbox could not be set up: " + outcome.setupError());
    }

    /** A run refused before it started: the request's fault, the host's, or the runner's. */
    static Status failure(SandboxException e) {
        Status status = switch (e) {
            case SandboxException.Invalid i -> Status.INVALID_ARGUMENT;
            case SandboxException.NotAllowed n -> Status.INVALID_ARGUMENT;
            case SandboxException.CommandNotFound c -> Status.INVALID_ARGUMENT;
            case SandboxException.ShuttingDown s -> Status.UNAVAILABLE;
            case SandboxException.BwrapUnusable b -> Status.FAILED_PRECONDITION;
            default -> Status.INTERNAL;
        };
        return described(status, e.getMessage());
    }

    /** The most of a description a status carries: it may quote a request's path, up to megabytes. */
    static final int DESCRIPTION_CHARS = 512;

    /**
     * A status with this description, cut to {@link #DESCRIPTION_CHARS}: the description goes in
     * the call's trailing metadata, which gRPC clients limit (8 KiB by default, Python's too), and
     * a quoted path of the request's could make the client see RESOURCE_EXHAUSTED instead of why.
     */
    static Status described(Status status, String description) {
        if (description.length() <= DESCRIPTION_CHARS) return status.withDescription(description);
        int end = DESCRIPTION_CHARS;
        if (Character.isHighSurrogate(description.charAt(end - 1))) end--;
        return status.withDescription(description.substring(0, end) + "… (" + description.length() + " characters in all)");
    }

    private static Duration duration(long micros) {
        return Duration.newBuilder().setSeconds(micros / 1_000_000).setNanos((int) (micros % 1_000_000) * 1000).build();
    }
}
