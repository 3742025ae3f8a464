package dev.bwrapd.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The built bwrapd (JVM launcher or native binary) as a real subprocess, spoken to over its
 * stdin/stdout. Every byte it writes to stdout must parse as a frame of the chosen framing:
 * anything else is recorded in {@link #stdoutViolations()}, which tests check.
 */
public final class BwrapdProcess implements AutoCloseable {
    public enum Framing { NDJSON, LSP }

    public static final ObjectMapper JSON = new ObjectMapper();

    private final Process process;
    private final Framing framing;
    private final OutputStream stdin;
    private final Map<String, CompletableFuture<JsonNode>> waiting = new ConcurrentHashMap<>();
    private final BlockingQueue<JsonNode> notifications = new LinkedBlockingQueue<>();
    private final BlockingQueue<JsonNode> unmatched = new LinkedBlockingQueue<>();
    private final List<String> violations = new ArrayList<>();
    private final List<String> rawFrames = new ArrayList<>();
    private final ByteArrayOutputStream stderr = new ByteArrayOutputStream();
    private final AtomicLong ids = new AtomicLong(1000);
    private final Thread readerThread;

    private BwrapdProcess(Process process, Framing framing) {
        this.process = process;
        this.framing = framing;
        this.stdin = process.getOutputStream();
        this.readerThread = Thread.ofPlatform().daemon().name("it-reader").start(this::readStdout);
        Thread.ofPlatform().daemon().name("it-stderr").start(() -> {
            try {
                process.getErrorStream().transferTo(new OutputStream() {
                    @Override
                    public void write(int b) {
                        synchronized (stderr) { stderr.write(b); }
                    }

                    @Override
                    public void write(byte[] b, int off, int len) {
                        synchronized (stderr) { stderr.write(b, off, len); }
                    }
                });
            } catch (IOException ignored) {
                // the process ended
            }
        });
    }

    /** The repository checkout (where the launcher and tools/ are). */
    public static Path home() {
        return Path.of(System.getProperty("bwrapd.home", ".")).toAbsolutePath().normalize();
    }

    /** The command that starts the artifact under test: -Dbwrapd.command, else the launcher. */
    public static List<String> command(String... args) {
        List<String> command = new ArrayList<>();
        String configured = System.getProperty("bwrapd.command");
        command.add(configured != null && !configured.isBlank() ? configured : home().resolve("bwrapd").toString());
        command.addAll(List.of(args));
        return command;
    }

    public static BwrapdProcess start(String... args) throws IOException {
        return start(Framing.NDJSON, args);
    }

    /**
     * Started by a shell that first runs {@code setup} (say, a lower ulimit) and stays its parent,
     * as a client that spawns it would be.
     */
    public static BwrapdProcess startUnderShell(String setup, String... args) throws IOException {
        return startUnder(List.of("/bin/sh", "-c", setup + "; \"$@\"; exit $?", "sh"), args);
    }

    /** Started by {@code wrapper}, a command that runs its own arguments (say, unshare): the helper's command follows them. */
    public static BwrapdProcess startUnder(List<String> wrapper, String... args) throws IOException {
        List<String> command = new ArrayList<>(wrapper);
        command.addAll(command(args));
        return new BwrapdProcess(new ProcessBuilder(command).start(), Framing.NDJSON);
    }

    public static BwrapdProcess start(Framing framing, String... args) throws IOException {
        ProcessBuilder builder = new ProcessBuilder(command(args));
        return new BwrapdProcess(builder.start(), framing);
    }

    public Process process() {
        return process;
    }

    // ----- sending -----

    public synchronized void sendRaw(byte[] bytes) throws IOException {
        stdin.write(bytes);
        stdin.flush();
    }

    public void send(JsonNode message) throws IOException {
        byte[] body = JSON.writeValueAsBytes(message);
        if (framing == Framing.LSP) {
            byte[] header = ("Content-Length: " + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII);
            byte[] frame = new byte[header.length + body.length];
            System.arraycopy(header, 0, frame, 0, header.length);
            System.arraycopy(body, 0, frame, header.length, body.length);
            sendRaw(frame);
        } else {
            byte[] line = new byte[body.length + 1];
            System.arraycopy(body, 0, line, 0, body.length);
            line[body.length] = '\n';
            sendRaw(line);
        }
    }

    /** Sends a request with a fresh numeric id; the future completes with the whole response. */
    public CompletableFuture<JsonNode> requestAsync(String method, Object params) throws IOException {
        long id = ids.incrementAndGet();
        ObjectNode message = JSON.createObjectNode().put("jsonrpc", "2.0").put("id", id).put("method", method);
        if (params != null) message.set("params", JSON.valueToTree(params));
        CompletableFuture<JsonNode> response = expect(JSON.valueToTree(id));
        send(message);
        return response;
    }

    /** Sends a request and waits (up to 60 s) for its whole response. */
    public JsonNode request(String method, Object params) throws Exception {
        return requestAsync(method, params).get(60, TimeUnit.SECONDS);
    }

    /** The result of a request that must succeed. */
    public JsonNode call(String method, Object params) throws Exception {
        JsonNode response = request(method, params);
        if (!response.has("result")) throw new AssertionError(method + " failed: " + response);
        return response.get("result");
    }

    public void notify(String method, Object params) throws IOException {
        ObjectNode message = JSON.createObjectNode().put("jsonrpc", "2.0").put("method", method);
        if (params != null) message.set("params", JSON.valueToTree(params));
        send(message);
    }

    /** A future for the response carrying {@code id} (for requests sent raw). */
    public CompletableFuture<JsonNode> expect(JsonNode id) {
        return waiting.computeIfAbsent(key(id), k -> new CompletableFuture<>());
    }

    /** The next message that answered no awaited id (a response with id null, a batch answer). */
    public JsonNode nextUnmatched(Duration timeout) throws InterruptedException {
        return unmatched.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** The next notification from the server, or null after the timeout. */
    public JsonNode nextNotification(Duration timeout) throws InterruptedException {
        return notifications.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    public List<JsonNode> drainNotifications() {
        List<JsonNode> all = new ArrayList<>();
        notifications.drainTo(all);
        return all;
    }

    public void closeStdin() throws IOException {
        stdin.close();
    }

    /** Waits for the process to exit; its exit code, or -1 on timeout. */
    public int waitFor(Duration timeout) throws InterruptedException {
        if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) return -1;
        readerThread.join(5000);
        return process.exitValue();
    }

    public String stderr() {
        synchronized (stderr) {
            return stderr.toString(StandardCharsets.UTF_8);
        }
    }

    /** Anything on stdout that was not a well-formed frame holding one JSON value. */
    public List<String> stdoutViolations() {
        synchronized (violations) {
            return new ArrayList<>(violations);
        }
    }

    @Override
    public void close() throws Exception {
        try {
            stdin.close();
        } catch (IOException ignored) {
            // already closed
        }
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            process.waitFor(5, TimeUnit.SECONDS);
        }
    }

    /**
     * Every frame body read from stdout so far, as text, in arrival order: for checks on the exact
     * bytes (how an id was spelled), which parsing into a JsonNode would normalise.
     */
    public List<String> rawFrames() {
        synchronized (rawFrames) {
            return new ArrayList<>(rawFrames);
        }
    }

    // ----- reading -----

    private void readStdout() {
        try (InputStream in = process.getInputStream()) {
            while (true) {
                byte[] body = framing == Framing.LSP ? readLspFrame(in) : readLine(in);
                if (body == null) break;
                synchronized (rawFrames) {
                    rawFrames.add(new String(body, StandardCharsets.UTF_8));
                }
                JsonNode message;
                try {
                    message = JSON.readTree(body);
                } catch (IOException e) {
                    violation("not JSON: " + new String(body, StandardCharsets.UTF_8));
                    continue;
                }
                dispatch(message);
            }
        } catch (IOException e) {
            violation("stdout broke: " + e);
        } finally {
            waiting.values().forEach(f -> f.completeExceptionally(new IOException("bwrapd's stdout closed; stderr:\n" + stderr())));
        }
    }

    private void dispatch(JsonNode message) {
        if (message.isObject() && message.has("method") && !message.has("id")) {
            notifications.add(message);
        } else if (message.isObject() && message.has("id") && !message.get("id").isNull()
                && waiting.containsKey(key(message.get("id")))) {
            waiting.remove(key(message.get("id"))).complete(message);
        } else {
            unmatched.add(message);
        }
    }

    private byte[] readLine(InputStream in) throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        int b;
        while ((b = in.read()) >= 0) {
            if (b == '\n') return line.toByteArray();
            line.write(b);
        }
        if (line.size() > 0) violation("unterminated last line: " + line.toString(StandardCharsets.UTF_8));
        return null;
    }

    private byte[] readLspFrame(InputStream in) throws IOException {
        int length = -1;
        while (true) {
            byte[] header = readLine(in);
            if (header == null) return null;
            String text = new String(header, StandardCharsets.US_ASCII);
            if (!text.endsWith("\r")) violation("header line not ended by CRLF: " + text);
            text = text.strip();
            if (text.isEmpty()) break;
            if (text.regionMatches(true, 0, "Content-Length:", 0, 15)) {
                length = Integer.parseInt(text.substring(15).trim());
            } else {
                violation("unexpected header: " + text);
            }
        }
        if (length < 0) {
            violation("frame without Content-Length");
            return new byte[0];
        }
        return in.readNBytes(length);
    }

    private void violation(String what) {
        synchronized (violations) {
            violations.add(what);
        }
    }

    private static String key(JsonNode id) {
        return (id.isTextual() ? "s:" : "n:") + id.asText();
    }

    /** Reads a file written by a test command, for assertions. */
    public static String read(Path file) throws IOException {
        return Files.readString(file);
    }
}
