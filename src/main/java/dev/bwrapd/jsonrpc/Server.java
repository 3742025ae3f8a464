package dev.bwrapd.jsonrpc;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.exc.StreamConstraintsException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.NullNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.jboss.logging.Logger;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.function.Function;

/**
 * A JSON-RPC 2.0 endpoint over a message stream: parses, validates, dispatches each request to its
 * handler (on a pool thread, or started in arrival order for a {@link Handler.Deferred} that
 * answers later from a thread of its own), and writes each response whole, from the answering
 * thread. Batches are answered in one array, in order.
 */
public final class Server {
    private static final Logger LOG = Logger.getLogger(Server.class);
    public static final String CANCEL_METHOD = "$/cancelRequest";

    private final ObjectMapper json;
    private final MessageReader reader;
    private final MessageWriter writer;
    private final long maxMessageBytes;
    private final Map<String, Handler> methods;
    private final Map<String, Call> inFlight = new ConcurrentHashMap<>();
    /** One token per request or batch with a request still unanswered (identity: plain Objects). */
    private final Set<Object> pending = new HashSet<>();
    /** The tokens of handlers now inside awaitIdle (once per handler thread); guarded by pending. */
    private final List<Object> waiting = new ArrayList<>();
    /** The token of the request or batch a handler thread serves, so it never waits for itself. */
    private static final ThreadLocal<Object> UNIT = new ThreadLocal<>();
    /** Runs each request's handler; handlers may block, so it must not queue behind busy threads. */
    private final Executor handlers;
    /** Turns a handler's own exceptions into error answers (null: an internal error). */
    private final Function<Throwable, RpcException> errors;

    public Server(ObjectMapper json, MessageReader reader, MessageWriter writer, long maxMessageBytes,
                  Map<String, Handler> methods, Executor handlers) {
        this(json, reader, writer, maxMessageBytes, methods, handlers, t -> null);
    }

    public Server(ObjectMapper json, MessageReader reader, MessageWriter writer, long maxMessageBytes,
                  Map<String, Handler> methods, Executor handlers, Function<Throwable, RpcException> errors) {
        this.handlers = handlers;
        this.errors = errors;
        this.json = json;
        this.reader = reader;
        this.writer = writer;
        this.maxMessageBytes = maxMessageBytes;
        this.methods = methods;
    }

    /** Serves until end of input. Requests still running go on; see {@link #awaitIdle()}. */
    public void serve() throws IOException {
        while (true) {
            switch (reader.next()) {
                case Frame.Message(byte[] body) -> receive(body);
                case Frame.TooLarge(long size) -> send(error(NullNode.getInstance(), ErrorCodes.INVALID_REQUEST,
                        "message of " + size + " bytes exceeds the limit of " + maxMessageBytes + " bytes (--max-message-bytes)"));
                case Frame.Garbled(String reason) -> send(error(NullNode.getInstance(), ErrorCodes.PARSE_ERROR, "Parse error: " + reason));
                case Frame.End() -> {
                    return;
                }
            }
        }
    }

    /**
     * Waits until every request received so far has been answered (its response written). Called from
     * a handler (exit), it does not wait for the request or batch that handler is serving itself, nor
     * for others that are waiting here too (two exits sent as requests must not wait for each other).
     */
    public void awaitIdle() throws InterruptedException {
        Object own = UNIT.get();
        synchronized (pending) {
            if (own == null) {
                while (!pending.isEmpty()) pending.wait();
                return;
            }
            waiting.add(own);
            pending.notifyAll();
            try {
                while (!waiting.containsAll(pending)) pending.wait();
            } finally {
                waiting.remove(own);
            }
        }
    }

    public void notifyClient(String method, Object params) {
        ObjectNode message = json.createObjectNode().put("jsonrpc", "2.0").put("method", method);
        message.set("params", tree(params));
        send(message);
    }

    /** A value as a JSON tree; a tree is taken as it is (valueToTree would copy it through a serializer). */
    private JsonNode tree(Object value) {
        return value instanceof JsonNode node ? node : json.valueToTree(value);
    }

