package dev.bwrapd.buildbarn;

import dev.bwrapd.cgroup.Rlimits;
import dev.bwrapd.cleanup.RootJournal;
import dev.bwrapd.cleanup.RootLeases;
import dev.bwrapd.memory.MemoryBudget;
import dev.bwrapd.process.Libc;
import dev.bwrapd.process.Reaper;
import dev.bwrapd.process.Spawner;
import dev.bwrapd.process.Watchdog;
import dev.bwrapd.sandbox.Capture;
import dev.bwrapd.sandbox.HostCapabilities;
import dev.bwrapd.sandbox.HostProbe;
import dev.bwrapd.sandbox.RootPaths;
import dev.bwrapd.sandbox.RunSpec;
import dev.bwrapd.sandbox.SandboxRunner;
import dev.bwrapd.sandbox.Sandboxes;
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import org.jboss.logging.Logger;
import sun.misc.Signal;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * {@code bwrapd buildbarn-runner}: Buildbarn's runner service on a unix socket (docs/buildbarn.md).
 * Main hands this mode its arguments before anything of the stdio mode is made, so neither mode
 * loads the other's classes (the stdio mode loads nothing of gRPC or Netty). Like Main, it makes
 * every process-wide piece here, never in a static initializer.
 */
public final class RunnerCommand {
    private static final Logger LOG = Logger.getLogger(RunnerCommand.class);
    /** Run outcomes hold no captured output here (it goes to files): a small budget is plenty. */
    private static final long MEMORY = 16L << 20;
    /** How long the runner's end waits for the answers to the Runs its sandboxes' kill ended. */
    private static final long ANSWERS_AT_THE_END_MS = 2000;
    /** sockaddr_un's path, without its NUL. */
    private static final int MAX_SOCKET_PATH = 107;
    /** Held here: java.util.logging keeps only a weak reference to a logger, and with it the level set. */
    private static final java.util.logging.Logger GRPC_STREAM_LOG =
            java.util.logging.Logger.getLogger("io.grpc.netty.shaded.io.grpc.netty.NettyServerStream");
    /**
     * The largest request taken: one that could ever run. Its arguments and environment must fit
     * the kernel's ARG_MAX as bwrap's argv and environment (BwrapCommand.checkExecSize), and
     * protobuf encodes each string in about what exec counts for it (its bytes plus a NUL and a
     * pointer); the slack covers the rest (paths, fields, a map entry's few bytes more). A larger
     * one is RESOURCE_EXHAUSTED from gRPC, read no further, instead of 4 MiB (gRPC's default)
     * buffered per call to be refused afterwards.
     */
    static final int MAX_MESSAGE_BYTES = dev.bwrapd.sandbox.BwrapCommand.ARG_MAX + (256 << 10);
    /**
     * How long a connection may take to say it speaks HTTP/2 (its preface and first SETTINGS),
     * from its accept; then it is closed (grpc-java's handshake timeout, 120 s by default). bb_worker
     * says it at once; a connection that says nothing holds no call, but a place among the
     * connections (ConnectionLimit), given back within seconds rather than minutes.
     */
    static final long HANDSHAKE_SECONDS = 10;
    /**
     * Each connection's HTTP/2 flow-control window, fixed: the most of its calls' requests it may
     * have sent and the runner not yet read. grpc-java starts at 1 MiB and grows it up to 8 MiB on a
     * busy connection (its BDP pings); fixed, a connection's memory stays small and bounded.
     */
    static final int FLOW_CONTROL_WINDOW = 1 << 20;

    private RunnerCommand() {}

