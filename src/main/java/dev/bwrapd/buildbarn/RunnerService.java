package dev.bwrapd.buildbarn;

import com.google.protobuf.Empty;
import dev.bwrapd.buildbarn.proto.CheckReadinessRequest;
import dev.bwrapd.buildbarn.proto.RunRequest;
import dev.bwrapd.buildbarn.proto.RunResponse;
import dev.bwrapd.buildbarn.proto.RunnerGrpc;
import dev.bwrapd.process.Libc;
import dev.bwrapd.sandbox.HostPaths;
import dev.bwrapd.sandbox.RootPaths;
import dev.bwrapd.sandbox.RunListener;
import dev.bwrapd.sandbox.RunOutcome;
import dev.bwrapd.sandbox.RunSpec;
import dev.bwrapd.sandbox.Sandbox;
import dev.bwrapd.sandbox.SandboxException;
import dev.bwrapd.sandbox.SandboxRunner;
import dev.bwrapd.sandbox.Sandboxes;
import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.stub.StreamObserver;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Semaphore;

/**
 * Buildbarn's runner service over the sandbox layer: each Run is one sandbox run, exactly as a
 * {@code sandbox/run} is (the same {@link SandboxRunner}), its paths resolved beneath the build
 * directory's descriptor. A Run's handler waits for its sandbox; at most {@code --concurrency}
 * sandboxes run at once and the other Runs admitted ({@link CallAdmission}: as many more) wait
 * for a turn. The call's deadline or cancellation kills the whole sandbox at once, as
 * {@code sandbox/terminate} does, or ends the call's wait for a turn.
 */
final class RunnerService extends RunnerGrpc.RunnerImplBase {
    private final Actions actions;
    private final SandboxRunner runner;
    private final Sandboxes sandboxes;
    /** The build directory (O_PATH), open for the server's life: every path of a request is resolved beneath it. */
    private final int buildDirectory;
    /** Runs at once. */
    private final Semaphore turns;
    /**
     * The input root and temporary directory of every Run held (running or waiting for a turn),
     * by their normalized spellings beneath the build directory (opened through no link, so no
     * other spelling reaches the same directory). Two actions on one directory, or one inside the
     * other's, would share what either writes, and bwrap resolves the mount points of one run
     * again while it sets the sandbox up: the other's command could swap a directory on the way
     * for a link and have bwrap create files outside the build directory (docs/protocol.md,
     * Known limitations). bb_worker gives every action directories of its own, so a Run whose
     * directories overlap one held is refused (FAILED_PRECONDITION) instead.
     */
    private final Set<String> inUse = new HashSet<>();

    RunnerService(Actions actions, SandboxRunner runner, Sandboxes sandboxes, int buildDirectory, int concurrency) {
        this.actions = actions;
        this.runner = runner;
        this.sandboxes = sandboxes;
        this.buildDirectory = buildDirectory;
        this.turns = new Semaphore(concurrency, true);
    }

    /** OK when the path exists beneath the build directory (bb_worker's check that both see the same one). */
    @Override
    public void checkReadiness(CheckReadinessRequest request, StreamObserver<Empty> response) {
        try {
            String path = Actions.relative("path", request.getPath());
            Libc.close(HostPaths.openBeneath(buildDirectory, "path", path, Libc.O_PATH, 0));
            response.onNext(Empty.getDefaultInstance());
            response.onCompleted();
        } catch (Actions.Invalid e) {
            response.onError(Responses.described(Status.INVALID_ARGUMENT, e.getMessage()).asException());
        } catch (HostPaths.Refused e) {
            Status status = e.notAllowed ? Status.INVALID_ARGUMENT : Status.NOT_FOUND;
            response.onError(Responses.described(status, e.getMessage()).asException());
        }
    }

    @Override
    public void run(RunRequest request, StreamObserver<RunResponse> response) {
        List<String> claimed = null;
        try {
            RunSpec spec = actions.spec(request);
            requireDirectory("temporary_directory", spec.mounts().getFirst().source());
            claimed = claim(Actions.relative("input_root_directory", request.getInputRootDirectory()),
                    Actions.relative("temporary_directory", request.getTemporaryDirectory()));
            Context call = Context.current();
            awaitTurn(call);
            try {
                response.onNext(run(spec, call));
                response.onCompleted();
            } finally {
                turns.release();
            }
        } catch (Actions.Invalid | HostPaths.Refused e) {
            response.onError(Responses.described(Status.INVALID_ARGUMENT, e.getMessage()).asException());
        } catch (StatusException e) {
            response.onError(e);
        } finally {
            if (claimed != null) release(claimed);
        }
    }

