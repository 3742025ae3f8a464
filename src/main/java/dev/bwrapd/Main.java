package dev.bwrapd;

import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import dev.bwrapd.cgroup.CgroupHost;
import dev.bwrapd.cgroup.Rlimits;
import dev.bwrapd.cleanup.RootJournal;
import dev.bwrapd.cleanup.RootLeases;
import com.fasterxml.jackson.databind.module.SimpleModule;
import dev.bwrapd.jsonrpc.MessageReader;
import dev.bwrapd.jsonrpc.MessageWriter;
import dev.bwrapd.jsonrpc.Server;
import dev.bwrapd.process.Libc;
import dev.bwrapd.process.Reaper;
import dev.bwrapd.process.SessionKeyring;
import dev.bwrapd.process.Spawner;
import dev.bwrapd.process.Watchdog;
import dev.bwrapd.memory.MemoryBudget;
import dev.bwrapd.protocol.BwrapdMethods;
import dev.bwrapd.protocol.CaptureSerializer;
import dev.bwrapd.protocol.ProtocolErrors;
import dev.bwrapd.sandbox.Capture;
import dev.bwrapd.sandbox.HostCapabilities;
import dev.bwrapd.sandbox.HostProbe;
import dev.bwrapd.sandbox.RunSpec;
import dev.bwrapd.sandbox.SandboxRunner;
import dev.bwrapd.sandbox.Sandboxes;
import io.quarkus.runtime.QuarkusApplication;
import io.quarkus.runtime.annotations.QuarkusMain;
import org.jboss.logging.Logger;

import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.logging.Level;

import sun.misc.Signal;

/** Entry point: wires the JSON-RPC server on stdin/stdout to the sandbox layer. */
@QuarkusMain
public class Main implements QuarkusApplication {
    private static final Logger LOG = Logger.getLogger(Main.class);
    public static final int MAX_NESTING_DEPTH = 64;
    /** Per captured stream, kept in memory (budget allowing) before the rest goes to a spool file. */
    static final int CAPTURE_MEMORY_BYTES = 256 * 1024;
    /** What the pipe to the client is grown to hold: fs.pipe-max-size's default, which any user may ask. */
    static final int CLIENT_PIPE_BYTES = 1 << 20;
    /**
     * Whether this is the native image: a constant there (the class is initialized while the image
     * is built), so the Buildbarn runner and gRPC stay out of the binary (docs/buildbarn.md says why).
     */
    private static final boolean NATIVE_IMAGE = System.getProperty("org.graalvm.nativeimage.imagecode") != null;

