package dev.bwrapd.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.bwrapd.jsonrpc.Call;
import dev.bwrapd.jsonrpc.ErrorCodes;
import dev.bwrapd.jsonrpc.Handler;
import dev.bwrapd.jsonrpc.RpcException;
import dev.bwrapd.memory.MemoryBudget;
import dev.bwrapd.process.Signals;
import dev.bwrapd.sandbox.BwrapCommand;
import dev.bwrapd.sandbox.HostCapabilities;
import dev.bwrapd.sandbox.HostProbe;
import dev.bwrapd.sandbox.RootPaths;
import dev.bwrapd.sandbox.RunSpec;
import dev.bwrapd.sandbox.Sandbox;
import dev.bwrapd.sandbox.SandboxRunner;
import dev.bwrapd.sandbox.Sandboxes;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.IntConsumer;

/** The methods of the bwrapd protocol (PROTOCOL.md sections 3 to 6), bound to the sandbox layer. */
public final class BwrapdMethods {
    public static final String SERVER_NAME = "bwrapd";
    public static final int PROTOCOL_VERSION = 1;

    private final ObjectMapper json;
    private final Sandboxes sandboxes;
    private final SandboxRunner runner;
    private final CompletableFuture<HostCapabilities> host;
    private final HostProbe.Lookup bwrapLookup;
    private final String serverVersion;
    private final IntConsumer exit;
    private final Map<String, Object> limits;
    private volatile boolean shutdownRequested;
    /** Set, in arrival order, by shutdown, exit or a signal: from then on every request but exit (and shutdown) is refused. */
    private volatile boolean closing;
    private final MemoryBudget budget;
    /** Sandboxes registered as their sandbox/run arrived, until the run's thread takes them. */
    private final Map<Call, Sandbox> reserved = new ConcurrentHashMap<>();

    public BwrapdMethods(ObjectMapper json, Sandboxes sandboxes, SandboxRunner runner, CompletableFuture<HostCapabilities> host,
                         HostProbe.Lookup bwrapLookup, String serverVersion, Map<String, Object> limits, MemoryBudget budget,
                         IntConsumer exit) {
        this.json = json;
        this.budget = budget;
        this.sandboxes = sandboxes;
        this.runner = runner;
        this.host = host;
        this.bwrapLookup = bwrapLookup;
        this.serverVersion = serverVersion;
        this.limits = limits;
        this.exit = exit;
    }

