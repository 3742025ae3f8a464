package dev.bwrapd.buildbarn;

import com.google.protobuf.InvalidProtocolBufferException;
import dev.bwrapd.buildbarn.proto.POSIXResourceUsage;
import dev.bwrapd.buildbarn.proto.RunRequest;
import dev.bwrapd.buildbarn.proto.RunResponse;
import dev.bwrapd.cleanup.CleanupReport;
import dev.bwrapd.sandbox.RunOutcome;
import dev.bwrapd.sandbox.RunSpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A Buildbarn request as a RunSpec, and an outcome as a RunResponse: the pure parts of the runner. */
class ActionsTest {
    private static final Path BUILD = Path.of("/var/bb/build");

    private static RunRequest.Builder request() {
        return RunRequest.newBuilder().addArguments("sh").addArguments("-c").addArguments("true")
                .putEnvironmentVariables("PATH", "/bin").setWorkingDirectory("src")
                .setStdoutPath("1/stdout").setStderrPath("1/stderr").setInputRootDirectory("1/root")
                .setTemporaryDirectory("1/tmp").setServerLogsDirectory("1/server_logs");
    }

    @Test
    void inputRootModeBindsTheInputRootAsRootAndTheTemporaryDirectoryAtTmp() throws Exception {
        RunSpec spec = new Actions(BUILD, Actions.Root.INPUT, false, null, List.of(), List.of(), dev.bwrapd.cgroup.Limits.NONE).spec(request().build());
        assertEquals(List.of("sh", "-c", "true"), spec.command());
        assertEquals(Path.of("1/root"), spec.root());
        assertEquals("/src", spec.cwd());
        assertEquals(Map.of("PATH", "/bin"), spec.env());
        assertEquals(List.of(new RunSpec.Mount("1/tmp", "/tmp", false)), spec.mounts());
        assertEquals(new RunSpec.Output.File("1/stdout", false), spec.stdout());
        assertEquals(new RunSpec.Output.File("1/stderr", false), spec.stderr());
        assertTrue(spec.inheritUid());
        assertEquals(false, spec.network());
        assertEquals(RunSpec.DEFAULT_DEVICES, spec.devices());
        assertNull(spec.timeoutMs(), "the call's deadline ends the run, not a timer of its own");
        assertNull(spec.seccomp());
    }

    @Test
    void hostModeBindsTheInputRootAtItsOwnPathAfterTmp() throws Exception {
        RunSpec spec = new Actions(BUILD, Actions.Root.HOST, true, RunSpec.Seccomp.DEFAULT, List.of(), List.of(), dev.bwrapd.cgroup.Limits.NONE).spec(request().build());
        assertEquals(RunSpec.HOST_ROOT, spec.root());
        assertEquals("/var/bb/build/1/root/src", spec.cwd());
        assertEquals(List.of(new RunSpec.Mount("1/tmp", "/tmp", false), new RunSpec.Mount("1/root", "/var/bb/build/1/root", false)),
                spec.mounts());
        assertEquals(true, spec.network());
        assertEquals(RunSpec.Seccomp.DEFAULT, spec.seccomp());
        assertEquals(false, spec.rootCapabilities(), "no capability for an action, even as root");
        assertEquals(List.of(), spec.capabilities());
        assertEquals(List.of("CAP_KILL"), new Actions(BUILD, Actions.Root.INPUT, false, null, List.of(), List.of("CAP_KILL"), dev.bwrapd.cgroup.Limits.NONE)
                .spec(request().build()).capabilities());
        assertEquals("/var/bb/build/1/root", new Actions(BUILD, Actions.Root.HOST, false, null, List.of(), List.of(), dev.bwrapd.cgroup.Limits.NONE)
                .spec(request().setWorkingDirectory("").build()).cwd());
    }

    @Test
    void hostModeHidesTheBuildDirectoryAndTheSocketsDirectory() throws Exception {
        List<String> hidden = Actions.hiddenFromHostRoot(BUILD, Path.of("/worker"));
        assertEquals(List.of("/var/bb/build", "/worker"), hidden);
        RunSpec spec = new Actions(BUILD, Actions.Root.HOST, false, null, hidden, List.of(), dev.bwrapd.cgroup.Limits.NONE).spec(request().build());
        assertEquals(hidden, spec.hidden());
        assertEquals(List.of(), new Actions(BUILD, Actions.Root.INPUT, false, null, hidden, List.of(), dev.bwrapd.cgroup.Limits.NONE).spec(request().build()).hidden());
        // Beneath another or under /tmp (the action's own): dropped. (/run the sandbox layer hides: MountPoints.hiddenOfTheHostRoot.)
        assertEquals(List.of("/var/bb"), Actions.hiddenFromHostRoot(BUILD, Path.of("/var/bb")));
        assertEquals(List.of("/run/bb"), Actions.hiddenFromHostRoot(Path.of("/tmp/bb/build"), Path.of("/run/bb")));
        assertThrows(IllegalArgumentException.class, () -> Actions.hiddenFromHostRoot(BUILD, Path.of("/")));
    }

