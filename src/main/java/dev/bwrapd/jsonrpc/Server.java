package dev.bwrapd.jsonrpc;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.exc.StreamConstraintsException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.ObjectWriter;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.NullNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.node.POJONode;
import com.fasterxml.jackson.databind.node.TextNode;
import com.fasterxml.jackson.databind.util.RawValue;
import dev.bwrapd.memory.MemoryBudget;
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
 * answers later from a thread of its own). Every frame goes out through one queue and one writer
 * thread ({@link Outbox}): no thread that answers waits for the client to read, the reading thread
 * least of all, and what one thread sends reaches the client in that order. Batches are answered
 * in one array, in order.
 */
public final class Server {
    private static final Logger LOG = Logger.getLogger(Server.class);
    public static final String CANCEL_METHOD = "$/cancelRequest";

    /**
     * Messages up to this size are not counted against the budget (they are the server's working
     * memory): control requests, cancellations and exit always get through.
     */
    static final int UNCOUNTED_BYTES = 64 * 1024;
    /** What a message holds while it is served, per byte read: the bytes' share of its parsed tree (strings may be UTF-16). */
    static final int HELD_PER_BYTE = 2;
    /**
     * And per node of its tree (each object, array, member and element): the node, its map entry
     * or list slot. Bytes alone undercount a tree of small values 20 to 30 times: 16 MiB of
     * {@code {},{},...} grow to half a gigabyte of objects.
     */
    static final int HELD_PER_NODE = 96;
    /** The most messages one batch may hold: each gets an answer of its own, which one short line would multiply. */
    static final int MAX_BATCH = 1000;

