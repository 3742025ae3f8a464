package dev.bwrapd.sandbox;

import dev.bwrapd.cgroup.Limits;
import dev.bwrapd.cgroup.Rlimits;
import dev.bwrapd.cgroup.SandboxCgroup;
import dev.bwrapd.cleanup.CleanupReport;
import dev.bwrapd.cleanup.RootLeases;
import dev.bwrapd.process.ExitStatus;
import dev.bwrapd.process.Libc;
import dev.bwrapd.process.Reaper;
import dev.bwrapd.process.Signals;
import dev.bwrapd.process.Spawner;
import org.jboss.logging.Logger;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * One sandbox run, start to end, on the one platform thread that calls {@link #run()} (bwrap's
 * --die-with-parent watches the thread that spawned it, so that thread lives until the run ends).
 * The steps, in order, as in bubblewrap's own list of setup operations:
 * <ol>
 * <li>{@link #openHostPaths}, {@link #findCommand}: the host paths opened and checked, the command
 * inside the root;
 * <li>{@link #placeMounts}, {@link #buildCommand}: where bwrap mounts each destination, and its
 * argv, checked against the kernel's ARG_MAX and MAX_ARG_STRLEN and bwrap's argc cap before the run creates anything;
 * <li>{@link #requireCwd}: a cwd that must exist already, looked up;
 * <li>{@link #openStdio}: the command's files and pipes;
 * <li>{@link #leaseRoot}: the working directory, and what existed in the root before;
 * <li>{@link #planCgroup}: the names of the sandbox's cgroup, for the watchdog;
 * <li>{@link #spawn}: bwrap with its argv, environment and descriptors, its init held until it is
 * in the cgroup and has its rlimits ({@link #release});
 * <li>{@link #makeCgroup}: the cgroup, with its limits, made while bwrap sets the sandbox up;
 * <li>{@link #follow}: one poll loop over bwrap's status pipe, the output pipes, stdin, the
 * processes' pidfds and a wake-up pipe, with the timers as its timeout;
 * <li>{@link #await}: the exits and rusage, reaped on the run's thread once its pidfds said so;
 * <li>{@link #closeCgroup}: read the cgroup's usage, remove it (killing what is left, if anything is);
 * <li>{@link #cleanup}: what bwrap left in the root;
 * <li>{@link #outcome}: how it ended.
 * </ol>
 */
final class Run {
    private static final Logger LOG = Logger.getLogger(Run.class);
    private static final int CHUNK = 64 * 1024;
    /** What a pipe that poll reported writable takes without blocking. */
    private static final int PIPE_BUF = 4096;
    /** The first bytes of an output pipe are kept whatever it is for: bwrap writes its own message there. */
    private static final int HEAD = 4096;
    /**
     * How much of the end of an output file is read back for bwrap's message: a message quotes up
     * to two paths of PATH_MAX (4096) bytes, and its line must be read from its start.
     */
    private static final int FILE_TAIL = 16 * 1024;
    /**
     * Waiting for the init to fork the command, the loop looks when the hold pipe says the init has
     * passed its block (it then forks within microseconds), and after 1 ms, then twice as long
     * each time up to this: a loaded machine stretches the fork, and each look costs CPU. Until
     * the pipe says so it looks at this pace only, in case it never does.
     */
    private static final int COMMAND_POLL_MAX_MS = 8;
    /** Only should the init hang in its setup does sandbox/started stop waiting for the command. */
    private static final long COMMAND_WAIT_NANOS = 60_000_000_000L;

    // poll slots
    private static final int STATUS = 0, STDOUT = 1, STDERR = 2, STDIN = 3, BWRAP = 4, INIT = 5, WAKE = 6, HOLD = 7, SLOTS = 8;

    private final SandboxRunner runner;
    private final RootLeases leases;
    private final Spawner spawner;
    private final Reaper reaper;
    /** Where the seccomp filter is written (the captures' spool directory, a file system on disk where there is one). */
    private final Path spoolDirectory;
    /**
     * The request's spec, then (once the host is known) as this host runs it (SandboxRunner.asRunHere)
     * and as its host paths were opened (HostPaths.spec: the resolver's file on a networked host root).
     */
    private RunSpec spec;
    /** The directory the spec's relative host paths are resolved beneath (a descriptor), or -1. */
    private final int base;
    private final Sandbox sandbox;
    private final RunListener listener;
    private final long startNanos = System.nanoTime();

    /** Every descriptor this run opened and still owns; closed at the end whatever happens. */
    private final List<Integer> owned = new ArrayList<>();
    private final int[] fds = new int[SLOTS];
    private final short[] events = new short[SLOTS];
    private final short[] revents = new short[SLOTS];
    private int childStdin = -1, childStdout = -1, childStderr = -1;
    /** The file stderr goes to (stdout's when merged), read-only: where bwrap's own message lands ({@link #fileTail}). */
    private int messagesFile = -1;
    /** Where this run's bytes start in that file (its size when opened: more than 0 when appended to). */
    private long messagesFrom;
    private final Output stdout;
    private final Output stderr;
    /** The request's stdin bytes, produced as they are written; a chunk of them read but not yet all written. */
    private InputStream stdinData;
    private byte[] stdinChunk;
    private int stdinFrom, stdinTo;
    /** What goes to the command's stdin pipe or terminal (STDIN slot), or null. */
    private Input input;
    /** The pseudo-terminal's master of a terminal run (both the STDOUT and the STDIN slot), or -1. */
    private int terminal = -1;
    private boolean leased;
    /** Mount sources this run's bwrap may make directories in (indices of mounts), each leased as a root is: see {@link #leaseRoot}. */
    private final List<Integer> leasedSources = new ArrayList<>();
    /** The request's host paths, opened and checked once (root, mount sources, devices). */
    private HostPaths paths;
    private BwrapCommand.Places places;
    /** bwrap's executable, argv and environment ({@link #buildCommand}). */
    private BwrapCommand.Invocation invocation;

    private SandboxCgroup.Plan cgroupPlan;
    private SandboxCgroup cgroup;
    /** Our end of the pipe bwrap's init is held on (--block-fd), until {@link #release}; -1 when not held. */
    private int holdFd = -1;
    /** Why the held init could not be confined (it is killed, and the run reports a setup failure). */
    private String holdFailure;
    private SandboxCgroup.Usage cgroupUsage;
    private String cgroupLimitExceeded;
    /** When to look at the cgroup's CPU time again (cpuMs of the whole sandbox), or Long.MAX_VALUE. */
    private long cpuCheckAt = Long.MAX_VALUE;
    /** When the timeout ends the run (System.nanoTime; Long.MAX_VALUE: no timeout, or it has). */
    private long timeoutAt = Long.MAX_VALUE;
    /** The kill deadline whose kill was sent: once is enough. */
    private long graceEnded = Long.MIN_VALUE;
    /** {@link #keepTime}, for the listener to run while it waits. */
    private final Runnable whileWaiting = this::keepTime;
    /** The sandbox was killed at its cpuMs. */
    private boolean cpuExceeded;

    private Reaper.Child bwrap;
    /** Whether {@link #sandbox} knows bwrap's pid, so that its kill reaches bwrap's session. */
    private boolean bwrapKnown;
    private int initPid;
    private CompletableFuture<ExitStatus> initExit;
    private Integer exitCode;
    /** bwrap wrote an exit-code line (the command had been started), whatever its value. */
    private boolean exitReported;
    /** How the init itself ended, when this helper reaped it (null when bwrap did). */
    private ExitStatus initStatus;
    /** What the sandbox can write, for its stdio files (HostPaths.writableTrees): looked at once, when first needed. */
    private List<Libc.FileStat> writableTrees;
    private boolean bwrapEnded, initEnded, awaitingCommand, announced;
    /** bwrap's and the init's ends were seen on their pidfds (not assumed for want of one). */
    private boolean bwrapEndSeen, initEndSeen;
    private long commandWaitEnds;
    private int commandPollMs;
    private final StringBuilder statusText = new StringBuilder();
    /** What pipes are read into, then copied from: the run thread's, reused by every run it takes. */
    private byte[] chunk;
    private static final ThreadLocal<byte[]> CHUNKS = ThreadLocal.withInitial(() -> new byte[CHUNK]);

    Run(SandboxRunner runner, RootLeases leases, Spawner spawner, Reaper reaper, Capture.Store captures, RunSpec spec,
        int base, Sandbox sandbox, RunListener listener) {
        this.base = base;
        this.runner = runner;
        this.leases = leases;
        this.spawner = spawner;
        this.reaper = reaper;
        this.spec = spec;
        this.sandbox = sandbox;
        this.listener = listener;
        this.stdout = new Output(spec.stdout(), spec.terminal() != null ? RunListener.Stream.TERMINAL : RunListener.Stream.STDOUT,
                spec.captureLimitBytes(), captures);
        this.stderr = new Output(spec.stderr(), RunListener.Stream.STDERR, spec.captureLimitBytes(), captures);
        this.spoolDirectory = captures.spoolDirectory();
        Arrays.fill(fds, -1);
    }

    /** Runs every step and tells the listener how it ended. */
    void run() {
        chunk = CHUNKS.get();
        RunOutcome outcome = null;
        SandboxException failure = null;
        Throwable unexpected = null;
        try {
            HostCapabilities host = runner.host(spec);
            spec = SandboxRunner.asRunHere(spec);
            openHostPaths();
            SandboxRunner.refuseOnTheHostRoot(spec, host, paths.hostRoot());
            findCommand();
            placeMounts();
            buildCommand(host);
            if (!spec.createCwd()) requireCwd();
            openStdio();
            leaseRoot();
            planCgroup(host);
            spawn(host);
            makeCgroup(); // while bwrap sets the sandbox up: its init waits on the hold pipe until it is in
            follow();
            ExitStatus[] exits = await();
            closeCgroup(); // before usage is read: its figures come from the cgroup
            CleanupReport cleanup = cleanup();
            outcome = outcome(host, exits[0], exits[1], cleanup);
        } catch (SandboxException e) {
            failure = e;
        } catch (Libc.Error e) {
            failure = new SandboxException.Failed("cannot prepare the sandbox: " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            failure = new SandboxException.Failed("interrupted");
        } catch (RuntimeException | Error e) {
            // A bug, or the heap spent (OutOfMemoryError): the run is still answered (a waiter that
            // never hears holds what it holds for ever), and nothing of it runs on unwatched.
            unexpected = e;
            failure = new SandboxException.Failed("internal error: " + e);
            if (bwrap != null) {
                try {
                    if (bwrapKnown) sandbox.kill(Sandbox.Ending.TERMINATED);
                    else Libc.kill(-bwrap.pid(), Signals.SIGKILL); // spawned, not yet told: bwrap's session (unreaped, still its own), and the init through --die-with-parent
                } catch (Throwable again) {
                    // answered all the same; the watchdog holds what it was told
                }
            }
        } finally {
            closeCgroup();
            sandbox.finished();
            for (int fd : owned) Libc.close(fd);
            owned.clear();
            if (leased || !leasedSources.isEmpty()) cleanup();
            if (paths != null) paths.close();
        }
        if (outcome != null) {
            listener.finished(outcome);
        } else {
            stdout.discard(); // no answer will carry the captures
            stderr.discard();
            listener.failed(failure);
        }
        if (unexpected != null) LOG.errorf(unexpected, "sandbox %s: run failed", sandbox.id()); // once answered: logging allocates too
    }

    // ----- 1. resolve: the host's bwrap (the caller), the host paths, the command inside the root -----

    /** Every host path of the request opened once and checked on its descriptor (HostPaths); bwrap gets the descriptors. */
    private void openHostPaths() throws SandboxException {
        try {
            paths = HostPaths.open(spec, base, runner.devices());
            spec = paths.spec();
        } catch (HostPaths.Refused e) {
            throw e.asSandboxException();
        }
    }

    /** The command, looked up in the root bwrap will bind: through its descriptor. */
    private void findCommand() throws SandboxException {
        RootPaths.Tree root = RootPaths.Tree.of(paths.root());
        String command = spec.command().getFirst();
        if (!RootPaths.hasCommand(root, command, spec.cwd(), spec.env().get("PATH"))) {
            throw new SandboxException.CommandNotFound(command, spec.root().toString());
        }
        if (spec.terminal() != null && !RootPaths.hasCommand(root, BwrapCommand.TERMINAL_STEP.getFirst(), spec.cwd(), spec.env().get("PATH"))) {
            throw new SandboxException.Invalid("terminal: the root has no setsid (util-linux or busybox) on PATH, which gives the command its terminal");
        }
    }

    // ----- 2. the command's files and pipes -----

    private void openStdio() throws SandboxException, Libc.Error {
        if (spec.terminal() != null) {
            openTerminal();
            return;
        }
        switch (spec.stdin()) {
            case RunSpec.Stdin.Null n -> childStdin = own(Libc.open("/dev/null", Libc.O_RDONLY, 0));
            case RunSpec.Stdin.File f -> childStdin = own(open("stdin.file", f.path(), Libc.O_RDONLY));
            case RunSpec.Stdin.Text t -> stdinFrom(t.open());
            case RunSpec.Stdin.Base64 b -> stdinFrom(b.open());
            case RunSpec.Stdin.Stream s -> {
                input = sandbox.input();
                childStdin = inputPipe();
            }
        }
        // stdout "discard" goes to /dev/null, unless stderr is merged into it: then bwrap's own
        // message would be lost there, so it goes through a pipe that is drained like stderr's.
        boolean merged = spec.stderr() instanceof RunSpec.Output.IntoStdout;
        childStdout = outputFd(spec.stdout(), "stdout", STDOUT, !merged);
        if (spec.stdout() instanceof RunSpec.Output.File && spec.stderr() instanceof RunSpec.Output.File f) {
            // One file named twice (two spellings, two links) is one open file for both, as 2>&1 is
            // (two would each keep an offset of their own and write over each other's bytes), with
            // stdout's append: so stderr's is opened untruncated, and truncated only if it is another file.
            int err = own(open("stderr.file", f.path(), Libc.O_WRONLY | Libc.O_CREAT | (f.append() ? Libc.O_APPEND : 0)));
            if (Libc.stat(childStdout, "", Libc.AT_EMPTY_PATH).sameFile(Libc.stat(err, "", Libc.AT_EMPTY_PATH))) {
                childStderr = childStdout;
            } else {
                childStderr = f.append() ? err : own(Libc.open("/proc/self/fd/" + err, Libc.O_WRONLY | Libc.O_TRUNC, 0));
            }
        } else {
            childStderr = merged ? childStdout : outputFd(spec.stderr(), "stderr", STDERR, false);
        }
        if ((merged ? spec.stdout() : spec.stderr()) instanceof RunSpec.Output.File) {
            messagesFile = readerOf(childStderr);
            // Appended to, the file holds what earlier runs wrote, bwrap's old messages too: only this run's part is read back.
            if (messagesFile >= 0) messagesFrom = Libc.stat(messagesFile, "", Libc.AT_EMPTY_PATH).size();
        }
    }

    /**
     * A read-only descriptor of the file behind {@code fd} (the command's is write-only, and stays
     * so): bwrap's message is read back from it. Reopened through bwrapd's own descriptor, it is
     * the file that was checked whatever happened to its path since; -1 if it cannot be read.
     */
    private int readerOf(int fd) {
        try {
            return own(Libc.open("/proc/self/fd/" + fd, Libc.O_RDONLY | Libc.O_NONBLOCK, 0));
        } catch (Libc.Error e) {
            return -1;
        }
    }

    private void stdinFrom(InputStream data) throws Libc.Error {
        int[] pipe = pipe();
        childStdin = pipe[0];
        Libc.setNonBlocking(pipe[1]); // see inputPipe
        watch(STDIN, pipe[1], Libc.POLLOUT);
        stdinData = data;
        stdinChunk = new byte[PIPE_BUF];
    }

    /**
     * A pipe for the command's stdin: its read end; the write end is the STDIN slot, written as
     * input comes. bwrapd's end does not block: "writable" from poll does not promise room for a
     * page when the command, which holds the other end, can shrink the pipe (F_SETPIPE_SZ) in
     * between, and a run's thread blocked in write(2) would keep no timer. The command's end is
     * an open file of its own, and stays blocking.
     */
    private int inputPipe() throws Libc.Error {
        int[] pipe = pipe();
        Libc.setNonBlocking(pipe[1]);
        watch(STDIN, pipe[1], (short) 0);
        return pipe[0];
    }

    /**
     * A terminal run: a new pseudo-terminal, whose slave end is the command's stdin, stdout and
     * stderr (and, through the setsid step, its controlling terminal), and whose master bwrapd
     * reads (STDOUT slot: the "terminal" stream) and writes (STDIN slot: sandbox/input).
     */
    private void openTerminal() throws SandboxException, Libc.Error {
        terminal = own(Libc.openPtyMaster());
        int slave;
        try {
            slave = own(Libc.openPtySlave(terminal));
        } catch (Libc.Error e) {
            if (e.errno != Libc.ENODEV && e.errno != Libc.ENOENT) throw e;
            throw new SandboxException.Failed("terminal: the pseudo-terminal made through /dev/ptmx is not in the devpts mounted at "
                    + "/dev/pts (another instance is, or none), so its other end cannot be opened: " + e.getMessage());
        }
        sandbox.attachTerminal(terminal);
        childStdin = childStdout = childStderr = slave;
        watch(STDOUT, terminal, Libc.POLLIN);
        watch(STDIN, terminal, (short) 0);
        input = sandbox.input();
    }

    /** The descriptor a stream goes to; a pipe's read end joins the poll set. stderr "discard" still uses a pipe: bwrap's message may be on it. */
    private int outputFd(RunSpec.Output output, String field, int slot, boolean discardToDevNull) throws SandboxException, Libc.Error {
        return switch (output) {
            case RunSpec.Output.File f -> own(open(field + ".file", f.path(),
                    Libc.O_WRONLY | Libc.O_CREAT | (f.append() ? Libc.O_APPEND : Libc.O_TRUNC)));
            case RunSpec.Output.Discard d when discardToDevNull -> own(Libc.open("/dev/null", Libc.O_WRONLY, 0));
            default -> {
                int[] pipe = pipe();
                watch(slot, pipe[0], Libc.POLLIN);
                yield pipe[1];
            }
        };
    }

    private int open(String field, String path, int flags) throws SandboxException {
        try {
            if (writableTrees == null) writableTrees = paths.writableTrees(); // once a run, for up to three files
            return HostPaths.openStdio(base, field, path, flags, writableTrees);
        } catch (HostPaths.Refused e) {
            throw e.asSandboxException();
        }
    }

    // ----- 3. the root -----

    /** Every destination with the root's links resolved as the sandbox sees them (MountPoints): nothing is created yet. */
    private void placeMounts() throws SandboxException {
        // The host's / too: bwrap makes mount points from its setup root, where /oldroot is the
        // host, so a link on the way (say one planted in the Buildbarn runner's temporary
        // directory, bound at /tmp) would have it create directories anywhere on the host.
        try {
            places = MountPoints.plan(spec, RootPaths.Tree.of(paths.root()), paths.mountSources(), paths.hostRoot(), paths.hidden(),
                    paths.journalBelow(leases.journalPlace()));
        } catch (HostPaths.Refused e) {
            throw e.asSandboxException();
        }
    }

    /**
     * bwrap's argv as it will be spawned (the host paths as the descriptors bwrap will have), and
     * refused should it not fit the exec's or bwrap's limits (checkExecSize): before an output file is truncated or a directory made.
     */
    private void buildCommand(HostCapabilities host) throws SandboxException {
        invocation = BwrapCommand.of(spec, host, paths.inChild(BwrapCommand.firstPathFd(spec, host)), places);
        invocation.checkExecSize();
    }

    /**
     * cwd, and the lease: which of the paths bwrap may create existed before. The host's root is
     * leased by no run (bwrap makes nothing in it), but its mount sources are: another run's
     * cleanup of a source would otherwise remove the mount points a run there made in it.
     */
    private void leaseRoot() throws SandboxException, InterruptedException, Libc.Error {
        if (!paths.hostRoot() && spec.createCwd()) {
            try {
                RootPaths.createDirectories(paths.root(), RootPaths.names(spec.cwd()).orElseThrow());
            } catch (IOException e) {
                throw new SandboxException.Invalid("cwd: cannot create " + spec.cwd() + " in the root: " + e.getMessage());
            }
        }
        List<String> inRoot = new ArrayList<>(BwrapCommand.createdPaths(spec, places));
        // A target below an earlier mount is made (or used) in that mount's source, which is then leased and cleaned as a root is.
        List<List<String>> inSources = BwrapCommand.createdInMountSources(places);
        List<Integer> sources = new ArrayList<>();
        for (int j = 0; j < inSources.size(); j++) {
            Libc.FileStat source = paths.mountStat(j);
            // A read-only mount's source too: bwrap makes nothing there, but this run mounts on what another run's bwrap made.
            if (inSources.get(j).isEmpty() || source.type() != Libc.S_IFDIR) continue;
            if (source.sameFile(paths.rootStat())) {
                for (String path : inSources.get(j)) if (!inRoot.contains(path)) inRoot.add(path);
                continue;
            }
            Integer same = sources.stream().filter(k -> paths.mountStat(k).sameFile(source)).findFirst().orElse(null);
            if (same != null) {
                for (String path : inSources.get(j)) if (!inSources.get(same).contains(path)) inSources.get(same).add(path);
            } else {
                sources.add(j);
            }
        }
        if (!paths.hostRoot()) {
            leases.acquire(paths.root(), paths.rootStat(), inRoot);
            leased = true;
        }
        for (int j : sources) {
            leases.acquire(paths.descriptors().get(1 + j), paths.mountStat(j), inSources.get(j));
            leasedSources.add(j);
        }
    }

    /**
     * A cwd that must exist already: looked up, name by name and through no link, in what will be
     * there in the sandbox: the source of the last bind mount it lies in, else the root (not the
     * host's). A link on the way, or a place bwrap fills (/proc, /dev, /tmp and the like), is left
     * for bwrap's chdir to decide; a name missing or not a directory is refused.
     */
    private void requireCwd() throws SandboxException {
        List<String> names = RootPaths.names(spec.cwd()).orElseThrow();
        int base = paths.hostRoot() ? -1 : paths.root();
        int from = 0;
        for (int i = 0; i < places.mounts().size(); i++) {
            List<String> target = RootPaths.names(places.mounts().get(i)).orElseThrow();
            if (MountPoints.isPrefix(target, names)) {
                base = paths.descriptors().get(1 + i); // the later of two nested mounts wins, as in the sandbox
                from = target.size();
            }
        }
        if (base < 0) return;
        if (from == 0) {
            for (String filled : new String[] {places.proc(), places.dev(), places.tmp(), places.shm()}) {
                if (filled != null && MountPoints.isPrefix(RootPaths.names(filled).orElseThrow(), names)) return;
            }
        }
        int dir = -1;
        try {
            for (int i = from; i < names.size(); i++) {
                int next = Libc.openat(dir < 0 ? base : dir, names.get(i), Libc.O_PATH | Libc.O_NOFOLLOW | Libc.O_CLOEXEC);
                if (next < 0) {
                    if (Libc.errno() == Libc.ENOENT) {
                        throw new SandboxException.Invalid("the working directory " + spec.cwd() + " does not exist (no "
                                + String.join("/", names.subList(0, i + 1)) + ")");
                    }
                    return; // cannot look (no permission, say): bwrap's chdir decides
                }
                if (dir >= 0) Libc.close(dir);
                dir = next;
                int type = Libc.stat(dir, "", Libc.AT_EMPTY_PATH | Libc.AT_SYMLINK_NOFOLLOW).type();
                if (type == Libc.S_IFLNK) return; // resolved in the sandbox: bwrap's chdir decides
                if (type != Libc.S_IFDIR) {
                    throw new SandboxException.Invalid("the working directory " + spec.cwd() + " is not a directory ("
                            + String.join("/", names.subList(0, i + 1)) + " is not one)");
                }
            }
        } catch (Libc.Error e) {
            // cannot look: bwrap's chdir decides
        } finally {
            if (dir >= 0) Libc.close(dir);
        }
    }

    // ----- 4. the cgroup -----

    /**
     * A cgroup for the sandbox when the host lets us make one, and bwrap reports its init (only
     * then can the init be held and moved in before it starts the command). Without one, a limit
     * that needs it was refused earlier ({@link SandboxRunner#host}). Named before the spawn, so
     * that the watchdog hears of bwrap and of the cgroup in one write.
     */
    private void planCgroup(HostCapabilities host) {
        if (host.jsonStatusFd() && runner.cgroups().available()) cgroupPlan = SandboxCgroup.plan(runner.cgroups(), spec.limits());
    }

    /**
     * Made after the spawn, while bwrap execs and sets the sandbox up, which takes it far longer:
     * the run waits for neither. Should that fail, the held init never runs the command.
     */
    private void makeCgroup() {
        if (cgroupPlan == null) return;
        try {
            cgroup = cgroupPlan.make();
            sandbox.attachCgroup(cgroup);
        } catch (IOException e) {
            holdFailure = "cannot make the sandbox's cgroup: " + e.getMessage();
            sandbox.kill(Sandbox.Ending.NONE);
        }
    }

    /**
     * Nothing of the sandbox survives it: keep the figures, remove the cgroup, and kill what is
     * left should it not be empty. Once the init is reaped it is: the kernel ends every process of
     * a PID namespace (bwrap always makes one) before its init is gone. So the kill is only for a
     * run that failed on the way, and the usual run saves the write to cgroup.kill.
     */
    private void closeCgroup() {
        if (cgroup == null) return; // none on this host (e.g. unprivileged without a writable cgroup), or closed already
        SandboxCgroup closing = cgroup;
        cgroup = null;
        cgroupUsage = closing.usage();
        cgroupLimitExceeded = closing.limitExceeded();
        if (!closing.remove(0)) {
            closing.kill();
            if (!closing.remove(2000)) LOG.warnf("sandbox %s: cgroup %s not removed (a process would not die)", sandbox.id(), closing);
        }
        sandbox.detachCgroup();
    }

    /**
     * The init is held on --block-fd: move it into the cgroup, set its rlimits (everything it
     * starts inherits both), then let it go on. Should that fail, it never runs the command.
     */
    private void release() {
        if (holdFd < 0) return;
        if (holdFailure == null) confine();
        try {
            if (holdFailure == null) Libc.writeFully(holdFd, new byte[] {1});
        } catch (Libc.Error e) {
            // the init is gone (killed, or bwrap failed): nobody to release
        }
        // The init reads the byte, closes --block-fd and forks the command: the write end is then
        // the pipe's last, and poll reports POLLERR on it (bwrap's outer process closed its copy
        // when it began to monitor the init). The end it keeps itself, --sync-fd, writes.
        watch(HOLD, holdFd, (short) 0);
        holdFd = -1;
    }

    private void confine() {
        try {
            Limits perProcess = spec.limits();
            if (cgroup != null) {
                cgroup.add(initPid);
                sandbox.confined();
                if (perProcess.cpuMs() != null && cgroup.countsCpu()) { // the whole sandbox's CPU time, watched
                    cpuCheckAt = System.nanoTime();
                    perProcess = perProcess.withoutCpuMs();
                }
            }
            Rlimits.apply(initPid, perProcess, runner.clientOpenFiles());
        } catch (IOException e) {
            if (Libc.kill(initPid, 0) == 0) { // else it ended by itself: nothing to confine
                holdFailure = "cannot confine the sandbox's init: " + e.getMessage();
                sandbox.kill(Sandbox.Ending.NONE);
            }
        }
    }

    // ----- 5. spawn -----

    private void spawn(HostCapabilities host) throws SandboxException, Libc.Error {
        int[] status = host.jsonStatusFd() ? pipe() : null;
        List<Integer> childFds = new ArrayList<>(List.of(childStdin, childStdout, childStderr));
        int[] hold = null;
        if (status != null) {
            hold = pipe(); // BwrapCommand.BLOCK_FD and SYNC_FD, right after the status pipe
            childFds.addAll(List.of(status[1], hold[0], hold[1]));
        }
        int filter = seccompFilter();
        if (filter >= 0) childFds.add(filter); // at BwrapCommand.seccompFd
        // bwrap binds the descriptors bwrapd checked, numbered after stdio, the status and hold pipes and the filter.
        if (childFds.size() != BwrapCommand.firstPathFd(spec, host)) throw new IllegalStateException("bwrap's descriptors: " + childFds);
        childFds.addAll(paths.descriptors());
        int[] wake = pipe();
        watch(WAKE, wake[0], Libc.POLLIN);
        sandbox.attachWake(wake[1]);
        List<Path> cgroups = cgroupPlan == null ? List.of() : cgroupPlan.directories(); // made before the spawn: nothing allocated between it and the sandbox told
        try {
            List<String> argv = invocation.argv();
            if (!spec.linux32()) { // under linux32 bwrap's argv[0] is linux32's to choose
                argv = new ArrayList<>(argv);
                argv.set(0, sandbox.bwrapName());
            }
            bwrap = spawner.spawn(new Spawner.Spec(invocation.executable(), argv, invocation.environment(),
                    childFds.stream().mapToInt(Integer::intValue).toArray()));
        } catch (Libc.Error e) {
            throw new SandboxException.BwrapUnusable("cannot start bwrap: " + e.getMessage(), host.bwrapPath(), e.getMessage(), List.of());
        } finally {
            invocation = null; // a copy of the command and environment, up to ARG_MAX: not held while the sandbox runs
        }
        sandbox.spawned(bwrap.pid(), !spec.linux32(), cgroups);
        bwrapKnown = true;
        closeOwned(childStdin, childStdout, childStderr, filter);
        if (status != null) {
            closeOwned(status[1], hold[0]);
            holdFd = hold[1];
            watch(STATUS, status[0], Libc.POLLIN);
        }
        int pidfd = reaper.pidfdOfChild(bwrap);
        if (pidfd >= 0) watch(BWRAP, own(pidfd), Libc.POLLIN);
        else bwrapEnded = true; // already reaped: its exit is in hand
    }

    /**
     * The compiled filter, for bwrap's --seccomp (-1 without one): in a file that never has a name (O_TMPFILE in the
     * spool directory), read back through a descriptor of its own that starts at its beginning.
     * Not a pipe: it is written whole before bwrap exists to read it, and a pipe holds only 8 KiB
     * once the user's pipe pages are spent (fs.pipe-user-pages-soft), which a hostile command of
     * the same user can bring about: the write of a larger filter blocked the run for ever. Where
     * no such file can be made there, the pipe.
     */
    private int seccompFilter() throws Libc.Error {
        if (spec.seccomp() == null) return -1;
        int shared = runner.sharedFilter(spec.seccomp());
        if (shared >= 0) return own(Libc.open("/proc/self/fd/" + shared, Libc.O_RDONLY, 0)); // read from its start
        List<Libc.SeccompRule> rules = SeccompPolicy.rules(spec.seccomp());
        int file;
        try {
            file = own(Libc.open(spoolDirectory.toString(), Libc.O_TMPFILE | Libc.O_RDWR | Libc.O_EXCL, 0600));
        } catch (Libc.Error e) { // no such files there, or the directory is not ours to write: the pipe, as before
            int[] pipe = pipe();
            Libc.exportSeccompFilter(rules, pipe[1]);
            closeOwned(pipe[1]);
            return pipe[0];
        }
        Libc.exportSeccompFilter(rules, file);
        runner.keepCompiled(spec.seccomp(), file);
        int reader = own(Libc.open("/proc/self/fd/" + file, Libc.O_RDONLY, 0));
        closeOwned(file);
        return reader;
    }

    // ----- 6. follow the run -----

    private void follow() throws Libc.Error {
        timeoutAt = spec.timeoutMs() == null ? Long.MAX_VALUE : Saturating.msAfter(startNanos, spec.timeoutMs());
        while (true) {
            if (awaitingCommand) checkCommand();
            if (!announced && fds[STATUS] < 0 && !awaitingCommand) flushHeldOutput(); // no sandbox/started is coming
            boolean outputOpen = fds[STATUS] >= 0 || fds[STDOUT] >= 0 || fds[STDERR] >= 0;
            if (!outputOpen && bwrapEnded && (initPid == 0 || initEnded)) break;
            if (outputOpen && bwrapEndSeen && (initPid == 0 || initEndSeen)) {
                drainOutputs();
                continue;
            }
            if (bwrapEnded && (initPid == 0 || initEnded) && fds[STDIN] >= 0) { // nobody left to read it
                closeSlot(STDIN);
                if (input != null) input.close();
            }

            long until = keepTime();
            long now = System.nanoTime();
            int timeoutMs = until == Long.MAX_VALUE ? -1 : (int) Math.min(Integer.MAX_VALUE, Math.max(1, (until - now + 999_999) / 1_000_000));
            if (awaitingCommand) {
                timeoutMs = timeoutMs < 0 ? commandPollMs : Math.min(timeoutMs, commandPollMs);
                commandPollMs = Math.min(COMMAND_POLL_MAX_MS, 2 * commandPollMs);
            }
            if (fds[STDIN] >= 0 && input != null) events[STDIN] = input.pending() ? Libc.POLLOUT : 0; // errors and hang-ups come anyway

            if (Libc.poll(fds, events, revents, SLOTS, timeoutMs) == 0) continue;
            if (revents[STATUS] != 0) readStatus();
            if (revents[STDOUT] != 0) readOutput(STDOUT, stdout);
            if (revents[STDERR] != 0) readOutput(STDERR, stderr);
            if (revents[STDIN] != 0) {
                if (input != null) writeInput(); // stdin "stream", a terminal
                else writeStdin(); // stdin text or base64
            }
            if (revents[BWRAP] != 0) {
                bwrapEnded = bwrapEndSeen = true;
                fds[BWRAP] = -1; // closed with the rest at the end
            }
            if (revents[INIT] != 0) {
                initEnded = initEndSeen = true;
                fds[INIT] = -1; // the sandbox's, closed by it
            }
            // Both exited (the reaper's sweep may reap them from now on): no signal goes to their
            // groups' numbers. Not without a reported init: one bwrap cloned but never reported
            // would keep bwrap's group, which a kill must still reach.
            if ((revents[BWRAP] | revents[INIT]) != 0 && bwrapEndSeen && initEndSeen) sandbox.exited();
            if (revents[WAKE] != 0) Libc.read(fds[WAKE], chunk, 0, chunk.length); // every wake-up pending: a pipe holds 64 KiB
            if (revents[HOLD] != 0) { // the init passed its block: the command is being forked
                closeSlot(HOLD);
                commandPollMs = 1;
            }
        }
        if (!announced) flushHeldOutput();
        if (input != null) input.close();
        stdout.ended();
        stderr.ended();
    }

    /**
     * The run's timers: the timeout, the end of a kill's grace, the CPU limit's next look; what is
     * due is done. Also run while the listener waits for room for streamed output (a client that
     * does not read, a budget others fill): a sandbox that the wait holds up on its pipe is still
     * timed, its other processes too. When the next one is due (Long.MAX_VALUE: none is, or the
     * sandbox has ended).
     */
    private long keepTime() {
        long now = System.nanoTime();
        long next = nextTimer();
        if (now < next) return next;
        // A limit that runs out once the sandbox has ended (its last output may still wait for the
        // client, and this loop not have seen the end yet) changes nothing: it ended in time.
        if (hasEnded()) return Long.MAX_VALUE;
        if (now >= timeoutAt) {
            timeoutAt = Long.MAX_VALUE;
            if (awaitingCommand || initPid == 0) sandbox.kill(Sandbox.Ending.TIMED_OUT); // nothing to give grace to yet
            else runner.terminate(sandbox, Sandbox.Ending.TIMED_OUT, spec.killGraceMs());
        }
        long killAt = sandbox.killDeadline();
        if (killAt != graceEnded && now >= killAt) {
            sandbox.kill(sandbox.ending());
            graceEnded = killAt;
        }
        if (now >= cpuCheckAt) cpuCheckAt = watchCpu(now);
        return nextTimer();
    }

    /** When the next timer is due: the timeout, a kill grace's end (one not yet acted on), the CPU limit's next look. */
    private long nextTimer() {
        long killAt = sandbox.killDeadline();
        return Math.min(Math.min(timeoutAt, killAt == graceEnded ? Long.MAX_VALUE : killAt), cpuCheckAt);
    }

    /** Whether bwrap and the init have both exited: as this loop saw, or as their pidfds say now. */
    private boolean hasEnded() {
        return (bwrapEnded || pidfdSaysEnded(BWRAP)) && (initPid == 0 || initEnded || pidfdSaysEnded(INIT));
    }

    private boolean pidfdSaysEnded(int slot) {
        if (fds[slot] < 0) return false;
        try {
            return Libc.poll(new int[] {fds[slot]}, new short[] {Libc.POLLIN}, new short[1], 1, 0) == 1;
        } catch (Libc.Error e) {
            return false;
        }
    }

    /**
     * bwrap and the init have ended, as their pidfds said: every process of the sandbox is gone
     * (the init's end waits for all of its PID namespace), and everything they wrote is in the
     * pipes. What is there is read; a pipe that has not ended then is held open by a process
     * outside the sandbox (a descriptor passed out through a socket, or opened through /proc), and
     * is closed rather than waited on, or the run would never be answered. At most 64 reads a
     * pipe: such a process may go on writing.
     */
    private void drainOutputs() throws Libc.Error {
        int[] one = new int[1];
        short[] events = {Libc.POLLIN}, returned = new short[1];
        for (int slot : new int[] {STATUS, STDOUT, STDERR}) {
            for (int reads = 0; fds[slot] >= 0; reads++) {
                one[0] = fds[slot];
                if (reads == 64 || Libc.poll(one, events, returned, 1, 0) == 0) {
                    if (slot == STATUS) statusLine(statusText.toString()); // its last line, if it had no newline
                    closeSlot(slot);
                    break;
                }
                if (slot == STATUS) readStatus();
                else readOutput(slot, slot == STDOUT ? stdout : stderr);
            }
        }
    }

    /**
     * cpuMs of the whole sandbox: the cgroup's count of its CPU time, looked at again no sooner
     * than the limit could be reached with every CPU busy (within 5 to 250 ms); at the limit the
     * sandbox is killed. Returns when to look next.
     */
    /** The host's online CPUs, for {@link #watchCpu}; 0 until it first looks. */
    private int cpus;

    private long watchCpu(long now) {
        if (initEnded || cgroup == null) return Long.MAX_VALUE; // the sandbox is gone: nothing left to stop
        long used = cgroup.cpuMicros();
        long left = Saturating.times(spec.limits().cpuMs(), 1000) - used;
        if (used >= 0 && left <= 0) {
            cpuExceeded = sandbox.kill(Sandbox.Ending.NONE);
            return Long.MAX_VALUE;
        }
        if (cpus == 0) cpus = onlineCpus(); // once a run: looked at every 5 ms near the limit
        long waitMicros = used < 0 ? 250_000 : Math.clamp(left / cpus, 5_000, 250_000);
        return now + waitMicros * 1000;
    }

    /**
     * The CPUs the sandbox may use at most: the host's online ones. Not the JVM's count, which is
     * the helper's own affinity (or -XX:ActiveProcessorCount): a sandbox widens its own, and a
     * helper pinned to one CPU let three busy loops spend 455 ms of a 300 ms cpuMs (review).
     */
    static int onlineCpus() {
        try {
            return Math.max(1, cpusIn(Files.readString(Path.of("/sys/devices/system/cpu/online")).strip()));
        } catch (IOException | RuntimeException e) {
            return Runtime.getRuntime().availableProcessors();
        }
    }

    /** How many CPUs a kernel CPU list names ("0-3,8,10-11": 7). */
    static int cpusIn(String list) {
        int count = 0;
        for (String range : list.split(",")) {
            int dash = range.indexOf('-');
            count += dash < 0 ? 1 : Integer.parseInt(range.substring(dash + 1)) - Integer.parseInt(range.substring(0, dash)) + 1;
        }
        return count;
    }

    /** bwrap's status lines: child-pid once the sandbox's init exists, exit-code only if the command ran. */
    private void readStatus() throws Libc.Error {
        int n = Libc.read(fds[STATUS], chunk, 0, 1024);
        if (n == 0) {
            statusLine(statusText.toString());
            closeSlot(STATUS);
            return;
        }
        statusText.append(new String(chunk, 0, n, StandardCharsets.UTF_8));
        int newline;
        while ((newline = statusText.indexOf("\n")) >= 0) {
            statusLine(statusText.substring(0, newline));
            statusText.delete(0, newline + 1);
        }
    }

    private void statusLine(String line) {
        long pid = BwrapStatus.number(line, "child-pid");
        if (pid > 0 && initPid == 0) {
            initPid = (int) pid;
            initExit = reaper.watchDescendant(initPid);
            sandbox.started(initPid);
            release();
            int pidfd = sandbox.initPidfd();
            if (pidfd >= 0) watch(INIT, pidfd, Libc.POLLIN);
            else initEnded = true; // gone already: the reaper has its exit
            awaitingCommand = true;
            commandPollMs = fds[HOLD] >= 0 ? COMMAND_POLL_MAX_MS : 1; // the hold pipe will tell when to look closely
            commandWaitEnds = System.nanoTime() + COMMAND_WAIT_NANOS;
            checkCommand();
        }
        if (line.contains("\"exit-code\"")) {
            // bwrap reports the command's end, past its setup. The value is what the init wrote to
            // bwrap's eventfd, which the command can write too (pidfd_getfd): one no exit status can
            // be (negative, over 255) is not taken, and the end is then told by the init's own.
            exitReported = true;
            long code = BwrapStatus.number(line, "exit-code");
            exitCode = code >= 0 && code <= 255 ? (int) code : null;
        }
    }

    /**
     * sandbox/started means the command runs, not that bwrap began its setup: bwrap reports the
     * init before it sets the sandbox up, and the init arms --die-with-parent only after that.
     * An init whose pidfd said it ended is gone for this purpose even while it is a zombie not yet
     * reaped (bwrap gone first: the reaper's to reap), which still looks alive and childless: the
     * loop ends on that same look, and the run would be answered without sandbox/started.
     */
    private void checkCommand() {
        if (!initEnded && !sandbox.commandRunningOrGone() && System.nanoTime() < commandWaitEnds) return;
        awaitingCommand = false;
        sandbox.deliverQueued();
        // Also when the init has ended already (a quick command, a failed setup): the run had
        // its init, and the answer must not come without its sandbox/started before it.
        if (sandbox.state() != Sandbox.State.FINISHED) {
            announced = true;
            listener.started(sandbox);
            flushHeldOutput();
        }
    }

    private void readOutput(int slot, Output output) throws Libc.Error {
        int n;
        try {
            n = Libc.read(fds[slot], chunk, 0, CHUNK);
        } catch (Libc.Error e) {
            if (e.errno == Libc.EAGAIN) return; // the terminal's master is non-blocking
            if (e.errno != Libc.EIO || terminal < 0) output.failed("cannot read the output: " + e.getMessage());
            n = 0; // the pipe is broken, or the terminal hung up (EIO: its last user is gone)
        }
        if (n == 0) {
            closeSlot(slot);
            return;
        }
        output.accept(chunk, n);
    }

    /** At most PIPE_BUF bytes once poll says the pipe is writable: a blocking pipe takes them without blocking. */
    private void writeStdin() {
        boolean done = (revents[STDIN] & (Libc.POLLERR | Libc.POLLHUP)) != 0;
        if (!done && (revents[STDIN] & Libc.POLLOUT) != 0) {
            try {
                if (stdinFrom == stdinTo) {
                    stdinFrom = 0;
                    stdinTo = Math.max(0, stdinData.readNBytes(stdinChunk, 0, stdinChunk.length));
                }
                if (stdinFrom == stdinTo) done = true; // all written
                else stdinFrom += Libc.write(fds[STDIN], stdinChunk, stdinFrom, stdinTo - stdinFrom);
            } catch (Libc.Error e) {
                done = e.errno != Libc.EAGAIN; // EAGAIN: no room after all, poll again; else the command closed its stdin early
            } catch (IOException e) {
                done = true; // checked before the run started; cannot happen
            }
        }
        if (done) closeSlot(STDIN);
    }

    /** Input to the STDIN slot, a piece at a time; the slot closes at the end of input or when the reader is gone. */
    private void writeInput() {
        boolean ended = (revents[STDIN] & (Libc.POLLERR | Libc.POLLHUP)) != 0;
        if ((revents[STDIN] & Libc.POLLOUT) != 0) {
            byte[] data = input.data();
            if (data != null) {
                int at = input.offset();
                try {
                    // At most PIPE_BUF after POLLOUT: a blocking pipe takes it without blocking (the terminal's master does not block).
                    int n = data.length == at ? 0 : Libc.write(fds[STDIN], data, at, Math.min(data.length - at, 4096));
                    ended |= input.wrote(n);
                } catch (Libc.Error e) {
                    if (e.errno != Libc.EAGAIN) ended = true; // the command closed its stdin early: not an error of the run
                }
            }
        }
        if (ended) {
            closeSlot(STDIN);
            input.close();
        }
    }

    private void flushHeldOutput() {
        stdout.release();
        stderr.release();
    }

    // ----- 7. wait for the processes -----

    /** bwrap's exit, and the usage of the whole sandbox. */
    private ExitStatus[] await() {
        // Both have ended (their pidfds said so): each is reaped here, on the run's own thread.
        ExitStatus bwrapExit = reaper.awaitExit(bwrap);
        ExitStatus usage = bwrapExit;
        if (initExit != null) {
            initStatus = reaper.awaitDescendant(initPid, initExit);
            usage = ExitStatus.sandboxUsage(bwrapExit, initStatus);
        }
        sandbox.finished();
        return new ExitStatus[] {bwrapExit, usage};
    }

    // ----- 8. cleanup -----

    private CleanupReport cleanup() {
        boolean root = leased;
        List<Integer> sources = List.copyOf(leasedSources);
        leased = false; // released once, whatever happens on the way
        leasedSources.clear();
        CleanupReport report = root ? leases.release(paths.root(), paths.rootStat()) : CleanupReport.NOTHING;
        for (int j : sources) {
            CleanupReport inSource = leases.release(paths.descriptors().get(1 + j), paths.mountStat(j));
            report = inMount(report, inSource, places.mounts().get(j));
        }
        return report;
    }

    /**
     * What was cleaned in a mount's source, its paths named as the sandbox sees them (below {@code
     * target}), and then {@code report}: children before parents, as each report lists them.
     */
    private static CleanupReport inMount(CleanupReport report, CleanupReport inSource, String target) {
        List<String> removed = new ArrayList<>();
        for (String path : inSource.removed()) removed.add(target + path);
        removed.addAll(report.removed());
        List<CleanupReport.Failure> failed = new ArrayList<>();
        for (CleanupReport.Failure failure : inSource.failed()) failed.add(new CleanupReport.Failure(target + failure.path(), failure.error()));
        failed.addAll(report.failed());
        return new CleanupReport(report.ok() && inSource.ok(), removed, failed, report.deferred() || inSource.deferred());
    }

    // ----- 9. outcome -----

    private RunOutcome outcome(HostCapabilities host, ExitStatus bwrapExit, ExitStatus usage, CleanupReport cleanup) {
        Integer code = exitCode;
        if (exitReported && code == null) code = commandCode(bwrapExit);
        if (!host.jsonStatusFd() && bwrapExit.exited()) {
            code = bwrapExit.exitCode(); // without status lines bwrap's exit code is all there is
            if (code == 1 && bwrapMessages().startsWith("bwrap: ")) code = null;
        }
        Sandbox.Ending ending = sandbox.ending();
        RunOutcome.Status status;
        String signal = null;
        String setupError = null;
        if (code != null) {
            signal = Signals.fromExitCode(code).orElse(null);
            status = signal != null ? RunOutcome.Status.SIGNALED : RunOutcome.Status.EXITED;
        } else if (ending != Sandbox.Ending.NONE) {
            status = RunOutcome.Status.SIGNALED; // ended by us before the command ran
            signal = bwrapExit.signaled() ? Signals.name(bwrapExit.termSignal()) : "SIGKILL";
        } else if (bwrapExit.signaled()) {
            status = RunOutcome.Status.SIGNALED; // bwrap itself was killed from outside
            signal = Signals.name(bwrapExit.termSignal());
        } else if (bwrapExit.exited() && Signals.fromExitCode(bwrapExit.exitCode()).isPresent()) {
            // The command's process died of a signal before its exec (a sandbox/signal sent while the
            // sandbox was starting lands there): bwrap passes the 128+N on as its own exit code but
            // writes no exit-code line, which it does only once the command was about to run. bwrap's
            // own setup failures exit 1.
            code = bwrapExit.exitCode();
            status = RunOutcome.Status.SIGNALED;
            signal = Signals.fromExitCode(code).orElseThrow();
        } else {
            status = RunOutcome.Status.SETUP_FAILED;
            setupError = setupError(bwrapMessages(), bwrapExit);
        }
        if (holdFailure != null) {
            status = RunOutcome.Status.SETUP_FAILED; // killed before its command could run unconfined
            code = null;
            signal = null;
            setupError = holdFailure;
        }
        if (ending == Sandbox.Ending.TERMINATED && status == RunOutcome.Status.EXITED) {
            // Terminated with a grace period, the command caught SIGTERM and exited by itself: it
            // still ended because it was told to (a terminated run answers "signaled").
            status = RunOutcome.Status.SIGNALED;
            signal = Signals.name(Signals.SIGTERM);
        }
        if (ending == Sandbox.Ending.TIMED_OUT) status = RunOutcome.Status.TIMED_OUT;
        if (ending == Sandbox.Ending.CANCELLED) status = RunOutcome.Status.CANCELLED;
        RunOutcome.Usage used = usage(usage);
        return new RunOutcome(sandbox.id(), status, code, signal, setupError, System.nanoTime() - startNanos, used,
                stdout.capture, stderr.capture, cleanup, limitExceeded(signal, used));
    }

    /**
     * The command's end as the init, which exits with it, saw it (the init's status, 128+N for a
     * signal, as bwrap reports it), else as bwrap passed it on in its own exit status; null if
     * bwrap was killed.
     */
    private Integer commandCode(ExitStatus bwrapExit) {
        if (initStatus != null && initStatus.exited()) return initStatus.exitCode();
        if (initStatus != null && initStatus.signaled()) return 128 + initStatus.termSignal();
        return bwrapExit.exited() ? bwrapExit.exitCode() : null;
    }

    /**
     * The cgroup's figures when there is one: every process the sandbox ever had, reaped by the
     * init or not, and its memory peak where a memory controller counts it; else the rusage.
     */
    private RunOutcome.Usage usage(ExitStatus rusage) {
        SandboxCgroup.Usage c = cgroupUsage;
        if (c == null || c.userMicros() < 0) return new RunOutcome.Usage(rusage.userCpuMicros(), rusage.systemCpuMicros(), rusage.maxRssKiB());
        return new RunOutcome.Usage(c.userMicros(), c.systemMicros(), c.peakBytes() >= 0 ? c.peakBytes() / 1024 : rusage.maxRssKiB());
    }

    /**
     * Which limit ended or hampered the run: the cgroup's own count of OOM kills and refused forks,
     * the sandbox's CPU time that the run watched reaching cpuMs, else the signal an rlimit sends
     * (SIGXCPU, SIGXFSZ), or CPU time at the limit when a kill ended the command (RLIMIT_CPU's hard
     * limit is SIGKILL).
     */
    private String limitExceeded(String signal, RunOutcome.Usage used) {
        if (cgroupLimitExceeded != null) return cgroupLimitExceeded;
        if (cpuExceeded) return "cpu";
        Limits limits = spec.limits();
        if (limits.cpuMs() != null && ("SIGXCPU".equals(signal)
                || "SIGKILL".equals(signal) && used.userCpuMicros() + used.systemCpuMicros() >= Saturating.times(limits.cpuMs(), 1000))) return "cpu";
        if (limits.fileSizeBytes() != null && "SIGXFSZ".equals(signal)) return "fileSize";
        return null;
    }

    /** bwrap's own lines ("bwrap: ..."), from wherever stderr went. */
    private static String setupError(String stderr, ExitStatus bwrapExit) {
        List<String> lines = new ArrayList<>();
        for (String line : stderr.split("\n")) if (line.startsWith("bwrap: ")) lines.add(line.substring(7));
        if (!lines.isEmpty()) return String.join("; ", lines);
        return "bwrap could not set up the sandbox (exit status " + (bwrapExit.exited() ? bwrapExit.exitCode() : -1)
                + "); its message was not captured";
    }

    /** Where bwrap's own message went: the start of the stderr pipe, or the end of the file stderr went to. */
    private String bwrapMessages() {
        if (spec.stderr() instanceof RunSpec.Output.File) return fileTail();
        if (spec.stderr() instanceof RunSpec.Output.IntoStdout) {
            // Merged: bwrap's message went wherever stdout goes (lost only if that is /dev/null).
            if (spec.stdout() instanceof RunSpec.Output.File) return fileTail();
            return stdout.head();
        }
        return stderr.head();
    }

    /** The last few KiB of the output file bwrap's message landed in: read from its end, however large it grew. */
    private String fileTail() {
        if (messagesFile < 0) return "";
        try {
            long size = Libc.stat(messagesFile, "", Libc.AT_EMPTY_PATH).size();
            long from = Math.max(messagesFrom, size - FILE_TAIL);
            byte[] tail = new byte[(int) Math.max(0, size - from)];
            int length = 0;
            for (int n; length < tail.length && (n = Libc.pread(messagesFile, tail, length, tail.length - length, from + length)) > 0; ) {
                length += n;
            }
            int start = 0; // a line cut by the tail's start is not bwrap's: its message fits whole
            if (from > messagesFrom) while (start < length && tail[start++] != '\n') { }
            return new String(tail, start, length - start, StandardCharsets.UTF_8);
        } catch (Libc.Error e) {
            return "";
        }
    }

    // ----- descriptors -----

    private int own(int fd) {
        owned.add(fd);
        return fd;
    }

    private int[] pipe() throws Libc.Error {
        int[] pipe = Libc.pipe();
        own(pipe[0]);
        own(pipe[1]);
        return pipe;
    }

    private void watch(int slot, int fd, short what) {
        fds[slot] = fd;
        events[slot] = what;
    }

    private void closeSlot(int slot) {
        // The terminal's master serves two slots, and the sandbox resizes it: it is closed only at the end, after Sandbox.finished.
        if (fds[slot] != terminal) closeOwned(fds[slot]);
        fds[slot] = -1;
    }

    private void closeOwned(int... toClose) {
        for (int fd : toClose) {
            if (fd >= 0 && owned.remove(Integer.valueOf(fd))) Libc.close(fd);
        }
    }

    /** Where one output pipe's bytes go: into a capture, streamed to the listener, or only its head kept. */
    private final class Output {
        private final RunListener.Stream name;
        private final Capture capture;
        private final boolean stream;
        /** Made at the first bytes: most runs' streams bring none. */
        private byte[] head;
        private int headLength;
        /** Streamed chunks that came before sandbox/started went out. */
        private List<byte[]> held;

        Output(RunSpec.Output kind, RunListener.Stream name, long limit, Capture.Store captures) {
            this.name = name;
            this.capture = kind instanceof RunSpec.Output.Capture ? new Capture(limit, captures) : null;
            this.stream = kind instanceof RunSpec.Output.Stream;
        }

        void accept(byte[] data, int n) {
            if (head == null) head = new byte[HEAD];
            if (headLength < HEAD) {
                int take = Math.min(n, HEAD - headLength);
                System.arraycopy(data, 0, head, headLength, take);
                headLength += take;
            }
            if (capture != null) capture.append(data, 0, n); // never throws: the pipe keeps draining
            if (stream) {
                if (announced) {
                    listener.output(sandbox, name, data, 0, n, whileWaiting);
                } else {
                    if (held == null) held = new ArrayList<>();
                    held.add(Arrays.copyOf(data, n));
                }
            }
        }

        void release() {
            if (held == null) return;
            List<byte[]> chunks = held;
            held = null;
            for (byte[] c : chunks) listener.output(sandbox, name, c, 0, c.length, whileWaiting);
        }

        void ended() {
            if (capture != null) capture.finish();
            if (stream) listener.outputEnded(sandbox, name, whileWaiting);
        }

        /** A pipe that broke: what was kept stands, marked incomplete. */
        void failed(String why) {
            if (capture != null) capture.fail(why);
        }

        /** Gives back the capture's memory and file when no outcome carries it. */
        void discard() {
            if (capture != null) capture.close();
        }

        String head() {
            return head == null ? "" : new String(head, 0, headLength, StandardCharsets.UTF_8);
        }
    }
}