    /** Serves until SIGTERM, SIGINT or SIGHUP; returns the exit status (2 for a bad command line). */
    public static int run(String... args) throws Exception {
        RunnerOptions options;
        try {
            options = RunnerOptions.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("bwrapd buildbarn-runner: " + e.getMessage() + "\n\n" + RunnerOptions.USAGE);
            return 2;
        }
        if (options.help()) {
            System.err.print(RunnerOptions.USAGE);
            return 0;
        }
        java.util.logging.Logger.getLogger("dev.bwrapd").setLevel(switch (options.logLevel()) {
            case "error" -> java.util.logging.Level.SEVERE;
            case "info" -> java.util.logging.Level.INFO;
            case "debug" -> java.util.logging.Level.FINE;
            default -> java.util.logging.Level.WARNING;
        });
        // A request over MAX_MESSAGE_BYTES is answered RESOURCE_EXHAUSTED; grpc-java also logs a
        // warning with a stack trace for each, which would let any client fill the log.
        if (!options.logLevel().equals("debug")) GRPC_STREAM_LOG.setLevel(java.util.logging.Level.SEVERE);
        dev.bwrapd.process.SessionKeyring.joinOwn(); // before any thread: see there
        int buildDirectory = Libc.openat2(Libc.AT_FDCWD, options.buildDirectory().toString(), Libc.O_PATH | Libc.O_DIRECTORY, 0, 0);
        if (buildDirectory < 0) {
            System.err.println("bwrapd buildbarn-runner: --build-directory " + options.buildDirectory() + ": "
                    + Libc.strerror(Libc.errno()));
            return 2;
        }
        // Where --root host binds input roots: the directory as opened, with no link left in its path.
        Path buildDirectoryPath = RootPaths.of(buildDirectory).toRealPath();
        try {
            if (isOrBeneath(options.listen().toAbsolutePath().getParent(), buildDirectory)) {
                System.err.println("bwrapd buildbarn-runner: --listen " + options.listen() + ": in the build directory "
                        + buildDirectoryPath + ", where actions' files are (with --root input, their /): an action could replace"
                        + " the socket or connect to it; put it in a directory of its own, outside the build directory");
                return 2;
            }
        } catch (IOException e) {
            System.err.println("bwrapd buildbarn-runner: --listen " + options.listen() + ": its directory: " + e);
            return 2;
        }

        // The sandbox layer, made as Main makes it for the stdio mode.
        Reaper reaper = new Reaper();
        Spawner spawner = new Spawner(reaper);
        Watchdog watchdog = new Watchdog(spawner);
        dev.bwrapd.cgroup.CgroupHost cgroups = dev.bwrapd.cgroup.CgroupHost.detect(null);
        HostProbe.Lookup bwrap = HostProbe.findBwrap(options.bwrap());
        if (bwrap.found() == null) LOG.warnf("bwrap not found (tried %s); every Run will fail", bwrap.tried());
        CompletableFuture<HostCapabilities> host = HostProbe.start(bwrap, reaper, dev.bwrapd.Version.VERSION, cgroups.v1Hierarchies());
        Capture.Store captures = new Capture.Store(new MemoryBudget(MEMORY), Capture.spoolDirectory(), 0);
        Sandboxes sandboxes = new Sandboxes(watchdog);
        RootLeases leases = new RootLeases(RootJournal.open(System.getenv("XDG_RUNTIME_DIR"), Libc.uid()));
        SandboxRunner runner = new SandboxRunner(leases, spawner, reaper, SandboxRunner.runThreads(), host, bwrap.tried(), captures, cgroups,
                Rlimits.clientOpenFiles());
        // What every action gets: refused here, once, rather than by every Run.
        String refusal = runner.cannotGive(options.capabilities(), options.limits(), options.root() == Actions.Root.HOST);
        if (refusal != null) {
            System.err.println("bwrapd buildbarn-runner: what every action gets (--cap-add in order, --limits): " + refusal);
            return 2;
        }
        List<String> hidden;
        try {
            hidden = options.root() == Actions.Root.HOST
                    ? Actions.hiddenFromHostRoot(buildDirectoryPath, options.listen().toAbsolutePath().getParent().toRealPath())
                    : List.of();
        } catch (IllegalArgumentException e) {
            System.err.println("bwrapd buildbarn-runner: " + e.getMessage());
            return 2;
        } catch (IOException e) {
            System.err.println("bwrapd buildbarn-runner: --listen " + options.listen() + ": its directory: " + e);
            return 2;
        }
        Actions actions = new Actions(buildDirectoryPath, options.root(), options.network(),
                options.seccompDefault() ? RunSpec.Seccomp.DEFAULT : null, hidden, options.capabilities(), options.limits());
        if (Libc.uid() == 0) {
            LOG.warn("running as root: an action runs as root too (with no capability unless --cap-add names one), and owns "
                    + "the files it makes; run the runner as a user of its own, not bb_worker's (docs/buildbarn.md, Users)");
        }

        // Every call on a thread of its own (a Run's handler waits for its turn, then for its
        // sandbox): RunnerService bounds the Runs held at once, so CheckReadiness never waits.
        ExecutorService calls = Executors.newCachedThreadPool(Libc.freeingAtEnd(Thread.ofPlatform().daemon().name("grpc-call-", 0).factory()));
        removeStaleSocket(options.listen());
        if (Files.exists(options.listen(), LinkOption.NOFOLLOW_LINKS)) {
            System.err.println("bwrapd buildbarn-runner: --listen " + options.listen() + ": exists and is not a socket");
            return 2;
        }
        int callsHeld = CallAdmission.callsHeld(options.concurrency(), Runtime.getRuntime().maxMemory());
        if (callsHeld < 2 * options.concurrency() + 4) {
            LOG.warnf("--concurrency %d: the heap (%d MiB) holds %d calls at once with requests at their largest, not 2 × %d + 4;"
                    + " calls beyond are refused (RESOURCE_EXHAUSTED): give the JVM more, BWRAPD_JVM_OPTS=-Xmx%dm (docs/buildbarn.md, Heap)",
                    options.concurrency(), Runtime.getRuntime().maxMemory() >> 20, callsHeld, options.concurrency(),
                    // the JVM's maximum heap leaves out a survivor space: a tenth more
                    ((2L * options.concurrency() + 4) * CallAdmission.HEAP_PER_CALL + CallAdmission.HEAP_AT_REST) * 11 / 10 >> 20);
        }
        long openFiles = Libc.getrlimit(0, Libc.RLIMIT_NOFILE)[0];
        int connections = ConnectionLimit.limit(openFiles, options.concurrency());
        if (connections < ConnectionLimit.MOST) {
            LOG.warnf("--concurrency %d: the open-files limit (%d) leaves %d connections at once, not %d, beyond the descriptors"
                    + " of the runner and its actions; connections beyond are closed at once: give it %d (systemd's LimitNOFILE;"
                    + " docs/buildbarn.md, What the socket takes)", options.concurrency(), openFiles, connections, ConnectionLimit.MOST,
                    ConnectionLimit.openFilesFor(options.concurrency()));
        }
        ConnectionLimit connectionLimit = new ConnectionLimit(connections);
        EpollEventLoopGroup events = new EpollEventLoopGroup(1, Thread.ofPlatform().daemon().name("grpc-epoll-", 0).factory());
        RunnerService service = new RunnerService(actions, runner, sandboxes, buildDirectory, options.concurrency());
        Server server;
        Object socket;
        // Bound where only the runner's user may go, given its mode there, then renamed into place:
        // the socket is 0660 whatever the umask, and no other user ever had a moment to connect
        // (a connection made between a bind and a chmod would stay usable).
        Path parent = options.listen().toAbsolutePath().getParent();
        Path privateDirectory = Files.createTempDirectory(parent, ".r",
                java.nio.file.attribute.PosixFilePermissions.asFileAttribute(java.nio.file.attribute.PosixFilePermissions.fromString("rwx------")));
        try {
            Path bound = privateDirectory.resolve("s");
            if (bound.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8).length > MAX_SOCKET_PATH) {
                System.err.println("bwrapd buildbarn-runner: --listen " + options.listen() + ": the runner binds it as " + bound
                        + " first, over the " + MAX_SOCKET_PATH + " bytes of a unix socket's path: use a shorter path");
                return 2;
            }
            server = NettyServerBuilder.forAddress(new DomainSocketAddress(bound.toString()))
                    .channelFactory(() -> {
                        EpollServerDomainSocketChannel listening = new EpollServerDomainSocketChannel();
                        listening.pipeline().addLast(connectionLimit); // before the acceptor Netty adds
                        return listening;
                    })
                    .bossEventLoopGroup(events)
                    .workerEventLoopGroup(events)
                    .executor(calls)
                    .maxInboundMessageSize(MAX_MESSAGE_BYTES)
                    .flowControlWindow(FLOW_CONTROL_WINDOW)
                    .handshakeTimeout(HANDSHAKE_SECONDS, java.util.concurrent.TimeUnit.SECONDS)
                    // No more calls open on one connection (HTTP/2's MAX_CONCURRENT_STREAMS; a client
                    // queues any more) than the runner holds over all of them: more would only be refused.
                    .maxConcurrentCallsPerConnection(callsHeld)
                    // grpc-java asks every accepted connection for TCP keep-alive, which a unix socket
                    // has not: Netty then warned on stderr once per connection. null takes the ask back.
                    .withChildOption(ChannelOption.SO_KEEPALIVE, null)
                    .addService(CallAdmission.admitted(service, new CallAdmission(options.concurrency(), callsHeld, CallAdmission.clock())))
                    .build()
                    .start();
            Files.setPosixFilePermissions(bound, java.nio.file.attribute.PosixFilePermissions.fromString("rw-rw----"));
            Files.move(bound, options.listen(), java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            socket = Files.readAttributes(options.listen(), java.nio.file.attribute.BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey();
        } finally {
            Files.deleteIfExists(privateDirectory.resolve("s"));
            Files.delete(privateDirectory);
        }
        endOnSignals(server, sandboxes, options.listen(), socket);
        LOG.infof("serving Buildbarn's runner on %s (build directory %s, --root %s, %d at once)", options.listen(),
                buildDirectoryPath, options.root().name().toLowerCase(java.util.Locale.ROOT), options.concurrency());
        server.awaitTermination();
        return 0;
    }

    /**
     * Whether {@code directory} is the directory open as {@code ancestor} (O_PATH) or lies beneath
     * it: the device and inode of it and of each of its ancestors, by its real path, against the
     * open directory's. So no spelling of the same place passes: a link, {@code ..}, or the same
     * directory bind-mounted elsewhere.
     */
    static boolean isOrBeneath(Path directory, int ancestor) throws IOException {
        Object key = Files.readAttributes(RootPaths.of(ancestor), java.nio.file.attribute.BasicFileAttributes.class).fileKey();
        for (Path path = directory.toRealPath(); path != null; path = path.getParent()) {
            if (key.equals(Files.readAttributes(path, java.nio.file.attribute.BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey())) {
                return true;
            }
        }
        return false;
    }

    /** A socket left by an earlier runner is replaced; anything else at that path is not touched. */
    private static void removeStaleSocket(Path listen) throws IOException {
        if (Files.exists(listen, LinkOption.NOFOLLOW_LINKS)
                && ((Integer) Files.getAttribute(listen, "unix:mode", LinkOption.NOFOLLOW_LINKS) & Libc.S_IFMT) == 0140000) {
            Files.delete(listen);
        }
    }

    /**
     * SIGTERM, SIGINT and SIGHUP: remove the socket (if it is still the one bound: {@code socket}
     * is its file key), refuse new calls, kill every sandbox and clean every root; the Runs in
     * flight are answered UNAVAILABLE (RunnerService) and given a moment to go out before the
     * transport goes; exit 128+N.
     */
    private static void endOnSignals(Server server, Sandboxes sandboxes, Path listen, Object socket) {
        for (String name : new String[] {"TERM", "INT", "HUP"}) {
            Signal.handle(new Signal(name), signal -> Thread.ofPlatform().name("bwrapd-exit").start(() -> {
                LOG.infof("SIG%s: ending every sandbox, then exiting", name);
                try {
                    if (socket.equals(Files.readAttributes(listen, java.nio.file.attribute.BasicFileAttributes.class,
                            LinkOption.NOFOLLOW_LINKS).fileKey())) Files.delete(listen);
                } catch (IOException | RuntimeException e) {
                    // gone already, or replaced: not ours to remove
                }
                server.shutdown(); // calls in flight go on; new ones are refused
                try {
                    sandboxes.shutdown();
                    server.awaitTermination(ANSWERS_AT_THE_END_MS, java.util.concurrent.TimeUnit.MILLISECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                server.shutdownNow();
                System.err.flush();
                Runtime.getRuntime().halt(128 + signal.getNumber());
            }));
        }
    }
}
