package dev.bwrapd.it;

import com.fasterxml.jackson.databind.JsonNode;
import dev.bwrapd.it.BwrapdProcess.Framing;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static dev.bwrapd.it.Wire.assertNoViolations;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A whole session — start, initialize, sandbox runs whose commands print protocol look-alikes, binary
 * bytes and write to every descriptor they have, shutdown, exit — after which every byte the server
 * wrote to stdout must have been a protocol frame, and the exit code 0. Also with debug logging, whose
 * lines must all go to stderr.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class StdoutPurityIT {
    /** Looks like frames of both framings; must reach the client only inside sandbox/output params. */
    private static final String FAKE_FRAMES = "Content-Length: 2\\r\\n\\r\\n{}\\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":0}\\n";
    private static final byte[] FAKE_FRAMES_BYTES = "Content-Length: 2\r\n\r\n{}\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":0}\n"
            .getBytes(StandardCharsets.UTF_8);

    private TestRoot root;

    @BeforeAll
    void createRoot() throws Exception {
        root = TestRoot.create();
    }

    @AfterAll
    void removeRoot() throws Exception {
        if (root != null) root.close();
    }

    static Stream<Arguments> sessions() {
        return Stream.of(
                Arguments.of(Framing.NDJSON, List.of()),
                Arguments.of(Framing.LSP, List.of()),
                Arguments.of(Framing.LSP, List.of("--log-level", "debug")));
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("sessions")
    void everyByteOnStdoutIsAFrame(Framing framing, List<String> args) throws Exception {
        try (BwrapdProcess server = BwrapdProcess.start(framing, args.toArray(String[]::new))) {
            JsonNode init = server.call("initialize", Map.of("clientName", "purity"));
            assertEquals("bwrapd", init.get("serverName").asText());
            // A notification that fails is only logged (at debug level), never answered. Sent early: exit
            // does not wait for notifications, so a log line still to come when it halts would be lost.
            server.notify("sandbox/list", List.of(1));

            streamedRun(server);
            capturedRun(server);
            everyDescriptorRun(server);
            failingSetupRun(server);

            JsonNode shutdown = server.call("shutdown", null);
            assertEquals(0, shutdown.path("terminated").asInt(-1), shutdown.toString());
            server.notify("exit", null);
            assertEquals(0, server.waitFor(Duration.ofSeconds(30)), "exit code; stderr:\n" + server.stderr());
            assertNoViolations(server);
            if (args.stream().anyMatch(a -> a.contains("debug"))) {
                assertTrue(server.stderr().contains("DEBUG"), "debug logging went somewhere else than stderr:\n" + server.stderr());
            }
        }
    }

    /** Streamed output, text and binary, that mimics frames: all of it arrives as sandbox/output, in order. */
    private void streamedRun(BwrapdProcess server) throws Exception {
        String script = "echo out-1; echo err-1 >&2; printf '\\377\\376\\000'; printf '" + FAKE_FRAMES + "'; "
                + "printf '" + FAKE_FRAMES + "' >&2; echo out-2";
        JsonNode result = server.call("sandbox/run", run(script, "stream", "stream"));
        assertEquals("exited", result.get("status").asText(), result.toString());
        assertEquals(0, result.get("exitCode").asInt(), result.toString());

        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        ByteArrayOutputStream stderr = new ByteArrayOutputStream();
        for (JsonNode n : server.drainNotifications()) {
            if (!n.get("method").asText().equals("sandbox/output")) continue;
            JsonNode p = n.get("params");
            byte[] chunk = p.has("text") ? p.get("text").asText().getBytes(StandardCharsets.UTF_8)
                    : Base64.getDecoder().decode(p.get("base64").asText());
            (p.get("stream").asText().equals("stdout") ? stdout : stderr).writeBytes(chunk);
        }
        ByteArrayOutputStream expected = new ByteArrayOutputStream();
        expected.writeBytes("out-1\n".getBytes(StandardCharsets.UTF_8));
        expected.writeBytes(new byte[] {(byte) 0xff, (byte) 0xfe, 0});
        expected.writeBytes(FAKE_FRAMES_BYTES);
        expected.writeBytes("out-2\n".getBytes(StandardCharsets.UTF_8));
        assertArrayEquals(expected.toByteArray(), stdout.toByteArray(), "streamed stdout: " + stdout.toString(StandardCharsets.UTF_8));
        ByteArrayOutputStream expectedErr = new ByteArrayOutputStream();
        expectedErr.writeBytes("err-1\n".getBytes(StandardCharsets.UTF_8));
        expectedErr.writeBytes(FAKE_FRAMES_BYTES);
        assertArrayEquals(expectedErr.toByteArray(), stderr.toByteArray(), "streamed stderr: " + stderr.toString(StandardCharsets.UTF_8));
    }

    /** A large captured output comes back in the result only. */
    private void capturedRun(BwrapdProcess server) throws Exception {
        JsonNode result = server.call("sandbox/run", run("yes 0123456789abcdef | head -c 300000; printf '" + FAKE_FRAMES + "' >&2",
                "capture", "capture"));
        assertEquals("exited", result.get("status").asText(), result.toString());
        assertEquals(300_000, result.at("/stdout/text").asText().length());
        assertFalse(result.at("/stdout/truncated").asBoolean());
        assertArrayEquals(FAKE_FRAMES_BYTES, result.at("/stderr/text").asText().getBytes(StandardCharsets.UTF_8));
        server.drainNotifications();
    }

    /** The command writes to every descriptor it holds: none of them may be the server's stdout. */
    private void everyDescriptorRun(BwrapdProcess server) throws Exception {
        String script = "for f in /proc/self/fd/*; do echo \"LEAK $f\" > \"$f\"; done 2>/dev/null; true";
        JsonNode result = server.call("sandbox/run", run(script, "capture", "stdout"));
        assertEquals("exited", result.get("status").asText(), result.toString());
        assertTrue(result.at("/stdout/text").asText().contains("LEAK /proc/self/fd/1"), "the loop ran: " + result);
        Map<String, Object> discard = run(script, "discard", "discard");
        JsonNode discarded = server.call("sandbox/run", discard);
        assertEquals("exited", discarded.get("status").asText(), discarded.toString());
        server.drainNotifications();
    }

    /** bwrap's own complaint about a mount it cannot make reaches the client in the result, not on stdout. */
    private void failingSetupRun(BwrapdProcess server) throws Exception {
        Map<String, Object> params = run("true", "stream", "stream");
        params.put("mounts", List.of(Map.of("source", "/tmp", "target", "/etc/passwd/bwrapd-purity", "readOnly", true)));
        JsonNode response = server.request("sandbox/run", params);
        // Whether refused up front or reported as setup-failed, it is an answer, not stray bytes.
        assertTrue(response.has("error") || "setup-failed".equals(response.at("/result/status").asText()), response.toString());
        server.drainNotifications();
    }

    private Map<String, Object> run(String script, String stdout, String stderr) {
        Map<String, Object> params = new LinkedHashMap<>();
        params.put("command", new ArrayList<>(List.of("sh", "-c", script)));
        params.put("root", root.path().toString());
        params.put("stdout", stdout);
        params.put("stderr", stderr);
        params.put("timeoutMs", 30_000);
        return params;
    }

    /**
     * The pipe to the client grows to 1 MiB at the first large frame, not at start: each grown pipe
     * counts 256 pages against the user's fs.pipe-user-pages-soft, and a user's helpers that never
     * stream much should not spend them. (The size is asked of the pipe through /proc/PID/fd/1.)
     */
    @org.junit.jupiter.api.Test
    void thePipeToTheClientGrowsAtTheFirstLargeFrameOnly() throws Exception {
        try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
            Runs.initialize(bwrapd);
            Runs.ok(bwrapd, Runs.sh(root, "echo small"));
            int before = pipeSize(bwrapd);
            assertTrue(before < 1 << 20, "grown before any large frame: " + before);
            org.junit.jupiter.api.Assumptions.assumeTrue(before == 65536, "a new pipe holds " + before + " bytes: the user's pipe pages are spent");
            // Captured, so that the answer is one frame of 300 KB: streamed, the frames are as large
            // as each read of the command's pipe, which a quick helper may make small (CI met one).
            Runs.ok(bwrapd, Runs.sh(root, "head -c 300000 /dev/zero | tr '\\0' a"));
            assertEquals(1 << 20, pipeSize(bwrapd), "grown for the large answer");
            Runs.closeChecked(bwrapd);
        }
    }

    private static int pipeSize(BwrapdProcess bwrapd) throws Exception {
        Process python = new ProcessBuilder("/usr/bin/python3", "-c", """
                import fcntl, os, sys
                print(fcntl.fcntl(os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK), 1032))  # F_GETPIPE_SZ
                """, "/proc/" + bwrapd.process().pid() + "/fd/1").redirectErrorStream(true).start();
        String said = new String(python.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        assertEquals(0, python.waitFor(), said);
        return Integer.parseInt(said);
    }
}
