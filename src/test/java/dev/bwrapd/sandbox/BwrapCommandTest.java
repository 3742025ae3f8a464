package dev.bwrapd.sandbox;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** bwrap's argv for every field of a run (docs/protocol.md, sandbox/run), without running anything. */
class BwrapCommandTest {
    /** The argv of a spec whose root is a real path already and whose destinations need no placing. */
    private static BwrapCommand.Invocation argvOf(RunSpec spec, HostCapabilities host) {
        return BwrapCommand.of(spec, host, BwrapCommand.Places.asGiven(spec), spec.root());
    }

    static final String BWRAP = "/opt/test/bin/bwrap";
    static final String LINUX32 = "/opt/test/bin/linux32";
    static final HostCapabilities FULL = new HostCapabilities(BWRAP, "0.8.0", true, true, true, true, LINUX32);

    static final HostCapabilities PRIVILEGED_NO_USERNS =
            new HostCapabilities(BWRAP, "0.8.0", false, true, true, true, LINUX32, true, -1L, true);

    /** Capabilities a uid-0 sandbox must never hold by default: each undoes part of the sandbox. */
    @Test
    void rootDefaultHoldsNothingThatUndoesTheSandbox() {
        for (String dangerous : List.of("CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_PTRACE", "CAP_SYS_RAWIO", "CAP_NET_ADMIN",
                "CAP_SYS_BOOT", "CAP_MKNOD", "CAP_SYS_CHROOT", "CAP_DAC_READ_SEARCH", "CAP_NET_RAW")) {
            assertFalse(argvOf(spec(s -> {}), FULL).argv().contains(dangerous), dangerous);
            assertFalse(Capabilities.ROOT_DEFAULT.contains(dangerous), dangerous);
        }
    }

    /** A run hands bwrap the descriptors bwrapd checked, never a path it would resolve again. */
    @Test
    void withDescriptorsNoHostPathReachesBwrap() {
        RunSpec spec = spec(s -> {
            s.devices = List.of("/dev/null", "/dev/zero");
            s.mounts = List.of(new RunSpec.Mount("/proc/self/fd/0", "/h", false), new RunSpec.Mount("/srv/ro", "/r", true));
        });
        List<String> argv = BwrapCommand.of(spec, FULL, new BwrapCommand.Descriptors(4, false, List.of(5, 6), List.of(7, 8)),
                BwrapCommand.Places.asGiven(spec)).argv();
        List<String> options = argv.subList(0, argv.indexOf("--"));
        assertTrue(Collections.indexOfSubList(options, List.of("--bind-fd", "4", "/")) >= 0, argv::toString);
        assertTrue(Collections.indexOfSubList(options, List.of("--dev-bind", "/proc/self/fd/7", "/dev/null",
                "--dev-bind", "/proc/self/fd/8", "/dev/zero")) >= 0, argv::toString);
        assertTrue(Collections.indexOfSubList(options, List.of("--bind-fd", "5", "/h", "--ro-bind-fd", "6", "/r")) >= 0, argv::toString);
        for (String hostPath : List.of("/srv/root", "/proc/self/fd/0", "/srv/ro")) assertFalse(options.contains(hostPath), hostPath);

        RunSpec bare = spec(s -> s.devices = List.of());
        List<String> hostRoot = BwrapCommand.of(bare, FULL, new BwrapCommand.Descriptors(3, true, List.of(), List.of()),
                BwrapCommand.Places.asGiven(bare)).argv();
        assertTrue(Collections.indexOfSubList(hostRoot, List.of("--ro-bind-fd", "3", "/")) >= 0, hostRoot::toString);
    }

    @Test
    void hiddenPathsAreEmptyTmpfsBeforeTheMountsAndReadOnlyAfterThem() {
        List<String> argv = argvOf(spec(s -> {
            s.root = RunSpec.HOST_ROOT;
            s.hidden = List.of("/run", "/worker");
            s.mounts = List.of(new RunSpec.Mount("/worker/build/1/root", "/worker/build/1/root", false));
        }), FULL).argv();
        int tmpfs = Collections.indexOfSubList(argv, List.of("--tmpfs", "/run", "--tmpfs", "/worker"));
        int mount = Collections.indexOfSubList(argv, List.of("--bind", "/worker/build/1/root", "/worker/build/1/root"));
        int readOnly = Collections.indexOfSubList(argv, List.of("--remount-ro", "/run", "--remount-ro", "/worker"));
        assertTrue(tmpfs > 0 && tmpfs < mount && mount < readOnly, argv::toString);
        assertThrows(IllegalArgumentException.class, () -> spec(s -> s.hidden = List.of("/run")), "only with the host root");
    }

