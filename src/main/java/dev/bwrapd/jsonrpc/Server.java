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
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A JSON-RPC 2.0 endpoint over a message stream: parses, validates, dispatches each request on its
 * own platform thread (requests run concurrently and may take long: a sandbox run lasts as long as
 * its command), and writes each response whole. Batches are answered in one array, in order.
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
    private final Object idle = new Object();
    private int pending;

    public Server(ObjectMapper json, MessageReader reader, MessageWriter writer, long maxMessageBytes,
                  Map<String, Handler> methods) {
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

    /** Waits until every request received so far has been answered. */
    public void awaitIdle() throws InterruptedException {
        synchronized (idle) {
            while (pending > 0) idle.wait();
        }
    }

    public void notifyClient(String method, Object params) {
        ObjectNode message = json.createObjectNode().put("jsonrpc", "2.0").put("method", method);
        message.set("params", json.valueToTree(params));
        send(message);
    }

    private void receive(byte[] body) {
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
            CompletableFuture<ObjectNode> response = dispatch(message);
            if (message.has("id")) track(response); // notifications (exit among them) are not waited for
            response.thenAccept(r -> { if (r != null) send(r); });
        }
    }

    private void receiveBatch(ArrayNode batch) {
        if (batch.isEmpty()) {
            send(error(NullNode.getInstance(), ErrorCodes.INVALID_REQUEST, "Invalid Request: empty batch"));
            return;
        }
        List<CompletableFuture<ObjectNode>> responses = new ArrayList<>();
        for (JsonNode element : batch) responses.add(dispatch(element));
        CompletableFuture<Void> all = CompletableFuture.allOf(responses.toArray(CompletableFuture[]::new));
        CompletableFuture<ArrayNode> answer = all.thenApply(done -> {
            ArrayNode array = json.createArrayNode();
            for (CompletableFuture<ObjectNode> r : responses) if (r.join() != null) array.add(r.join());
            return array;
        });
        boolean hasRequest = false;
        for (JsonNode element : batch) hasRequest |= element.has("id");
        if (hasRequest) track(answer);
        answer.thenAccept(array -> { if (!array.isEmpty()) send(array); });
    }

    /** Validates one message and starts it; completes with its response, or null for a notification. */
    private CompletableFuture<ObjectNode> dispatch(JsonNode message) {
        if (!message.isObject()) {
            return CompletableFuture.completedFuture(error(NullNode.getInstance(), ErrorCodes.INVALID_REQUEST,
                    "Invalid Request: a message must be an object"));
        }
        JsonNode id = message.get("id");
        if (id != null && !(id.isTextual() || id.isNumber() || id.isNull())) {
            return invalid(NullNode.getInstance(), "id must be a string, a number or null");
        }
        JsonNode replyId = id == null ? NullNode.getInstance() : id;
        JsonNode version = message.get("jsonrpc");
        if (version == null || !version.isTextual() || !version.textValue().equals("2.0")) {
            return invalid(replyId, "jsonrpc must be \"2.0\"");
        }
        JsonNode method = message.get("method");
        if (method == null || !method.isTextual()) {
            return invalid(replyId, "method must be a string");
        }
        JsonNode params = message.get("params");
        if (params != null && !params.isObject() && !params.isArray()) {
            return invalid(replyId, "params must be an object or an array");
        }
        String name = method.textValue();
        Call call = new Call(name, id, params, this);
        if (name.equals(CANCEL_METHOD)) {
            cancel(call.params().get("id"));
            return CompletableFuture.completedFuture(id == null ? null : result(id, NullNode.getInstance()));
        }
        Handler handler = methods.get(name);
        if (handler == null) {
            if (id == null) return CompletableFuture.completedFuture(null);
            return CompletableFuture.completedFuture(error(id, ErrorCodes.METHOD_NOT_FOUND, "Method not found: " + name));
        }
        CompletableFuture<ObjectNode> response = new CompletableFuture<>();
        String key = id == null ? null : key(id);
        if (key != null) inFlight.put(key, call);
        Thread.ofPlatform().name("rpc " + name).start(() -> {
            try {
                Object result = handler.handle(call);
                response.complete(id == null ? null : result(id, json.valueToTree(result)));
            } catch (RpcException e) {
                if (id == null) LOG.debugf("notification %s failed: %s", name, e.getMessage());
                response.complete(id == null ? null : error(id, e.code(), e.getMessage(), e.data()));
            } catch (Throwable t) {
                LOG.errorf(t, "internal error in %s", name);
                response.complete(id == null ? null : error(id, ErrorCodes.INTERNAL_ERROR, "Internal error: " + t));
            } finally {
                if (key != null) inFlight.remove(key, call);
            }
        });
        return response;
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

    private void track(CompletableFuture<?> response) {
        synchronized (idle) {
            pending++;
        }
        response.whenComplete((r, t) -> {
            synchronized (idle) {
                pending--;
                idle.notifyAll();
            }
        });
    }

    private CompletableFuture<ObjectNode> invalid(JsonNode id, String why) {
        return CompletableFuture.completedFuture(error(id, ErrorCodes.INVALID_REQUEST, "Invalid Request: " + why));
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

    private void send(JsonNode message) {
        try {
            writer.write(json.writeValueAsBytes(message));
        } catch (JsonProcessingException e) {
            LOG.error("cannot serialize a response", e);
        }
    }
}