    @Override
    public int run(String... args) throws Exception {
        // The Buildbarn runner is a mode of its own (gRPC on a unix socket): only it loads gRPC.
        if (args.length > 0 && args[0].equals("buildbarn-runner")) {
            if (NATIVE_IMAGE) {
                System.err.println("bwrapd buildbarn-runner: not in the native build (docs/buildbarn.md); run the JVM build:"
                        + " BWRAPD_JVM=1 ./bwrapd buildbarn-runner ...");
                return 2;
            }
            return dev.bwrapd.buildbarn.RunnerCommand.run(java.util.Arrays.copyOfRange(args, 1, args.length));
        }
        // stdout carries protocol frames only: anything else that prints goes to stderr.
        OutputStream protocolOut = new FileOutputStream(FileDescriptor.out);
        PrintStream stdout = System.out;
        System.setOut(System.err);

        Options options;
        try {
            options = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("bwrapd: " + e.getMessage() + "\n\n" + Options.USAGE);
            return 2;
        }
        if (options.help()) {
            stdout.print(Options.USAGE);
            stdout.flush();
            return 0;
        }
        if (options.version()) {
            stdout.println("bwrapd " + Version.VERSION);
            stdout.flush();
            return 0;
        }
        long heap = Runtime.getRuntime().maxMemory();
        if (options.maxMessageBytes() > heap / 4) {
            // A message is read whole before the budget can refuse it, and copied once: a limit the
            // heap cannot hold a few times over would end the helper at the first such message.
            System.err.println("bwrapd: --max-message-bytes " + options.maxMessageBytes() + " does not fit the heap of "
                    + heap + " bytes four times over (a message is read whole, then parsed): lower it, or raise the heap (-Xmx)");
            return 2;
        }
        long memory = options.maxMemory() != null ? options.maxMemory() : defaultMemory();
        setLogLevel(options.logLevel());
        logStartup("main entered");
        SessionKeyring.joinOwn();

        // The process-wide pieces, made here and passed down (never in static initializers: a
        // native image initializes classes at build time). None starts a thread or a process yet.
        Reaper reaper = new Reaper();
        Spawner spawner = new Spawner(reaper);
        Watchdog watchdog = new Watchdog(spawner);
        // Before anything is spawned: bwrapd may have to move into a leaf of its own cgroup, which
        // it does only while it is the cgroup's one process (see CgroupHost).
        CgroupHost cgroups = CgroupHost.detect(options.cgroupParent());
        LOG.debugf("%s", cgroups);
        if (options.cgroupParent() != null && cgroups.v2Base() == null) LOG.warnf("%s", cgroups.note());

        HostProbe.Lookup bwrap = HostProbe.findBwrap(options.bwrap());
        // Linking the libc downcalls and probing bwrap are the slowest part of start-up: both go
        // alongside; initialize is answered when the probe is done.
        CompletableFuture<HostCapabilities> host = HostProbe.start(bwrap, reaper, Version.VERSION, cgroups.v1Hierarchies());
        host.thenRun(() -> logStartup("bwrap probed"));
        if (bwrap.found() == null) LOG.warnf("bwrap not found (tried %s); sandbox/run will fail", bwrap.tried());

        MemoryBudget budget = new MemoryBudget(memory);
        LOG.debugf("memory budget: %d bytes", budget.limit());
        Capture.Store captures = new Capture.Store(budget, Capture.spoolDirectory(), CAPTURE_MEMORY_BYTES);
        ObjectMapper json = jsonMapper(options.maxMessageBytes());
        MessageReader reader = new MessageReader(new FileInputStream(FileDescriptor.in), options.framing(), options.maxMessageBytes());
        // The pipe to the client grows to 1 MiB, not 64 KiB, where the kernel lets it (the client's
        // end is the same pipe): streamed output goes ~15-20 % faster, the helper and the client
        // woken less often. It counts 256 pages against the user's fs.pipe-user-pages-soft (16384)
        // instead of 16 (docs/performance.md), so only a helper that writes large frames (streamed
        // output, captures) grows it, at its first: a user's many helpers that do not, spend nothing.
        MessageWriter writer = new MessageWriter(protocolOut, reader::framing, () -> Libc.growPipe(1, CLIENT_PIPE_BYTES));
        Sandboxes sandboxes = new Sandboxes(watchdog);
        Map<String, Object> limits = new LinkedHashMap<>();
        limits.put("maxMessageBytes", options.maxMessageBytes());
        limits.put("maxNestingDepth", MAX_NESTING_DEPTH);
        Shutdown[] shutdown = new Shutdown[1];
        // What a killed bwrapd left in a root is recorded outside it, for the next bwrapd to remove.
        RootLeases leases = new RootLeases(RootJournal.open(System.getenv("XDG_RUNTIME_DIR"), Libc.uid()));
        SandboxRunner runner = new SandboxRunner(leases, spawner, reaper, SandboxRunner.runThreads(), host, bwrap.tried(),
                captures, cgroups, Rlimits.clientOpenFiles());
        BwrapdMethods methods = new BwrapdMethods(json, sandboxes, runner, host,
                Version.VERSION, limits, budget, options.seccompDefault() ? RunSpec.Seccomp.DEFAULT : null,
                code -> shutdown[0].finishInBackground("exit", code));
        // Handlers that block (shutdown, signals waiting for a command) get pool threads; runs have their own.
        // Idle ones end within a second, like the runs' threads: the helper goes back to the threads it had.
        ExecutorService handlers = SandboxRunner.retiringThreads("rpc-");
        Server server = new Server(json, reader, writer, options.maxMessageBytes(), methods.handlers(), handlers, ProtocolErrors::toRpc, budget);
        shutdown[0] = new Shutdown(methods, sandboxes, server);
        new IdleCollector(sandboxes, () -> server.flush(Long.MAX_VALUE)).start();
        handleTerminatingSignals(shutdown[0]);

        logStartup("serving");
        server.serve();
        // End of input: the client is gone or done. End every sandbox, clean up, answer what can be answered.
        shutdown[0].finish("end of input");
        return 0;
    }

