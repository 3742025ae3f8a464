package dev.bwrapd.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static dev.bwrapd.it.Runs.JSON;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Input while the command runs (stdin "stream", sandbox/input) and terminal sessions (terminal,
 * sandbox/resize), docs/protocol.md, driven like an editor's terminal would: a busybox
 * shell on the pseudo-terminal, keystrokes in, what it prints out as "terminal" notifications.
 */
class TerminalIT {
    private static final Duration WAIT = Duration.ofSeconds(30);
    private static TestRoot root;
    private static BwrapdProcess bwrapd;

    @BeforeAll
    static void start() throws Exception {
        root = TestRoot.create();
        bwrapd = BwrapdProcess.start();
        Runs.initialize(bwrapd);
    }

    @AfterAll
    static void stop() throws Exception {
        if (bwrapd != null) Runs.closeChecked(bwrapd, root);
    }

    private static JsonNode input(String sandboxId, ObjectNode params) throws Exception {
        params.put("sandboxId", sandboxId);
        return bwrapd.request("sandbox/input", params);
    }

    private static int written(String sandboxId, String text) throws Exception {
        JsonNode response = input(sandboxId, JSON.createObjectNode().put("text", text));
        assertTrue(response.has("result"), response::toString);
        return response.at("/result/written").asInt(-1);
    }

    @Test
    void streamedStdinReachesTheCommandInPiecesAndEndsAtEof() throws Exception {
        ObjectNode params = Runs.params(root, "cat");
        params.put("sandboxId", "cat-stream").put("stdin", "stream");
        CompletableFuture<JsonNode> run = bwrapd.requestAsync("sandbox/run", params);
        assertEquals(6, written("cat-stream", "hello "));
        assertEquals(3, input("cat-stream", JSON.createObjectNode().put("base64", Base64.getEncoder().encodeToString("wor".getBytes())))
                .at("/result/written").asInt());
        JsonNode last = input("cat-stream", JSON.createObjectNode().put("text", "ld\n").put("eof", true));
        assertEquals(3, last.at("/result/written").asInt(), last::toString);
        JsonNode result = run.get(60, TimeUnit.SECONDS).get("result");
        Runs.assertExited(result, 0);
        assertEquals("hello world\n", Runs.out(result));
    }

    @Test
    void streamedStdinCarriesEveryByteValue() throws Exception {
        byte[] all = new byte[256];
        for (int i = 0; i < all.length; i++) all[i] = (byte) i;
        ObjectNode params = Runs.params(root, "cat");
        params.put("sandboxId", "cat-binary").put("stdin", "stream");
        CompletableFuture<JsonNode> run = bwrapd.requestAsync("sandbox/run", params);
        JsonNode answer = input("cat-binary", JSON.createObjectNode().put("base64", Base64.getEncoder().encodeToString(all)).put("eof", true));
        assertEquals(256, answer.at("/result/written").asInt(), answer::toString);
        JsonNode result = run.get(60, TimeUnit.SECONDS).get("result");
        assertArrayEquals(all, Runs.bytes(result.get("stdout")));
    }

    @Test
    void inputToARunWithoutStreamedInputIsRefused() throws Exception {
        ObjectNode params = Runs.sh(root, "sleep 30");
        params.put("sandboxId", "no-input");
        CompletableFuture<JsonNode> run = bwrapd.requestAsync("sandbox/run", params);
        JsonNode refused = input("no-input", JSON.createObjectNode().put("text", "x"));
        assertEquals(-32602, refused.at("/error/code").asInt(), refused::toString);
        JsonNode resize = bwrapd.request("sandbox/resize", Map.of("sandboxId", "no-input", "rows", 10, "cols", 10));
        assertEquals(-32602, resize.at("/error/code").asInt(), resize::toString);
        bwrapd.call("sandbox/terminate", Map.of("sandboxId", "no-input"));
        run.get(60, TimeUnit.SECONDS);
    }

    @Test
    void aTerminalRunTakesNoStdioOfItsOwn() throws Exception {
        ObjectNode params = Runs.params(root, "sh");
        params.putObject("terminal").put("rows", 24).put("cols", 80);
        params.put("stdout", "capture");
        JsonNode error = Runs.error(bwrapd, params);
        assertEquals(-32602, error.get("code").asInt());
        assertTrue(error.get("message").asText().startsWith("stdout:"), error::toString);
    }

