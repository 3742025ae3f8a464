package dev.bwrapd.jsonrpc;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.MissingNode;

/** One incoming request or notification, as its handler sees it. */
public final class Call {
    private final String method;
    private final JsonNode id;
    private final JsonNode params;
    private final Server server;
    private Runnable onCancel;
    private boolean cancelled;

    Call(String method, JsonNode id, JsonNode params, Server server) {
        this.method = method;
        this.id = id;
        this.params = params == null ? MissingNode.getInstance() : params;
        this.server = server;
    }

    public String method() {
        return method;
    }

    /** The request id exactly as sent, or null for a notification. */
    public JsonNode id() {
        return id;
    }

    public boolean isNotification() {
        return id == null;
    }

    /** The params member: an object, an array, or missing. */
    public JsonNode params() {
        return params;
    }

    /** Sends a notification to the client. */
    public void notifyClient(String method, Object params) {
        server.notifyClient(method, params);
    }

    /** What to do if the client cancels this request ($/cancelRequest); runs at once if it already has. */
    public void onCancel(Runnable action) {
        boolean now;
        synchronized (this) {
            onCancel = action;
            now = cancelled;
        }
        if (now) action.run();
    }

    void cancel() {
        Runnable action;
        synchronized (this) {
            cancelled = true;
            action = onCancel;
        }
        if (action != null) action.run();
    }
}
