package dev.bwrapd.sandbox;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.bwrapd.cleanup.CleanupReport;
import dev.bwrapd.cleanup.RootLeases;
import dev.bwrapd.jsonrpc.ErrorCodes;
import dev.bwrapd.jsonrpc.RpcException;
import dev.bwrapd.process.ExitStatus;
import dev.bwrapd.process.Libc;
import dev.bwrapd.process.Reaper;
import dev.bwrapd.process.Signals;
import dev.bwrapd.process.Spawner;
import org.jboss.logging.Logger;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * Runs one sandbox on the calling thread, which must be a platform thread that lives until the
 * run ends (bwrap's --die-with-parent watches the thread that spawned it). In order: open the
 * command's files, create the working directory, record the root's state, spawn bwrap, follow its
 * JSON status, wait for bwrap and the sandbox's init, drain the output, clean the root, report.
 */
public final class SandboxRunner {
    private static final Logger LOG = Logger.getLogger(SandboxRunner.class);
    private static final ObjectMapper STATUS_JSON = new ObjectMapper();

    /** What the protocol layer hears while a sandbox runs. */
    public interface Events {
        void started(Sandbox sandbox);

        void output(Sandbox sandbox, String stream, byte[] data, boolean isText);
    }

    private final RootLeases leases;
    private final ScheduledExecutorService timers = Executors.newSingleThreadScheduledExecutor(
            task -> Thread.ofPlatform().daemon().name("bwrapd-timers").unstarted(task));

    public SandboxRunner(RootLeases leases) {
        this.leases = leases;
    }

    public RunResult run(RunSpec spec, HostCapabilities host, Sandbox sandbox, Events events) throws RpcException {
        long startNanos = System.nanoTime();
        Fds fds = new Fds();
        HostPaths paths = null;
        boolean leased = false;
        try {
            paths = openHostPaths(spec);
            openStdio(spec, fds);
            BwrapCommand.Places places = BwrapCommand.Places.asGiven(spec);
            if (!paths.hostRoot()) {
                places = placeMountPoints(spec, paths);
                createWorkingDirectory(spec, paths.root());
                leases.acquire(paths.root(), BwrapCommand.createdPaths(spec, places));
                leased = true;
            }
            int[] status = host.jsonStatusFd() ? fds.pipe() : null;
            List<Integer> childFds = new ArrayList<>(List.of(fds.childStdin, fds.childStdout, fds.childStderr));
            if (status != null) childFds.add(status[1]);
            BwrapCommand.Invocation invocation = BwrapCommand.of(spec, host, paths.inChild(childFds.size()), places);
            childFds.addAll(paths.descriptors());
            Reaper.Child bwrap;
            try {
                bwrap = Spawner.spawn(new Spawner.Spec(invocation.executable(), invocation.argv(), invocation.environment(),
                        childFds.stream().mapToInt(Integer::intValue).toArray()));
            } catch (Libc.Error e) {
                throw new RpcException(ErrorCodes.BWRAP_UNUSABLE, "cannot start bwrap: " + e.getMessage(),
                        STATUS_JSON.createObjectNode().put("path", host.bwrapPath()).put("error", e.getMessage()));
            }
            sandbox.spawned(bwrap.pid());
            fds.closeChildEnds();
            if (status != null) {
                fds.close(status[1]);
                fds.handOver(status[0]); // readStatus closes it
            }

            // Streamed output waits until sandbox/started has gone out: clients see started first.
            CountDownLatch announced = new CountDownLatch(1);
            OutputReader stdout = reader(spec.stdout(), "stdout", fds.parentStdout, spec, sandbox, events, announced);
            OutputReader stderr = reader(spec.stderr(), "stderr", fds.parentStderr, spec, sandbox, events, announced);
            fds.handOver(fds.parentStdout); // the readers close them
            fds.handOver(fds.parentStderr);
            fds.startStdinWriter();
            ScheduledFuture<?> timeout = scheduleTimeout(spec, sandbox);

            // bwrap's status lines: child-pid once the sandbox exists, exit-code only if the command ran.
            StatusFollower followed = new StatusFollower(sandbox, events, announced);
            if (status != null) readStatus(status[0], followed);
            announced.countDown(); // no sandbox/started is coming (bwrap failed before its init existed)
            Integer exitCode = followed.exitCode;
            int initPid = followed.initPid;
            CompletableFuture<ExitStatus> initExit = followed.initExit;
            ExitStatus bwrapExit = bwrap.exit().join();
            ExitStatus usage = bwrapExit;
            if (initExit != null) {
                Reaper.instance().parentGone(initPid, initExit);
                usage = ExitStatus.sandboxUsage(bwrapExit, initExit.join());
            }
            if (timeout != null) timeout.cancel(false);
            sandbox.finished();
            if (stdout != null) stdout.join();
            if (stderr != null) stderr.join();
            fds.joinStdinWriter();

            CleanupReport cleanup = CleanupReport.NOTHING;
            if (leased) {
                leased = false;
                cleanup = leases.release(paths.root());
            }
            if (!host.jsonStatusFd() && bwrapExit.exited()) {
                exitCode = bwrapExit.exitCode(); // without status lines bwrap's exit code is all there is
                if (exitCode == 1 && stderrHead(stderr, stdout, spec).startsWith("bwrap: ")) exitCode = null;
            }
            RunResult result = result(spec, sandbox, exitCode, bwrapExit, usage, stdout, stderr, cleanup, startNanos);
            if (sandbox.ending() == Sandbox.Ending.CANCELLED) {
                throw new RpcException(ErrorCodes.REQUEST_CANCELLED, "Request cancelled", STATUS_JSON.valueToTree(result));
            }
            return result;
        } catch (Libc.Error e) {
            throw new RpcException(ErrorCodes.INTERNAL_ERROR, "cannot prepare the sandbox: " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RpcException(ErrorCodes.INTERNAL_ERROR, "interrupted");
        } finally {
            sandbox.finished();
            fds.closeAll();
            if (leased) leases.release(paths.root());
            if (paths != null) paths.close();
        }
    }

    private RunResult result(RunSpec spec, Sandbox sandbox, Integer exitCode, ExitStatus bwrapExit, ExitStatus usage,
                             OutputReader stdout, OutputReader stderr, CleanupReport cleanup, long startNanos) {
        Sandbox.Ending ending = sandbox.ending();
        String status;
        String signal = null;
        String setupError = null;
        if (exitCode != null) {
            signal = Signals.fromExitCode(exitCode).orElse(null);
            status = signal != null ? "signaled" : "exited";
        } else if (ending != Sandbox.Ending.NONE) {
            status = "signaled"; // ended by us before the command ran
            signal = bwrapExit.signaled() ? Signals.name(bwrapExit.termSignal()) : "SIGKILL";
        } else if (bwrapExit.signaled()) {
            status = "signaled"; // bwrap itself was killed from outside
            signal = Signals.name(bwrapExit.termSignal());
        } else if (bwrapExit.exited() && Signals.fromExitCode(bwrapExit.exitCode()).isPresent()) {
            // The command's process died of a signal before its exec (a sandbox/signal sent while the
            // sandbox was starting lands there): bwrap passes the 128+N on as its own exit code but
            // writes no exit-code line, which it does only once the command was about to run. bwrap's
            // own setup failures exit 1.
            exitCode = bwrapExit.exitCode();
            status = "signaled";
            signal = Signals.fromExitCode(exitCode).orElseThrow();
        } else {
            status = "setup-failed";
            setupError = setupError(stderrHead(stderr, stdout, spec), bwrapExit);
        }
        if (ending == Sandbox.Ending.TERMINATED && status.equals("exited")) {
            // Terminated with a grace period, the command caught SIGTERM and exited by itself: it
            // still ended because it was told to (PROTOCOL.md: a terminated run answers "signaled").
            status = "signaled";
            signal = Signals.name(Signals.SIGTERM);
        }
        if (ending == Sandbox.Ending.TIMED_OUT) status = "timed-out";
        if (ending == Sandbox.Ending.CANCELLED) status = "cancelled";
        double durationMs = (System.nanoTime() - startNanos) / 1e6;
        RunResult.Usage used = new RunResult.Usage(usage.userCpuMicros() / 1000.0, usage.systemCpuMicros() / 1000.0, usage.maxRssKiB());
        return new RunResult(sandbox.id(), status, exitCode, signal, setupError, Math.round(durationMs * 1000) / 1000.0, used,
                captured(spec.stdout(), stdout), captured(spec.stderr(), stderr), cleanup);
    }

    private static RunResult.Captured captured(RunSpec.Output output, OutputReader reader) {
        return output instanceof RunSpec.Output.Capture && reader != null ? reader.captured() : null;
    }

    /** bwrap's own lines ("bwrap: ..."), from wherever stderr went. */
    private static String setupError(String stderr, ExitStatus bwrapExit) {
        List<String> lines = new ArrayList<>();
        for (String line : stderr.split("\n")) if (line.startsWith("bwrap: ")) lines.add(line.substring(7));
        if (!lines.isEmpty()) return String.join("; ", lines);
        return "bwrap could not set up the sandbox (exit status " + (bwrapExit.exited() ? bwrapExit.exitCode() : -1)
                + "); its message was not captured";
    }

    private static String stderrHead(OutputReader stderr, OutputReader stdout, RunSpec spec) {
        if (stderr != null) return stderr.head();
        if (spec.stderr() instanceof RunSpec.Output.File file) return fileHead(file.path());
        if (spec.stderr() instanceof RunSpec.Output.IntoStdout) {
            // Merged: bwrap's message went wherever stdout goes (lost only if that is /dev/null).
            if (stdout != null) return stdout.head();
            if (spec.stdout() instanceof RunSpec.Output.File file) return fileHead(file.path());
        }
        return "";
    }

    /** The last few KiB of an output file, where bwrap's message landed when stderr went there. */
    private static String fileHead(String path) {
        try {
            byte[] bytes = Files.readAllBytes(Path.of(path));
            int from = Math.max(0, bytes.length - 4096);
            return new String(bytes, from, bytes.length - from, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "";
        }
    }

    private OutputReader reader(RunSpec.Output output, String stream, int fd, RunSpec spec, Sandbox sandbox, Events events,
                                CountDownLatch announced) {
        if (fd < 0) return null;
        String name = "bwrapd-" + stream + " " + sandbox.id();
        return switch (output) {
            case RunSpec.Output.Capture c -> new OutputReader(name, fd, spec.captureLimitBytes(), null);
            case RunSpec.Output.Stream s -> new OutputReader(name, fd, 0, (data, text) -> {
                awaitUninterruptibly(announced);
                events.output(sandbox, stream, data, text);
            });
            default -> new OutputReader(name, fd, 0, null); // drained only to catch bwrap's own message
        };
    }

    private static void awaitUninterruptibly(CountDownLatch latch) {
        boolean interrupted = false;
        while (true) {
            try {
                latch.await();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) Thread.currentThread().interrupt();
    }

    private ScheduledFuture<?> scheduleTimeout(RunSpec spec, Sandbox sandbox) {
        if (spec.timeoutMs() == null) return null;
        return timers.schedule(() -> terminate(sandbox, Sandbox.Ending.TIMED_OUT, spec.killGraceMs()),
                spec.timeoutMs(), TimeUnit.MILLISECONDS);
    }

    /** SIGTERM to the command's group, then SIGKILL to the whole sandbox after {@code graceMs}. */
    public void terminate(Sandbox sandbox, Sandbox.Ending why, Long graceMs) {
        if (graceMs == null || graceMs <= 0) {
            sandbox.kill(why);
            return;
        }
        sandbox.markEnding(why);
        sandbox.signal(Signals.SIGCONT); // a suspended command could not act on SIGTERM
        sandbox.signal(Signals.SIGTERM);
        timers.schedule(() -> sandbox.kill(why), graceMs, TimeUnit.MILLISECONDS);
    }

    /** The request's host paths, opened and checked (HostPaths); a refusal is the client's error. */
    private static HostPaths openHostPaths(RunSpec spec) throws RpcException {
        try {
            return HostPaths.open(spec);
        } catch (HostPaths.Refused e) {
            throw refused(e);
        }
    }

    /** Every destination with the root's links resolved as the sandbox sees them (MountPoints). */
    private static BwrapCommand.Places placeMountPoints(RunSpec spec, HostPaths paths) throws RpcException {
        try {
            return MountPoints.plan(spec, RootPaths.of(paths.root()), paths.mountSources());
        } catch (HostPaths.Refused e) {
            throw refused(e);
        }
    }

    private static RpcException refused(HostPaths.Refused e) {
        return new RpcException(e.notAllowed ? ErrorCodes.PATH_NOT_ALLOWED : ErrorCodes.INVALID_PARAMS, e.getMessage());
    }

    private static void createWorkingDirectory(RunSpec spec, int rootFd) throws RpcException {
        try {
            RootPaths.createDirectories(rootFd, RootPaths.names(spec.cwd()).orElseThrow());
        } catch (IOException e) {
            throw new RpcException(ErrorCodes.INVALID_PARAMS, "cwd: cannot create " + spec.cwd() + " in the root: " + e.getMessage());
        }
    }

    /** Follows bwrap's status lines as they come: the init's pid must reach queued signals at once. */
    private static final class StatusFollower implements java.util.function.Consumer<JsonNode> {
        private final Sandbox sandbox;
        private final Events events;
        private final CountDownLatch announced;
        Integer exitCode;
        int initPid;
        CompletableFuture<ExitStatus> initExit;

        StatusFollower(Sandbox sandbox, Events events, CountDownLatch announced) {
            this.sandbox = sandbox;
            this.events = events;
            this.announced = announced;
        }

        @Override
        public void accept(JsonNode line) {
            if (line.has("child-pid") && initPid == 0) {
                initPid = line.get("child-pid").asInt();
                initExit = Reaper.instance().watchDescendant(initPid);
                sandbox.started(initPid);
                sandbox.awaitCommand(); // sandbox/started means the command runs, not that bwrap began its setup
                events.started(sandbox);
                announced.countDown();
            }
            if (line.has("exit-code")) exitCode = line.get("exit-code").asInt();
        }
    }

    /** Reads bwrap's status stream (one JSON object per line) until bwrap closes it. */
    private static void readStatus(int fd, java.util.function.Consumer<JsonNode> onLine) {
        StringBuilder text = new StringBuilder();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(1024);
            int n;
            while ((n = Libc.read(fd, buffer)) > 0) {
                text.append(new String(buffer.asSlice(0, n).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8));
                int newline;
                while ((newline = text.indexOf("\n")) >= 0) {
                    parseStatus(text.substring(0, newline)).ifPresent(onLine);
                    text.delete(0, newline + 1);
                }
            }
            parseStatus(text.toString()).ifPresent(onLine);
        } catch (Libc.Error e) {
            LOG.debugf("status pipe: %s", e.getMessage());
        } finally {
            Libc.close(fd);
        }
    }

    private static Optional<JsonNode> parseStatus(String line) {
        if (line.isBlank()) return Optional.empty();
        try {
            return Optional.of(STATUS_JSON.readTree(line));
        } catch (IOException e) {
            LOG.warnf("unreadable bwrap status line: %s", line);
            return Optional.empty();
        }
    }

    private static void openStdio(RunSpec spec, Fds fds) throws RpcException {
        try {
            switch (spec.stdin()) {
                case RunSpec.Stdin.Null n -> fds.childStdin = fds.track(Libc.open("/dev/null", Libc.O_RDONLY, 0));
                case RunSpec.Stdin.File f -> fds.childStdin = fds.track(open("stdin.file", f.path(), Libc.O_RDONLY));
                case RunSpec.Stdin.Bytes b -> {
                    int[] pipe = fds.pipe();
                    fds.childStdin = pipe[0];
                    fds.stdinData = b.data();
                    fds.parentStdin = pipe[1];
                }
            }
            // stdout "discard" goes to /dev/null, unless stderr is merged into it: then bwrap's own
            // message would be lost there, so it goes through a pipe that is drained like stderr's.
            boolean merged = spec.stderr() instanceof RunSpec.Output.IntoStdout;
            Ends stdout = outputFd(spec.stdout(), "stdout", fds, !merged);
            fds.childStdout = stdout.child();
            fds.parentStdout = stdout.reader();
            if (merged) {
                fds.childStderr = fds.childStdout;
            } else {
                Ends stderr = outputFd(spec.stderr(), "stderr", fds, false);
                fds.childStderr = stderr.child();
                fds.parentStderr = stderr.reader();
            }
        } catch (Libc.Error e) {
            throw new RpcException(ErrorCodes.INTERNAL_ERROR, e.getMessage());
        }
    }

    /** Where a stream goes: the descriptor the command writes to, and the pipe's end bwrapd reads (-1 if none). */
    private record Ends(int child, int reader) {}

    /** stderr "discard" still goes through a pipe: bwrap's own message may be on it. */
    private static Ends outputFd(RunSpec.Output output, String field, Fds fds, boolean discardToDevNull) throws RpcException, Libc.Error {
        return switch (output) {
            case RunSpec.Output.File f -> new Ends(fds.track(open(field + ".file", f.path(),
                    Libc.O_WRONLY | Libc.O_CREAT | (f.append() ? Libc.O_APPEND : Libc.O_TRUNC))), -1);
            case RunSpec.Output.Discard d when discardToDevNull -> new Ends(fds.track(Libc.open("/dev/null", Libc.O_WRONLY, 0)), -1);
            default -> {
                int[] pipe = fds.pipe();
                yield new Ends(pipe[1], pipe[0]);
            }
        };
    }

    private static int open(String field, String path, int flags) throws RpcException {
        try {
            return HostPaths.openStdio(field, path, flags);
        } catch (HostPaths.Refused e) {
            throw refused(e);
        }
    }
}
