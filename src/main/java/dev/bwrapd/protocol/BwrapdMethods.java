package dev.bwrapd.protocol;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.bwrapd.cgroup.CgroupHost;
import dev.bwrapd.jsonrpc.Call;
import dev.bwrapd.jsonrpc.ErrorCodes;
import dev.bwrapd.jsonrpc.Handler;
import dev.bwrapd.jsonrpc.RpcException;
import dev.bwrapd.memory.MemoryBudget;
import dev.bwrapd.process.Signals;
import dev.bwrapd.sandbox.BwrapCommand;
import dev.bwrapd.sandbox.HostCapabilities;
import dev.bwrapd.sandbox.RunSpec;
import dev.bwrapd.sandbox.Sandbox;
import dev.bwrapd.sandbox.SandboxRunner;
import dev.bwrapd.sandbox.Sandboxes;

import java.io.IOException;
import java.io.InputStream;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.IntConsumer;

/**
 * The methods of the bwrapd protocol (docs/protocol.md), bound to the sandbox layer: params in,
 * through {@link RunParams}; outcomes out, through {@link RunReporter}; failures through
 * {@link ProtocolErrors}.
 */
public final class BwrapdMethods {
    public static final String SERVER_NAME = "bwrapd";
    public static final int PROTOCOL_VERSION = 1;

    private final ObjectMapper json;
    private final Sandboxes sandboxes;
    private final SandboxRunner runner;
    private final CompletableFuture<HostCapabilities> host;
    private final String serverVersion;
    private final IntConsumer exit;
    private final Map<String, Object> limits;
    private final MemoryBudget budget;
    /** The filter of runs that name none (bwrapd --seccomp), or null. */
    private final RunSpec.Seccomp defaultSeccomp;
    private volatile boolean shutdownRequested;
    /** Set, in arrival order, by shutdown, exit or a signal: from then on every request but exit (and shutdown) is refused. */
    private volatile boolean closing;

    public BwrapdMethods(ObjectMapper json, Sandboxes sandboxes, SandboxRunner runner, CompletableFuture<HostCapabilities> host,
                         String serverVersion, Map<String, Object> limits, MemoryBudget budget, RunSpec.Seccomp defaultSeccomp,
                         IntConsumer exit) {
        this.json = json;
        this.budget = budget;
        this.sandboxes = sandboxes;
        this.runner = runner;
        this.host = host;
        this.serverVersion = serverVersion;
        this.limits = limits;
        this.defaultSeccomp = defaultSeccomp;
        this.exit = exit;
    }

    public Map<String, Handler> handlers() {
        Map<String, Handler> methods = new LinkedHashMap<>();
        methods.put("initialize", gated(this::initialize));
        methods.put("shutdown", new Handler() {
            @Override
            public Object handle(Call call) throws Exception {
                return shutdown(call);
            }

            @Override
            public void received(Call call) throws RpcException {
                Params.of(call.params()); // params refused (an array): answered -32602, and no barrier taken
                shutdownRequested = true;
                close();
            }
        });
        methods.put("exit", new Handler() {
            @Override
            public Object handle(Call call) {
                exit.accept(shutdownRequested ? 0 : 1);
                return null;
            }

            @Override
            public void received(Call call) throws RpcException {
                Params.of(call.params());
                close();
            }
        });
        methods.put("rpc.discover", gated(call -> discover()));
        methods.put("sandbox/run", gated((Handler.Deferred) this::startRun));
        methods.put("sandbox/signal", gated(this::signal));
        methods.put("sandbox/suspend", gated(call -> json.createObjectNode().put("delivered", target(call).suspend())));
        methods.put("sandbox/resume", gated(call -> json.createObjectNode().put("delivered", target(call).resume())));
        methods.put("sandbox/terminate", gated(this::terminate));
        methods.put("sandbox/list", gated(this::list));
        methods.put("sandbox/argv", gated(this::argv));
        methods.put("sandbox/input", gated((Handler.Deferred) this::input));
        methods.put("sandbox/resize", gated(this::resize));
        return methods;
    }

    /**
     * The shutdown barrier, taken on the reading thread in arrival order: every request read after
     * shutdown or exit (in the same buffer or batch too), or after a terminating signal, is refused.
     */
    public void close() {
        closing = true;
        sandboxes.refuseNew();
    }