    private void receive(byte[] body) {
        String badUtf8 = invalidUtf8(body);
        if (badUtf8 != null) {
            send(error(NullNode.getInstance(), ErrorCodes.PARSE_ERROR, "Parse error: " + badUtf8));
            return;
        }
        JsonNode message;
        try {
            message = json.readTree(body);
        } catch (StreamConstraintsException e) {
            send(error(NullNode.getInstance(), ErrorCodes.INVALID_REQUEST, "Invalid Request: " + e.getOriginalMessage()));
            return;
        } catch (IOException e) {
            String detail = e instanceof JsonProcessingException p ? p.getOriginalMessage() : e.getMessage();
            send(error(NullNode.getInstance(), ErrorCodes.PARSE_ERROR, "Parse error: " + detail));
            return;
        }
        if (message == null || message.isMissingNode()) {
            send(error(NullNode.getInstance(), ErrorCodes.PARSE_ERROR, "Parse error: no JSON value"));
        } else if (message.isArray()) {
            receiveBatch((ArrayNode) message);
        } else {
            // Notifications (exit among them) are not waited for. The token is taken before the handler
            // starts, and released only once the response is written, so awaitIdle misses nothing.
            dispatch(message, message.has("id") ? begin() : null, null);
        }
    }

    private void receiveBatch(ArrayNode batch) {
        if (batch.isEmpty()) {
            send(error(NullNode.getInstance(), ErrorCodes.INVALID_REQUEST, "Invalid Request: empty batch"));
            return;
        }
        boolean hasRequest = false;
        for (JsonNode element : batch) hasRequest |= element.has("id");
        Object unit = hasRequest ? begin() : null;
        List<CompletableFuture<ObjectNode>> responses = new ArrayList<>();
        for (JsonNode element : batch) {
            CompletableFuture<ObjectNode> slot = new CompletableFuture<>();
            responses.add(slot);
            dispatch(element, unit, slot);
        }
        CompletableFuture<Void> all = CompletableFuture.allOf(responses.toArray(CompletableFuture[]::new));
        CompletableFuture<ArrayNode> answer = all.thenApply(done -> {
            ArrayNode array = json.createArrayNode();
            for (CompletableFuture<ObjectNode> r : responses) if (r.join() != null) array.add(r.join());
            return array;
        });
        answer.whenComplete((array, t) -> {
            try {
                if (array != null && !array.isEmpty()) send(array);
            } finally {
                end(unit);
            }
        });
    }

    /**
     * Validates one message and starts it. Its answer goes to {@code slot} when it is part of a
     * batch (null for a notification), else straight to the client.
     */
    private void dispatch(JsonNode message, Object unit, CompletableFuture<ObjectNode> slot) {
        if (!message.isObject()) {
            early(slot, unit, error(NullNode.getInstance(), ErrorCodes.INVALID_REQUEST, "Invalid Request: a message must be an object"));
            return;
        }
        JsonNode id = message.get("id");
        if (id != null && !(id.isTextual() || id.isNumber() || id.isNull())) {
            early(slot, unit, invalid(NullNode.getInstance(), "id must be a string, a number or null"));
            return;
        }
        JsonNode replyId = id == null ? NullNode.getInstance() : id;
        JsonNode version = message.get("jsonrpc");
        if (version == null || !version.isTextual() || !version.textValue().equals("2.0")) {
            early(slot, unit, invalid(replyId, "jsonrpc must be \"2.0\""));
            return;
        }
        JsonNode method = message.get("method");
        if (method == null || !method.isTextual()) {
            early(slot, unit, invalid(replyId, "method must be a string"));
            return;
        }
        JsonNode params = message.get("params");
        if (params != null && !params.isObject() && !params.isArray()) {
            early(slot, unit, invalid(replyId, "params must be an object or an array"));
            return;
        }
        String name = method.textValue();
        Call call = new Call(id, params, this, unit, slot);
        if (name.equals(CANCEL_METHOD)) {
            cancel(call.params().get("id"));
            call.reply(NullNode.getInstance());
            return;
        }
        Handler handler = methods.get(name);
        if (handler == null) {
            call.fail(new RpcException(ErrorCodes.METHOD_NOT_FOUND, "Method not found: " + name));
            return;
        }
        if (id != null) inFlight.put(key(id), call);
        if (handler instanceof Handler.Deferred deferred) {
            try {
                deferred.start(call); // in arrival order, before any later message is dispatched
            } catch (Exception e) { // a bug in one method (a RuntimeException) must not end the server either
                call.fail(e);
            }
            return;
        }
        handlers.execute(() -> {
            UNIT.set(unit);
            try {
                call.reply(handler.handle(call));
            } catch (Throwable t) {
                call.fail(t);
            } finally {
                UNIT.remove();
            }
        });
    }

    /** An answer before any handler ran (the message was invalid). */
    private void early(CompletableFuture<ObjectNode> slot, Object unit, ObjectNode response) {
        if (slot != null) {
            slot.complete(response);
        } else {
            try {
                send(response);
            } finally {
                end(unit);
            }
        }
    }

