package dev.bwrapd.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** Small helpers for sandbox/run tests: params, results, notifications. */
public final class Runs {
    private Runs() {}

    public static final com.fasterxml.jackson.databind.ObjectMapper JSON = BwrapdProcess.JSON;

    /** Params for a run of {@code command} in {@code root} (null root: the host root). */
    public static ObjectNode params(TestRoot root, String... command) {
        ObjectNode p = JSON.createObjectNode();
        if (root != null) p.put("root", root.path().toString());
        ArrayNode argv = p.putArray("command");
        for (String word : command) argv.add(word);
        return p;
    }

    /** Params for {@code sh -c script} in {@code root}. */
    public static ObjectNode sh(TestRoot root, String script) {
        return params(root, "sh", "-c", script);
    }

    public static ObjectNode mount(String source, String target, boolean readOnly) {
        return JSON.createObjectNode().put("source", source).put("target", target).put("readOnly", readOnly);
    }

    /** Runs and returns the result; fails the test on an error response. */
    public static JsonNode run(BwrapdProcess bwrapd, ObjectNode params) throws Exception {
        JsonNode response = bwrapd.request("sandbox/run", params);
        if (!response.has("result")) fail("sandbox/run failed: " + response + "\nparams: " + params + "\nstderr:\n" + bwrapd.stderr());
        return response.get("result");
    }

    /** Runs a request that must fail; returns the error object. */
    public static JsonNode error(BwrapdProcess bwrapd, ObjectNode params) throws Exception {
        JsonNode response = bwrapd.request("sandbox/run", params);
        if (!response.has("error")) fail("sandbox/run should have failed: " + response + "\nparams: " + params);
        return response.get("error");
    }

    /** A run that must exit 0; returns the result. */
    public static JsonNode ok(BwrapdProcess bwrapd, ObjectNode params) throws Exception {
        JsonNode result = run(bwrapd, params);
        assertExited(result, 0);
        return result;
    }

    public static void assertExited(JsonNode result, int code) {
        assertEquals("exited", result.path("status").asText(), () -> "not exited: " + result);
        assertEquals(code, result.path("exitCode").asInt(-1), () -> "exit code: " + result);
    }

    /** Captured stdout as text (fails if it came as base64). */
    public static String out(JsonNode result) {
        return text(result, "stdout");
    }

    public static String err(JsonNode result) {
        return text(result, "stderr");
    }

    static String text(JsonNode result, String stream) {
        JsonNode captured = result.get(stream);
        if (captured == null || captured.isNull()) fail(stream + " not captured: " + result);
        if (!captured.get("text").isTextual()) fail(stream + " is not text: " + result);
        return captured.get("text").asText();
    }

    /** The bytes of a captured stream, whichever form it came in. */
    public static byte[] bytes(JsonNode captured) {
        if (captured.get("text").isTextual()) return captured.get("text").asText().getBytes(StandardCharsets.UTF_8);
        return Base64.getDecoder().decode(captured.get("base64").asText());
    }

    public static List<String> lines(String text) {
        return text.isEmpty() ? List.of() : List.of(text.split("\n"));
    }

    /** Waits for a notification of {@code method} about {@code sandboxId}, skipping (and dropping) others. */
    public static JsonNode awaitNotification(BwrapdProcess bwrapd, String method, String sandboxId, Duration timeout)
            throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            JsonNode n = bwrapd.nextNotification(Duration.ofNanos(Math.max(1, deadline - System.nanoTime())));
            if (n == null) break;
            if (n.path("method").asText().equals(method) && n.path("params").path("sandboxId").asText().equals(sandboxId)) return n;
        }
        fail("no " + method + " for " + sandboxId + " within " + timeout);
        return null;
    }

    /** The capabilities from initialize. */
    public static JsonNode initialize(BwrapdProcess bwrapd) throws Exception {
        return bwrapd.call("initialize", Map.of("clientName", "bwrapd-it", "protocolVersion", 1));
    }

    /**
     * The end of a test class that shares one bwrapd: asserts that it wrote nothing but frames to
     * stdout, then closes it and, in order, {@code alsoClose} (even if the assertion fails).
     */
    public static void closeChecked(BwrapdProcess bwrapd, AutoCloseable... alsoClose) throws Exception {
        try {
            assertEquals(List.of(), bwrapd.stdoutViolations());
        } finally {
            bwrapd.close();
            for (AutoCloseable resource : alsoClose) resource.close();
        }
    }

    /** This test JVM's uid and gid (the same as the bwrapd it spawns). */
    public static int hostUid() throws IOException {
        return (Integer) Files.getAttribute(Path.of("/proc/self"), "unix:uid");
    }

    public static int hostGid() throws IOException {
        return (Integer) Files.getAttribute(Path.of("/proc/self"), "unix:gid");
    }

    /** The interface names in a /proc/net/dev listing. */
    public static List<String> interfaces(String procNetDev) {
        List<String> names = new ArrayList<>();
        for (String line : procNetDev.split("\n")) {
            int colon = line.indexOf(':');
            if (colon > 0 && !line.contains("|")) names.add(line.substring(0, colon).trim());
        }
        return names;
    }

    /** A fresh temporary host directory (under /tmp), for mounts, files and canaries. */
    public static Path hostDir(String prefix) throws IOException {
        return Files.createTempDirectory(Path.of("/tmp"), prefix);
    }

    /** Whether {@code dir}'s file system keeps birth times (where it keeps none, the JDK gives the last modification). */
    public static boolean keepsBirthTimes(Path dir) throws IOException {
        Path probe = Files.createTempFile(dir, "birth-", "");
        try {
            Files.setLastModifiedTime(probe, java.nio.file.attribute.FileTime.fromMillis(0));
            return Files.readAttributes(probe, java.nio.file.attribute.BasicFileAttributes.class).creationTime().toMillis() != 0;
        } finally {
            Files.delete(probe);
        }
    }

    /** Polls until {@code file} exists. */
    public static void awaitFile(Path file, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!Files.exists(file)) {
            if (System.nanoTime() > deadline) fail("timed out waiting for " + file);
            TimeUnit.MILLISECONDS.sleep(10);
        }
    }

    /** Fails with just the differences when two snapshots of a tree differ. */
    public static void assertSameTree(Map<String, String> expected, Map<String, String> actual, String message) {
        if (expected.equals(actual)) return;
        StringBuilder diff = new StringBuilder(message).append(":");
        new java.util.TreeSet<>(expected.keySet()).forEach(k -> {
            if (!actual.containsKey(k)) diff.append("\n  gone:    ").append(k).append(" (").append(expected.get(k)).append(")");
            else if (!expected.get(k).equals(actual.get(k))) diff.append("\n  changed: ").append(k).append(" ").append(expected.get(k)).append(" -> ").append(actual.get(k));
        });
        new java.util.TreeSet<>(actual.keySet()).forEach(k -> {
            if (!expected.containsKey(k)) diff.append("\n  added:   ").append(k).append(" (").append(actual.get(k)).append(")");
        });
        fail(diff.toString());
    }

    public static void assertContains(String haystack, String needle) {
        assertTrue(haystack.contains(needle), () -> "expected to contain <" + needle + ">: " + haystack);
    }
}