    /** A method that is refused (-32006) once the server is closing. */
    private Handler gated(Handler handler) {
        if (handler instanceof Handler.Deferred deferred) {
            return new Handler.Deferred() {
                @Override
                public void received(Call call) throws Exception {
                    refuseIfClosing();
                }

                @Override
                public void start(Call call) throws Exception {
                    deferred.start(call);
                }
            };
        }
        return new Handler() {
            @Override
            public Object handle(Call call) throws Exception {
                return handler.handle(call);
            }

            @Override
            public void received(Call call) throws Exception {
                refuseIfClosing();
                handler.received(call);
            }
        };
    }

    private void refuseIfClosing() throws RpcException {
        if (closing) throw new RpcException(ProtocolErrors.SHUTTING_DOWN, "the server is shutting down: only exit, shutdown and $/cancelRequest are accepted");
    }

    private Object initialize(Call call) throws Exception {
        Params p = Params.of(call.params());
        p.string("clientName", null);
        p.string("clientVersion", null);
        Long version = p.integer("protocolVersion", Integer.MIN_VALUE, Integer.MAX_VALUE);
        if (version != null && version != PROTOCOL_VERSION) {
            throw Params.invalid("protocolVersion: this server speaks protocol version " + PROTOCOL_VERSION + ", not " + version);
        }
        HostCapabilities h = host.join();
        ObjectNode result = json.createObjectNode()
                .put("serverName", SERVER_NAME)
                .put("serverVersion", serverVersion)
                .put("protocolVersion", PROTOCOL_VERSION);
        result.putObject("bwrap").put("path", h.bwrapPath()).put("version", h.bwrapVersion());
        ObjectNode capabilities = result.putObject("capabilities");
        capabilities
                .put("userNamespaces", h.userNamespaces())
                .put("nestedUserNamespaces", h.nestedUserNamespaces())
                .put("dieWithParent", h.dieWithParent())
                .put("jsonStatusFd", h.jsonStatusFd())
                .put("childSubreaper", h.subreaper())
                .put("linux32", h.linux32())
                .put("seccomp", dev.bwrapd.process.Libc.seccompAvailable())
                .put("framings", "ndjson,lsp");
        CgroupHost cgroups = runner.cgroups();
        ObjectNode cgroup = capabilities.putObject("cgroup")
                .put("available", cgroups.available() && h.jsonStatusFd())
                .put("path", cgroups.v2Base() == null ? null : cgroups.v2Base().toString());
        cgroups.controllers().forEach(cgroup.putArray("controllers")::add);
        capabilities.set("limits", json.valueToTree(runner.limitMechanisms(h)));
        result.set("limits", json.valueToTree(limits));
        return result;
    }

    private Object shutdown(Call call) throws Exception {
        Params.of(call.params());
        shutdownRequested = true;
        try {
            return json.createObjectNode().put("terminated", sandboxes.shutdown());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RpcException(ErrorCodes.INTERNAL_ERROR, "interrupted while shutting down");
        }
    }

    private Object discover() throws Exception {
        try (InputStream in = BwrapdMethods.class.getResourceAsStream("/openrpc.json")) {
            ObjectNode document = (ObjectNode) json.readTree(in);
            ((ObjectNode) document.get("info")).put("version", serverVersion);
            return document;
        } catch (IOException | NullPointerException e) {
            throw new RpcException(ErrorCodes.INTERNAL_ERROR, "the OpenRPC document is missing from this build");
        }
    }

    /**
     * Validates the request and starts the run on a thread of the sandbox layer's own; the answer
     * goes out from that thread when the run ends. This part runs on arrival, before any later
     * message is read: the sandboxId is taken at once, so a sandbox/signal or sandbox/terminate the
     * client sends right after the request finds the sandbox (queued until it starts) instead of
     * racing the run to -32001, and a duplicate id is refused in arrival order too.
     */
    private void startRun(Call call) throws Exception {
        RunSpec spec = RunParams.parse(call.params(), defaultSeccomp);
        // What depends on the host (the probe, capabilities, limits) and the size of bwrap's argv
        // are checked by the run, on its own thread: the reading thread goes on to the next message.
        Sandbox sandbox = sandboxes.register(spec.sandboxId(), spec.command());
        try {
            call.onCancel(() -> sandbox.kill(Sandbox.Ending.CANCELLED));
            runner.start(spec, sandbox, new RunReporter(json, call, sandboxes, sandbox, budget));
        } catch (RuntimeException | dev.bwrapd.sandbox.SandboxException e) {
            sandboxes.remove(sandbox);
            throw e;
        }
    }