    public Map<String, Handler> handlers() {
        Map<String, Handler> methods = new LinkedHashMap<>();
        methods.put("initialize", gated(this::initialize));
        methods.put("shutdown", new Handler() {
            @Override
            public Object handle(Call call) throws RpcException {
                return shutdown(call);
            }

            @Override
            public void received(Call call) {
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
            public void received(Call call) {
                close();
            }
        });
        methods.put("rpc.discover", gated(call -> discover()));
        methods.put("sandbox/run", gated(new Handler() {
            @Override
            public Object handle(Call call) throws RpcException {
                return run(call);
            }

            @Override
            public void received(Call call) throws RpcException {
                reserve(call);
            }
        }));
        methods.put("sandbox/signal", gated(this::signal));
        methods.put("sandbox/suspend", gated(call -> deliver(call, Signals.SIGSTOP)));
        methods.put("sandbox/resume", gated(call -> deliver(call, Signals.SIGCONT)));
        methods.put("sandbox/terminate", gated(this::terminate));
        methods.put("sandbox/list", gated(this::list));
        methods.put("sandbox/argv", gated(this::argv));
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
        return new Handler() {
            @Override
            public Object handle(Call call) throws RpcException {
                return handler.handle(call);
            }

            @Override
            public void received(Call call) throws RpcException {
                if (closing) throw new RpcException(ErrorCodes.SHUTTING_DOWN, "the server is shutting down: only exit is accepted");
                handler.received(call);
            }
        };
    }

    private Object initialize(Call call) throws RpcException {
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
        result.putObject("capabilities")
                .put("userNamespaces", h.userNamespaces())
                .put("dieWithParent", h.dieWithParent())
                .put("jsonStatusFd", h.jsonStatusFd())
                .put("childSubreaper", h.subreaper())
                .put("linux32", h.linux32())
                .put("framings", "ndjson,lsp");
        result.set("limits", json.valueToTree(limits));
        return result;
    }

    private Object shutdown(Call call) throws RpcException {
        Params.of(call.params());
        shutdownRequested = true;
        try {
            return json.createObjectNode().put("terminated", sandboxes.shutdown());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RpcException(ErrorCodes.INTERNAL_ERROR, "interrupted while shutting down");
        }
    }

    private Object discover() throws RpcException {
        try (InputStream in = BwrapdMethods.class.getResourceAsStream("/openrpc.json")) {
            ObjectNode document = (ObjectNode) json.readTree(in);
            ((ObjectNode) document.get("info")).put("version", serverVersion);
            return document;
        } catch (IOException | NullPointerException e) {
            throw new RpcException(ErrorCodes.INTERNAL_ERROR, "the OpenRPC document is missing from this build");
        }
    }

    /**
     * On arrival, before any later message is read: takes the run's sandboxId, so a sandbox/signal
     * or sandbox/terminate the client sends right after the request finds the sandbox (and is
     * queued until it starts) instead of racing the run's thread to -32001; a duplicate id is
     * refused (-32002) in arrival order too. Only a quick look at the params, no I/O: anything
     * malformed is left for {@link #run}'s validation to answer.
     */
    private void reserve(Call call) throws RpcException {
        JsonNode params = call.params();
        if (!params.isObject()) return;
        JsonNode id = params.get("sandboxId");
        String requested = null;
        if (id != null) {
            if (!id.isTextual() || id.textValue().isEmpty() || id.textValue().length() > 256) return;
            requested = id.textValue();
        }
        List<String> command = new ArrayList<>();
        for (JsonNode word : params.path("command")) command.add(word.asText());
        reserved.put(call, sandboxes.register(requested, List.copyOf(command)));
    }

    private Object run(Call call) throws RpcException {
        Sandbox reservation = reserved.remove(call);
        try {
            return run(call, reservation);
        } finally {
            if (reservation != null) sandboxes.remove(reservation);
        }
    }

    /** The host's capabilities, or -32004 if there is no bwrap to run. */
    private HostCapabilities usableHost(RunSpec spec) throws RpcException {
        HostCapabilities h = host.join();
        if (h.bwrapPath() == null) {
            ObjectNode data = json.createObjectNode();
            ArrayNode tried = data.putArray("tried");
            bwrapLookup.tried().forEach(tried::add);
            throw new RpcException(ErrorCodes.BWRAP_UNUSABLE, "bwrap not found (install bubblewrap or pass --bwrap)", data);
        }
        if (spec.linux32() && !h.linux32()) throw Params.invalid("linux32: this host has no linux32 (setarch) to set the personality");
        return h;
    }

    /**
     * Extension: what {@code sandbox/run} with these params would execute (bwrap's argv and
     * environment; descriptor 3 is bwrap's status pipe), without running anything.
     */
    private Object argv(Call call) throws RpcException {
        RunSpec spec = RunParams.parse(call.params());
        BwrapCommand.Invocation invocation = BwrapCommand.of(spec, usableHost(spec));
        RunParams.checkExecSize(invocation.argv(), invocation.environment());
        ObjectNode result = json.createObjectNode().put("executable", invocation.executable());
        ArrayNode argv = result.putArray("argv");
        invocation.argv().forEach(argv::add);
        ArrayNode env = result.putArray("env");
        invocation.environment().forEach(env::add);
        return result;
    }

    private Object run(Call call, Sandbox reservation) throws RpcException {
        RunSpec spec = RunParams.parse(call.params());
        HostCapabilities h = usableHost(spec);
        BwrapCommand.Invocation invocation = BwrapCommand.of(spec, h);
        RunParams.checkExecSize(invocation.argv(), invocation.environment());
        if (!RootPaths.hasCommand(spec.root(), spec.command().getFirst(), spec.cwd(), spec.env().get("PATH"))) {
            throw new RpcException(ErrorCodes.COMMAND_NOT_FOUND, "command not found in the sandbox root: " + spec.command().getFirst(),
                    json.createObjectNode().put("command", spec.command().getFirst()).put("root", spec.root().toString()));
        }
        Sandbox sandbox = reservation != null ? reservation : sandboxes.register(spec.sandboxId(), spec.command());
        try {
            call.onCancel(() -> sandbox.kill(Sandbox.Ending.CANCELLED));
            return runner.run(spec, h, sandbox, new SandboxRunner.Events() {
                @Override
                public void started(Sandbox s) {
                    ObjectNode params = json.createObjectNode().put("sandboxId", s.id()).put("pid", s.pid());
                    params.set("requestId", call.id());
                    call.notifyClient("sandbox/started", params);
                }

                @Override
                public void output(Sandbox s, String stream, byte[] data, boolean isText) {
                    // Held until written: as text (up to 2 bytes a character) or base64. Waiting for room
                    // holds the reader, so the command waits on its pipe while the client is slow.
                    long held = 2L * data.length;
                    try {
                        budget.reserve(held);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        held = 0; // sent all the same: output is never dropped
                    }
                    try {
                        ObjectNode params = json.createObjectNode().put("sandboxId", s.id()).put("stream", stream);
                        if (isText) params.put("text", new String(data, java.nio.charset.StandardCharsets.UTF_8));
                        else params.put("base64", Base64.getEncoder().encodeToString(data));
                        call.notifyClient("sandbox/output", params);
                    } finally {
                        if (held > 0) budget.release(held);
                    }
                }
            });
        } finally {
            sandboxes.remove(sandbox);
        }
    }

    private Object signal(Call call) throws RpcException {
        Params p = Params.of(call.params(), "sandboxId", "signal");
        String name = p.requiredString("signal");
        Integer signal = Signals.SENDABLE.get(name);
        if (signal == null) throw Params.invalid("signal: must be one of " + String.join(", ", Signals.SENDABLE.keySet().stream().sorted().toList()));
        Sandbox sandbox = sandboxes.get(p.requiredString("sandboxId"));
        return json.createObjectNode().put("delivered", sandbox.signal(signal));
    }

    private Object deliver(Call call, int signal) throws RpcException {
        Params p = Params.of(call.params(), "sandboxId");
        Sandbox sandbox = sandboxes.get(p.requiredString("sandboxId"));
        return json.createObjectNode().put("delivered", sandbox.signal(signal));
    }

    private Object terminate(Call call) throws RpcException {
        Params p = Params.of(call.params(), "sandboxId", "graceMs");
        Long grace = p.integer("graceMs", 0, Long.MAX_VALUE / 2);
        Sandbox sandbox = sandboxes.get(p.requiredString("sandboxId"));
        boolean live = sandbox.state() != Sandbox.State.FINISHED;
        runner.terminate(sandbox, Sandbox.Ending.TERMINATED, grace);
        return json.createObjectNode().put("delivered", live);
    }

    private Object list(Call call) throws RpcException {
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