    private List<String> claim(String inputRoot, String tmp) throws StatusException {
        List<String> mine = List.of(inputRoot, tmp);
        synchronized (inUse) {
            for (String path : mine) {
                for (String held : inUse) {
                    if (overlap(path, held)) {
                        throw Responses.described(Status.FAILED_PRECONDITION, (path.equals(inputRoot) ? "input_root_directory " : "temporary_directory ")
                                + "\"" + path + "\" overlaps \"" + held + "\", a directory of an action still running or waiting: "
                                + "actions at once need directories of their own").asException();
                    }
                }
            }
            inUse.addAll(mine); // a temporary directory inside its own input root is the action's own affair
        }
        return mine;
    }

    private void release(List<String> claimed) {
        synchronized (inUse) {
            claimed.forEach(inUse::remove);
        }
    }

    /** The same directory, or one inside the other (by their normalized relative spellings). */
    static boolean overlap(String a, String b) {
        return RootPaths.isOrBeneath(a, b) || RootPaths.isOrBeneath(b, a);
    }

    /**
     * The action's temporary directory is bound over its /tmp: a file or a FIFO there is the
     * request's fault, said as such, not a sandbox bwrap could not set up (FAILED_PRECONDITION).
     */
    private void requireDirectory(String field, String path) throws HostPaths.Refused {
        Libc.close(HostPaths.openBeneath(buildDirectory, field, path, Libc.O_PATH | Libc.O_DIRECTORY, 0));
    }

    /** Waits for a turn to run, until the call ends (its deadline passes, it is cancelled): then ended. */
    private void awaitTurn(Context call) throws StatusException {
        Thread waiting = Thread.currentThread();
        Context.CancellationListener wake = context -> waiting.interrupt();
        call.addListener(wake, Runnable::run);
        try {
            turns.acquire();
        } catch (InterruptedException e) {
            throw ended(call);
        } finally {
            call.removeListener(wake);
            Thread.interrupted(); // a wake-up that came once the turn was taken: run() sees the call ended
        }
    }

    private RunResponse run(RunSpec spec, Context call) throws StatusException {
        if (call.isCancelled()) throw ended(call); // its deadline passed while it waited for a turn
        Sandbox sandbox;
        try {
            sandbox = sandboxes.register(null, spec.command());
        } catch (SandboxException e) {
            throw Responses.failure(e).asException();
        }
        CompletableFuture<RunOutcome> ended = new CompletableFuture<>();
        // Called on the thread that cancels the call (the deadline's timer, the transport), at
        // once: SIGKILL to the sandbox's init, which ends every process in it.
        Context.CancellationListener kill = context -> runner.terminate(sandbox,
                Contexts.statusFromCancelled(context).getCode() == Status.Code.DEADLINE_EXCEEDED
                        ? Sandbox.Ending.TIMED_OUT : Sandbox.Ending.CANCELLED, null);
        call.addListener(kill, Runnable::run);
        RunOutcome outcome;
        try {
            runner.start(spec, buildDirectory, sandbox, new RunListener() {
                @Override
                public void started(Sandbox s) {}

                @Override
                public void output(Sandbox s, Stream stream, byte[] data, int offset, int length, Runnable whileWaiting) {} // output goes to files

                @Override
                public void finished(RunOutcome o) {
                    sandboxes.remove(sandbox);
                    ended.complete(o);
                }

                @Override
                public void failed(SandboxException failure) {
                    sandboxes.remove(sandbox);
                    ended.completeExceptionally(failure);
                }
            });
            outcome = ended.join(); // every run ends, killed ones too: no interruption to handle
        } catch (java.util.concurrent.CompletionException e) {
            throw Responses.failure((SandboxException) e.getCause()).asException();
        } catch (SandboxException e) { // not started: no thread for it
            sandboxes.remove(sandbox);
            throw Responses.failure(e).asException();
        } finally {
            call.removeListener(kill);
        }
        if (call.isCancelled()) throw ended(call);
        if (sandbox.ending() == Sandbox.Ending.SHUTDOWN) {
            throw Status.UNAVAILABLE.withDescription("the runner is shutting down: the action's sandbox was killed, every process in it")
                    .asException();
        }
        Status failed = Responses.failure(outcome);
        if (failed != null) throw failed.asException();
        return Responses.of(outcome);
    }

    /** DEADLINE_EXCEEDED or CANCELLED, as the call ended. */
    private static StatusException ended(Context call) {
        Status status = Contexts.statusFromCancelled(call);
        String what = status.getCode() == Status.Code.DEADLINE_EXCEEDED ? "the action's deadline passed" : "the call was cancelled";
        return status.withDescription(what + ": its sandbox was killed, every process in it").asException();
    }
}