    /**
     * Extension: what {@code sandbox/run} with these params would execute (bwrap's argv and
     * environment; descriptor 3 is bwrap's status pipe), without running anything.
     */
    private Object argv(Call call) throws Exception {
        BwrapCommand.Invocation invocation = runner.invocation(RunParams.parse(call.params(), defaultSeccomp));
        invocation.checkExecSize();
        ObjectNode result = json.createObjectNode().put("executable", invocation.executable());
        ArrayNode argv = result.putArray("argv");
        invocation.argv().forEach(argv::add);
        ArrayNode env = result.putArray("env");
        invocation.environment().forEach(env::add);
        return result;
    }

    private Object signal(Call call) throws Exception {
        Params p = Params.of(call.params(), "sandboxId", "signal");
        String name = p.requiredString("signal");
        Integer signal = Signals.SENDABLE.get(name);
        if (signal == null) throw Params.invalid("signal: must be one of " + String.join(", ", Signals.SENDABLE.keySet().stream().sorted().toList()));
        Sandbox sandbox = sandboxes.get(p.requiredString("sandboxId"));
        return json.createObjectNode().put("delivered", sandbox.signal(signal));
    }

    private Sandbox target(Call call) throws Exception {
        Params p = Params.of(call.params(), "sandboxId");
        return sandboxes.get(p.requiredString("sandboxId"));
    }

    private Object terminate(Call call) throws Exception {
        Params p = Params.of(call.params(), "sandboxId", "graceMs");
        Long grace = p.integer("graceMs", 0, Long.MAX_VALUE / 2);
        Sandbox sandbox = sandboxes.get(p.requiredString("sandboxId"));
        return json.createObjectNode().put("delivered", runner.terminate(sandbox, Sandbox.Ending.TERMINATED, grace));
    }

    /**
     * Started on arrival, so pieces reach the command in the order they were sent; answered from
     * the run's thread once the bytes are in the pipe or terminal (fewer if it closed first).
     * Bytes waiting to be written are held against the memory budget: a piece that does not fit
     * is refused (-32010) instead of being held.
     */
    private void input(Call call) throws Exception {
        Params p = Params.of(call.params(), "sandboxId", "text", "base64", "eof");
        Sandbox sandbox = sandboxes.get(p.requiredString("sandboxId"));
        byte[] data = bytes(p);
        boolean eof = p.bool("eof", false);
        long held = data.length + PIECE_BYTES;
        if (!budget.tryReserve(held)) {
            throw new RpcException(ErrorCodes.OUT_OF_MEMORY, "sandbox/input: " + data.length
                    + " bytes do not fit in the memory budget while earlier input waits for the command");
        }
        try {
            sandbox.input(data, eof, written -> {
                budget.release(held);
                call.reply(json.createObjectNode().put("written", written));
            });
        } catch (RuntimeException | dev.bwrapd.sandbox.SandboxException e) {
            budget.release(held);
            throw e;
        }
    }

    /**
     * What a piece of input holds while it waits, besides its bytes (its request, call, callback and
     * place in the queue), counted with them: pieces of no bytes at all would otherwise be free,
     * and a client could queue them until the heap ran out.
     */
    static final int PIECE_BYTES = 1024;

    /** {@code text} (UTF-8) or {@code base64}; neither is no bytes (an eof alone). */
    private static byte[] bytes(Params p) throws RpcException {
        if (p.has("text")) {
            if (p.has("base64")) throw Params.invalid("text: give text or base64, not both");
            return p.string("text", "").getBytes(java.nio.charset.StandardCharsets.UTF_8);
        }
        String base64 = p.string("base64", "");
        try {
            return java.util.Base64.getDecoder().decode(base64);
        } catch (IllegalArgumentException e) {
            throw Params.invalid("base64: not valid base64");
        }
    }

    private Object resize(Call call) throws Exception {
        Params p = Params.of(call.params(), "sandboxId", "rows", "cols");
        int[] size = RunParams.size(p);
        Sandbox sandbox = sandboxes.get(p.requiredString("sandboxId"));
        return json.createObjectNode().put("delivered", sandbox.resize(size[0], size[1]));
    }

    private Object list(Call call) throws Exception {
        Params.of(call.params());
        ArrayNode list = json.createArrayNode();
        for (Sandbox s : sandboxes.list()) {
            Sandbox.State state = s.state();
            if (state == Sandbox.State.FINISHED) continue;
            ObjectNode entry = list.addObject().put("sandboxId", s.id()).put("pid", s.pid())
                    .put("state", state.name().toLowerCase(java.util.Locale.ROOT));
            ArrayNode command = entry.putArray("command");
            s.command().forEach(command::add);
            entry.put("startedAt", s.startedAt().toString());
        }
        return list;
    }

}
