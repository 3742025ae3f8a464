package dev.bwrapd.buildbarn;

import dev.bwrapd.buildbarn.proto.RunRequest;
import dev.bwrapd.sandbox.RootPaths;
import dev.bwrapd.sandbox.RunSpec;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A Buildbarn action (a {@link RunRequest}) as the sandbox layer's {@link RunSpec}: a pure
 * function of the request and the runner's options, unit-tested. Every path of a request is
 * checked here by its spelling (relative, not climbing out) and made relative to the build
 * directory; the sandbox layer then opens each beneath the build directory's descriptor through
 * no symbolic link ({@code HostPaths}), so what is bound is what was checked.
 */
final class Actions {
    /** What the action sees as {@code /}. */
    enum Root {
        /** Its input root, read-write (as BuildStream and buildbox run actions). */
        INPUT,
        /** The host's {@code /} read-only, the input root read-write at its own host path (toolchains from the worker's image). */
        HOST
    }

    /** A request that cannot be run as it is (the call's INVALID_ARGUMENT). */
    static final class Invalid extends Exception {
        Invalid(String message) {
            super(message);
        }
    }

    private final Path buildDirectory;
    private final Root root;
    private final boolean network;
    private final RunSpec.Seccomp seccomp;
    private final List<String> hidden;
    private final List<String> capabilities;
    /** Every action's resource limits (the runner's {@code --limits}), enforced as sandbox/run's are. */
    private final dev.bwrapd.cgroup.Limits limits;

    /**
     * @param buildDirectory the build directory's real path (no link in it): where {@code --root host} binds the input root
     * @param seccomp        every action's filter, or null
     * @param hidden         with {@code --root host}: the host paths no action may see ({@link #hiddenFromHostRoot})
     * @param capabilities   what every action gets (the runner's {@code --cap-add}); nothing else, even as root
     */
    Actions(Path buildDirectory, Root root, boolean network, RunSpec.Seccomp seccomp, List<String> hidden, List<String> capabilities,
            dev.bwrapd.cgroup.Limits limits) {
        this.limits = limits;
        this.buildDirectory = buildDirectory;
        this.root = root;
        this.network = network;
        this.seccomp = seccomp;
        this.hidden = root == Root.HOST ? List.copyOf(hidden) : List.of();
        this.capabilities = List.copyOf(capabilities);
    }

    /**
     * What {@code --root host} hides behind an empty read-only tmpfs (real paths, no link in
     * them): the build directory (every other action's files), the directory of the runner's own
     * socket (read-only mounts do not stop connect(2) on a socket, nor does a network namespace:
     * an action could run actions of its own on any input root). The sandbox layer adds the host
     * daemons' sockets, {@code /run}, to every host root (MountPoints.hiddenOfTheHostRoot). Paths
     * under {@code /tmp} need nothing: the action's {@code /tmp} is its temporary directory.
     * Ancestors come first, paths beneath another are dropped (RootPaths.outermost).
     *
     * @throws IllegalArgumentException when one of them is {@code /} (nothing would be left)
     */
    static List<String> hiddenFromHostRoot(Path buildDirectory, Path socketDirectory) {
        List<String> paths = List.of(buildDirectory.toString(), socketDirectory.toString());
        if (paths.contains("/")) throw new IllegalArgumentException("--root host would hide / itself: put the socket and the build directory in directories of their own");
        return RootPaths.outermost(paths.stream().filter(path -> !RootPaths.isOrBeneath(path, "/tmp")).toList());
    }

