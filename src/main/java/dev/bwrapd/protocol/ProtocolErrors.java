package dev.bwrapd.protocol;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.bwrapd.jsonrpc.ErrorCodes;
import dev.bwrapd.jsonrpc.RpcException;
import dev.bwrapd.sandbox.SandboxException;

/** The bwrapd error codes (docs/protocol.md, Errors), and the one place where domain failures become them. */
public final class ProtocolErrors {
    private ProtocolErrors() {}

    public static final int NO_SUCH_SANDBOX = -32001;
    public static final int SANDBOX_ID_IN_USE = -32002;
    public static final int COMMAND_NOT_FOUND = -32003;
    public static final int BWRAP_UNUSABLE = -32004;
    public static final int PATH_NOT_ALLOWED = -32005;
    public static final int SHUTTING_DOWN = -32006;

    /** The error answer for a failure of a bwrapd method; null for what is not the protocol's (a bug: -32603). */
    public static RpcException toRpc(Throwable failure) {
        return switch (failure) {
            case RpcException e -> e;
            case SandboxException.Invalid e -> new RpcException(ErrorCodes.INVALID_PARAMS, e.getMessage());
            case SandboxException.NotAllowed e -> new RpcException(PATH_NOT_ALLOWED, e.getMessage());
            case SandboxException.CommandNotFound e -> new RpcException(COMMAND_NOT_FOUND, e.getMessage(),
                    object().put("command", e.command).put("root", e.root));
            case SandboxException.BwrapUnusable e -> {
                ObjectNode data = object();
                if (e.tried.isEmpty()) data.put("path", e.path).put("error", e.error);
                else e.tried.forEach(data.putArray("tried")::add);
                yield new RpcException(BWRAP_UNUSABLE, e.getMessage(), data);
            }
            case SandboxException.NoSuchSandbox e -> new RpcException(NO_SUCH_SANDBOX, e.getMessage());
            case SandboxException.IdInUse e -> new RpcException(SANDBOX_ID_IN_USE, e.getMessage());
            case SandboxException.ShuttingDown e -> new RpcException(SHUTTING_DOWN, e.getMessage());
            case SandboxException.Failed e -> new RpcException(ErrorCodes.INTERNAL_ERROR, e.getMessage());
            case InterruptedException e -> new RpcException(ErrorCodes.INTERNAL_ERROR, "interrupted");
            default -> null;
        };
    }

    private static ObjectNode object() {
        return JsonNodeFactory.instance.objectNode();
    }
}