    /** The shell session the issue asks for: prompt, a typed command, sizes, tty, Ctrl-C, exit. */
    @Test
    void anInteractiveShellOnATerminal() throws Exception {
        Terminal t = Terminal.open("shell", "sh", "-i");
        t.await("# ");
        t.type("stty size; tty; echo \"term=$TERM\"\n");
        t.await("24 80\r\n");
        String tty = t.await("term=xterm-256color\r\n");
        assertTrue(tty.contains("/dev/console\r\n") || tty.contains("/dev/pts/"), "tty names the terminal: " + tty);
        t.type("stat -c 'major=%t' $(tty)\n");
        t.await("major=88\r\n"); // 0x88 = 136: a Unix 98 pseudo-terminal slave

        JsonNode resized = bwrapd.call("sandbox/resize", Map.of("sandboxId", "shell", "rows", 40, "cols", 132));
        assertTrue(resized.get("delivered").asBoolean(), resized::toString);
        t.type("stty size\n");
        t.await("40 132\r\n");

        t.type("sleep 100; echo after-sleep\n");
        t.await("sleep 100; echo after-sleep\r\n"); // echoed, so the shell read it
        awaitSleeping("shell"); // and the job runs: a Ctrl-C before it would be lost, and the test wait 100 s
        t.type("\u0003"); // Ctrl-C: SIGINT to the foreground job, as a terminal does
        t.type("echo shell-alive\n");
        String tail = t.await("shell-alive\r\n");
        assertTrue(tail.contains("^C"), tail);

        t.type("printf '\\033[31mred\\033[0m\\n'\n");
        t.await("\u001b[31mred\u001b[0m\r\n"); // colours pass unmangled

        t.type("exit 7\n");
        JsonNode result = t.result();
        Runs.assertExited(result, 7);
        assertTrue(result.get("stdout").isNull() && result.get("stderr").isNull(), result::toString);
    }

    @Test
    void signalsReachTheTerminalsForegroundJob() throws Exception {
        Terminal t = Terminal.open("shell-signal", "sh", "-i");
        t.await("# ");
        t.type("sleep 100; echo status=$?\n");
        t.await("echo status=$?\r\n");
        awaitSleeping("shell-signal"); // a SIGTERM before the job runs would go to the shell, which ignores it
        JsonNode sent = bwrapd.call("sandbox/signal", Map.of("sandboxId", "shell-signal", "signal", "SIGTERM"));
        assertTrue(sent.get("delivered").asBoolean(), sent::toString);
        t.await("status=143\r\n"); // sleep died of SIGTERM; the shell lives on
        t.type("exit\n");
        Runs.assertExited(t.result(), 0); // exit takes the status of the last command, the echo
    }

    @Test
    void rawModeCarriesEveryByteValue() throws Exception {
        Terminal t = Terminal.open("raw", "sh", "-c", "stty raw -echo && echo ready && head -c 256 | od -An -v -tx1");
        t.await("ready");
        byte[] all = new byte[256];
        for (int i = 0; i < all.length; i++) all[i] = (byte) i;
        JsonNode answer = input("raw", JSON.createObjectNode().put("base64", Base64.getEncoder().encodeToString(all)));
        assertEquals(256, answer.at("/result/written").asInt(), answer::toString);
        JsonNode result = t.result();
        Runs.assertExited(result, 0);
        StringBuilder expected = new StringBuilder();
        for (int i = 0; i < 256; i++) expected.append(String.format(" %02x", i));
        String printed = t.text();
        String hex = printed.substring(printed.indexOf("ready") + 5).replaceAll("\\s+", " ").trim();
        assertEquals(expected.toString().trim(), hex);
    }

