package dev.bwrapd.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.function.Predicate;

/**
 * Looking at real processes through /proc, for the process-control and leak tests.
 *
 * <p>Every sandboxed command of these tests carries a unique marker twice: as an extra argv word
 * (so bwrap's own command line shows it) and in its environment as {@code BWRAPD_MARK=<marker>},
 * which bwrap, the sandbox's init and every descendant inherit. A marked process found in /proc
 * after its run ended is a survivor. Zombies have neither environment nor command line: they are
 * looked for separately, as children of the helper.
 */
final class ProcessSupport {
    static final String MARK_VARIABLE = "BWRAPD_MARK";
    static final String PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

    private ProcessSupport() {}

    static String newMarker() {
        return "bwrapd-mark-" + UUID.randomUUID();
    }

    /** {@code sh -c script marker}: the marker is the shell's $0, visible in every command line of the run. */
    static List<String> shell(String script, String marker) {
        return List.of("sh", "-c", script, marker);
    }

    /** The usual params of a marked run: sh -c script in root, with the marker in argv and environment. */
    static ObjectNode runParams(TestRoot root, String sandboxId, String marker, String script) {
        ObjectNode params = BwrapdProcess.JSON.createObjectNode();
        params.put("root", root.path().toString());
        if (sandboxId != null) params.put("sandboxId", sandboxId);
        params.set("command", BwrapdProcess.JSON.valueToTree(shell(script, marker)));
        params.putObject("env").put("PATH", PATH).put(MARK_VARIABLE, marker);
        return params;
    }

    /** Adds a read-write bind mount of a host directory. */
    static ObjectNode mount(ObjectNode params, Path source, String target) {
        params.withArray("mounts").addObject().put("source", source.toString()).put("target", target);
        return params;
    }

    // ----- /proc -----

    /** One line of /proc/PID/stat: the fields after the command name. */
    record Stat(int pid, String comm, char state, int ppid, int pgrp, int session) {}

    static Stat stat(long pid) throws IOException {
        String text = Files.readString(Path.of("/proc/" + pid + "/stat"));
        int open = text.indexOf('('), close = text.lastIndexOf(')');
        String[] rest = text.substring(close + 2).split(" ");
        return new Stat((int) pid, text.substring(open + 1, close), rest[0].charAt(0),
                Integer.parseInt(rest[1]), Integer.parseInt(rest[2]), Integer.parseInt(rest[3]));
    }

    static List<Integer> allPids() throws IOException {
        List<Integer> pids = new ArrayList<>();
        try (DirectoryStream<Path> proc = Files.newDirectoryStream(Path.of("/proc"))) {
            for (Path p : proc) {
                String name = p.getFileName().toString();
                if (!name.isEmpty() && name.chars().allMatch(Character::isDigit)) pids.add(Integer.parseInt(name));
            }
        }
        return pids;
    }

    private static byte[] readOrEmpty(Path file) {
        try {
            return Files.readAllBytes(file);
        } catch (IOException e) {
            return new byte[0]; // gone meanwhile, or not ours to read
        }
    }

    /** The command line with NULs shown as spaces, or "" if the process is gone or a zombie. */
    static String cmdline(long pid) {
        return new String(readOrEmpty(Path.of("/proc/" + pid + "/cmdline")), StandardCharsets.UTF_8).replace('\0', ' ').strip();
    }

    static boolean isMarked(long pid, String marker) {
        String entry = MARK_VARIABLE + "=" + marker;
        for (String variable : new String(readOrEmpty(Path.of("/proc/" + pid + "/environ")), StandardCharsets.UTF_8).split("\0")) {
            if (variable.equals(entry)) return true;
        }
        return cmdline(pid).contains(marker);
    }

    /** Whether {@code pid}'s cgroup v2 is frozen (cgroup.events "frozen 1"): how suspend stops a sandbox that has a cgroup. */
    static boolean isFrozen(long pid) {
        String own = null;
        for (String line : new String(readOrEmpty(Path.of("/proc/" + pid + "/cgroup")), StandardCharsets.UTF_8).split("\n")) {
            if (line.startsWith("0::")) own = line.substring(3);
        }
        if (own == null) return false;
        for (String line : new String(readOrEmpty(Path.of("/proc/self/mountinfo")), StandardCharsets.UTF_8).split("\n")) {
            if (!line.contains(" - cgroup2 ")) continue;
            Path events = Path.of(line.split(" ")[4] + own, "cgroup.events");
            if (new String(readOrEmpty(events), StandardCharsets.UTF_8).contains("frozen 1")) return true;
        }
        return false;
    }