    /** Where a tree shows bwrapd's root journal: an empty tmpfs after every mount (over what they brought), read-only. */
    @Test
    void theJournalIsAnEmptyReadOnlyTmpfsAfterTheMounts() {
        RunSpec spec = spec(s -> s.mounts = List.of(new RunSpec.Mount("/tmp", "/state", false)));
        BwrapCommand.Places given = BwrapCommand.Places.asGiven(spec);
        BwrapCommand.Places places = new BwrapCommand.Places(given.proc(), given.tmp(), given.dev(), given.devOfItsOwn(), given.shm(),
                given.devices(), given.mounts(), given.hidden(), List.of("/state/bwrapd-0"));
        List<String> argv = BwrapCommand.of(spec, FULL, places, Path.of("/srv/root")).argv();
        int mount = Collections.indexOfSubList(argv, List.of("--bind", "/tmp", "/state"));
        int tmpfs = Collections.indexOfSubList(argv, List.of("--tmpfs", "/state/bwrapd-0"));
        int readOnly = Collections.indexOfSubList(argv, List.of("--remount-ro", "/state/bwrapd-0"));
        assertTrue(mount > 0 && mount < tmpfs && tmpfs < readOnly, argv::toString);
    }

    /** On the host's root /dev is a tmpfs of the sandbox's own, its devices and the usual links bound into it; elsewhere the root's. */
    @Test
    void theHostRootGetsADevOfItsOwn() {
        List<String> argv = argvOf(spec(s -> s.root = RunSpec.HOST_ROOT), FULL).argv();
        int tmpfs = Collections.indexOfSubList(argv, List.of("--tmpfs", "/dev"));
        int fd = Collections.indexOfSubList(argv, List.of("--symlink", "/proc/self/fd", "/dev/fd"));
        int stdin = Collections.indexOfSubList(argv, List.of("--symlink", "/proc/self/fd/0", "/dev/stdin"));
        int device = Collections.indexOfSubList(argv, List.of("--dev-bind", "/dev/null", "/dev/null"));
        assertTrue(tmpfs > 0 && tmpfs < fd && fd < stdin && stdin < device, argv::toString);
        assertFalse(argvOf(spec(s -> {}), FULL).argv().contains("--symlink"), "a root of its own keeps its /dev");
        List<String> mountedAtFd = argvOf(spec(s -> {
            s.root = RunSpec.HOST_ROOT;
            s.mounts = List.of(new RunSpec.Mount("/srv/fds", "/dev/fd", true));
        }), FULL).argv();
        assertFalse(mountedAtFd.contains("/proc/self/fd"), "no link where a mount lands (bwrap would follow it): " + mountedAtFd);
        assertTrue(mountedAtFd.contains("/dev/stdin"), mountedAtFd::toString);
        List<String> interactive = argvOf(spec(s -> { s.root = RunSpec.HOST_ROOT; s.interactive = true; }), FULL).argv();
        assertTrue(Collections.indexOfSubList(interactive, List.of("--dev", "/dev")) > 0 && !interactive.contains("--symlink"), interactive::toString);
    }

    /** The host daemons' sockets are never a host-rooted sandbox's: /run always, whatever the request hides. */
    @Test
    void theHostRootNeverShowsRun() {
        List<String> bare = argvOf(spec(s -> s.root = RunSpec.HOST_ROOT), FULL).argv();
        assertTrue(Collections.indexOfSubList(bare, List.of("--tmpfs", "/run")) > 0 && Collections.indexOfSubList(bare, List.of("--remount-ro", "/run")) > 0, bare::toString);
        assertFalse(argvOf(spec(s -> {}), FULL).argv().contains("/run"), "a root of its own has its own /run");
        List<String> merged = MountPoints.hiddenOfTheHostRoot(List.of("/worker", "/run/bwrapd", "/run"));
        assertEquals("/run", merged.getFirst());
        assertTrue(merged.contains("/worker") && !merged.contains("/run/bwrapd"), "beneath /run: dropped " + merged);
        assertEquals(java.nio.file.Files.isDirectory(Path.of("/var/run"), java.nio.file.LinkOption.NOFOLLOW_LINKS), merged.contains("/var/run"), merged::toString);
    }

    @Test
    void withoutRootCapabilitiesARootSandboxGetsOnlyWhatItNames() {
        HostCapabilities root = new HostCapabilities(BWRAP, "0.8.0", false, true, true, true, LINUX32, true, -1L, true);
        List<String> none = argvOf(spec(s -> s.rootCapabilities = false), root).argv();
        assertTrue(Collections.indexOfSubList(none, List.of("--cap-drop", "ALL")) > 0, none::toString);
        assertFalse(none.contains("--cap-add"), none::toString);
        List<String> named = argvOf(spec(s -> {
            s.rootCapabilities = false;
            s.capabilities = List.of("CAP_KILL");
        }), root).argv();
        assertEquals(1, Collections.frequency(named, "--cap-add"), named::toString);
        assertTrue(Collections.indexOfSubList(named, List.of("--cap-add", "CAP_KILL")) > 0, named::toString);
        assertTrue(argvOf(spec(s -> {}), root).argv().contains("CAP_DAC_OVERRIDE"), "sandbox/run keeps the root default");
    }