    /**
     * Where /dev/ptmx and /dev/pts are different devpts instances (a container's /dev/ptmx bound
     * from another), a new terminal's number names another terminal, or none, under /dev/pts. Its
     * other end is opened through the master (TIOCGPTPEER), never by that name; where even the
     * kernel cannot find it, the run is refused saying why. The two instances are mounted in a user
     * and mount namespace of the test's own (unshare), so it runs as root and unprivileged alike.
     */
    @Test
    void aTerminalIsNeverOpenedByItsNumberInAnotherDevpts(@TempDir Path dir) throws Exception {
        String otherDevpts = "mount -t devpts -o newinstance,ptmxmode=0666 devpts \"$0\" && mount --bind \"$0/ptmx\" /dev/ptmx"
                + " && mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts && exec \"$@\"";
        try (BwrapdProcess split = BwrapdProcess.startUnder(List.of("unshare", "-Urm", "--propagation", "private", "/bin/sh", "-c",
                otherDevpts, dir.toString()))) {
            Runs.initialize(split);
            ObjectNode params = Runs.params(root, "sh", "-c", "echo on-my-terminal");
            params.putObject("terminal").put("rows", 24).put("cols", 80);
            JsonNode error = Runs.error(split, params);
            assertEquals(-32603, error.get("code").asInt(), error::toString);
            assertTrue(error.get("message").asText().startsWith("terminal: the pseudo-terminal made through /dev/ptmx is not in the devpts"),
                    error::toString);
        }
    }

    /**
     * Waits (up to {@link #WAIT}) until a process of the sandbox runs sleep: the shell has started
     * its foreground job. A fixed 300 ms could end first on a loaded machine.
     */
    private static void awaitSleeping(String sandboxId) throws Exception {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (true) {
            for (JsonNode entry : bwrapd.call("sandbox/list", null)) {
                if (entry.path("sandboxId").asText().equals(sandboxId) && runsSleep(entry.path("pid").asInt())) return;
            }
            if (System.nanoTime() > deadline) fail("no sleep ran in sandbox " + sandboxId);
            TimeUnit.MILLISECONDS.sleep(20);
        }
    }

    /** Whether {@code pid} or a descendant of it runs sleep (/proc/PID/comm). */
    private static boolean runsSleep(int pid) {
        if (pid <= 0) return false;
        try {
            if (java.nio.file.Files.readString(Path.of("/proc/" + pid + "/comm")).strip().equals("sleep")) return true;
            for (int child : ProcessSupport.children(pid)) if (runsSleep(child)) return true;
        } catch (java.io.IOException e) {
            // gone meanwhile
        }
        return false;
    }

    /** A terminal run: collects its "terminal" notifications in order. */
    private static final class Terminal {
        private final String id;
        private final CompletableFuture<JsonNode> run;
        private final ByteArrayOutputStream seen = new ByteArrayOutputStream();
        private int consumed;

        private Terminal(String id, CompletableFuture<JsonNode> run) {
            this.id = id;
            this.run = run;
        }

        static Terminal open(String id, String... command) throws Exception {
            ObjectNode params = Runs.params(root, command);
            params.put("sandboxId", id);
            params.putObject("terminal").put("rows", 24).put("cols", 80);
            return new Terminal(id, bwrapd.requestAsync("sandbox/run", params));
        }

        void type(String keys) throws Exception {
            assertEquals(keys.getBytes(StandardCharsets.UTF_8).length, written(id, keys));
        }

        /** Waits until {@code expected} has been printed since the last await; returns what was printed up to it. */
        String await(String expected) throws Exception {
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (true) {
                String text = text().substring(consumed);
                int at = text.indexOf(expected);
                if (at >= 0) {
                    consumed += at + expected.length();
                    return text.substring(0, at + expected.length());
                }
                if (System.nanoTime() > deadline) fail("no <" + expected + "> on the terminal; it printed: " + text);
                take(Duration.ofMillis(100));
            }
        }

        private void take(Duration timeout) throws InterruptedException {
            keep(bwrapd.nextNotification(timeout));
        }

        /** Keeps what a notification says this terminal printed. */
        private void keep(JsonNode n) {
            if (n == null || !n.path("method").asText().equals("sandbox/output")) return;
            JsonNode p = n.get("params");
            if (!p.path("sandboxId").asText().equals(id)) return;
            assertEquals("terminal", p.path("stream").asText(), p::toString);
            seen.writeBytes(p.has("text") ? p.get("text").asText().getBytes(StandardCharsets.UTF_8)
                    : Base64.getDecoder().decode(p.get("base64").asText()));
        }

        String text() {
            return seen.toString(StandardCharsets.UTF_8);
        }

        /** The run's result; every notification came before it. */
        JsonNode result() throws Exception {
            JsonNode response = run.get(60, TimeUnit.SECONDS);
            JsonNode n;
            while ((n = bwrapd.nextNotification(Duration.ZERO)) != null) keep(n);
            assertTrue(response.has("result"), response::toString);
            return response.get("result");
        }
    }
}