    /** Every live process carrying {@code marker}, described as "pid state comm: cmdline". */
    static Map<Integer, String> marked(String marker) throws IOException {
        Map<Integer, String> found = new LinkedHashMap<>();
        for (int pid : allPids()) {
            if (pid == ProcessHandle.current().pid() || !isMarked(pid, marker)) continue;
            found.put(pid, describe(pid));
        }
        return found;
    }

    /** How long ago the process was made (fork, not exec), from /proc/PID/stat and /proc/uptime; -1 if unknown. */
    static long ageMs(long pid) {
        try {
            String text = Files.readString(Path.of("/proc/" + pid + "/stat"));
            long startTicks = Long.parseLong(text.substring(text.lastIndexOf(')') + 2).split(" ")[19]);
            double uptime = Double.parseDouble(Files.readString(Path.of("/proc/uptime")).split(" ")[0]);
            return Math.round(uptime * 1000 - startTicks * 10.0); // USER_HZ is 100 on Linux
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    static String describe(long pid) {
        try {
            Stat s = stat(pid);
            return pid + " " + s.state() + " (" + s.comm() + ") ppid=" + s.ppid() + " pgrp=" + s.pgrp() + " age=" + ageMs(pid) + "ms wchan="
                    + new String(readOrEmpty(Path.of("/proc/" + pid + "/wchan")), StandardCharsets.US_ASCII) + ": " + cmdline(pid);
        } catch (IOException e) {
            return pid + " (gone)";
        }
    }

    /** How many marked processes run a program of this name (/proc/PID/comm). */
    static long countMarked(String marker, String comm) throws IOException {
        long n = 0;
        for (int pid : marked(marker).keySet()) {
            try {
                if (stat(pid).comm().equals(comm)) n++;
            } catch (IOException e) {
                // gone meanwhile
            }
        }
        return n;
    }

    /** Waits until at least {@code count} marked processes named {@code comm} run. */
    static void awaitMarked(String marker, String comm, long count, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (countMarked(marker, comm) < count) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("expected " + count + " marked '" + comm + "' processes; found " + marked(marker).values());
            }
            Thread.sleep(10);
        }
    }

    /** Fails unless no process carries {@code marker} now. */
    static void assertNoSurvivors(String marker, String when) throws IOException {
        Map<Integer, String> left = marked(marker);
        if (!left.isEmpty()) throw new AssertionError("processes survived " + when + ":\n  " + String.join("\n  ", left.values()));
    }

    /** How long no process may carry the marker before the test believes they are all gone. */
    private static final long QUIET_NANOS = 200_000_000L;

