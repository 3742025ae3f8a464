package dev.bwrapd.jsonrpc;

/** The error codes of PROTOCOL.md section 2. */
public final class ErrorCodes {
    private ErrorCodes() {}

    public static final int PARSE_ERROR = -32700;
    public static final int INVALID_REQUEST = -32600;
    public static final int METHOD_NOT_FOUND = -32601;
    public static final int INVALID_PARAMS = -32602;
    public static final int INTERNAL_ERROR = -32603;
    public static final int REQUEST_CANCELLED = -32800;

    public static final int NO_SUCH_SANDBOX = -32001;
    public static final int SANDBOX_ID_IN_USE = -32002;
    public static final int COMMAND_NOT_FOUND = -32003;
    public static final int BWRAP_UNUSABLE = -32004;
    public static final int PATH_NOT_ALLOWED = -32005;
    public static final int SHUTTING_DOWN = -32006;
    /** bwrapd's own: the request would take the server past its memory budget (--max-memory). */
    public static final int OUT_OF_MEMORY = -32010;
}