    /** Each is a file of its own spelling, normalized: the run shares one open file when they are one (bb_worker_test). */
    @Test
    void stdoutAndStderrAreFilesBeneathTheBuildDirectory() throws Exception {
        RunSpec spec = new Actions(BUILD, Actions.Root.INPUT, false, null, List.of(), List.of(), dev.bwrapd.cgroup.Limits.NONE)
                .spec(request().setStdoutPath("1/log").setStderrPath("1/./log").build());
        assertEquals(new RunSpec.Output.File("1/log", false), spec.stdout());
        assertEquals(new RunSpec.Output.File("1/log", false), spec.stderr());
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "/abs", "..", "../x", "a/../../x", ".", "a/..", "nul\0byte"})
    void pathsThatAreNotInsideTheBuildDirectoryAreInvalid(String path) {
        Actions actions = new Actions(BUILD, Actions.Root.INPUT, false, null, List.of(), List.of(), dev.bwrapd.cgroup.Limits.NONE);
        for (RunRequest r : List.of(request().setStdoutPath(path).build(), request().setStderrPath(path).build(),
                request().setInputRootDirectory(path).build(), request().setTemporaryDirectory(path).build(),
                request().setServerLogsDirectory(path).build())) {
            assertThrows(Actions.Invalid.class, () -> actions.spec(r), path);
        }
    }

    @Test
    void pathsAreNormalized() throws Exception {
        RunSpec spec = new Actions(BUILD, Actions.Root.INPUT, false, null, List.of(), List.of(), dev.bwrapd.cgroup.Limits.NONE)
                .spec(request().setInputRootDirectory("./1//x/../root/").setWorkingDirectory("a/./b/..").build());
        assertEquals(Path.of("1/root"), spec.root());
        assertEquals("/a", spec.cwd());
    }

    @Test
    void otherInvalidRequests() {
        Actions actions = new Actions(BUILD, Actions.Root.INPUT, false, null, List.of(), List.of(), dev.bwrapd.cgroup.Limits.NONE);
        assertThrows(Actions.Invalid.class, () -> actions.spec(request().clearArguments().build()));
        assertThrows(Actions.Invalid.class, () -> actions.spec(request().clearArguments().addArguments("").build()));
        assertThrows(Actions.Invalid.class, () -> actions.spec(request().addArguments("a\0b").build()));
        assertThrows(Actions.Invalid.class, () -> actions.spec(request().putEnvironmentVariables("A=B", "x").build()));
        assertThrows(Actions.Invalid.class, () -> actions.spec(request().putEnvironmentVariables("", "x").build()));
        assertThrows(Actions.Invalid.class, () -> actions.spec(request().putEnvironmentVariables("A", "x\0").build()));
        assertThrows(Actions.Invalid.class, () -> actions.spec(request().setWorkingDirectory("/abs").build()));
        assertThrows(Actions.Invalid.class, () -> actions.spec(request().setWorkingDirectory("../..").build()));
    }

    @Test
    void anExitAndASignalDeathAsResponses() throws InvalidProtocolBufferException {
        RunResponse exited = Responses.of(outcome(RunOutcome.Status.EXITED, 3, null));
        assertEquals(3, exited.getExitCode());
        POSIXResourceUsage usage = exited.getResourceUsage(0).unpack(POSIXResourceUsage.class);
        assertEquals(1, usage.getUserTime().getSeconds());
        assertEquals(500_000_000, usage.getUserTime().getNanos());
        assertEquals(250_000, usage.getSystemTime().getNanos());
        assertEquals(2048L * 1024, usage.getMaximumResidentSetSize());
        assertEquals("", usage.getTerminationSignal());

        RunResponse killed = Responses.of(outcome(RunOutcome.Status.SIGNALED, 137, "SIGKILL"));
        assertEquals(137, killed.getExitCode());
        assertEquals("KILL", killed.getResourceUsage(0).unpack(POSIXResourceUsage.class).getTerminationSignal());
        // Killed before the command ran (no exit code from bwrap): still 128+N.
        assertEquals(137, Responses.of(outcome(RunOutcome.Status.SIGNALED, null, "SIGKILL")).getExitCode());
        assertNull(Responses.failure(outcome(RunOutcome.Status.EXITED, 0, null)));
        assertEquals(io.grpc.Status.Code.FAILED_PRECONDITION,
                Responses.failure(outcome(RunOutcome.Status.SETUP_FAILED, null, null)).getCode());
    }

    private static RunOutcome outcome(RunOutcome.Status status, Integer exitCode, String signal) {
        return new RunOutcome("sb-1", status, exitCode, signal, status == RunOutcome.Status.SETUP_FAILED ? "no" : null, 1,
                new RunOutcome.Usage(1_500_000, 250, 2048), null, null, CleanupReport.NOTHING, null);
    }

    @Test
    void limitsOfEveryActionAreParsedByTheirProtocolNames() throws Exception {
        assertEquals(new dev.bwrapd.cgroup.Limits(64L << 20, 32L, null, 1.5, null, null),
                RunnerOptions.limits("memoryBytes=67108864,pids=32,cpus=1.5"));
        RunSpec spec = new Actions(BUILD, Actions.Root.INPUT, false, null, List.of(), List.of(), RunnerOptions.limits("pids=8"))
                .spec(request().build());
        assertEquals(8L, spec.limits().pids());
        // sandbox/run's ranges, one place (Limits.outOfRange): what a run refuses, the runner refuses at its start.
        for (String bad : new String[] {"", "pids", "pids=0", "pids=-1", "pids=x", "pids=1,pids=2", "memory=1", "cpus=NaN",
                "memoryBytes=1", "pids=5000000", "cpus=0.001", "cpus=Infinity", "cpus=2d", "cpus=0x1p3", "openFiles=2000000", "fileSizeBytes=-1"}) {
            org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> RunnerOptions.limits(bad), bad);
        }
        assertEquals(0L, RunnerOptions.limits("fileSizeBytes=0").fileSizeBytes(), "0 is a valid file size limit, as in sandbox/run");
        assertEquals("--limits: pids: must be between 1 and 4194304",
                org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> RunnerOptions.limits("pids=5000000")).getMessage());
    }
}
