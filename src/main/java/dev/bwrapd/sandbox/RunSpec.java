package dev.bwrapd.sandbox;

import dev.bwrapd.cgroup.Limits;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * A validated {@code sandbox/run} request: every field present, every default applied, every path
 * checked (see {@code protocol.RunParams} for the parsing and the rules).
 */
public record RunSpec(
        List<String> command,
        Path root,
        String sandboxId,
        String cwd,
        Map<String, String> env,
        boolean network,
        boolean readOnlyRoot,
        String hostname,
        int uid,
        int gid,
        boolean inheritUid,
        List<Mount> mounts,
        List<String> devices,
        boolean devShm,
        boolean linux32,
        Stdin stdin,
        Output stdout,
        Output stderr,
        long captureLimitBytes,
        Long timeoutMs,
        long killGraceMs,
        boolean interactive,
        boolean rootCapabilities,
        List<String> capabilities,
        Terminal terminal,
        Seccomp seccomp,
        Limits limits,
        List<String> hidden,
        boolean createCwd) {

    /**
     * {@code rootCapabilities}: a sandbox whose user is uid 0 gets {@link Capabilities#ROOT_DEFAULT}
     * ({@code sandbox/run}); without it, only {@code capabilities} (the Buildbarn runner's actions).
     * {@code hidden}: host paths each covered by an empty, read-only tmpfs before the mounts are
     * made (the Buildbarn runner's build directory and socket under {@code --root host}). Only
     * with the host root, whose paths mean the same in the sandbox: in a client's root they would
     * be resolved through that root's links.
     * {@code createCwd}: a missing {@code cwd} is made in the root ({@code sandbox/run}); without
     * it a {@code cwd} that does not exist is refused (the Buildbarn runner, as bb_runner's chdir fails).
     */
    public RunSpec {
        hidden = List.copyOf(hidden);
        if (!hidden.isEmpty() && !root.equals(HOST_ROOT)) throw new IllegalArgumentException("hidden paths need the host root");
    }

    public static final Path HOST_ROOT = Path.of("/");
    public static final String DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
    public static final List<String> DEFAULT_DEVICES = List.of("/dev/full", "/dev/null", "/dev/urandom", "/dev/random", "/dev/zero");

    /** A bind mount; {@code target} is a normalized absolute path inside the sandbox. */
    public record Mount(String source, String target, boolean readOnly) {}

    /** Where the command's standard input comes from. */
    public sealed interface Stdin {
        record Null() implements Stdin {}
        /** Written to a pipe in UTF-8, encoded as it is written. */
        record Text(String text) implements Stdin {
            public java.io.InputStream open() {
                return StringStreams.utf8(text);
            }
        }
        /** Written to a pipe as the bytes it encodes, decoded as it is written (checked by the parser first). */
        record Base64(String base64) implements Stdin {
            public java.io.InputStream open() {
                return StringStreams.base64(base64);
            }
        }
        record File(String path) implements Stdin {}
        /** A pipe fed with what the client sends while the command runs (sandbox/input). */
        record Stream() implements Stdin {}
    }

    /**
     * Run on a new pseudo-terminal of this size: it is the command's stdin, stdout, stderr and
     * controlling terminal; {@code term} is TERM's value unless env sets it.
     */
    public record Terminal(int rows, int cols, String term) {}

    /**
     * A system-call filter: the default one ({@link SeccompPolicy}), or exactly {@code deny},
     * failing with {@code errno}. A run without a filter has none (null).
     */
    public record Seccomp(List<String> deny, int errno) {
        public static final Seccomp DEFAULT = new Seccomp(null, 0);

        public boolean isDefault() {
            return deny == null;
        }
    }

    /** This spec with other bind mounts. */
    public RunSpec withMounts(List<Mount> others) {
        return copy(others, seccomp);
    }

    /** This spec with another system-call filter. */
    public RunSpec withSeccomp(Seccomp filter) {
        return copy(mounts, filter);
    }

    /** This spec with {@code mounts} and {@code seccomp}, the two fields bwrapd changes (records have no withers). */
    private RunSpec copy(List<Mount> mounts, Seccomp seccomp) {
        return new RunSpec(command, root, sandboxId, cwd, env, network, readOnlyRoot, hostname, uid, gid, inheritUid, mounts,
                devices, devShm, linux32, stdin, stdout, stderr, captureLimitBytes, timeoutMs, killGraceMs, interactive,
                rootCapabilities, capabilities, terminal, seccomp, limits, hidden, createCwd);
    }

    /** Whether the client may send input while the command runs: a terminal, or stdin "stream". */
    public boolean takesInput() {
        return terminal != null || stdin instanceof Stdin.Stream;
    }

    /** Where a command's standard output or error goes. */
    public sealed interface Output {
        record Capture() implements Output {}
        record Discard() implements Output {}
        record Stream() implements Output {}
        record File(String path, boolean append) implements Output {}
        /** stderr only: into the same place as stdout. */
        record IntoStdout() implements Output {}
    }
}
