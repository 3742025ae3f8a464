package dev.bwrapd.jsonrpc;

import com.fasterxml.jackson.databind.JsonNode;

/** An error answer: a JSON-RPC error code, a message for people, optional data for programs. */
public class RpcException extends Exception {
    private final int code;
    private final transient JsonNode data;

    public RpcException(int code, String message) {
        this(code, message, null);
    }

    public RpcException(int code, String message, JsonNode data) {
        super(message, null, false, false);
        this.code = code;
        this.data = data;
    }

    public int code() {
        return code;
    }

    public JsonNode data() {
        return data;
    }
}
