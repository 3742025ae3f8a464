package dev.bwrapd.sandbox;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
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

    /**
     * The kernel's limit on argv and environment together (strings, their NULs and pointers): a
     * quarter of the stack limit, at most 6 MiB. 2 MiB with the usual 8 MiB stack; bwrapd assumes
     * that, and a larger stack limit does not raise it.
     */
    public static final int ARG_MAX = 2 * 1024 * 1024;

    /** bwrap reads the run's seccomp filter (BPF) from this descriptor: the one after the status and hold pipes, if any. */
    public static int seccompFd(HostCapabilities host) {
        return host.jsonStatusFd() ? SYNC_FD + 1 : STATUS_FD;
    }

    /** The first of the host paths' descriptors in bwrap (see {@link HostPaths#inChild}): after stdio, the pipes and the filter. */
    static int firstPathFd(RunSpec spec, HostCapabilities host) {
        return seccompFd(host) + (spec.seccomp() != null ? 1 : 0);
    }

    private BwrapCommand() {}

    /**
     * The kernel's limit on one argv or environment string, its NUL included (MAX_ARG_STRLEN, 32
     * pages): a longer one fails the exec (E2BIG) however small the whole.
     */
    public static final int MAX_ARG_STRLEN = 32 * 4096;

    /**
     * bwrap's own cap on its argc (its argv[0], its options and the command together): over it
     * bwrap stops with "Exceeded maximum number of arguments 9000" before setting anything up.
     */
    public static final int MAX_BWRAP_ARGS = 9000;

    /**
     * The program to execute, its argv, and its environment; {@code bwrapAt} is where bwrap's own
     * argv starts in {@code argv} (after linux32's argv[0]), {@code commandAt} where the request's
     * command starts (after bwrap's options and the terminal step).
     */
    public record Invocation(String executable, List<String> argv, List<String> environment, int bwrapAt, int commandAt) {
        /**
         * What the exec and bwrap would refuse, refused first, naming the limit and the request's
         * field: an argv or environment string over MAX_ARG_STRLEN, bwrap's argc over its cap, the
         * whole argv and environment over ARG_MAX. Otherwise each would only show as a failed
         * spawn (E2BIG) or a setup failure, both of which look like the host's fault. This is the
         * one check of these limits, for {@code sandbox/run} and the Buildbarn runner alike.
         */
        public void checkExecSize() throws SandboxException.Invalid {
            int argc = argv.size() - bwrapAt;
            if (argc > MAX_BWRAP_ARGS) {
                int options = commandAt - bwrapAt;
                throw new SandboxException.Invalid("command: " + (argv.size() - commandAt) + " arguments, and bwrap's own " + options
                        + " before them (three for each env variable kept from bwrap's environment: see actsOnBwrap), make " + argc + ", over bwrap's limit of " + MAX_BWRAP_ARGS + " arguments in all: this command may have at most "
                        + (MAX_BWRAP_ARGS - options));
            }
            long most = 0; // a char is at most 3 UTF-8 bytes: only a long string, or a long argv or environment, needs counting
            for (int i = 0; i < argv.size(); i++) {
                String word = argv.get(i);
                long at = atMost(word);
                if (i < commandAt && i >= 2 && argv.get(i - 2).equals("--setenv")) {
                    // A variable kept from bwrap's own environment: the command's exec holds it as NAME=value.
                    String entry = argv.get(i - 1) + "=" + word;
                    if (at < 0 || atMost(entry) < 0) throw tooLong("env." + argv.get(i - 1), entry, true);
                } else if (at < 0) {
                    throw tooLong(i >= commandAt ? "command[" + (i - commandAt) + "]" : "bwrap's argv[" + i + "]", word, false);
                }
                most += at;
            }
            for (String entry : environment) {
                long at = atMost(entry);
                if (at < 0) throw tooLong("env." + entry.substring(0, entry.indexOf('=')), entry, true);
                most += at;
            }
            if (most <= ARG_MAX) return;
            long bytes = 0;
            for (String s : argv) bytes += s.getBytes(StandardCharsets.UTF_8).length + 1L + 8;
            for (String s : environment) bytes += s.getBytes(StandardCharsets.UTF_8).length + 1L + 8;
            if (bytes > ARG_MAX) {
                throw new SandboxException.Invalid("command, env: bwrap's argv and environment would take " + bytes
                        + " bytes (strings, NULs and pointers), over the kernel's limit of " + ARG_MAX + " bytes (ARG_MAX)");
            }
        }

        /**
         * At most what one string takes (its UTF-8 bytes, NUL and pointer), or -1 over MAX_ARG_STRLEN.
         * Names no field: every run checks some sixty strings, and the name is needed only to refuse one.
         */
        private static long atMost(String s) {
            if (s.length() * 3L + 1 <= MAX_ARG_STRLEN) return s.length() * 3L + 1 + 8;
            long length = s.getBytes(StandardCharsets.UTF_8).length + 1L;
            return length > MAX_ARG_STRLEN ? -1 : length + 8;
        }

        private static SandboxException.Invalid tooLong(String field, String s, boolean environment) {
            long length = s.getBytes(StandardCharsets.UTF_8).length + 1L;
            return new SandboxException.Invalid(field + ": " + length + " bytes with its NUL" + (environment ? " and NAME=" : "")
                    + ", over the kernel's limit of " + MAX_ARG_STRLEN + " bytes per argument or environment string (MAX_ARG_STRLEN)");
        }
    }

    /**
     * The descriptors bwrapd opened and checked for the host paths (see {@link HostPaths}), as
     * numbered in bwrap: the root, each mount source, each device (in the request's order).
     */
    public record Descriptors(int root, boolean hostRoot, List<Integer> mounts, List<Integer> devices) {}

    /**
     * Where in the sandbox bwrap creates and mounts each destination: the request's paths, or the
     * same with the root's links resolved (see {@link MountPoints}). {@code shm} is null without
     * devShm. {@code devOfItsOwn}: /dev is a tmpfs of the sandbox's own holding only its devices
     * and {@link #DEV_LINKS}, not the root's directory: on the host's root that is the host's /dev
     * with all its mounts, /dev/mqueue among them, whose queues a command drained through the
     * read-only mount (a review). {@code hidden}: the host paths behind empty tmpfs mounts. Both
     * as {@link MountPoints#devOfItsOwn} and {@link MountPoints#hidden} decide. {@code journal}:
     * where the sandbox would see bwrapd's root journal, behind an empty read-only tmpfs after
     * every mount (MountPoints.plan).
     */
    public record Places(String proc, String tmp, String dev, boolean devOfItsOwn, String shm, List<String> devices, List<String> mounts,
                         List<String> hidden, List<String> journal) {
        /**
         * The destinations as the request spells them, the root taken for the host's only when
         * spelled {@code /}: for tests of the argv. A run decides on the root's descriptor
         * (HostPaths.hostRoot, which knows {@code /.} or a link to {@code /} too) and places its
         * destinations with {@link MountPoints#plan}.
         */
        public static Places asGiven(RunSpec spec) {
            boolean hostRoot = spec.root().equals(RunSpec.HOST_ROOT);
            return new Places("/proc", "/tmp", "/dev", MountPoints.devOfItsOwn(spec, hostRoot), spec.devShm() ? "/dev/shm" : null,
                    spec.devices(), spec.mounts().stream().map(RunSpec.Mount::target).toList(), MountPoints.hidden(spec, hostRoot), List.of());
        }
    }

    /** The argv with host paths spelled out: what {@code sandbox/argv} shows; {@code root} is the root's real path. */
    public static Invocation of(RunSpec spec, HostCapabilities host, Places places, Path root) {
        return of(spec, host, null, places, root);
    }

    /**
     * The argv of a run: with {@code fds}, bwrap binds the descriptors bwrapd checked (bwrap closes
     * those of --bind-fd and --ro-bind-fd once mounted); without, the paths.
     */
    public static Invocation of(RunSpec spec, HostCapabilities host, Descriptors fds, Places places) {
        return of(spec, host, fds, places, null);
    }

    private static Invocation of(RunSpec spec, HostCapabilities host, Descriptors fds, Places places, Path root) {
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

        if (fds != null) add(argv, fds.hostRoot() ? "--ro-bind-fd" : "--bind-fd", Integer.toString(fds.root()), "/");
        else add(argv, root.equals(RunSpec.HOST_ROOT) ? "--ro-bind" : "--bind", root.toString(), "/");

        // IPC always: network is the network alone, and the host's System V and POSIX message
        // queue objects of the helper's user (as root: every root-owned one) are not the command's.
        argv.add("--unshare-ipc");
        if (!spec.network()) {
            argv.add("--unshare-net");
            add(argv, "--unshare-uts", "--hostname", spec.hostname());
        }
        add(argv, "--chdir", spec.cwd());
        add(argv, "--proc", places.proc());
        if (host.privileged()) {
            for (String part : PROC_READ_ONLY) add(argv, "--ro-bind-try", "/proc/" + part, places.proc() + "/" + part);
        }
        add(argv, "--tmpfs", places.tmp());

        if (fullDev(spec)) {
            // bwrap's own /dev; on a terminal it also binds that terminal at /dev/console (ttyname works).
            add(argv, "--dev", places.dev());
        } else {
            if (places.devOfItsOwn()) {
                add(argv, "--tmpfs", places.dev());
                for (String[] link : DEV_LINKS) {
                    String at = places.dev() + "/" + link[1];
                    // not where a device or a mount lands: bwrap would follow the link
                    if (java.util.stream.Stream.concat(places.devices().stream(), places.mounts().stream())
                            .noneMatch(p -> RootPaths.isOrBeneath(p, at))) add(argv, "--symlink", link[0], at);
                }
            }
            for (int i = 0; i < spec.devices().size(); i++) {
                String device = spec.devices().get(i);
                // No --dev-bind-fd in bwrap 0.8: the checked descriptor, named through bwrap's own fd table.
                add(argv, "--dev-bind", fds == null ? device : "/proc/self/fd/" + fds.devices().get(i), places.devices().get(i));
            }
            if (spec.devShm()) add(argv, "--tmpfs", places.shm());
        }

        // Hidden host paths: an empty tmpfs over each before the mounts (which may lie beneath one,
        // such as the input root under the build directory), made read-only after them.
        for (String path : places.hidden()) add(argv, "--tmpfs", path);
        for (int i = 0; i < spec.mounts().size(); i++) {
            RunSpec.Mount mount = spec.mounts().get(i);
            if (fds != null) {
                // --bind-fd mounts nodev: device nodes come through `devices` only.
                add(argv, mount.readOnly() ? "--ro-bind-fd" : "--bind-fd", Integer.toString(fds.mounts().get(i)), places.mounts().get(i));
            } else {
                add(argv, mount.readOnly() ? "--ro-bind" : "--bind", mount.source(), places.mounts().get(i));
            }
        }

        // The journal, where a tree shows it: after the mounts, over whatever they brought there.
        for (String path : places.journal()) add(argv, "--tmpfs", path);
        for (String path : places.hidden()) add(argv, "--remount-ro", path); // bwrap 0.8 remounts no submount
        for (String path : places.journal()) add(argv, "--remount-ro", path);
        if (spec.readOnlyRoot()) add(argv, "--remount-ro", "/");

        if (host.privileged() || host.userNamespaces()) {
            // bwrap keeps every capability for root: start from none, add back the policy's (Capabilities).
            add(argv, "--cap-drop", "ALL");
            for (String cap : Capabilities.granted(spec.rootCapabilities() && sandboxUserIsRoot(spec, host), spec.capabilities())) {
                add(argv, "--cap-add", cap);
            }
        }
        if (spec.seccomp() != null) add(argv, "--seccomp", Integer.toString(seccompFd(host)));
        // bwrap caps the sandbox's user namespaces at the one it made (it needs --unshare-user for
        // that): where the host asks for it, and with the default filter, as belt and braces with its
        // refusal of CLONE_NEWUSER.
        boolean defaultFilter = spec.seccomp() != null && spec.seccomp().isDefault();
        if (host.userNamespaces() && (!host.nestedUserNamespaces() || defaultFilter)) argv.add("--disable-userns");
        if (host.userNamespaces()) {
            argv.add("--unshare-user");
            if (!spec.inheritUid()) {
                // uid and gid go up to 2^32-2: an int above 2^31 is the unsigned value.
                add(argv, "--uid", Integer.toUnsignedString(spec.uid()), "--gid", Integer.toUnsignedString(spec.gid()));
            }
        }

        // What the dynamic loader and libc act on in bwrap itself, on the host and with bwrapd's
        // rights, is given to the command through bwrap's own setenv: LD_PRELOAD in bwrap's
        // environment ran a library of the request's choosing outside the sandbox (a review's
        // Buildbarn action did, as the runner's root).
        spec.env().forEach((name, value) -> { if (actsOnBwrap(name)) add(argv, "--setenv", name, value); });
        argv.add("--");
        // The terminal becomes the controlling terminal of a session the command leads: see TERMINAL_STEP.
        if (spec.terminal() != null) argv.addAll(TERMINAL_STEP);
        int commandAt = argv.size();
        argv.addAll(spec.command());
        return new Invocation(executable, List.copyOf(argv), environment(spec.env()), spec.linux32() ? 1 : 0, commandAt);
    }

    /**
     * A terminal run starts the command through the root's own {@code setsid -c} (util-linux or
     * busybox): a new session whose controlling terminal is stdin, the pseudo-terminal. bwrap's
     * --new-session puts the sandbox's init in a session without a terminal, and only a session
     * leader can take one (TIOCSCTTY); the init is bwrap's code, so the step is the command's
     * own first exec. Without --new-session the sandbox would share bwrap's session and its
     * foreground group, where a typed Ctrl-C would kill bwrap itself (docs/architecture.md).
     */
    public static final List<String> TERMINAL_STEP = List.of("setsid", "-c", "--");

    /**
     * Parts of a root-run sandbox's /proc made read-only: Docker's read-only list, and acpi and
     * scsi, which Docker masks. As root the sandbox's uid 0, whatever uid it is given, is the
     * host's, and the kernel lets the host's uid 0 write a sysctl (core_pattern: a program the
     * kernel runs as root), an IRQ's affinity, ACPI wake-ups, the sysrq trigger or /proc/scsi/scsi
     * (which removes a disk) with no capability at all. bwrap covers some of these only
     * where its access(W_OK) says they are writable, which the directory /proc/sys never is, nor
     * /proc/irq for a uid other than 0 (a review found both). The host's own entries are bound:
     * what a sysctl shows follows the reader's namespaces, not the procfs it is read through.
     */
    static final List<String> PROC_READ_ONLY = List.of("sys", "sysrq-trigger", "irq", "bus", "fs", "acpi", "scsi");

    /** The links a /dev of the sandbox's own gets besides its devices (bwrap's --dev makes these among others): shells' <(...) need /dev/fd. */
    static final List<String[]> DEV_LINKS = List.of(new String[] {"/proc/self/fd", "fd"}, new String[] {"/proc/self/fd/0", "stdin"},
            new String[] {"/proc/self/fd/1", "stdout"}, new String[] {"/proc/self/fd/2", "stderr"});

    /** A full /dev of bwrap's making: asked for, or a terminal run (whose /dev/console is its terminal). */
    static boolean fullDev(RunSpec spec) {
        return spec.interactive() || spec.terminal() != null;
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
        env.forEach((name, value) -> { if (!actsOnBwrap(name)) entries.add(name + "=" + value); });
        return entries;
    }

    /**
     * What glibc removes from a set-user-ID program's environment (its UNSECURE_ENVVARS: what
     * makes a trusted program load or read files of the caller's choosing), every {@code LD_}
     * variable (musl's loader reads some too), malloc's tunables ({@code MALLOC_*}) and the locale
     * ({@code LANG}, {@code LANGUAGE}, {@code LC_*}: linux32's setarch reads locale files by them).
     * bwrap and setarch run on the host before the sandbox exists, not set-user-ID: they would obey them.
     */
    private static final java.util.Set<String> ACTS_ON_THE_LOADER = java.util.Set.of("GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES",
            "HOSTALIASES", "LOCALDOMAIN", "LOCPATH", "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TMPDIR", "TZDIR",
            "LANG", "LANGUAGE");

    static boolean actsOnBwrap(String name) {
        return name.startsWith("LD_") || name.startsWith("MALLOC_") || name.startsWith("LC_") || ACTS_ON_THE_LOADER.contains(name);
    }

    private static void add(List<String> argv, String... words) {
        for (String word : words) argv.add(word);
    }

    /** Paths (relative to the root) that bwrap may create there for this run, parents first, with the destinations as given (tests; a run's lease uses its placed ones). */
    public static List<String> createdPaths(RunSpec spec) {
        return createdPaths(spec, Places.asGiven(spec));
    }

    /**
     * The same for destinations placed in the root ({@link MountPoints}): where bwrap really creates
     * them. A mount target below an earlier mount is not made in the root: see {@link #createdInMountSources}.
     */
    public static List<String> createdPaths(RunSpec spec, Places places) {
        List<String> paths = new ArrayList<>();
        addWithParents(paths, places.dev());
        if (!fullDev(spec)) {
            for (String device : places.devices()) addWithParents(paths, device);
            if (places.shm() != null) addWithParents(paths, places.shm());
        }
        addWithParents(paths, places.tmp());
        addWithParents(paths, places.proc());
        for (int i = 0; i < places.mounts().size(); i++) if (madeIn(places, i) == IN_THE_ROOT) addWithParents(paths, places.mounts().get(i));
        return paths;
    }

    /**
     * For each mount, what bwrap may create in its source (relative to it, parents first): the
     * missing directories of a later mount's target below it, which bwrap makes through the
     * earlier mount, in that source ({@code /a} from S and {@code /a/b/c}: S/b, S/b/c); through a
     * read-only mount it makes none, but mounts on those another run's bwrap made.
     */
    public static List<List<String>> createdInMountSources(Places places) {
        List<List<String>> paths = new ArrayList<>();
        for (int j = 0; j < places.mounts().size(); j++) paths.add(new ArrayList<>());
        for (int i = 0; i < places.mounts().size(); i++) {
            int j = madeIn(places, i);
            if (j < 0) continue;
            String below = places.mounts().get(i).substring(places.mounts().get(j).length());
            if (!below.isEmpty()) addWithParents(paths.get(j), below);
        }
        return paths;
    }

    private static final int IN_THE_ROOT = -1, IN_A_TMPFS = -2;

    /**
     * Where bwrap makes mount {@code i}'s target and its missing parents: in the source of the
     * last earlier mount it lies at or below (its index), in a fresh tmpfs, or in the root, as
     * MountPoints layers them.
     */
    private static int madeIn(Places places, int i) {
        List<String> target = RootPaths.names(places.mounts().get(i)).orElseThrow();
        for (int j = i - 1; j >= 0; j--) if (MountPoints.isPrefix(RootPaths.names(places.mounts().get(j)).orElseThrow(), target)) return j;
        List<String> fresh = new ArrayList<>(places.hidden());
        if (places.shm() != null) fresh.add(places.shm());
        if (places.devOfItsOwn()) fresh.add(places.dev());
        fresh.add(places.tmp());
        for (String layer : fresh) if (MountPoints.isPrefix(RootPaths.names(layer).orElseThrow(), target)) return IN_A_TMPFS;
        return IN_THE_ROOT;
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