    @Test
    void grantableFollowsTheHost() {
        HostCapabilities rootWithChownOnly = new HostCapabilities(BWRAP, "0.8.0", true, true, true, true, LINUX32, true, 1L, false);
        assertTrue(Capabilities.grantable(rootWithChownOnly, "CAP_CHOWN"));
        assertFalse(Capabilities.grantable(rootWithChownOnly, "CAP_SYS_ADMIN"), "root cannot hand on what it lacks");
        assertTrue(Capabilities.grantable(FULL, "CAP_SYS_ADMIN"), "unprivileged with user namespaces: only inside its own");
        assertFalse(Capabilities.grantable(host(false, true, true), "CAP_CHOWN"), "setuid bwrap refuses --cap-add");
        assertEquals(List.of("CAP_CHOWN", "CAP_SYS_ADMIN"), Capabilities.names(Capabilities.parseMask("0000000000200001")));
        assertEquals(41, Capabilities.names(Capabilities.parseMask("000001ffffffffff")).size());
    }

    /** A mutable RunSpec with the protocol's defaults, for building test cases. */
    static final class Spec {
        List<String> command = List.of("sh", "-c", "true");
        Path root = Path.of("/srv/root");
        String cwd = "/";
        Map<String, String> env = Map.of("PATH", RunSpec.DEFAULT_PATH);
        boolean network, readOnlyRoot, inheritUid, devShm, linux32, interactive;
        String hostname = "sandbox";
        int uid, gid;
        List<RunSpec.Mount> mounts = List.of();
        List<String> devices = RunSpec.DEFAULT_DEVICES;
        List<String> capabilities = List.of();
        RunSpec.Terminal terminal;
        RunSpec.Seccomp seccomp;
        List<String> hidden = List.of();
        boolean rootCapabilities = true;

        RunSpec build() {
            return new RunSpec(command, root, null, cwd, env, network, readOnlyRoot, hostname, uid, gid, inheritUid,
                    mounts, devices, devShm, linux32, new RunSpec.Stdin.Null(), new RunSpec.Output.Capture(),
                    new RunSpec.Output.Capture(), 1 << 20, null, 2000, interactive, rootCapabilities, capabilities, terminal, seccomp, dev.bwrapd.cgroup.Limits.NONE, hidden, true);
        }
    }

    static RunSpec spec(Consumer<Spec> change) {
        Spec s = new Spec();
        change.accept(s);
        return s.build();
    }

    static HostCapabilities host(boolean userNs, boolean dieWithParent, boolean jsonStatus) {
        return new HostCapabilities(BWRAP, "0.8.0", userNs, dieWithParent, jsonStatus, true, LINUX32);
    }

    @Test
    void defaultArgvExactly() {
        BwrapCommand.Invocation inv = argvOf(spec(s -> {}), FULL);
        assertEquals(BWRAP, inv.executable());
        assertEquals(List.of(BWRAP,
                "--unshare-pid", "--die-with-parent", "--new-session", "--json-status-fd", "3", "--block-fd", "4", "--sync-fd", "5",
                "--bind", "/srv/root", "/",
                "--unshare-ipc", "--unshare-net", "--unshare-uts", "--hostname", "sandbox",
                "--chdir", "/",
                "--proc", "/proc", "--tmpfs", "/tmp",
                "--dev-bind", "/dev/full", "/dev/full", "--dev-bind", "/dev/null", "/dev/null",
                "--dev-bind", "/dev/urandom", "/dev/urandom", "--dev-bind", "/dev/random", "/dev/random",
                "--dev-bind", "/dev/zero", "/dev/zero",
                "--cap-drop", "ALL", "--cap-add", "CAP_CHOWN", "--cap-add", "CAP_DAC_OVERRIDE", "--cap-add", "CAP_FOWNER",
                "--cap-add", "CAP_FSETID", "--cap-add", "CAP_KILL", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETUID",
                "--cap-add", "CAP_SETPCAP", "--cap-add", "CAP_NET_BIND_SERVICE", "--cap-add", "CAP_SETFCAP",
                "--unshare-user", "--uid", "0", "--gid", "0",
                "--", "sh", "-c", "true"), inv.argv());
        assertEquals(List.of("PATH=" + RunSpec.DEFAULT_PATH), inv.environment());
    }

    /** One row: a name, the run, the host, words that must appear (in order, contiguous), words that must not. */
    record Row(String name, RunSpec spec, HostCapabilities host, List<List<String>> present, List<List<String>> absent) {
        @Override
        public String toString() {
            return name;
        }
    }

    static Row row(String name, Consumer<Spec> change, List<List<String>> present, List<List<String>> absent) {
        return new Row(name, spec(change), FULL, present, absent);
    }