    RunSpec spec(RunRequest request) throws Invalid {
        List<String> command = strings("arguments", request.getArgumentsList());
        if (command.isEmpty() || command.getFirst().isEmpty()) throw new Invalid("arguments: the command is missing");
        Map<String, String> env = new LinkedHashMap<>();
        for (Map.Entry<String, String> e : new java.util.TreeMap<>(request.getEnvironmentVariablesMap()).entrySet()) {
            String name = e.getKey();
            if (name.isEmpty() || name.indexOf('=') >= 0 || name.indexOf('\0') >= 0) {
                throw new Invalid("environment_variables: " + quoted(name) + " is not a variable name");
            }
            env.put(name, string("environment_variables." + name, e.getValue()));
        }
        String inputRoot = relative("input_root_directory", request.getInputRootDirectory());
        String tmp = relative("temporary_directory", request.getTemporaryDirectory());
        String stdout = relative("stdout_path", request.getStdoutPath());
        String stderr = relative("stderr_path", request.getStderrPath());
        relative("server_logs_directory", request.getServerLogsDirectory()); // unused, but never outside either
        String workingDirectory = RootPaths.normalize("/" + string("working_directory", request.getWorkingDirectory()))
                .orElseThrow(() -> new Invalid("working_directory: " + quoted(request.getWorkingDirectory()) + " climbs out of the input root"));
        if (request.getWorkingDirectory().startsWith("/")) {
            throw new Invalid("working_directory: " + quoted(request.getWorkingDirectory()) + " must be relative to the input root");
        }

        // The action's temporary directory is its /tmp; in --root host mode the input root then
        // comes at its own path (after /tmp, so a build directory below /tmp stays visible), over
        // the tmpfs that hides the rest of the build directory.
        List<RunSpec.Mount> mounts = new ArrayList<>();
        mounts.add(new RunSpec.Mount(tmp, "/tmp", false));
        Path sandboxRoot = Path.of(inputRoot);
        String cwd = workingDirectory;
        if (root == Root.HOST) {
            String inputRootInside = buildDirectory.resolve(inputRoot).toString();
            mounts.add(new RunSpec.Mount(inputRoot, inputRootInside, false));
            sandboxRoot = RunSpec.HOST_ROOT;
            cwd = workingDirectory.equals("/") ? inputRootInside : inputRootInside + workingDirectory;
        }
        // The action runs as the runner's own user (as under Buildbarn's own runner), with exactly
        // its environment, a minimal /dev, fresh /proc, no network unless the runner allows it, and
        // no capability the runner did not name, even as root: with CAP_FOWNER or CAP_DAC_OVERRIDE
        // it could write through a read-only file hard-linked from bb_worker's cache.
        return new RunSpec(command, sandboxRoot, null, cwd, env, network, false, "localhost", 0, 0, true,
                mounts, RunSpec.DEFAULT_DEVICES, true, false, new RunSpec.Stdin.Null(),
                // One file named twice (or two links to one) is opened once and shared by the run, as 2>&1 does.
                new RunSpec.Output.File(stdout, false), new RunSpec.Output.File(stderr, false), 0, null, 0,
                false, false, capabilities, null, seccomp, limits, hidden,
                false); // a working directory missing from the input root is refused, never made (bb_runner's chdir fails)
    }

    /**
     * A path relative to the build directory, by its spelling: not absolute, not empty, not
     * climbing out, no NUL; returned normalized. Links are the kernel's to refuse, when it is opened.
     */
    static String relative(String field, String path) throws Invalid {
        string(field, path);
        if (path.isEmpty()) throw new Invalid(field + ": missing");
        if (path.startsWith("/")) throw new Invalid(field + ": " + quoted(path) + " must be relative to the build directory");
        String normal = RootPaths.normalize("/" + path)
                .orElseThrow(() -> new Invalid(field + ": " + quoted(path) + " climbs out of the build directory"));
        if (normal.equals("/")) throw new Invalid(field + ": " + quoted(path) + " is the build directory itself");
        return normal.substring(1);
    }

    private static List<String> strings(String field, List<String> values) throws Invalid {
        for (int i = 0; i < values.size(); i++) string(field + "[" + i + "]", values.get(i));
        return List.copyOf(values);
    }

    /** No string reaches a C call with a NUL in it (it would end the string there). */
    private static String string(String field, String value) throws Invalid {
        if (value.indexOf('\0') >= 0) throw new Invalid(field + ": contains a NUL character");
        return value;
    }

    private static String quoted(String s) {
        return '"' + s + '"';
    }
}
