package dev.bwrapd.it;

import com.fasterxml.jackson.databind.JsonNode;
import dev.bwrapd.it.BwrapdProcess.Framing;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static dev.bwrapd.it.Wire.assertError;
import static dev.bwrapd.it.Wire.assertNoViolations;
import static dev.bwrapd.it.Wire.nextUnmatched;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Input that is no valid message: each gets its error (id null where the id cannot be known) and
 * the server goes on to answer a following {@code initialize}; stdout stays pure protocol throughout.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class BadInputIT {
    private static final int PARSE_ERROR = -32700, INVALID_REQUEST = -32600, INVALID_PARAMS = -32602;
    private static final int MIB = 1 << 20;

    private final Wire.Shared shared = new Wire.Shared();

    @AfterAll
    void stopServers() throws Exception {
        shared.close();
    }

    // ----- random bytes -----

    @ParameterizedTest
    @ValueSource(longs = {1, 42, 20240601})
    void randomBytesBetweenNdjsonMessages(long seed) throws Exception {
        BwrapdProcess server = shared.get(Framing.NDJSON);
        byte[] garbage = new byte[64 * 1024];
        new Random(seed).nextBytes(garbage);
        server.sendRaw(garbage);
        server.sendRaw(new byte[] {'\n'});
        assertInitializeAnswered(server);
        // Messages are answered in order of arrival where they fail to parse: every error came before.
        List<JsonNode> errors = drainUnmatched(server);
        assertFalse(errors.isEmpty(), "the garbage got no error at all (seed " + seed + ")");
        for (JsonNode error : errors) {
            assertTrue(error.get("id").isNull(), "seed " + seed + ": " + error);
            int code = error.at("/error/code").asInt();
            assertTrue(code == PARSE_ERROR || code == INVALID_REQUEST, "seed " + seed + ": " + error);
        }
        assertNoViolations(server);
    }

    @ParameterizedTest
    @ValueSource(longs = {1, 42, 20240601})
    void randomBytesAsAnLspBodyAndAsAnLspHeaderBlock(long seed) throws Exception {
        BwrapdProcess server = shared.get(Framing.LSP);
        Random random = new Random(seed);
        byte[] body = new byte[64 * 1024];
        random.nextBytes(body);
        Wire.sendBytes(server, Framing.LSP, body);
        assertError(nextUnmatched(server), "null", PARSE_ERROR);
        assertInitializeAnswered(server);

        byte[] header = new byte[4 * 1024];
        random.nextBytes(header);
        server.sendRaw(header);
        server.sendRaw("\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
        assertInitializeAnswered(server);
        List<JsonNode> errors = drainUnmatched(server);
        assertFalse(errors.isEmpty(), "the garbage header got no error (seed " + seed + ")");
        for (JsonNode error : errors) assertError(error, "null", PARSE_ERROR);
        assertNoViolations(server);
    }

    /** Garbage as the very first input: no framing can be detected; the server answers in NDJSON and reads on. */
    @Test
    void randomBytesBeforeAnyFramingIsKnown() throws Exception {
        try (BwrapdProcess server = BwrapdProcess.start(Framing.NDJSON)) {
            byte[] garbage = new byte[1024];
            new Random(7).nextBytes(garbage);
            garbage[0] = 0x01; // neither '{', '[', 'C' nor blank: no framing
            server.sendRaw(garbage);
            server.sendRaw(new byte[] {'\n'});
            assertInitializeAnswered(server);
            List<JsonNode> errors = drainUnmatched(server);
            assertFalse(errors.isEmpty());
            for (JsonNode error : errors) assertTrue(error.get("id").isNull() && error.has("error"), error.toString());
            server.closeStdin();
            assertEquals(0, server.waitFor(Duration.ofSeconds(20)), server.stderr());
            assertNoViolations(server);
        }
    }

    // ----- invalid UTF-8 -----

    /** Byte sequences that are not UTF-8 (RFC 3629), placed inside a JSON string. */
    static Stream<Arguments> invalidUtf8() {
        List<Arguments> cases = new ArrayList<>();
        for (Framing framing : Framing.values()) {
            for (String hex : List.of("fffe", "c3", "c328", "e282", "eda080", "c0af", "e080af", "f4908080", "f888808080", "80")) {
                cases.add(Arguments.of(framing, hex));
            }
        }
        return cases.stream();
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("invalidUtf8")
    void invalidUtf8InsideAStringIsAParseError(Framing framing, String hex) throws Exception {
        BwrapdProcess server = shared.get(framing);
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        String id = "\"utf8-" + hex + "\"";
        body.writeBytes(("{\"jsonrpc\":\"2.0\",\"id\":" + id + ",\"method\":\"initialize\",\"params\":{\"clientName\":\"a").getBytes(StandardCharsets.US_ASCII));
        body.writeBytes(HexFormat.of().parseHex(hex));
        body.writeBytes("b\"}}".getBytes(StandardCharsets.US_ASCII));
        CompletableFuture<JsonNode> never = server.expect(BwrapdProcess.JSON.readTree(id));
        Wire.sendBytes(server, framing, body.toByteArray());
        assertInitializeAnswered(server);
        // A parse error is written before the next message is read: it is here by now, or never.
        assertFalse(never.isDone(), "a request that is not UTF-8 was served: " + never.getNow(null));
        assertError(server.nextUnmatched(Duration.ZERO), "null", PARSE_ERROR);
        assertNoViolations(server);
    }

    @ParameterizedTest
    @EnumSource(Framing.class)
    void validUtf8OfEveryLengthIsAccepted(Framing framing) throws Exception {
        BwrapdProcess server = shared.get(framing);
        String id = "\u00e9 \u2713 \ud834\udd1e \uffff \u0000"; // 2, 3 and 4 bytes, a noncharacter, NUL
        CompletableFuture<JsonNode> answer = server.expect(BwrapdProcess.JSON.getNodeFactory().textNode(id));
        Wire.sendText(server, framing, "{\"jsonrpc\":\"2.0\",\"id\":" + BwrapdProcess.JSON.writeValueAsString(id)
                + ",\"method\":\"initialize\",\"params\":{\"clientName\":\"\u00e9\u2713\ud834\udd1e\"}}");
        JsonNode response = answer.get(60, TimeUnit.SECONDS);
        assertTrue(response.has("result"), response.toString());
        assertNoViolations(server);
    }

    // ----- size -----

    @Test
    void twentyMibLineIsRefusedAndServingGoesOn() throws Exception {
        BwrapdProcess server = shared.get(Framing.NDJSON);
        CompletableFuture<JsonNode> never = server.expect(BwrapdProcess.JSON.readTree("\"huge\""));
        Wire.sendBytes(server, Framing.NDJSON, huge(20 * MIB));
        assertError(nextUnmatched(server), "null", INVALID_REQUEST);
        assertInitializeAnswered(server);
        assertFalse(never.isDone());
        assertNoViolations(server);
    }

    @Test
    void twentyMibLspBodyIsRefusedAndServingGoesOn() throws Exception {
        BwrapdProcess server = shared.get(Framing.LSP);
        CompletableFuture<JsonNode> never = server.expect(BwrapdProcess.JSON.readTree("\"huge\""));
        Wire.sendBytes(server, Framing.LSP, huge(20 * MIB));
        assertError(nextUnmatched(server), "null", INVALID_REQUEST);
        assertInitializeAnswered(server);
        assertFalse(never.isDone());
        assertNoViolations(server);
    }

    /** --max-message-bytes is inclusive: a message of exactly the limit is served, one byte more is refused. */
    @ParameterizedTest
    @EnumSource(Framing.class)
    void messageOfExactlyTheLimitIsServed(Framing framing) throws Exception {
        try (BwrapdProcess server = BwrapdProcess.start(framing, "--max-message-bytes=2048")) {
            CompletableFuture<JsonNode> exact = server.expect(BwrapdProcess.JSON.readTree("\"huge\""));
            Wire.sendBytes(server, framing, huge(2048));
            assertTrue(exact.get(60, TimeUnit.SECONDS).has("result"), exact.get().toString());
            Wire.sendBytes(server, framing, huge(2049));
            assertError(nextUnmatched(server), "null", INVALID_REQUEST);
            assertInitializeAnswered(server);
            server.closeStdin();
            assertEquals(0, server.waitFor(Duration.ofSeconds(20)), server.stderr());
            assertNoViolations(server);
        }
    }

    /** An initialize request with id "huge" of exactly {@code size} bytes. */
    private static byte[] huge(int size) {
        byte[] prefix = "{\"jsonrpc\":\"2.0\",\"id\":\"huge\",\"method\":\"initialize\",\"params\":{\"clientName\":\"".getBytes(StandardCharsets.US_ASCII);
        byte[] suffix = "\"}}".getBytes(StandardCharsets.US_ASCII);
        byte[] message = new byte[size];
        System.arraycopy(prefix, 0, message, 0, prefix.length);
        java.util.Arrays.fill(message, prefix.length, size - suffix.length, (byte) 'x');
        System.arraycopy(suffix, 0, message, size - suffix.length, suffix.length);
        return message;
    }

    // ----- nesting -----

    @ParameterizedTest
    @EnumSource(Framing.class)
    void nesting65LevelsIsRefusedAnd64IsNot(Framing framing) throws Exception {
        BwrapdProcess server = shared.get(framing);
        // The request object is level 1, params level 2, and the arrays inside make up the rest.
        CompletableFuture<JsonNode> at64 = server.expect(BwrapdProcess.JSON.readTree("64"));
        Wire.sendText(server, framing, deep(64, 64, "[", "]"));
        JsonNode response = at64.get(60, TimeUnit.SECONDS);
        assertTrue(response.has("result"), "64 levels are within the limit: initialize answers (its unknown member ignored): " + response);

        Wire.sendText(server, framing, deep(65, 65, "[", "]"));
        assertError(nextUnmatched(server), "null", INVALID_REQUEST);
        Wire.sendText(server, framing, deep(66, 65, "{\"a\":", "}"));
        assertError(nextUnmatched(server), "null", INVALID_REQUEST);
        // A batch is one level more: a 64-level request inside one is 65.
        Wire.sendText(server, framing, "[" + deep(67, 64, "[", "]") + "]");
        assertError(nextUnmatched(server), "null", INVALID_REQUEST);
        assertInitializeAnswered(server);
        assertNoViolations(server);
    }

    private static String deep(int id, int depth, String open, String close) {
        return "{\"jsonrpc\":\"2.0\",\"id\":" + id + ",\"method\":\"initialize\",\"params\":{\"deep\":"
                + open.repeat(depth - 2) + (open.equals("[") ? "" : "1") + close.repeat(depth - 2) + "}}";
    }

    // ----- wrong param types -----

    static Stream<Arguments> wrongParams() {
        List<Object[]> cases = List.of(
                new Object[] {"initialize", "{\"clientName\": 5}", "clientName"},
                new Object[] {"initialize", "{\"protocolVersion\": \"1\"}", "protocolVersion"},
                new Object[] {"initialize", "{\"protocolVersion\": 1.5}", "protocolVersion"},
                new Object[] {"initialize", "[\"client\"]", "params"},
                new Object[] {"sandbox/run", "{}", "command"},
                new Object[] {"sandbox/run", "{\"command\": \"ls\"}", "command"},
                new Object[] {"sandbox/run", "{\"command\": [\"true\", 5]}", "command[1]"},
                new Object[] {"sandbox/run", "{\"command\": [\"true\"], \"network\": \"yes\"}", "network"},
                new Object[] {"sandbox/run", "{\"command\": [\"true\"], \"env\": {\"A\": 1}}", "env.A"},
                new Object[] {"sandbox/run", "{\"command\": [\"true\"], \"timeoutMs\": 1.5}", "timeoutMs"},
                new Object[] {"sandbox/run", "{\"command\": [\"true\"], \"uid\": -1}", "uid"},
                new Object[] {"sandbox/run", "{\"command\": [\"true\"], \"mounts\": [{\"source\": \"/tmp\", \"target\": 7}]}", "mounts[0].target"},
                new Object[] {"sandbox/run", "{\"command\": [\"true\"], \"stdout\": 1}", "stdout"},
                new Object[] {"sandbox/run", "{\"command\": [\"true\"], \"noSuchField\": 1}", "noSuchField"},
                new Object[] {"sandbox/signal", "{\"sandboxId\": \"sb-x\", \"signal\": 9}", "signal"},
                new Object[] {"sandbox/signal", "{\"sandboxId\": 5, \"signal\": \"SIGTERM\"}", "sandboxId"},
                new Object[] {"sandbox/suspend", "{\"sandboxId\": true}", "sandboxId"},
                new Object[] {"sandbox/resume", "{\"sandboxId\": [\"sb-1\"]}", "sandboxId"},
                new Object[] {"sandbox/terminate", "{\"sandboxId\": \"sb-x\", \"graceMs\": \"soon\"}", "graceMs"});
        List<Arguments> arguments = new ArrayList<>();
        for (Framing framing : Framing.values()) {
            for (Object[] c : cases) arguments.add(Arguments.of(framing, c[0], c[1], c[2]));
        }
        return arguments.stream();
    }

    @ParameterizedTest(name = "{0} {1} {2}")
    @MethodSource("wrongParams")
    void wrongParamTypeIsInvalidParamsNamingTheField(Framing framing, String method, String params, String field) throws Exception {
        BwrapdProcess server = shared.get(framing);
        CompletableFuture<JsonNode> answer = server.expect(BwrapdProcess.JSON.readTree("\"params\""));
        Wire.sendText(server, framing, "{\"jsonrpc\":\"2.0\",\"id\":\"params\",\"method\":\"" + method + "\",\"params\":" + params + "}");
        JsonNode response = answer.get(60, TimeUnit.SECONDS);
        assertError(response, "\"params\"", INVALID_PARAMS);
        assertTrue(response.at("/error/message").asText().contains(field), "the message names " + field + ": " + response);
        assertInitializeAnswered(server);
        assertNoViolations(server);
    }

    // ----- broken LSP headers -----

    @ParameterizedTest
    @ValueSource(strings = {
            "Content-Length: abc\r\n\r\n",
            "Content-Length: -5\r\n\r\n",
            "Content-Length: 99999999999999999999999\r\n\r\n",
            "Content-Length: 0x10\r\n\r\n",
            "Content-Length:\r\n\r\n",
            "Content-Length 12\r\n\r\n",
            "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n",
            "Content-Length: 0\r\n\r\n",
    })
    void brokenLspHeaderIsAParseError(String header) throws Exception {
        BwrapdProcess server = shared.get(Framing.LSP);
        server.sendRaw(header.getBytes(StandardCharsets.US_ASCII));
        assertError(nextUnmatched(server), "null", PARSE_ERROR);
        assertInitializeAnswered(server);
        assertNoViolations(server);
    }

    @ParameterizedTest
    @ValueSource(strings = {"hello", "Content-Length: 12", "\u0000\u0001\u0002", "{\"jsonrpc\":\"2.0\",\"id\":1,"})
    void brokenNdjsonLineIsAParseError(String line) throws Exception {
        BwrapdProcess server = shared.get(Framing.NDJSON);
        server.sendRaw((line + "\n").getBytes(StandardCharsets.UTF_8));
        assertError(nextUnmatched(server), "null", PARSE_ERROR);
        assertInitializeAnswered(server);
        assertNoViolations(server);
    }

    // ----- helpers -----

    private static void assertInitializeAnswered(BwrapdProcess server) throws Exception {
        JsonNode response = server.request("initialize", Map.of("clientName", "bad-input"));
        assertTrue(response.has("result"), () -> "initialize after bad input: " + response + "\nstderr:\n" + server.stderr());
        assertEquals("bwrapd", response.at("/result/serverName").asText());
    }

    private static List<JsonNode> drainUnmatched(BwrapdProcess server) throws InterruptedException {
        List<JsonNode> all = new ArrayList<>();
        JsonNode next;
        while ((next = server.nextUnmatched(Duration.ZERO)) != null) all.add(next);
        return all;
    }
}