    /**
     * SIGTERM, SIGINT and SIGHUP end the helper the way shutdown and end of input do (within
     * {@link Shutdown}'s bound), then it exits with 128 + the signal's number. Installed here,
     * never in a static initializer (a native image initializes classes at build time); a native
     * image needs signal handling enabled, which is its default for executables.
     */
    private static void handleTerminatingSignals(Shutdown shutdown) {
        for (String name : new String[] {"TERM", "INT", "HUP"}) {
            try {
                Signal.handle(new Signal(name), signal -> {
                    LOG.infof("SIG%s: ending every sandbox, then exiting", name);
                    shutdown.finishInBackground("SIG" + name, 128 + signal.getNumber());
                });
            } catch (IllegalArgumentException e) {
                LOG.warnf("cannot handle SIG%s: %s", name, e.getMessage());
            }
        }
    }

    /**
     * A start-up milestone in the debug log. Only then is the time asked for: the process's start
     * time costs a handful of /proc and /etc/passwd reads, at every start.
     */
    private static void logStartup(String milestone) {
        if (LOG.isDebugEnabled()) LOG.debugf("%s %d ms after the process started", milestone, sinceStart());
    }

    /**
     * Milliseconds since this process started, for start-up measurements in debug logs. The
     * kernel's start time is only as exact as the boot time (a second); a measuring script can
     * pass the exact launch time in BWRAPD_LAUNCH_MS (epoch milliseconds) instead.
     */
    static long sinceStart() {
        String launched = System.getenv("BWRAPD_LAUNCH_MS");
        if (launched != null && launched.matches("\\d+")) return System.currentTimeMillis() - Long.parseLong(launched);
        return ProcessHandle.current().info().startInstant()
                .map(start -> java.time.Duration.between(start, java.time.Instant.now()).toMillis()).orElse(-1L);
    }

    /**
     * Half the maximum heap: the other half is the helper's own (its threads, the one message being
     * read and parsed, which can hold a few times --max-message-bytes, buffers).
     */
    static long defaultMemory() {
        return Math.max(Options.MIN_MEMORY, Runtime.getRuntime().maxMemory() / 2);
    }

    public static ObjectMapper jsonMapper(long maxMessageBytes) {
        JsonMapper mapper = JsonMapper.builder()
                .addModule(new SimpleModule().addSerializer(Capture.class, new CaptureSerializer()))
                .nodeFactory(JsonNodeFactory.withExactBigDecimals(true))
                .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
                .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
                // A key given twice is refused: which of two "id"s or "method"s counts is not for a parser to guess.
                .enable(com.fasterxml.jackson.core.StreamReadFeature.STRICT_DUPLICATE_DETECTION)
                .build();
        mapper.getFactory().setStreamReadConstraints(StreamReadConstraints.builder()
                .maxNestingDepth(MAX_NESTING_DEPTH)
                .maxStringLength((int) Math.max(maxMessageBytes, StreamReadConstraints.DEFAULT_MAX_STRING_LEN))
                .build());
        return mapper;
    }

    private static void setLogLevel(String level) {
        Level julLevel = switch (level) {
            case "error" -> Level.SEVERE;
            case "info" -> Level.INFO;
            case "debug" -> Level.FINE;
            default -> Level.WARNING;
        };
        java.util.logging.Logger.getLogger("dev.bwrapd").setLevel(julLevel);
    }
}