    private final MemoryBudget budget;
    private final ObjectMapper json;
    private final ObjectWriter messageWriter;
    private final MessageReader reader;
    private final Outbox outbox;
    private static final Runnable NOTHING = () -> {};
    private final long maxMessageBytes;
    private final Map<String, Handler> methods;
    /** Requests not answered yet; two may share an id (1 and 1.0), and a cancel of it reaches both. */
    private final Set<Call> inFlight = ConcurrentHashMap.newKeySet();
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
        this(json, reader, writer, maxMessageBytes, methods, handlers, t -> null, new MemoryBudget(Long.MAX_VALUE));
    }

    /**
     * @param handlers runs the handlers that are not {@link Handler.Deferred}
     * @param errors   turns a handler's own exceptions into error answers (null: an internal error)
     * @param budget   accounts for every message larger than {@link #UNCOUNTED_BYTES} from the moment it
     *                 is read until its answer is written; a request that does not fit is refused
     *                 with {@link ErrorCodes#OUT_OF_MEMORY} before its handler hears of it
     */
    public Server(ObjectMapper json, MessageReader reader, MessageWriter writer, long maxMessageBytes,
                  Map<String, Handler> methods, Executor handlers, Function<Throwable, RpcException> errors, MemoryBudget budget) {
        this.handlers = handlers;
        this.errors = errors;
        this.budget = budget;
        this.json = json;
        this.messageWriter = json.writer().without(JsonGenerator.Feature.AUTO_CLOSE_TARGET);
        this.reader = reader;
        this.outbox = new Outbox(writer, budget);
        this.maxMessageBytes = maxMessageBytes;
        this.methods = methods;
    }

    /** Serves until end of input. Requests still running go on; see {@link #awaitIdle()}. */
    public void serve() throws IOException {
        while (true) {
            try {
                // The last resort against a client that sends and never reads: stop reading too.
                outbox.awaitAtMost(pauseAbove());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new java.io.InterruptedIOException("interrupted while the client read nothing");
            }
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
            }
        }
        if (own == null) {
            outbox.drain(Long.MAX_VALUE); // answers without a request (parse errors) too
            return;
        }
        synchronized (pending) {
            waiting.add(own);
            pending.notifyAll();
            try {
                while (!waiting.containsAll(pending)) pending.wait();
            } finally {
                waiting.remove(own);
            }
        }
    }

    /**
     * From a thread that serves no request: waits at most {@code timeoutMs} until every request
     * received so far has been answered; whether they all were.
     */
    public boolean awaitIdle(long timeoutMs) throws InterruptedException {
        long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        synchronized (pending) {
            while (!pending.isEmpty()) {
                long left = java.util.concurrent.TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
                if (left <= 0) return false;
                pending.wait(left);
            }
        }
        return flush(Math.max(0, java.util.concurrent.TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime())));
    }

    /** Waits at most {@code timeoutMs} until every frame sent so far has been written; whether it was. */
    public boolean flush(long timeoutMs) throws InterruptedException {
        return outbox.drain(timeoutMs);
    }

    /**
     * Gives up on a client that does not read, as the server ends: what waits to be written is
     * dropped, and whatever is sent from now on, so that nothing waits for room any more.
     */
    public void abandon() {
        outbox.abandon();
    }

    /**
     * Answers every request still unanswered with {@code error} (a batch's member in its batch):
     * for an ending server whose handlers did not finish in time. A handler answering later is
     * ignored, as is any second answer.
     */
    public void failPending(RpcException error) {
        for (Call call : List.copyOf(inFlight)) call.fail(error);
    }

    public void notifyClient(String method, Object params) {
        ObjectNode message = json.createObjectNode().put("jsonrpc", "2.0").put("method", method);
        message.set("params", tree(params));
        send(message, NOTHING);
    }

    /**
     * A value as a JSON tree; a tree is taken as it is, serialized JSON as its text. Anything else is
     * serialized only when the message is written, straight to the output: a result may hold far
     * more than memory should (a run's captured output, read back from its spool file).
     */
    private JsonNode tree(Object value) {
        if (value instanceof JsonNode node) return node;
        if (value instanceof RawJson raw) return json.getNodeFactory().rawValueNode(new RawValue(new String(raw.bytes(), 0, raw.length(), StandardCharsets.UTF_8)));
        return json.getNodeFactory().pojoNode(value);
    }

    private void receive(byte[] body) {
        String badUtf8 = invalidUtf8(body);
        if (badUtf8 != null) {
            send(error(NullNode.getInstance(), ErrorCodes.PARSE_ERROR, "Parse error: " + badUtf8));
            return;
        }
        // Reserved before the tree is built: building it is what takes the memory.
        long estimate = (long) HELD_PER_BYTE * body.length + (long) HELD_PER_NODE * nodes(body);
        long held = estimate > UNCOUNTED_BYTES ? estimate : 0;
        if (!budget.tryReserve(held)) {
            refuse(body, held);
            return;
        }
        Runnable release = held == 0 ? () -> {} : new Once(() -> budget.release(held));
        JsonNode message;
        try {
            message = json.readTree(body);
        } catch (StreamConstraintsException e) {
            release.run();
            send(error(NullNode.getInstance(), ErrorCodes.INVALID_REQUEST, "Invalid Request: " + e.getOriginalMessage()));
            return;
        } catch (IOException | RuntimeException e) { // RuntimeException: a number no BigDecimal holds (1e9999999999)
            release.run();
            send(parseError(e));
            return;
        }
        if (message == null || message.isMissingNode()) {
            release.run();
            send(error(NullNode.getInstance(), ErrorCodes.PARSE_ERROR, "Parse error: no JSON value"));
            return;
        }
        if (message.size() > MAX_BATCH && message.isArray()) {
            release.run();
            send(tooLongBatch(message.size()));
            return;
        }
        List<String> exactIds = exactIds(body, message);
        if (message.isArray()) {
            receiveBatch((ArrayNode) message, exactIds, release);
        } else {
            // Notifications (exit among them) are not waited for. The token is taken before the handler
            // starts, and released only once the response is written, so awaitIdle misses nothing.
            dispatch(message, exactIds.getFirst(), message.has("id") ? begin() : null, null, release);
        }
    }

    /**
     * A message that does not fit the memory budget: each request in it is answered
     * {@link ErrorCodes#OUT_OF_MEMORY} (the message is dropped before any handler hears of it, and
     * before its tree is built: its ids are read from the bytes); notifications in it are dropped.
     */
    private void refuse(byte[] body, long held) {
        long available = Math.max(0, budget.limit() - budget.used());
        ObjectNode data = json.createObjectNode().put("what", "request").put("bytes", held)
                .put("available", available).put("limit", budget.limit());
        String why = "server out of memory budget: this message would hold " + held + " bytes, " + available + " of "
                + budget.limit() + " are free (--max-memory); "
                + (held > budget.limit() ? "it can never fit: send less at once" : "retry when runs have ended");
        ArrayNode answers = json.createArrayNode();
        boolean batch = false;
        try (JsonParser parser = json.getFactory().createParser(body)) {
            JsonToken first = parser.nextToken();
            batch = first == JsonToken.START_ARRAY;
            if (first == JsonToken.START_OBJECT) {
                JsonNode id = idOf(parser);
                if (id != null) answers.add(error(id, ErrorCodes.OUT_OF_MEMORY, why, data));
            } else if (batch) {
                long members = 0;
                for (JsonToken member = parser.nextToken(); member != null && member != JsonToken.END_ARRAY; member = parser.nextToken()) {
                    if (++members > MAX_BATCH || member != JsonToken.START_OBJECT) { // as a batch's member that is no object always is
                        parser.skipChildren();
                        if (members <= MAX_BATCH) answers.add(notAnObject());
                        continue;
                    }
                    JsonNode id = idOf(parser);
                    if (id != null) answers.add(error(id, ErrorCodes.OUT_OF_MEMORY, why, data));
                }
                // Answered as they are when they fit: an empty batch, or one too long, is one error.
                if (members == 0) {
                    send(emptyBatch());
                    return;
                }
                if (members > MAX_BATCH) {
                    send(tooLongBatch(members));
                    return;
                }
            } else {
                answers.add(notAnObject());
            }
        } catch (IOException | RuntimeException e) {
            send(parseError(e)); // not JSON: what it would have been answered had it fitted (no id can be trusted from it)
            return;
        }
        LOG.warnf("refused a message of %d bytes: memory budget exhausted (%d of %d used)", body.length, budget.used(), budget.limit());
        if (answers.isEmpty()) return;
        send(batch ? answers : answers.get(0), NOTHING);
    }

    private ObjectNode emptyBatch() {
        return error(NullNode.getInstance(), ErrorCodes.INVALID_REQUEST, "Invalid Request: empty batch");
    }

    private ObjectNode tooLongBatch(long members) {
        return error(NullNode.getInstance(), ErrorCodes.INVALID_REQUEST, "Invalid Request: a batch of " + members + " messages; at most " + MAX_BATCH);
    }

    /** -32700 with id null, saying what the parser found wrong. */
    private ObjectNode parseError(Exception e) {
        String detail = e instanceof JsonProcessingException p ? p.getOriginalMessage() : e.getMessage();
        return error(NullNode.getInstance(), ErrorCodes.PARSE_ERROR, "Parse error: " + detail);
    }

    /** -32600 with id null, for a message (or batch member) that is no object. */
    private ObjectNode notAnObject() {
        return error(NullNode.getInstance(), ErrorCodes.INVALID_REQUEST, "Invalid Request: a message must be an object");
    }

    /** The "id" of the object the parser is at the start of (the last one, as the tree keeps it), null if it has none; the parser ends on its end. */
    private static JsonNode idOf(JsonParser parser) throws IOException {
        JsonNode id = null;
        while (parser.nextToken() == JsonToken.FIELD_NAME) {
            boolean isId = parser.currentName().equals("id");
            JsonToken value = parser.nextToken();
            if (isId) {
                id = value.isNumeric() ? new POJONode(new RawValue(parser.getText()))
                        : value == JsonToken.VALUE_STRING ? TextNode.valueOf(parser.getText()) : NullNode.getInstance();
            }
            parser.skipChildren();
        }
        return id;
    }

    /**
     * How many nodes the message's tree will have, about: its {@code {}, {@code [}, {@code ,} and
     * {@code :} outside strings. One pass over bytes already known to be UTF-8.
     */
    static long nodes(byte[] body) {
        long nodes = 0;
        boolean inString = false;
        for (int i = 0; i < body.length; i++) {
            byte b = body[i];
            if (inString) {
                if (b == '\\') i++;
                else if (b == '"') inString = false;
            } else if (b == '"') {
                inString = true;
            } else if (b == '{' || b == '[' || b == ',' || b == ':') {
                nodes++;
            }
        }
        return nodes;
    }

    /**
     * The refusal of a request while the client leaves more than {@link #refuseAbove()} bytes of
     * answers unread: it is not served (whatever it asks would only add to them).
     */
    private ObjectNode unread(JsonNode id, long unread) {
        ObjectNode data = json.createObjectNode().put("what", "output").put("bytes", unread)
                .put("available", Math.max(0, budget.limit() - budget.used())).put("limit", budget.limit());
        return error(id, ErrorCodes.OUT_OF_MEMORY, "server out of memory budget: " + unread
                + " bytes of answers wait for the client to read them; read them, then retry", data);
    }

    /** Unread answers above this many bytes (a quarter of the budget) get new requests refused. */
    private long refuseAbove() {
        return budget.limit() / 4;
    }

    /** Unread answers above this many bytes (twice the budget) stop the reading: refusals too are answers. */
    private long pauseAbove() {
        return budget.limit() > Long.MAX_VALUE / 2 ? Long.MAX_VALUE : 2 * budget.limit();
    }

    /** Raw notifications wait while more than this (an eighth of the budget) is unread: streamed output keeps below {@link #refuseAbove()}. */
    private long notifyAbove() {
        return budget.limit() / 8;
    }

    /** A batch's members, or the message itself. */
    private static List<JsonNode> members(JsonNode message) {
        List<JsonNode> members = new ArrayList<>();
        if (message.isArray()) message.forEach(members::add);
        else members.add(message);
        return members;
    }

    /** Runs once, however often it is called. */
    private static final class Once implements Runnable {
        private Runnable action;

        Once(Runnable action) {
            this.action = action;
        }

        @Override
        public void run() {
            Runnable now;
            synchronized (this) {
                now = action;
                action = null;
            }
            if (now != null) now.run();
        }
    }


    private void receiveBatch(ArrayNode batch, List<String> exactIds, Runnable release) {
        if (batch.isEmpty()) {
            release.run();
            send(emptyBatch());
            return;
        }
        boolean hasRequest = false;
        for (JsonNode element : batch) hasRequest |= element.has("id");
        Object unit = hasRequest ? begin() : null;
        List<CompletableFuture<ObjectNode>> responses = new ArrayList<>();
        for (int i = 0; i < batch.size(); i++) {
            CompletableFuture<ObjectNode> slot = new CompletableFuture<>();
            responses.add(slot);
            dispatch(batch.get(i), exactIds.get(i), unit, slot, null);
        }
        CompletableFuture<Void> all = CompletableFuture.allOf(responses.toArray(CompletableFuture[]::new));
        CompletableFuture<ArrayNode> answer = all.thenApply(done -> {
            ArrayNode array = json.createArrayNode();
            for (CompletableFuture<ObjectNode> r : responses) if (r.join() != null) array.add(r.join());
            return array;
        });
        answer.whenComplete((array, t) -> {
            Runnable done = () -> {
                release.run();
                end(unit);
            };
            if (array != null && !array.isEmpty()) send(array, done);
            else done.run();
        });
    }

    /**
     * The exact JSON text of each numeric id that the parsed tree might not write back the same
     * (-0, -0.0, exponents): one entry per message (the message itself, or each batch member), null
     * where the tree's own id is exact. The body is parsed a second time only for such ids.
     */
    private List<String> exactIds(byte[] body, JsonNode message) {
        List<JsonNode> members = members(message);
        List<String> exact = new ArrayList<>(java.util.Collections.nCopies(Math.max(1, members.size()), (String) null));
        boolean inexact = false;
        for (JsonNode member : members) {
            JsonNode id = member.get("id");
            inexact |= id != null && id.isNumber() && (!id.isIntegralNumber() || id.asLong() == 0);
        }
        if (!inexact) return exact;
        try (JsonParser parser = json.getFactory().createParser(body)) {
            JsonToken first = parser.nextToken();
            if (first == JsonToken.START_OBJECT) {
                exact.set(0, idText(parser));
            } else if (first == JsonToken.START_ARRAY) {
                for (int i = 0; parser.nextToken() != JsonToken.END_ARRAY; i++) {
                    if (parser.currentToken() == JsonToken.START_OBJECT) exact.set(i, idText(parser));
                    else parser.skipChildren();
                }
            }
        } catch (IOException e) {
            LOG.debugf("ids kept as parsed: %s", e.getMessage());
        }
        return exact;
    }

    /** The text of the object's last numeric "id" member (the one the tree keeps); the parser ends on the object's end. */
    private static String idText(JsonParser parser) throws IOException {
        String text = null;
        while (parser.nextToken() == JsonToken.FIELD_NAME) {
            boolean isId = parser.currentName().equals("id");
            JsonToken value = parser.nextToken();
            if (isId) text = value.isNumeric() ? parser.getText() : null;
            parser.skipChildren();
        }
        return text;
    }

    /** The id to echo: a number as its exact text, when known. */
    private static JsonNode exact(JsonNode id, String text) {
        return text == null || !id.isNumber() ? id : new POJONode(new RawValue(text));
    }

    /**
     * Validates one message and starts it. Its answer goes to {@code slot} when it is part of a
     * batch (null for a notification), else straight to the client.
     */
    private void dispatch(JsonNode message, String exactId, Object unit, CompletableFuture<ObjectNode> slot, Runnable release) {
        if (!message.isObject()) {
            early(slot, unit, release, notAnObject());
            return;
        }
        JsonNode id = message.get("id");
        if (id != null && !(id.isTextual() || id.isNumber() || id.isNull())) {
            early(slot, unit, release, invalid(NullNode.getInstance(), "id must be a string, a number or null"));
            return;
        }
        if (id != null) id = exact(id, exactId);
        JsonNode replyId = id == null ? NullNode.getInstance() : id;
        JsonNode version = message.get("jsonrpc");
        if (version == null || !version.isTextual() || !version.textValue().equals("2.0")) {
            early(slot, unit, release, invalid(replyId, "jsonrpc must be \"2.0\""));
            return;
        }
        JsonNode method = message.get("method");
        if (method == null || !method.isTextual()) {
            early(slot, unit, release, invalid(replyId, "method must be a string"));
            return;
        }
        JsonNode params = message.get("params");
        if (params != null && !params.isObject() && !params.isArray()) {
            early(slot, unit, release, invalid(replyId, "params must be an object or an array"));
            return;
        }
        String name = method.textValue();
        long unread = outbox.held();
        if (id != null && unread > refuseAbove() && !name.equals(CANCEL_METHOD)) { // a cancel only shrinks what waits
            early(slot, unit, release, unread(replyId, unread));
            return;
        }
        Call call = new Call(id, params, this, unit, slot, release);
        if (name.equals(CANCEL_METHOD)) {
            try {
                cancel(call.params().get("id"));
            } catch (RuntimeException e) { // a bug here must not end the server, as in any method
                LOG.errorf(e, "$/cancelRequest");
            }
            call.reply(NullNode.getInstance());
            return;
        }
        Handler handler = methods.get(name);
        if (handler == null) {
            call.fail(new RpcException(ErrorCodes.METHOD_NOT_FOUND, "Method not found: " + name));
            return;
        }
        try {
            handler.received(call); // in arrival order, before any later message is dispatched
        } catch (Exception e) { // a bug in one method (a RuntimeException) must not end the server either
            call.fail(e);
            return;
        }
        if (id != null) inFlight.add(call);
        if (handler instanceof Handler.Deferred deferred) {
            try {
                deferred.start(call); // in arrival order too
            } catch (Exception e) {
                call.fail(e);
            }
            return;
        }
        try {
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
        } catch (OutOfMemoryError e) { // no thread to be had (a tasks limit): this call fails, the server goes on
            call.fail(new RpcException(ErrorCodes.INTERNAL_ERROR, "cannot start a thread for the request: " + e.getMessage()));
        }
    }

    /** An answer before any handler ran (the message was invalid). */
    private void early(CompletableFuture<ObjectNode> slot, Object unit, Runnable release, ObjectNode response) {
        if (slot != null) {
            slot.complete(response);
        } else {
            send(response, () -> {
                if (release != null) release.run();
                end(unit);
            });
        }
    }

    /**
     * A call's one answer: queued for the client, or put into its batch's slot. The call counts as
     * answered (awaitIdle, its memory) once the answer is written.
     */
    void answer(Call call, Object result, Throwable failure) {
        JsonNode id = call.id();
        if (id != null) inFlight.remove(call);
        Runnable done = call.batchSlot != null ? NOTHING : () -> {
            call.release.run();
            end(call.unit);
        };
        boolean queued = false;
        try {
            if (id == null) {
                if (failure != null) LOG.debugf("a notification failed: %s", failure.toString());
                if (failure instanceof RpcException e) closeHeld(e.data());
                if (failure == null) closeHeld(tree(result)); // nobody will write it
                if (call.batchSlot != null) call.batchSlot.complete(null);
                return;
            }
            if (failure != null) {
                ObjectNode response = errorResponse(id, failure);
                if (call.batchSlot != null) call.batchSlot.complete(response);
                else queued = send(response, done);
            } else if (call.batchSlot != null) {
                call.batchSlot.complete(result(id, tree(result)));
            } else if (result instanceof RawJson raw) {
                queued = sendRaw(id, raw, done);
            } else {
                queued = send(result(id, tree(result)), done);
            }
        } finally {
            if (!queued) done.run();
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
        String key = key(id);
        for (Call call : inFlight) if (key.equals(key(call.id()))) call.cancel();
    }

    /**
     * Ids of different types never collide: "1" and 1 are different requests; 1.0 and 1 (and -0 and
     * 0) are the same. A number's key is its digits without trailing zeros and its exponent, counted
     * in a long: BigDecimal.stripTrailingZeros overflows the int scale of an id like 100e2147483647,
     * and a cancel naming one ended the helper.
     */
    static String key(JsonNode id) {
        if (id.isTextual()) return "s:" + id.textValue();
        java.math.BigDecimal value = id instanceof POJONode pojo && pojo.getPojo() instanceof RawValue raw
                ? new java.math.BigDecimal(raw.rawValue().toString()) : id.decimalValue();
        if (value.signum() == 0) return "n:0";
        String digits = value.unscaledValue().toString();
        int end = digits.length();
        while (digits.charAt(end - 1) == '0') end--;
        return "n:" + digits.substring(0, end) + "e" + ((long) digits.length() - end - value.scale());
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
    private boolean sendRaw(JsonNode id, RawJson result, Runnable written) {
        byte[] idBytes = JsonText.of(json, id).getBytes(StandardCharsets.UTF_8);
        byte[] frame = new byte[RESULT_START.length + idBytes.length + RESULT_MIDDLE.length + result.length() + 2]; // '}', the newline
        int at = put(frame, 0, RESULT_START, RESULT_START.length);
        at = put(frame, at, idBytes, idBytes.length);
        at = put(frame, at, RESULT_MIDDLE, RESULT_MIDDLE.length);
        at = put(frame, at, result.bytes(), result.length());
        frame[at++] = '}';
        outbox.post(Outbox.Frame.of(frame, at, written));
        return true;
    }

    private static int put(byte[] into, int at, byte[] bytes, int length) {
        System.arraycopy(bytes, 0, into, at, length);
        return at + length;
    }

    /**
     * Sends a notification already serialized ({@code body[0..length)}; a spare byte after it takes
     * the newline), not copied: the array is the queue's until {@code written} runs, and held
     * against the budget at its whole size, whatever part of it the frame is. The sender is a
     * producer that can wait (a run's streamed output): while more than {@link #notifyAbove()}
     * bytes are unread it waits, and with it the command on its pipe, running {@code whileWaiting}
     * every few milliseconds (the producer's own timers).
     */
    public void sendRaw(byte[] body, int length, Runnable written, Runnable whileWaiting) {
        try {
            outbox.awaitAtMost(notifyAbove(), whileWaiting);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt(); // sent all the same: output is never dropped
        }
        outbox.post(new Outbox.Frame(body, length, null, null, body.length, written));
    }

    /** Sends a small notification already serialized (copied), at once: it never waits for the client. */
    public void postRaw(byte[] body, int length) {
        outbox.post(Outbox.Frame.of(java.util.Arrays.copyOf(body, length + 1), length, NOTHING));
    }

    /**
     * Queues a message; {@code written} runs once it is out. Serialized here, on the sending thread,
     * when it fits {@link MessageWriter#BUFFERED} bytes (so what it holds is counted exactly and
     * released at once); a larger one (a run's captured output, from memory and spool file) is
     * serialized as it is written. Whether it was queued: if not, nothing will run {@code written}.
     */
    private boolean send(JsonNode message, Runnable written) {
        byte[] body;
        try {
            body = MessageWriter.serialize(out -> messageWriter.writeValue(out, message));
        } catch (MessageWriter.BodyException e) {
            release(message);
            return unwritable(message, e, written);
        }
        if (body != null) {
            release(message);
            outbox.post(Outbox.Frame.of(body, body.length - 1, written));
            return true;
        }
        outbox.post(new Outbox.Frame(null, 0, out -> messageWriter.writeValue(out, message),
                () -> unwritable(message, null, NOTHING), MessageWriter.BUFFERED, () -> {
                    release(message);
                    written.run();
                }));
        return true;
    }

    private void send(JsonNode message) {
        send(message, NOTHING);
    }

    /** A message that could not be serialized: a response becomes an internal error, anything else is dropped. */
    private boolean unwritable(JsonNode message, Exception e, Runnable written) {
        if (e != null) LOG.errorf(e, "cannot write a message");
        JsonNode id = message.get("id");
        if (!message.isObject() || id == null) return false;
        return send(error(id, ErrorCodes.INTERNAL_ERROR, "Internal error: cannot write the response"
                + (e == null ? "" : ": " + e.getMessage())), written);
    }

    /** Closes what results and error data held until they were written (a run's captured output). */
    private static void release(JsonNode message) {
        if (message.isArray()) {
            for (JsonNode element : message) release(element);
            return;
        }
        closeHeld(message.get("result"));
        JsonNode error = message.get("error");
        if (error != null) closeHeld(error.get("data"));
    }

    private static void closeHeld(JsonNode value) {
        if (value instanceof POJONode pojo && pojo.getPojo() instanceof AutoCloseable held) {
            try {
                held.close();
            } catch (Exception e) {
                LOG.warnf(e, "cannot release a written result");
            }
        }
    }
}
