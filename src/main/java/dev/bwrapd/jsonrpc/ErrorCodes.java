package dev.bwrapd.jsonrpc;

/** The error codes JSON-RPC 2.0 defines, and -32800 (request cancelled) as LSP uses it. */
public final class ErrorCodes {
    private ErrorCodes() {}

    public static final int PARSE_ERROR = -32700;
    public static final int INVALID_REQUEST = -32600;
    public static final int METHOD_NOT_FOUND = -32601;
    public static final int INVALID_PARAMS = -32602;
    public static final int INTERNAL_ERROR = -32603;
    public static final int REQUEST_CANCELLED = -32800;
    /** bwrapd's own server error: the request would take the server past its memory budget (--max-memory). */
    public static final int OUT_OF_MEMORY = -32010;
}