    /** A call's one answer: written at once (on the answering thread), or into its batch's slot. */
    void answer(Call call, Object result, Throwable failure) {
        JsonNode id = call.id();
        if (id != null) inFlight.remove(key(id), call);
        try {
            if (id == null) {
                if (failure != null) LOG.debugf("a notification failed: %s", failure.toString());
                if (call.batchSlot != null) call.batchSlot.complete(null);
                return;
            }
            if (failure != null) {
                ObjectNode response = errorResponse(id, failure);
                if (call.batchSlot != null) call.batchSlot.complete(response);
                else send(response);
            } else if (call.batchSlot != null) {
                call.batchSlot.complete(result(id, tree(result)));
            } else if (result instanceof RawJson raw) {
                sendRaw(id, raw);
            } else {
                send(result(id, tree(result)));
            }
        } finally {
            if (call.batchSlot == null) end(call.unit);
        }
    }

    private ObjectNode errorResponse(JsonNode id, Throwable failure) {
        RpcException e = failure instanceof RpcException rpc ? rpc : errors.apply(failure);
        if (e == null) {
            LOG.errorf(failure, "internal error");
            return error(id, ErrorCodes.INTERNAL_ERROR, "Internal error: " + failure);
        }
        return error(id, e.code(), e.getMessage(), e.data());
    }

    private void cancel(JsonNode id) {
        if (id == null || !(id.isTextual() || id.isNumber())) return;
        Call call = inFlight.get(key(id));
        if (call != null) call.cancel();
    }

    /** Ids of different types never collide: "1" and 1 are different requests. */
    private static String key(JsonNode id) {
        return (id.isTextual() ? "s:" : "n:") + id.asText();
    }

    private Object begin() {
        Object unit = new Object();
        synchronized (pending) {
            pending.add(unit);
        }
        return unit;
    }

    private void end(Object unit) {
        if (unit == null) return;
        synchronized (pending) {
            pending.remove(unit);
            pending.notifyAll();
        }
    }

    /** Why the body is not well-formed UTF-8 (which the JSON parser would partly let through), or null when it is. */
    static String invalidUtf8(byte[] body) {
        int valid = Utf8.validUpTo(body, 0, body.length);
        return valid == body.length ? null : "invalid UTF-8 at byte " + valid;
    }

    private ObjectNode invalid(JsonNode id, String why) {
        return error(id, ErrorCodes.INVALID_REQUEST, "Invalid Request: " + why);
    }

    private ObjectNode result(JsonNode id, JsonNode result) {
        ObjectNode response = json.createObjectNode().put("jsonrpc", "2.0");
        response.set("id", id);
        response.set("result", result);
        return response;
    }

    private ObjectNode error(JsonNode id, int code, String message) {
        return error(id, code, message, null);
    }

    private ObjectNode error(JsonNode id, int code, String message, JsonNode data) {
        ObjectNode response = json.createObjectNode().put("jsonrpc", "2.0");
        response.set("id", id);
        ObjectNode error = response.putObject("error").put("code", code).put("message", message);
        if (data != null) error.set("data", data);
        return response;
    }

    private static final byte[] RESULT_START = "{\"jsonrpc\":\"2.0\",\"id\":".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] RESULT_MIDDLE = ",\"result\":".getBytes(StandardCharsets.US_ASCII);

    /** A response whose result is already serialized: copied once into the frame, never parsed again. */
    private void sendRaw(JsonNode id, RawJson result) {
        try {
            byte[] idBytes = json.writeValueAsBytes(id);
            byte[] frame = new byte[RESULT_START.length + idBytes.length + RESULT_MIDDLE.length + result.length() + 2];
            int at = put(frame, 0, RESULT_START, RESULT_START.length);
            at = put(frame, at, idBytes, idBytes.length);
            at = put(frame, at, RESULT_MIDDLE, RESULT_MIDDLE.length);
            at = put(frame, at, result.bytes(), result.length());
            frame[at++] = '}';
            writer.write(frame, at);
        } catch (JsonProcessingException e) {
            LOG.error("cannot serialize a response", e);
        }
    }

    private static int put(byte[] into, int at, byte[] bytes, int length) {
        System.arraycopy(bytes, 0, into, at, length);
        return at + length;
    }

    /** Sends a message already serialized ({@code body[0..length)}; a spare byte after it saves a copy). */
    public void sendRaw(byte[] body, int length) {
        writer.write(body, length);
    }

    private void send(JsonNode message) {
        try {
            writer.write(json.writeValueAsBytes(message));
        } catch (JsonProcessingException e) {
            LOG.error("cannot serialize a response", e);
        }
    }
}
