package dev.bwrapd.sandbox;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Turns a validated request into bwrap's argv and environment: a pure function, so every rule
 * below is unit-tested without running anything. The order follows BuildStream's SandboxBwrap:
 * namespaces, the root, /proc, /tmp, devices, bind mounts, then the read-only remount (which must
 * come after every mount), then the ids.
 */
public final class BwrapCommand {
    /** bwrap writes its JSON status lines to this descriptor in the child. */
    public static final int STATUS_FD = 3;
    /**
     * With the status pipe, bwrap's init is held before it starts the command (--block-fd: a pipe
     * bwrapd writes one byte to once the init is in the sandbox's cgroup and has its rlimits) and
     * holds the pipe's write end itself (--sync-fd, which the init keeps and the command does not
     * get): so bwrapd's death alone never releases it, and a held init is still in bwrap's session,
     * where the watchdog kills it.
     */
    public static final int BLOCK_FD = 4, SYNC_FD = 5;

    private BwrapCommand() {}

    /** The program to execute, its argv, and its environment. */
    public record Invocation(String executable, List<String> argv, List<String> environment) {}

    public static Invocation of(RunSpec spec, HostCapabilities host) {
        List<String> argv = new ArrayList<>();
        String executable = host.bwrapPath();
        if (spec.linux32()) {
            // setarch's linux32 sets the 32-bit personality and execs bwrap in place (same pid).
            executable = host.linux32Path();
            argv.add(host.linux32Path());
        }
        argv.add(host.bwrapPath());

        argv.add("--unshare-pid");
        if (host.dieWithParent()) argv.add("--die-with-parent");
        // The command gets a session and process group of its own: signals go to that group.
        argv.add("--new-session");
        if (host.jsonStatusFd()) {
            add(argv, "--json-status-fd", Integer.toString(STATUS_FD));
            add(argv, "--block-fd", Integer.toString(BLOCK_FD), "--sync-fd", Integer.toString(SYNC_FD));
        }

        add(argv, spec.isHostRoot() ? "--ro-bind" : "--bind", spec.root().toString(), "/");

        if (!spec.network()) {
            argv.add("--unshare-net");
            add(argv, "--unshare-uts", "--hostname", spec.hostname());
            argv.add("--unshare-ipc");
        }
        add(argv, "--chdir", spec.cwd());
        add(argv, "--proc", "/proc");
        add(argv, "--tmpfs", "/tmp");

        if (spec.interactive()) {
            add(argv, "--dev", "/dev");
        } else {
            for (String device : spec.devices()) add(argv, "--dev-bind", device, device);
            if (spec.devShm()) add(argv, "--tmpfs", "/dev/shm");
        }

        for (RunSpec.Mount mount : spec.mounts()) {
            // Like the seed, read-write mounts use --dev-bind: a plain bind that keeps device nodes usable.
            add(argv, mount.readOnly() ? "--ro-bind" : "--dev-bind", mount.source(), mount.target());
        }

        if (spec.readOnlyRoot()) add(argv, "--remount-ro", "/");

        if (host.privileged() || host.userNamespaces()) {
            // bwrap keeps every capability for root: start from none, add back the policy's (Capabilities).
            add(argv, "--cap-drop", "ALL");
            for (String cap : Capabilities.granted(sandboxUserIsRoot(spec, host), spec.capabilities())) add(argv, "--cap-add", cap);
        }
        if (host.userNamespaces()) {
            argv.add("--unshare-user");
            if (!spec.inheritUid()) {
                // uid and gid go up to 2^32-2: an int above 2^31 is the unsigned value.
                add(argv, "--uid", Integer.toUnsignedString(spec.uid()), "--gid", Integer.toUnsignedString(spec.gid()));
            }
        }

        argv.add("--");
        argv.addAll(spec.command());
        return new Invocation(executable, List.copyOf(argv), environment(spec.env()));
    }

    /** The command runs as uid 0: the requested uid in its own user namespace, else bwrapd's own. */
    static boolean sandboxUserIsRoot(RunSpec spec, HostCapabilities host) {
        return host.userNamespaces() && !spec.inheritUid() ? spec.uid() == 0 : host.privileged();
    }

    /**
     * bwrap passes its own environment to the command, so it gets exactly the requested one and
     * nothing of the server's (bwrap adds PWD itself).
     */
    static List<String> environment(Map<String, String> env) {
        List<String> entries = new ArrayList<>(env.size());
        env.forEach((name, value) -> entries.add(name + "=" + value));
        return entries;
    }

    private static void add(List<String> argv, String... words) {
        argv.addAll(List.of(words));
    }

    /** Paths (relative to the root) that bwrap may create there for this run, parents first. */
    public static List<String> createdPaths(RunSpec spec) {
        List<String> paths = new ArrayList<>();
        paths.add("dev");
        if (!spec.interactive()) {
            for (String device : spec.devices()) addWithParents(paths, device);
            if (spec.devShm()) paths.add("dev/shm");
        }
        paths.add("tmp");
        paths.add("proc");
        for (RunSpec.Mount mount : spec.mounts()) addWithParents(paths, mount.target());
        return paths;
    }

    private static void addWithParents(List<String> paths, String absolute) {
        String relative = absolute.substring(1);
        int slash = -1;
        while ((slash = relative.indexOf('/', slash + 1)) > 0) {
            String parent = relative.substring(0, slash);
            if (!paths.contains(parent)) paths.add(parent);
        }
        if (!relative.isEmpty() && !paths.contains(relative)) paths.add(relative);
    }
}
