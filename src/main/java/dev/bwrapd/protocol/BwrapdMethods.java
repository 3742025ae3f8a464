package dev.bwrapd.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.bwrapd.jsonrpc.Call;
import dev.bwrapd.jsonrpc.ErrorCodes;
import dev.bwrapd.jsonrpc.Handler;
import dev.bwrapd.jsonrpc.RpcException;
import dev.bwrapd.process.Signals;
import dev.bwrapd.sandbox.HostCapabilities;
import dev.bwrapd.sandbox.HostProbe;
import dev.bwrapd.sandbox.RootPaths;
import dev.bwrapd.sandbox.RunSpec;
import dev.bwrapd.sandbox.Sandbox;
import dev.bwrapd.sandbox.SandboxRunner;
import dev.bwrapd.sandbox.Sandboxes;

import java.io.IOException;
import java.io.InputStream;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
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

    public BwrapdMethods(ObjectMapper json, Sandboxes sandboxes, SandboxRunner runner, CompletableFuture<HostCapabilities> host,
                         HostProbe.Lookup bwrapLookup, String serverVersion, Map<String, Object> limits, IntConsumer exit) {
        this.json = json;
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
        methods.put("initialize", this::initialize);
        methods.put("shutdown", this::shutdown);
        methods.put("exit", this::exit);
        methods.put("rpc.discover", call -> discover());
        methods.put("sandbox/run", this::run);
        methods.put("sandbox/signal", this::signal);
        methods.put("sandbox/suspend", call -> deliver(call, Signals.SIGSTOP));
        methods.put("sandbox/resume", call -> deliver(call, Signals.SIGCONT));
        methods.put("sandbox/terminate", this::terminate);
        methods.put("sandbox/list", this::list);
        return methods;
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

    private Object exit(Call call) {
        exit.accept(shutdownRequested ? 0 : 1);
        return null;
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

    private Object run(Call call) throws RpcException {
        RunSpec spec = RunParams.parse(call.params());
        HostCapabilities h = host.join();
        if (h.bwrapPath() == null) {
            ObjectNode data = json.createObjectNode();
            ArrayNode tried = data.putArray("tried");
            bwrapLookup.tried().forEach(tried::add);
            throw new RpcException(ErrorCodes.BWRAP_UNUSABLE, "bwrap not found (install bubblewrap or pass --bwrap)", data);
        }
        if (spec.linux32() && !h.linux32()) throw Params.invalid("linux32: this host has no linux32 (setarch) to set the personality");
        if (!RootPaths.hasCommand(spec.root(), spec.command().getFirst(), spec.cwd(), spec.env().get("PATH"))) {
            throw new RpcException(ErrorCodes.COMMAND_NOT_FOUND, "command not found in the sandbox root: " + spec.command().getFirst(),
                    json.createObjectNode().put("command", spec.command().getFirst()).put("root", spec.root().toString()));
        }
        Sandbox sandbox = sandboxes.register(spec.sandboxId(), spec.command());
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
                    ObjectNode params = json.createObjectNode().put("sandboxId", s.id()).put("stream", stream);
                    if (isText) params.put("text", new String(data, java.nio.charset.StandardCharsets.UTF_8));
                    else params.put("base64", Base64.getEncoder().encodeToString(data));
                    call.notifyClient("sandbox/output", params);
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
