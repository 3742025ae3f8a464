package dev.bwrapd.it;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** Raw frames and response checks shared by the protocol-level black-box tests. */
final class Wire {
    private Wire() {}

    /** Parses with exact numbers, so an id spelled 1.50 is not read as 1.5. */
    static final ObjectMapper EXACT = JsonMapper.builder()
            .nodeFactory(JsonNodeFactory.withExactBigDecimals(true))
            .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
            .build();

    static final Duration QUIET = Duration.ofMillis(150);

    /** One message body as it goes on the wire in that framing. NDJSON lines may not hold a newline. */
    static byte[] frame(BwrapdProcess.Framing framing, byte[] body) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        if (framing == BwrapdProcess.Framing.LSP) {
            out.writeBytes(("Content-Length: " + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.writeBytes(body);
        } else {
            for (byte b : body) if (b == '\n') throw new IllegalArgumentException("an NDJSON message cannot span lines");
            out.writeBytes(body);
            out.write('\n');
        }
        return out.toByteArray();
    }

    /**
     * Sends JSON text as one message. In NDJSON its line breaks become spaces (the JSON-RPC
     * specification's examples are pretty-printed); in LSP it goes as it is.
     */
    static void sendText(BwrapdProcess server, BwrapdProcess.Framing framing, String json) throws IOException {
        String text = framing == BwrapdProcess.Framing.NDJSON ? json.replace('\n', ' ') : json;
        server.sendRaw(frame(framing, text.getBytes(StandardCharsets.UTF_8)));
    }

    static void sendBytes(BwrapdProcess server, BwrapdProcess.Framing framing, byte[] body) throws IOException {
        server.sendRaw(frame(framing, body));
    }

    /** The next message that answered no awaited id; fails after 60 s. */
    static JsonNode nextUnmatched(BwrapdProcess server) throws InterruptedException {
        JsonNode message = server.nextUnmatched(Duration.ofSeconds(60));
        assertNotNull(message, () -> "no answer within 60 s; stderr:\n" + server.stderr());
        return message;
    }

    /** Throws away whatever an earlier test left unread. */
    static void drain(BwrapdProcess server) throws InterruptedException {
        while (server.nextUnmatched(Duration.ZERO) != null) {
            // discard
        }
        server.drainNotifications();
    }

    /**
     * Nothing more is sent: a request sent now is answered, and no other message arrives with or
     * shortly after it (messages are handled in order, so anything owed for earlier input comes first).
     */
    static void assertQuiet(BwrapdProcess server) throws Exception {
        JsonNode sync = server.request("sandbox/list", null);
        assertTrue(sync.has("result"), sync.toString());
        JsonNode extra = server.nextUnmatched(QUIET);
        assertNull(extra, () -> "unexpected message: " + extra);
        List<JsonNode> notifications = server.drainNotifications();
        assertEquals(List.of(), notifications, "unexpected notifications");
        assertTrue(server.process().isAlive(), () -> "the server ended; stderr:\n" + server.stderr());
    }

    static void assertNoViolations(BwrapdProcess server) {
        assertEquals(List.of(), server.stdoutViolations(), "bytes on stdout that are no protocol frame");
    }

    /** A JSON-RPC error response with that id (JSON text: "null", "1", "\"x\"") and code. */
    static void assertError(JsonNode response, String id, int code) throws IOException {
        assertNotNull(response);
        assertTrue(response.isObject() && response.has("error") && !response.has("result"), () -> "not an error response: " + response);
        assertEquals("2.0", response.path("jsonrpc").asText(), response.toString());
        assertEquals(BwrapdProcess.JSON.readTree(id), response.get("id"), response.toString());
        assertEquals(code, response.at("/error/code").asInt(), response.toString());
        assertTrue(response.at("/error/message").isTextual(), response.toString());
    }

    /** The responses of a batch answer, by their id as JSON text ("null" may hold several). */
    static Map<String, List<JsonNode>> byId(JsonNode batchAnswer) {
        assertTrue(batchAnswer.isArray(), () -> "not a batch answer: " + batchAnswer);
        Map<String, List<JsonNode>> map = new java.util.HashMap<>();
        for (JsonNode r : batchAnswer) map.computeIfAbsent(String.valueOf(r.get("id")), k -> new ArrayList<>()).add(r);
        return map;
    }

    /**
     * One running server per framing for a test class. No test means to end it (those that end a
     * server start their own), so one found dead crashed in an earlier test: that is a failure, never
     * a restart that would hide it.
     */
    static final class Shared implements AutoCloseable {
        private final Map<BwrapdProcess.Framing, BwrapdProcess> servers = new EnumMap<>(BwrapdProcess.Framing.class);

        BwrapdProcess get(BwrapdProcess.Framing framing) throws Exception {
            BwrapdProcess server = servers.get(framing);
            if (server != null && !server.process().isAlive()) {
                fail("the shared " + framing + " server ended during an earlier test, exit code " + server.process().exitValue()
                        + "; stderr:\n" + server.stderr());
            }
            if (server == null) {
                server = BwrapdProcess.start(framing);
                servers.put(framing, server);
            }
            drain(server);
            return server;
        }

        /** Ends each server by end of input, which must exit 0 with a clean stdout. */
        @Override
        public void close() throws Exception {
            List<String> problems = new ArrayList<>();
            for (var entry : servers.entrySet()) {
                BwrapdProcess server = entry.getValue();
                server.closeStdin();
                int code = server.waitFor(Duration.ofSeconds(20));
                if (code != 0) problems.add(entry.getKey() + " server exit code " + code + "; stderr:\n" + server.stderr());
                if (!server.stdoutViolations().isEmpty()) problems.add(entry.getKey() + ": " + server.stdoutViolations());
                server.close();
            }
            servers.clear();
            assertEquals(List.of(), problems);
        }
    }
}