    /**
     * Fails unless, within {@code timeout}, no process carries {@code marker} for {@link
     * #QUIET_NANOS} on end. One empty look proves nothing: a process that bwrapd (or bwrap) was
     * spawning at that moment takes its command line, and so the marker, only once it has exec'd
     * (CI saw a look find none while the helper's watchdog was still killing such a bwrap).
     */
    static void awaitNoSurvivors(String marker, Duration timeout, String when) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        long quietSince = System.nanoTime();
        while (System.nanoTime() < deadline) {
            if (!marked(marker).isEmpty()) quietSince = System.nanoTime();
            else if (System.nanoTime() - quietSince >= QUIET_NANOS) return;
            Thread.sleep(20);
        }
        assertNoSurvivors(marker, when + " (waited " + timeout.toMillis() + " ms)");
    }

    /** The children of {@code pid}, from every thread's children list (a child belongs to the thread that forked it). */
    static List<Integer> children(long pid) throws IOException {
        List<Integer> children = new ArrayList<>();
        try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/" + pid + "/task"))) {
            for (Path task : tasks) {
                String list = new String(readOrEmpty(task.resolve("children")), StandardCharsets.US_ASCII).strip();
                if (list.isEmpty()) continue;
                for (String child : list.split("\\s+")) children.add(Integer.parseInt(child));
            }
        }
        return children;
    }

    /** Every process whose parent is {@code pid}, found by scanning each /proc/PID/stat (zombies included). */
    /** The helper's watchdog: its one long-lived child, a shell named bwrapd-watchdog (see process.Watchdog). */
    static boolean isWatchdog(long pid) {
        return cmdline(pid).startsWith("bwrapd-watchdog ");
    }

    static Map<Integer, String> processesWithParent(long pid) throws IOException {
        Map<Integer, String> found = new LinkedHashMap<>();
        for (int candidate : allPids()) {
            try {
                if (stat(candidate).ppid() == pid) found.put(candidate, describe(candidate));
            } catch (IOException e) {
                // gone meanwhile
            }
        }
        return found;
    }

    // ----- talking to the helper -----

    /**
     * A BwrapdProcess with notifications kept until a test asks for them by what they say,
     * and sandbox/output collected per sandbox and stream.
     */
    static final class Client {
        final BwrapdProcess bwrapd;
        private final Deque<JsonNode> stash = new ArrayDeque<>();
        private final Map<String, StringBuilder> output = new LinkedHashMap<>();

        Client(BwrapdProcess bwrapd) {
            this.bwrapd = bwrapd;
        }

        /** Sends a request with the given id (string or number), returning its whole response. */
        CompletableFuture<JsonNode> send(JsonNode id, String method, JsonNode params) throws IOException {
            ObjectNode message = BwrapdProcess.JSON.createObjectNode().put("jsonrpc", "2.0").put("method", method);
            message.set("id", id);
            if (params != null) message.set("params", params);
            CompletableFuture<JsonNode> response = bwrapd.expect(id);
            bwrapd.send(message);
            return response;
        }

        /** The next notification matching {@code which}; others are kept for later. */
        JsonNode awaitNotification(Predicate<JsonNode> which, Duration timeout, String what) throws InterruptedException {
            for (Iterator<JsonNode> it = stash.iterator(); it.hasNext(); ) {
                JsonNode n = it.next();
                if (which.test(n)) {
                    it.remove();
                    return n;
                }
            }
            long deadline = System.nanoTime() + timeout.toNanos();
            while (true) {
                long left = deadline - System.nanoTime();
                JsonNode n = left > 0 ? bwrapd.nextNotification(Duration.ofNanos(left)) : null;
                if (n == null) throw new AssertionError("no " + what + " within " + timeout.toMillis() + " ms; stderr:\n" + bwrapd.stderr());
                collect(n);
                if (which.test(n)) return n;
                stash.add(n);
            }
        }

        JsonNode awaitStarted(String sandboxId, Duration timeout) throws InterruptedException {
            return awaitNotification(n -> n.path("method").asText().equals("sandbox/started")
                    && n.path("params").path("sandboxId").asText().equals(sandboxId), timeout, "sandbox/started for " + sandboxId);
        }

        /** Waits until the streamed stdout of {@code sandboxId} contains {@code text}. */
        void awaitOutput(String sandboxId, String text, Duration timeout) throws InterruptedException {
            long deadline = System.nanoTime() + timeout.toNanos();
            while (!streamed(sandboxId, "stdout").contains(text)) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new AssertionError("stdout of " + sandboxId + " never contained '" + text + "': '"
                            + streamed(sandboxId, "stdout") + "'; stderr:\n" + bwrapd.stderr());
                }
                awaitNotification(n -> n.path("method").asText().equals("sandbox/output")
                        && n.path("params").path("sandboxId").asText().equals(sandboxId), Duration.ofNanos(left), "output of " + sandboxId);
            }
        }

        String streamed(String sandboxId, String stream) {
            StringBuilder text = output.get(sandboxId + "/" + stream);
            return text == null ? "" : text.toString();
        }

        private void collect(JsonNode n) {
            if (!n.path("method").asText().equals("sandbox/output")) return;
            JsonNode p = n.path("params");
            output.computeIfAbsent(p.path("sandboxId").asText() + "/" + p.path("stream").asText(), k -> new StringBuilder())
                    .append(p.path("text").asText(""));
        }
    }
}