    static Stream<Row> rows() {
        List<String> remount = List.of("--remount-ro", "/");
        return Stream.of(
                new Row("die-with-parent only when available", spec(s -> {}), host(true, false, true),
                        List.of(List.of("--unshare-pid", "--new-session")), List.of(List.of("--die-with-parent"))),
                new Row("json-status-fd only when available", spec(s -> {}), host(true, true, false),
                        List.of(List.of("--new-session")), List.of(List.of("--json-status-fd"))),
                row("host root is bound read-only", s -> s.root = Path.of("/"),
                        List.of(List.of("--ro-bind", "/", "/")), List.of(List.of("--bind", "/", "/"), List.of("--dev-bind", "/", "/"))),
                row("another root is bound read-write", s -> s.root = Path.of("/var/lib/roots/a"),
                        List.of(List.of("--bind", "/var/lib/roots/a", "/")), List.of(List.of("--ro-bind", "/var/lib/roots/a", "/"))),
                row("network shares net and uts, never ipc (as root, the host's root-owned objects)", s -> s.network = true,
                        List.of(List.of("--unshare-ipc")), List.of(List.of("--unshare-net"), List.of("--unshare-uts"), List.of("--hostname"))),
                row("no network unshares net, uts, ipc", s -> s.network = false,
                        List.of(List.of("--unshare-net"), List.of("--unshare-uts", "--hostname", "sandbox"), List.of("--unshare-ipc")), List.of()),
                row("hostname", s -> s.hostname = "builder-7",
                        List.of(List.of("--unshare-uts", "--hostname", "builder-7")), List.of(List.of("sandbox"))),
                row("cwd", s -> s.cwd = "/build/src dir",
                        List.of(List.of("--chdir", "/build/src dir")), List.of(List.of("--chdir", "/"))),
                row("proc and tmp", s -> {},
                        List.of(List.of("--proc", "/proc"), List.of("--tmpfs", "/tmp")), List.of()),
                row("custom devices", s -> s.devices = List.of("/dev/null", "/dev/fuse"),
                        List.of(List.of("--dev-bind", "/dev/null", "/dev/null", "--dev-bind", "/dev/fuse", "/dev/fuse")),
                        List.of(List.of("--dev-bind", "/dev/zero", "/dev/zero"), List.of("--dev", "/dev"))),
                row("no devices", s -> s.devices = List.of(),
                        List.of(), List.of(List.of("--dev-bind"), List.of("--dev"))),
                row("interactive gives a full /dev", s -> { s.interactive = true; s.devShm = true; },
                        List.of(List.of("--dev", "/dev")), List.of(List.of("--dev-bind"), List.of("--tmpfs", "/dev/shm"))),
                row("devShm", s -> s.devShm = true,
                        List.of(List.of("--dev-bind", "/dev/zero", "/dev/zero", "--tmpfs", "/dev/shm")), List.of()),
                row("no devShm", s -> s.devShm = false, List.of(), List.of(List.of("--tmpfs", "/dev/shm"))),
                row("mounts in order, ro and rw", s -> s.mounts = List.of(
                                new RunSpec.Mount("/src", "/a", true), new RunSpec.Mount("/out", "/a/b/c", false),
                                new RunSpec.Mount("/x", "/d", true)),
                        List.of(List.of("--ro-bind", "/src", "/a", "--bind", "/out", "/a/b/c", "--ro-bind", "/x", "/d")), List.of()),
                row("readOnlyRoot", s -> { s.readOnlyRoot = true; s.mounts = List.of(new RunSpec.Mount("/out", "/out", false)); },
                        List.of(List.of("--bind", "/out", "/out", "--remount-ro", "/")), List.of()),
                row("not readOnlyRoot", s -> s.readOnlyRoot = false, List.of(), List.of(remount)),
                row("uid and gid", s -> { s.uid = 1000; s.gid = 100; },
                        List.of(List.of("--unshare-user", "--uid", "1000", "--gid", "100", "--")), List.of()),
                row("ids above 2^31 are unsigned", s -> { s.uid = (int) 3_000_000_000L; s.gid = (int) 4_294_967_294L; },
                        List.of(List.of("--uid", "3000000000", "--gid", "4294967294")), List.of()),
                row("inheritUid", s -> { s.inheritUid = true; s.uid = 1000; s.gid = 100; },
                        List.of(List.of("--unshare-user", "--")), List.of(List.of("--uid"), List.of("--gid"))),
                new Row("no user namespaces: no ids", spec(s -> { s.uid = 1000; s.gid = 100; }), host(false, true, true),
                        List.of(), List.of(List.of("--unshare-user"), List.of("--uid"), List.of("--gid"))),
                row("a non-root sandbox user gets no capability", s -> s.uid = 1000,
                        List.of(List.of("--cap-drop", "ALL", "--unshare-user")), List.of(List.of("--cap-add"))),
                row("requested capabilities come on top of the root default", s -> s.capabilities = List.of("CAP_NET_RAW"),
                        List.of(List.of("--cap-add", "CAP_SETFCAP", "--cap-add", "CAP_NET_RAW", "--unshare-user")), List.of()),
                row("requested capabilities for a non-root user", s -> { s.uid = 1000; s.capabilities = List.of("CAP_SYS_PTRACE"); },
                        List.of(List.of("--cap-drop", "ALL", "--cap-add", "CAP_SYS_PTRACE", "--unshare-user")), List.of()),
                new Row("as root without user namespaces: root's own uid is the sandbox's", spec(s -> s.uid = 1000), PRIVILEGED_NO_USERNS,
                        List.of(List.of("--cap-drop", "ALL", "--cap-add", "CAP_CHOWN")), List.of(List.of("--unshare-user"))),
                new Row("unprivileged without user namespaces (setuid bwrap): no capability options", spec(s -> {}), host(false, true, true),
                        List.of(), List.of(List.of("--cap-drop"), List.of("--cap-add"))),
                row("command words that look like options stay after --", s -> s.command = List.of("--help", "--bind", "/", "/"),
                        List.of(List.of("--", "--help", "--bind", "/", "/")), List.of()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("rows")
    void argv(Row row) {
        List<String> argv = argvOf(row.spec(), row.host()).argv();
        List<String> options = argv.subList(0, argv.indexOf("--"));
        for (List<String> words : row.present()) {
            assertTrue(Collections.indexOfSubList(argv, words) >= 0, () -> words + " missing from " + argv);
        }
        for (List<String> words : row.absent()) {
            assertTrue(Collections.indexOfSubList(options, words) < 0, () -> words + " must not be in " + argv);
        }
        // Always: the command is everything after the first "--", unchanged, and "--" comes last among the options.
        assertEquals(row.spec().command(), argv.subList(argv.indexOf("--") + 1, argv.size()));
    }

    @Test
    void mountsComeAfterRootProcTmpAndDevicesAndReadOnlyRemountAfterEveryMount() {
        RunSpec spec = spec(s -> {
            s.readOnlyRoot = true;
            s.devShm = true;
            s.mounts = List.of(new RunSpec.Mount("/src", "/a", true), new RunSpec.Mount("/out", "/b", false));
        });
        List<String> argv = argvOf(spec, FULL).argv();
        int root = argv.indexOf("--bind");
        int proc = argv.indexOf("--proc");
        int tmp = Collections.indexOfSubList(argv, List.of("--tmpfs", "/tmp"));
        int lastDevice = Collections.lastIndexOfSubList(argv, List.of("--dev-bind", "/dev/zero", "/dev/zero"));
        int shm = Collections.indexOfSubList(argv, List.of("--tmpfs", "/dev/shm"));
        int firstMount = Collections.indexOfSubList(argv, List.of("--ro-bind", "/src", "/a"));
        int lastMount = Collections.indexOfSubList(argv, List.of("--bind", "/out", "/b"));
        int remount = Collections.indexOfSubList(argv, List.of("--remount-ro", "/"));
        int userNs = argv.indexOf("--unshare-user");
        assertTrue(argv.indexOf("--unshare-pid") < root, argv::toString);
        assertTrue(root < proc && proc < tmp && tmp < lastDevice && lastDevice < shm && shm < firstMount
                && firstMount < lastMount && lastMount < remount && remount < argv.indexOf("--"), argv::toString);
        assertTrue(userNs > 0 && userNs < argv.indexOf("--"), argv::toString);
    }

    @Test
    void linux32WrapsBwrap() {
        BwrapCommand.Invocation inv = argvOf(spec(s -> s.linux32 = true), FULL);
        assertEquals(LINUX32, inv.executable());
        assertEquals(List.of(LINUX32, BWRAP, "--unshare-pid"), inv.argv().subList(0, 3));
        BwrapCommand.Invocation plain = argvOf(spec(s -> s.linux32 = false), FULL);
        assertEquals(BWRAP, plain.executable());
        assertFalse(plain.argv().contains(LINUX32));
    }

    @Test
    void environmentIsExactlyTheRequestedOne() {
        Map<String, String> env = new LinkedHashMap<>();
        env.put("PATH", "/bin");
        env.put("EMPTY", "");
        env.put("WITH_EQUALS", "a=b=c");
        env.put("UNICODE", "grüße ☃");
        BwrapCommand.Invocation inv = argvOf(spec(s -> s.env = env), FULL);
        assertEquals(List.of("PATH=/bin", "EMPTY=", "WITH_EQUALS=a=b=c", "UNICODE=grüße ☃"), inv.environment());
        assertFalse(inv.argv().contains("--setenv") || inv.argv().contains("--unsetenv") || inv.argv().contains("--clearenv"));
        assertEquals(List.of(), argvOf(spec(s -> s.env = Map.of()), FULL).environment());
    }

    @Test
    void whatTheLoaderActsOnReachesTheCommandThroughBwrapsSetenvNotBwrapsEnvironment() {
        Map<String, String> env = new LinkedHashMap<>();
        env.put("PATH", "/bin");
        env.put("LD_PRELOAD", "/tmp/evil.so");
        env.put("LD_LIBRARY_PATH", "/lib");
        env.put("GLIBC_TUNABLES", "glibc.malloc.check=3");
        env.put("TMPDIR", "/tmp");
        BwrapCommand.Invocation inv = argvOf(spec(s -> s.env = env), FULL);
        assertEquals(List.of("PATH=/bin"), inv.environment());
        List<String> options = inv.argv().subList(0, inv.commandAt());
        for (String name : List.of("LD_PRELOAD", "LD_LIBRARY_PATH", "GLIBC_TUNABLES", "TMPDIR")) {
            int at = options.indexOf(name);
            assertTrue(at > 0 && options.get(at - 1).equals("--setenv") && options.get(at + 1).equals(env.get(name)), name + ": " + options);
        }
        assertEquals("--", options.getLast());
    }

    /**
     * Counted as the command's exec holds it, NAME=value with its NUL, as any variable is (review
     * finding: the value alone was counted, and one that fit alone but not with its name was
     * accepted, then failed in bwrap's exec of the command as setup-failed).
     */
    @Test
    void aSetenvValueIsCountedWithItsNameAsTheVariable() throws Exception {
        int fits = BwrapCommand.MAX_ARG_STRLEN - "LD_BIG=".length() - 1;
        argvOf(spec(s -> s.env = Map.of("LD_BIG", "x".repeat(fits))), FULL).checkExecSize();
        for (String value : List.of("x".repeat(fits + 1), "x".repeat(BwrapCommand.MAX_ARG_STRLEN))) {
            BwrapCommand.Invocation inv = argvOf(spec(s -> s.env = Map.of("LD_BIG", value)), FULL);
            SandboxException.Invalid e = assertThrows(SandboxException.Invalid.class, inv::checkExecSize);
            assertTrue(e.getMessage().startsWith("env.LD_BIG: " + (value.length() + "LD_BIG=".length() + 1) + " bytes with its NUL and NAME="),
                    e.getMessage());
        }
    }

    @Test
    void theLocaleAndMallocsTunablesAreKeptFromBwrapToo() {
        for (String name : List.of("LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "MALLOC_ARENA_MAX", "MALLOC_PERTURB_", "LD_AUDIT", "NLSPATH")) {
            assertTrue(BwrapCommand.actsOnBwrap(name), name);
        }
        for (String name : List.of("PATH", "HOME", "TERM", "LDFLAGS", "CC", "MAKEFLAGS", "LCOV")) assertFalse(BwrapCommand.actsOnBwrap(name), name);
    }

    // ----- createdPaths -----

    static Stream<Arguments> createdPathCases() {
        return Stream.of(
                Arguments.of("defaults", spec(s -> {}),
                        List.of("dev", "dev/full", "dev/null", "dev/urandom", "dev/random", "dev/zero", "tmp", "proc")),
                Arguments.of("devShm", spec(s -> s.devShm = true),
                        List.of("dev", "dev/full", "dev/null", "dev/urandom", "dev/random", "dev/zero", "dev/shm", "tmp", "proc")),
                Arguments.of("interactive: bwrap's own /dev", spec(s -> { s.interactive = true; s.devShm = true; }),
                        List.of("dev", "tmp", "proc")),
                Arguments.of("no devices", spec(s -> s.devices = List.of()), List.of("dev", "tmp", "proc")),
                Arguments.of("nested device", spec(s -> s.devices = List.of("/dev/input/event0", "/dev/input/event1")),
                        List.of("dev", "dev/input", "dev/input/event0", "dev/input/event1", "tmp", "proc")),
                Arguments.of("nested mount targets share parents", spec(s -> {
                            s.devices = List.of();
                            s.mounts = List.of(new RunSpec.Mount("/s", "/a/b/c", false), new RunSpec.Mount("/s", "/a/d", true),
                                    new RunSpec.Mount("/s", "/e", true));
                        }),
                        List.of("dev", "tmp", "proc", "a", "a/b", "a/b/c", "a/d", "e")),
                Arguments.of("mount under /dev", spec(s -> {
                            s.devices = List.of("/dev/null");
                            s.mounts = List.of(new RunSpec.Mount("/s", "/dev/null", true), new RunSpec.Mount("/s", "/dev/dri/card0", false));
                        }),
                        List.of("dev", "dev/null", "tmp", "proc", "dev/dri", "dev/dri/card0")));
    }

    /** A target below an earlier mount is made in that mount's source (relative to it), one in /tmp in a tmpfs: neither in the root. */
    @Test
    void aTargetBelowAnEarlierMountIsMadeInItsSource() {
        RunSpec spec = spec(s -> {
            s.devices = List.of();
            s.mounts = List.of(new RunSpec.Mount("/s", "/a", false), new RunSpec.Mount("/s", "/a/b/c", true),
                    new RunSpec.Mount("/s", "/a/b/c/d/e", true), new RunSpec.Mount("/s", "/tmp/t", true), new RunSpec.Mount("/s", "/ab", true));
        });
        BwrapCommand.Places places = BwrapCommand.Places.asGiven(spec);
        assertEquals(List.of("dev", "tmp", "proc", "a", "ab"), BwrapCommand.createdPaths(spec, places));
        assertEquals(List.of(List.of("b", "b/c"), List.of("d", "d/e"), List.of(), List.of(), List.of()),
                BwrapCommand.createdInMountSources(places));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("createdPathCases")
    void createdPaths(String name, RunSpec spec, List<String> expected) {
        List<String> paths = BwrapCommand.createdPaths(spec);
        assertEquals(expected, paths);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("createdPathCases")
    void createdPathsAreRelativeUniqueAndParentsFirst(String name, RunSpec spec, List<String> expected) {
        List<String> paths = BwrapCommand.createdPaths(spec);
        assertEquals(paths.size(), new HashSet<>(paths).size(), () -> "duplicates in " + paths);
        for (int i = 0; i < paths.size(); i++) {
            String path = paths.get(i);
            if (path.startsWith("/") || path.isEmpty() || path.endsWith("/")) fail("not a clean relative path: " + path);
            List<String> parents = new ArrayList<>();
            for (int slash = path.indexOf('/'); slash > 0; slash = path.indexOf('/', slash + 1)) parents.add(path.substring(0, slash));
            for (String parent : parents) {
                int at = paths.indexOf(parent);
                assertTrue(at >= 0 && at < i, () -> parent + " must be listed before " + path + " in " + paths);
            }
        }
    }

    @Test
    void aTerminalRunHasAFullDevAndStartsThroughSetsid() {
        List<String> argv = argvOf(spec(s -> s.terminal = new RunSpec.Terminal(24, 80, "xterm")), FULL).argv();
        assertTrue(java.util.Collections.indexOfSubList(argv, List.of("--dev", "/dev")) > 0, argv::toString);
        assertFalse(argv.contains("--dev-bind"), argv::toString);
        assertEquals(List.of("--", "setsid", "-c", "--", "sh", "-c", "true"), argv.subList(argv.size() - 7, argv.size()));
        assertTrue(argv.contains("--new-session"), "the init keeps its own session");
    }

    @Test
    void aFilterIsReadFromTheDescriptorAfterTheStatusAndHoldPipes() {
        List<String> withStatus = argvOf(spec(s -> s.seccomp = RunSpec.Seccomp.DEFAULT), FULL).argv();
        assertTrue(java.util.Collections.indexOfSubList(withStatus, List.of("--seccomp", "6")) > 0, withStatus::toString);
        assertTrue(withStatus.contains("--disable-userns"), withStatus::toString);
        assertTrue(withStatus.indexOf("--disable-userns") < withStatus.indexOf("--"), "an option, before the command");
        List<String> withoutStatus = argvOf(spec(s -> s.seccomp = RunSpec.Seccomp.DEFAULT), host(true, true, false)).argv();
        assertTrue(java.util.Collections.indexOfSubList(withoutStatus, List.of("--seccomp", "3")) > 0, withoutStatus::toString);
        List<String> noUserNs = argvOf(spec(s -> s.seccomp = RunSpec.Seccomp.DEFAULT), host(false, true, true)).argv();
        assertFalse(noUserNs.contains("--disable-userns"), "bwrap needs --unshare-user for it");
        List<String> denyList = argvOf(spec(s -> s.seccomp = new RunSpec.Seccomp(List.of("getpid"), 1)), FULL).argv();
        assertFalse(denyList.contains("--disable-userns"), "a deny list denies exactly its entries");
        assertFalse(argvOf(spec(s -> {}), FULL).argv().contains("--seccomp"));
    }

    /** As root, whatever the uid: /proc/sys and the rest of Docker's read-only list over bwrap's /proc, after it. */
    @Test
    void aRootRunSandboxsProcIsReadOnlyWhereTheHostsUidZeroCouldWrite() {
        for (RunSpec spec : List.of(spec(s -> {}), spec(s -> { s.uid = 1000; s.gid = 1000; }), spec(s -> s.inheritUid = true))) {
            List<String> argv = argvOf(spec, PRIVILEGED_NO_USERNS).argv();
            int proc = java.util.Collections.indexOfSubList(argv, List.of("--proc", "/proc"));
            for (String part : List.of("sys", "sysrq-trigger", "irq", "bus", "fs", "acpi", "scsi")) {
                int cover = java.util.Collections.indexOfSubList(argv, List.of("--ro-bind-try", "/proc/" + part, "/proc/" + part));
                assertTrue(proc >= 0 && cover > proc, part + ": " + argv);
            }
            assertFalse(argvOf(spec, FULL).argv().contains("--ro-bind-try"), "unprivileged: its uid 0 is its user, who may write none of it");
        }
    }

    /**
     * As root on a host with cgroup v1 hierarchies a command's own user namespace could mount them
     * (HostCapabilities.nestedUserNamespaces): every sandbox gets --disable-userns there, and only there.
     */
    @Test
    void rootOnAHostWithCgroupV1TakesNestedUserNamespacesAway() {
        java.util.function.BiFunction<Boolean, Boolean, HostCapabilities> root = (userNs, v1) ->
                new HostCapabilities(BWRAP, "0.8.0", userNs, true, true, true, LINUX32, true, -1L, v1);
        for (RunSpec spec : List.of(spec(s -> {}), spec(s -> { s.uid = 1000; s.gid = 1000; }), spec(s -> s.inheritUid = true))) {
            List<String> argv = argvOf(spec, root.apply(true, true)).argv();
            assertTrue(argv.contains("--disable-userns") && argv.indexOf("--disable-userns") < argv.indexOf("--"), argv::toString);
            assertFalse(root.apply(true, true).nestedUserNamespaces());
            assertFalse(argvOf(spec, root.apply(true, false)).argv().contains("--disable-userns"), "pure v2: nothing to reach");
            assertFalse(argvOf(spec, root.apply(false, true)).argv().contains("--disable-userns"), "bwrap needs --unshare-user for it");
            HostCapabilities unprivilegedOnV1 = new HostCapabilities(BWRAP, "0.8.0", true, true, true, true, LINUX32, false, 0, true);
            assertFalse(argvOf(spec, unprivilegedOnV1).argv().contains("--disable-userns"), "its namespaces map to its own user");
            assertTrue(unprivilegedOnV1.nestedUserNamespaces());
        }
        List<String> both = argvOf(spec(s -> s.seccomp = RunSpec.Seccomp.DEFAULT), root.apply(true, true)).argv();
        assertEquals(1, both.stream().filter("--disable-userns"::equals).count(), both::toString);
    }

    /** An argv that is all bwrap's: no string of it is named as the command's. */
    private static BwrapCommand.Invocation allBwraps(List<String> argv, List<String> env) {
        return new BwrapCommand.Invocation("/usr/bin/bwrap", argv, env, 0, argv.size());
    }

    /** Strings, their NULs and their pointers, in bytes (UTF-8): up to ARG_MAX passes, over it is refused naming the limit. */
    @Test
    void anArgvOverArgMaxIsRefused() throws SandboxException {
        List<String> env = java.util.Collections.nCopies(10, "A=" + "y".repeat(99_998)); // 100_000 bytes, NUL and pointer: 100_009 each
        List<String> argv = new java.util.ArrayList<>(java.util.Collections.nCopies(10, "x".repeat(100_000)));
        allBwraps(argv, env).checkExecSize();
        int left = BwrapCommand.ARG_MAX - 20 * 100_009 - 9; // one more string: its NUL and pointer
        argv.add("x".repeat(left - 2) + "é");
        allBwraps(argv, env).checkExecSize();
        argv.set(argv.size() - 1, "x".repeat(left - 1) + "é");
        SandboxException.Invalid tooMuch = assertThrows(SandboxException.Invalid.class,
                () -> allBwraps(argv, env).checkExecSize());
        assertTrue(tooMuch.getMessage().contains("(ARG_MAX)"), tooMuch.getMessage());
        assertTrue(tooMuch.getMessage().contains(Integer.toString(BwrapCommand.ARG_MAX + 1)), tooMuch.getMessage());
    }

    /**
     * One string over MAX_ARG_STRLEN (131072 bytes with its NUL; "NAME=" counts for env) is
     * refused naming its field, as is a command that would take bwrap's argc over its cap of 9000
     * (review finding: both showed as the host's fault, a failed spawn or a failed setup). This is
     * where sandbox/run and the Buildbarn runner both check them.
     */
    @Test
    void aStringOverMaxArgStrlenOrAnArgcOverBwrapsCapIsRefusedNamingTheField() throws SandboxException {
        String longest = "x".repeat(BwrapCommand.MAX_ARG_STRLEN - 1);
        argvOf(spec(s -> s.command = List.of("sh", longest)), FULL).checkExecSize();
        SandboxException.Invalid one = assertThrows(SandboxException.Invalid.class,
                () -> argvOf(spec(s -> s.command = List.of("sh", longest + "x")), FULL).checkExecSize());
        assertTrue(one.getMessage().startsWith("command[1]: 131073 bytes with its NUL, over the kernel's limit of 131072"), one.getMessage());
        SandboxException.Invalid terminal = assertThrows(SandboxException.Invalid.class, () -> argvOf(spec(s -> {
            s.command = List.of("sh", "é".repeat(BwrapCommand.MAX_ARG_STRLEN / 2));
            s.terminal = new RunSpec.Terminal(24, 80, "xterm");
        }), FULL).checkExecSize());
        assertTrue(terminal.getMessage().startsWith("command[1]: "), "named past the terminal step: " + terminal.getMessage());
        SandboxException.Invalid env = assertThrows(SandboxException.Invalid.class,
                () -> argvOf(spec(s -> s.env = Map.of("A", "y".repeat(BwrapCommand.MAX_ARG_STRLEN - 2))), FULL).checkExecSize());
        assertTrue(env.getMessage().startsWith("env.A: 131073 bytes with its NUL and NAME="), env.getMessage());

        int options = argvOf(spec(s -> s.command = List.of("true")), FULL).argv().size() - 1;
        List<String> most = new java.util.ArrayList<>(java.util.Collections.nCopies(BwrapCommand.MAX_BWRAP_ARGS - options, "a"));
        argvOf(spec(s -> s.command = most), FULL).checkExecSize();
        most.add("a");
        SandboxException.Invalid argc = assertThrows(SandboxException.Invalid.class, () -> argvOf(spec(s -> s.command = most), FULL).checkExecSize());
        assertTrue(argc.getMessage().contains("over bwrap's limit of 9000 arguments in all: this command may have at most "
                + (BwrapCommand.MAX_BWRAP_ARGS - options)), argc.getMessage());
        // linux32's argv[0] is not bwrap's.
        most.removeLast();
        argvOf(spec(s -> { s.command = most; s.linux32 = true; }), FULL).checkExecSize();
    }
}
