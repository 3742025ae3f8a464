package dev.bwrapd.jsonrpc;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.MissingNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.concurrent.CompletableFuture;

/** One incoming request or notification, as its handler sees it, and the way to answer it. */
public final class Call {
    private final JsonNode id;
    private final JsonNode params;
    private final Server server;
    /** The request or batch this call belongs to, for {@link Server#awaitIdle()}; null for a lone notification. */
    final Object unit;
    /** Where the answer goes when the call is part of a batch; null: straight to the client. */
    final CompletableFuture<ObjectNode> batchSlot;
    /** Gives back what the message held of the memory budget once it is answered (lone calls only). */
    final Runnable release;
    private Runnable onCancel;
    private boolean cancelled;
    private boolean answered;

    Call(JsonNode id, JsonNode params, Server server, Object unit, CompletableFuture<ObjectNode> batchSlot, Runnable release) {
        this.id = id;
        this.params = params == null ? MissingNode.getInstance() : params;
        this.server = server;
        this.unit = unit;
        this.batchSlot = batchSlot;
        this.release = release == null ? () -> {} : release;
    }

    /** The request id exactly as sent, or null for a notification. */
    public JsonNode id() {
        return id;
    }

    /** The params member: an object, an array, or missing. */
    public JsonNode params() {
        return params;
    }

    /** Sends a notification to the client. */
    public void notifyClient(String method, Object params) {
        server.notifyClient(method, params);
    }

    /**
     * Sends a notification already serialized as a whole frame body ({@code body[0..length)}; a
     * spare byte after it takes the newline), not copied: the array is the server's until {@code written} runs (on
     * the writer's thread, once the frame is out or dropped). For a producer that can wait: it
     * waits while the client leaves too much unread (see Server), running {@code whileWaiting}
     * every few milliseconds meanwhile.
     */
    public void notifyClientRaw(byte[] body, int length, Runnable written, Runnable whileWaiting) {
        server.sendRaw(body, length, written, whileWaiting);
    }

    /** Sends a small notification already serialized as a whole frame body, at once: it never waits for the client. */
    public void notifyClientRawAtOnce(byte[] body) {
        server.postRaw(body, body.length);
    }

    /** Answers with a result (for a notification: only ends it). Only the first answer counts. */
    public void reply(Object result) {
        if (firstAnswer()) server.answer(this, result, null);
    }

    /** Answers with an error: an RpcException as it is, anything else through the server's error mapper. */
    public void fail(Throwable error) {
        if (firstAnswer()) server.answer(this, null, error);
    }

    private synchronized boolean firstAnswer() {
        if (answered) return false;
        answered = true;
        return true;
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
