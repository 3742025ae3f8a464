package dev.bwrapd.it;

import com.fasterxml.jackson.databind.JsonNode;
import dev.bwrapd.Version;
import dev.bwrapd.it.BwrapdProcess.Framing;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static dev.bwrapd.it.Wire.assertError;
import static dev.bwrapd.it.Wire.assertNoViolations;
import static dev.bwrapd.it.Wire.assertQuiet;
import static dev.bwrapd.it.Wire.nextUnmatched;
import static dev.bwrapd.it.Wire.sendText;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * JSON-RPC 2.0 conformance of the built server, in both framings: every example of the
 * specification's section 7 (https://www.jsonrpc.org/specification#examples), with this server's
 * methods in place of "subtract", "sum" and "get_data"; then ids, cancellation, discovery, the
 * lifecycle and the command line. Examples share one server per framing (restarted if a test ends
 * it); lifecycle tests start their own.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class JsonRpcConformanceIT {
    private static final int PARSE_ERROR = -32700, INVALID_REQUEST = -32600, METHOD_NOT_FOUND = -32601, INVALID_PARAMS = -32602;

    private final Wire.Shared shared = new Wire.Shared();

    @AfterAll
    void stopServers() throws Exception {
        shared.close();
    }

    // ----- the specification's examples -----

    /** "rpc call with positional parameters": this server's methods take named params only, so it is -32602. */
    @ParameterizedTest
    @EnumSource(Framing.class)
    void positionalParameters(Framing framing) throws Exception {
        BwrapdProcess server = shared.get(framing);
        CompletableFuture<JsonNode> first = server.expect(json("1"));
        sendText(server, framing, "{\"jsonrpc\": \"2.0\", \"method\": \"initialize\", \"params\": [\"client\", \"1.0\"], \"id\": 1}");
        JsonNode response = get(first);
        assertError(response, "1", INVALID_PARAMS);
        assertTrue(response.at("/error/message").asText().contains("params"), "names the field: " + response);

        CompletableFuture<JsonNode> second = server.expect(json("2"));
        sendText(server, framing, "{\"jsonrpc\": \"2.0\", \"method\": \"sandbox/signal\", \"params\": [\"sb-1\", \"SIGTERM\"], \"id\": 2}");
        assertError(get(second), "2", INVALID_PARAMS);
        assertNoViolations(server);
    }

    /** "rpc call with named parameters": the order of the members makes no difference. */
    @ParameterizedTest
    @EnumSource(Framing.class)
    void namedParameters(Framing framing) throws Exception {
        BwrapdProcess server = shared.get(framing);
        CompletableFuture<JsonNode> third = server.expect(json("3"));
        sendText(server, framing, """
                {"jsonrpc": "2.0", "method": "initialize", "params": {"clientName": "conformance", "protocolVersion": 1}, "id": 3}""");
        JsonNode a = get(third);
        CompletableFuture<JsonNode> fourth = server.expect(json("4"));
        sendText(server, framing, """
                {"jsonrpc": "2.0", "method": "initialize", "params": {"protocolVersion": 1, "clientName": "conformance"}, "id": 4}""");
        JsonNode b = get(fourth);
        assertTrue(a.has("result"), a.toString());
        assertEquals("bwrapd", a.at("/result/serverName").asText(), a.toString());
        assertEquals(1, a.at("/result/protocolVersion").asInt(), a.toString());
        assertEquals(json("3"), a.get("id"));
        assertEquals(json("4"), b.get("id"));
        assertEquals(a.get("result"), b.get("result"));
        assertNoViolations(server);
    }

    /** "a Notification": no answer, whether the method exists or not, and whatever its params. */
    @ParameterizedTest
    @EnumSource(Framing.class)
    void notification(Framing framing) throws Exception {
        BwrapdProcess server = shared.get(framing);
        sendText(server, framing, "{\"jsonrpc\": \"2.0\", \"method\": \"update\", \"params\": [1,2,3,4,5]}");
        sendText(server, framing, "{\"jsonrpc\": \"2.0\", \"method\": \"foobar\"}");
        sendText(server, framing, "{\"jsonrpc\": \"2.0\", \"method\": \"sandbox/list\"}");
        sendText(server, framing, "{\"jsonrpc\": \"2.0\", \"method\": \"sandbox/list\", \"params\": [1]}");
        sendText(server, framing, "{\"jsonrpc\": \"2.0\", \"method\": \"initialize\", \"params\": {\"clientName\": 5}}");
        assertQuiet(server);
        assertNoViolations(server);
    }

    /** "rpc call of non-existent method". */
    @ParameterizedTest
    @EnumSource(Framing.class)
    void nonExistentMethod(Framing framing) throws Exception {
        BwrapdProcess server = shared.get(framing);
        CompletableFuture<JsonNode> answer = server.expect(json("\"1\""));
        sendText(server, framing, "{\"jsonrpc\": \"2.0\", \"method\": \"foobar\", \"id\": \"1\"}");
        assertError(get(answer), "\"1\"", METHOD_NOT_FOUND);
        assertQuiet(server);
        assertNoViolations(server);
    }

    /** "rpc call with invalid JSON". */
    @ParameterizedTest
    @EnumSource(Framing.class)
    void invalidJson(Framing framing) throws Exception {
        BwrapdProcess server = shared.get(framing);
        sendText(server, framing, "{\"jsonrpc\": \"2.0\", \"method\": \"foobar, \"params\": \"bar\", \"baz]");
        assertError(nextUnmatched(server), "null", PARSE_ERROR);
        assertQuiet(server);
        assertNoViolations(server);
    }

    /** "rpc call with invalid Request object". */
    @ParameterizedTest
    @EnumSource(Framing.class)
    void invalidRequestObject(Framing framing) throws Exception {
        BwrapdProcess server = shared.get(framing);
        sendText(server, framing, "{\"jsonrpc\": \"2.0\", \"method\": 1, \"params\": \"bar\"}");
        assertError(nextUnmatched(server), "null", INVALID_REQUEST);
        assertQuiet(server);
        assertNoViolations(server);
    }

    /** "rpc call Batch, invalid JSON": one parse error, not an array, and nothing of the batch runs. */
    @ParameterizedTest
    @EnumSource(Framing.class)
    void batchWithInvalidJson(Framing framing) throws Exception {
        BwrapdProcess server = shared.get(framing);
        CompletableFuture<JsonNode> never = server.expect(json("\"1\""));
        sendText(server, framing, """
                [
                  {"jsonrpc": "2.0", "method": "sandbox/list", "params": {}, "id": "1"},
                  {"jsonrpc": "2.0", "method"
                ]""");
        JsonNode response = nextUnmatched(server);
        assertTrue(response.isObject(), "a single response, not an array: " + response);
        assertError(response, "null", PARSE_ERROR);
        assertQuiet(server);
        assertFalse(never.isDone(), "the request inside the unparsable batch was answered: " + never.getNow(null));
        assertNoViolations(server);
    }

    /** "rpc call with an empty Array". */
    @ParameterizedTest
    @EnumSource(Framing.class)
    void emptyArray(Framing framing) throws Exception {
        BwrapdProcess server = shared.get(framing);
        sendText(server, framing, "[]");
        JsonNode response = nextUnmatched(server);
        assertTrue(response.isObject(), "a single response, not an array: " + response);
        assertError(response, "null", INVALID_REQUEST);
        assertQuiet(server);
        assertNoViolations(server);
    }

    /** "rpc call with an invalid Batch (but not empty)" and "rpc call with invalid Batch". */
    @ParameterizedTest
    @EnumSource(Framing.class)
    void invalidBatches(Framing framing) throws Exception {
        BwrapdProcess server = shared.get(framing);
        sendText(server, framing, "[1]");
        JsonNode one = nextUnmatched(server);
        assertTrue(one.isArray() && one.size() == 1, "an array of one response: " + one);
        assertError(one.get(0), "null", INVALID_REQUEST);

        sendText(server, framing, "[1,2,3]");
        JsonNode three = nextUnmatched(server);
        assertTrue(three.isArray() && three.size() == 3, "an array of three responses: " + three);
        for (JsonNode r : three) assertError(r, "null", INVALID_REQUEST);
        assertQuiet(server);
        assertNoViolations(server);
    }

    /** "rpc call Batch": results, an invalid request and an unknown method in one array; the notification unanswered. */
    @ParameterizedTest
    @EnumSource(Framing.class)
    void mixedBatch(Framing framing) throws Exception {
        BwrapdProcess server = shared.get(framing);
        sendText(server, framing, """
                [
                  {"jsonrpc": "2.0", "method": "sandbox/list", "params": {}, "id": "1"},
                  {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
                  {"jsonrpc": "2.0", "method": "initialize", "params": {"clientName": "batch"}, "id": "2"},
                  {"foo": "boo"},
                  {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
                  {"jsonrpc": "2.0", "method": "rpc.discover", "id": "9"}
                ]""");
        JsonNode answer = nextUnmatched(server);
        assertEquals(5, answer.size(), "five responses in one array: " + answer);
        Map<String, List<JsonNode>> byId = Wire.byId(answer);
        assertEquals(json("[]"), single(byId, "\"1\"").get("result"), answer.toString());
        assertEquals("bwrapd", single(byId, "\"2\"").at("/result/serverName").asText(), answer.toString());
        assertError(single(byId, "null"), "null", INVALID_REQUEST);
        assertError(single(byId, "\"5\""), "\"5\"", METHOD_NOT_FOUND);
        assertTrue(single(byId, "\"9\"").at("/result/openrpc").isTextual(), answer.toString());
        assertQuiet(server);
        assertNoViolations(server);
    }

    /** "rpc call Batch (all notifications)": nothing at all is returned. */
    @ParameterizedTest
    @EnumSource(Framing.class)
    void batchOfNotifications(Framing framing) throws Exception {
        BwrapdProcess server = shared.get(framing);
        sendText(server, framing, """
                [
                  {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
                  {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
                  {"jsonrpc": "2.0", "method": "sandbox/list"}
                ]""");
        assertQuiet(server);
        assertNoViolations(server);
    }

    // ----- ids -----

    @ParameterizedTest
    @EnumSource(Framing.class)
    void idsOfEveryAllowedTypeAreEchoedExactly(Framing framing) throws Exception {
        BwrapdProcess server = shared.get(framing);
        List<String> ids = List.of("\"abc\"", "\"\"", "\"1\"", "\"é ✓ 𝄞\"", "7", "0", "-3", "12345678901234567890", "1.50");
        for (String id : ids) {
            // The harness reads ids as a plain ObjectMapper does (1.50 as 1.5); the exact bytes are checked below.
            CompletableFuture<JsonNode> answer = server.expect(BwrapdProcess.JSON.readTree(id));
            sendText(server, framing, "{\"jsonrpc\":\"2.0\",\"id\":" + id + ",\"method\":\"sandbox/list\"}");
            JsonNode response = get(answer);
            assertTrue(response.has("result"), response.toString());
        }
        sendText(server, framing, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"sandbox/list\"}");
        JsonNode nullId = nextUnmatched(server);
        assertTrue(nullId.has("id") && nullId.get("id").isNull() && nullId.has("result"), nullId.toString());

        // The wire keeps what was sent: the fraction's scale and the integer beyond 64 bits.
        assertTrue(rawIdSeen(server, new BigDecimal("1.50")), "no response carried the id spelled 1.50: " + server.rawFrames());
        assertTrue(rawIdSeen(server, new BigInteger("12345678901234567890")), "no response carried 12345678901234567890");
        assertQuiet(server);
        assertNoViolations(server);
    }

    /** A response whose id, read exactly, is that number (BigDecimal equality includes the scale). */
    private static boolean rawIdSeen(BwrapdProcess server, Number id) throws IOException {
        for (String frame : server.rawFrames()) {
            JsonNode message = Wire.EXACT.readTree(frame);
            JsonNode got = message.isObject() ? message.get("id") : null;
            if (got == null || !got.isNumber()) continue;
            if (id instanceof BigDecimal d && got.isBigDecimal() && got.decimalValue().equals(d)) return true;
            if (id instanceof BigInteger i && got.isIntegralNumber() && got.bigIntegerValue().equals(i)) return true;
        }
        return false;
    }

    @ParameterizedTest
    @EnumSource(Framing.class)
    void cancelRequestForAnUnknownIdIsHarmless(Framing framing) throws Exception {
        BwrapdProcess server = shared.get(framing);
        server.notify("$/cancelRequest", Map.of("id", 424242));
        server.notify("$/cancelRequest", Map.of("id", "no-such-request"));
        server.notify("$/cancelRequest", Map.of());
        server.notify("$/cancelRequest", List.of(1));
        JsonNode init = server.call("initialize", Map.of("clientName", "after-cancel"));
        assertEquals("bwrapd", init.get("serverName").asText());
        assertQuiet(server);
        assertNoViolations(server);
    }

    @ParameterizedTest
    @EnumSource(Framing.class)
    void rpcDiscoverReturnsAnOpenRpcDocument(Framing framing) throws Exception {
        BwrapdProcess server = shared.get(framing);
        JsonNode document = server.call("rpc.discover", null);
        assertTrue(document.path("openrpc").isTextual(), document.toString());
        assertTrue(document.path("methods").isArray(), document.toString());
        assertNoViolations(server);
    }

    // ----- lifecycle: each test its own server. (The shared servers above end by end of input, checked for exit code 0.) -----

    @ParameterizedTest
    @EnumSource(Framing.class)
    void shutdownThenExitExits0(Framing framing) throws Exception {
        try (BwrapdProcess server = BwrapdProcess.start(framing)) {
            server.call("initialize", Map.of());
            JsonNode shutdown = server.call("shutdown", null);
            assertEquals(0, shutdown.path("terminated").asInt(-1), shutdown.toString());
            JsonNode refused = server.request("sandbox/run", Map.of("command", List.of("true")));
            assertError(refused, refused.get("id").toString(), -32006);
            server.notify("exit", null);
            assertEquals(0, server.waitFor(Duration.ofSeconds(20)), server.stderr());
            assertNoViolations(server);
        }
    }

    /**
     * shutdown and exit refuse params by position (-32602) as every method does, and a refused one
     * takes no effect: the server serves on (a refused shutdown used to take its barrier anyway,
     * refusing every later request with -32006 and exiting 0 at exit, its sandboxes left running).
     */
    @Test
    void aShutdownOrExitRefusedForItsParamsTakesNoEffect() throws Exception {
        try (BwrapdProcess server = BwrapdProcess.start(Framing.NDJSON)) {
            server.call("initialize", Map.of());
            for (String method : List.of("shutdown", "exit")) {
                JsonNode refused = server.request(method, List.of());
                assertError(refused, refused.get("id").toString(), -32602);
                JsonNode list = server.request("sandbox/list", null);
                assertTrue(list.has("result"), method + " with array params still served: " + list);
            }
            server.notify("exit", null);
            assertEquals(1, server.waitFor(Duration.ofSeconds(20)), "no shutdown was taken: exit 1; stderr:\n" + server.stderr());
            assertNoViolations(server);
        }
    }

    @Test
    void exitWithoutShutdownExits1() throws Exception {
        try (BwrapdProcess server = BwrapdProcess.start(Framing.LSP)) {
            server.call("initialize", Map.of());
            server.notify("exit", null);
            assertEquals(1, server.waitFor(Duration.ofSeconds(20)), server.stderr());
            assertNoViolations(server);
        }
    }

    /** exit is a notification; sent as a request it still ends the server (it used to wait for its own answer for ever). */
    @Test
    void exitSentAsARequestStillExits() throws Exception {
        try (BwrapdProcess server = BwrapdProcess.start(Framing.NDJSON)) {
            server.call("shutdown", null);
            server.requestAsync("exit", null);
            assertEquals(0, server.waitFor(Duration.ofSeconds(20)), "exit code; stderr:\n" + server.stderr());
            assertNoViolations(server);
        }
    }

    @Test
    void closingStdinExits0() throws Exception {
        try (BwrapdProcess server = BwrapdProcess.start(Framing.LSP)) {
            server.call("initialize", Map.of());
            server.closeStdin();
            assertEquals(0, server.waitFor(Duration.ofSeconds(20)), server.stderr());
            assertNoViolations(server);
        }
    }

    /** Forced LSP: a first '{' does not switch to NDJSON; the line is a broken header block, answered in LSP. */
    @Test
    void forcedLspFraming() throws Exception {
        try (BwrapdProcess server = BwrapdProcess.start(Framing.LSP, "--framing=lsp")) {
            server.sendRaw("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"sandbox/list\"}\r\n\r\n".getBytes(StandardCharsets.UTF_8));
            assertError(nextUnmatched(server), "null", PARSE_ERROR);
            assertEquals("bwrapd", server.call("initialize", Map.of()).get("serverName").asText());
            server.closeStdin();
            assertEquals(0, server.waitFor(Duration.ofSeconds(20)), server.stderr());
            assertNoViolations(server);
        }
    }

    /** Forced NDJSON: a Content-Length header is a line that is no JSON, answered in NDJSON. */
    @Test
    void forcedNdjsonFraming() throws Exception {
        try (BwrapdProcess server = BwrapdProcess.start(Framing.NDJSON, "--framing", "ndjson")) {
            server.sendRaw("Content-Length: 2\r\n\r\n{}\n".getBytes(StandardCharsets.UTF_8));
            assertError(nextUnmatched(server), "null", PARSE_ERROR);
            assertError(nextUnmatched(server), "null", INVALID_REQUEST); // the "{}" line
            assertEquals("bwrapd", server.call("initialize", Map.of()).get("serverName").asText());
            server.closeStdin();
            assertEquals(0, server.waitFor(Duration.ofSeconds(20)), server.stderr());
            assertNoViolations(server);
        }
    }

    // ----- command line -----

    @Test
    void versionPrintsToStdoutAndExits0() throws Exception {
        Run run = run("--version");
        assertEquals(0, run.code, run.toString());
        assertEquals("bwrapd " + Version.VERSION + "\n", run.stdout, run.toString());
    }

    @Test
    void helpPrintsToStdoutAndExits0() throws Exception {
        Run run = run("--help");
        assertEquals(0, run.code, run.toString());
        assertTrue(run.stdout.startsWith("Usage: bwrapd"), run.toString());
        assertTrue(run.stdout.contains("--framing"), run.toString());
    }

    @ParameterizedTest
    @ValueSource(strings = {"--no-such-option", "--framing=xml"})
    void badOptionExits2WithAMessageOnStderrOnly(String option) throws Exception {
        Run run = run(option);
        assertEquals(2, run.code, run.toString());
        assertEquals("", run.stdout, "nothing on stdout: " + run);
        // The reason comes first, naming the option and the value refused (the usage that follows names every option).
        String reason = run.stderr.lines().findFirst().orElse("");
        assertTrue(reason.startsWith("bwrapd: ") && reason.contains(option.replaceFirst("=.*", "")), "stderr's first line names the option: " + run);
        if (option.contains("=")) assertTrue(reason.contains(option.replaceFirst(".*=", "")), "and the value refused: " + run);
    }

    // ----- helpers -----

    private record Run(int code, String stdout, String stderr) {}

    private static Run run(String... args) throws Exception {
        Process p = new ProcessBuilder(BwrapdProcess.command(args)).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
        // Both streams read aside, so that the bound on the exit holds even for a helper that keeps them open.
        CompletableFuture<String> err = readAside(p.getErrorStream()), out = readAside(p.getInputStream());
        if (!p.waitFor(30, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("bwrapd " + String.join(" ", args) + " did not exit");
        }
        return new Run(p.exitValue(), out.get(10, TimeUnit.SECONDS), err.get(10, TimeUnit.SECONDS));
    }

    private static CompletableFuture<String> readAside(java.io.InputStream stream) {
        return CompletableFuture.supplyAsync(() -> {
            try {
                return new String(stream.readAllBytes(), StandardCharsets.UTF_8);
            } catch (IOException e) {
                return e.toString();
            }
        });
    }

    private static JsonNode get(CompletableFuture<JsonNode> answer) throws Exception {
        JsonNode response = answer.get(60, TimeUnit.SECONDS);
        assertNotNull(response);
        return response;
    }

    private static JsonNode single(Map<String, List<JsonNode>> byId, String id) {
        List<JsonNode> responses = byId.get(id);
        assertNotNull(responses, () -> "no response with id " + id + " in " + byId);
        assertEquals(1, responses.size(), () -> "responses with id " + id + ": " + responses);
        return responses.getFirst();
    }

    private static JsonNode json(String text) throws IOException {
        return BwrapdProcess.JSON.readTree(text);
    }
}
