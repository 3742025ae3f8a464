package dev.bwrapd.it;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code bwrapd buildbarn-runner} driven by a real gRPC client that plays bb_worker
 * (src/test/buildbarn/bb_worker_test.py: Debian's python3-grpcio, stubs generated at test time
 * from the project's own .proto files), against the built helper with real bwrap and busybox
 * roots. Its output is kept in target/buildbarn-tests/ and shown when it fails.
 */
class BuildbarnRunnerIT {
    private static final Path HOME = BwrapdProcess.home();

    @Test
    void bbWorkerSequence() throws Exception {
        assumeTheRunnerIsBuiltIn();
        Path logs = Files.createDirectories(HOME.resolve("target/buildbarn-tests"));
        Path log = logs.resolve("bb_worker_test.log");
        ProcessBuilder builder = new ProcessBuilder("/usr/bin/python3", "src/test/buildbarn/bb_worker_test.py", "-v")
                .directory(HOME.toFile()).redirectErrorStream(true).redirectOutput(log.toFile());
        builder.environment().put("BWRAPD", BwrapdProcess.command().getFirst());
        builder.environment().put("BWRAPD_HOME", HOME.toString());
        Process process = builder.start();
        boolean finished = process.waitFor(10, TimeUnit.MINUTES);
        if (!finished) process.destroyForcibly();
        String output = Files.readString(log);
        System.out.println("----- bb_worker_test.py (" + log + ") -----");
        System.out.println(output.length() > 20000 ? output.substring(output.length() - 20000) : output);
        assertTrue(finished, "bb_worker_test.py timed out");
        assertEquals(0, process.exitValue(), "bb_worker_test.py failed; see " + log);
        java.util.regex.Matcher ran = java.util.regex.Pattern.compile("\nRan (\\d+) tests? in .*\n\nOK(?: \\(skipped=(\\d+)\\))?\n").matcher(output);
        assertTrue(ran.find(), "bb_worker_test.py did not end with its count and OK");
        // The one skip allowed: the cache file's other owner needs root.
        List<String> skipped = output.lines().filter(line -> line.contains(" ... skipped ")).toList();
        assertTrue(skipped.stream().allMatch(line -> line.contains("needs root") && !"root".equals(System.getProperty("user.name"))), "skipped: " + skipped);
        assertEquals(ran.group(2) == null ? 0 : Integer.parseInt(ran.group(2)), skipped.size(), "skips counted and listed");
        assertTrue(Integer.parseInt(ran.group(1)) > skipped.size() + 10, "bb_worker_test.py ran too few tests: " + ran.group());
    }

    /**
     * A limit every action gets (--limits) that this host cannot enforce stops the runner at its
     * start, exit status 2, naming it as sandbox/run would, instead of failing every Run; one it
     * can enforce lets it serve. Which it is depends on the user (root here has the cgroups, an
     * unprivileged user not): the stdio mode's initialize says, and the runner must agree with it.
     */
    @Test
    void aLimitTheHostCannotEnforceStopsTheRunnerAtItsStart() throws Exception {
        assumeTheRunnerIsBuiltIn();
        boolean enforceable;
        try (BwrapdProcess bwrapd = BwrapdProcess.start()) {
            enforceable = bwrapd.call("initialize", null).path("capabilities").path("limits").has("memoryBytes");
        }
        servesOrStops(enforceable, "limits.memoryBytes: this host cannot enforce it", "--limits", "memoryBytes=67108864");
    }

    /**
     * With --root host, an unprivileged runner's --cap-add CAP_SYS_ADMIN is refused at its start,
     * as sandbox/run refuses it on the host's root (its mounts would be the sandbox's own, to undo),
     * instead of failing every Run; a root runner's mounts are locked, and it serves.
     */
    @Test
    void capSysAdminOnTheHostsRootStopsAnUnprivilegedRunnerAtItsStart() throws Exception {
        assumeTheRunnerIsBuiltIn();
        servesOrStops("root".equals(System.getProperty("user.name")), "capabilities[0]: CAP_SYS_ADMIN on the host's root",
                "--root", "host", "--cap-add", "CAP_SYS_ADMIN");
    }

    /** Starts a runner with {@code args}: it must serve its socket, or stop at once with exit status 2 saying {@code why}. */
    private static void servesOrStops(boolean serves, String why, String... args) throws Exception {
        Path dir = Files.createTempDirectory("bwrapd-runner-start-");
        Path socket = dir.resolve("runner.sock");
        Path build = Files.createDirectory(dir.resolve("build")); // beside the socket: one inside it is refused
        List<String> command = new java.util.ArrayList<>(List.of("buildbarn-runner", "--listen", socket.toString(), "--build-directory", build.toString()));
        command.addAll(List.of(args));
        Process runner = new ProcessBuilder(BwrapdProcess.command(command.toArray(String[]::new))).redirectErrorStream(true).start();
        try {
            if (serves) {
                long giveUp = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                while (!Files.exists(socket) && runner.isAlive() && System.nanoTime() < giveUp) Thread.sleep(50);
                assertTrue(runner.isAlive() && Files.exists(socket), "the runner does not serve: " + output(runner));
            } else {
                assertTrue(runner.waitFor(60, TimeUnit.SECONDS), "the runner did not stop");
                String said = output(runner);
                assertEquals(2, runner.exitValue(), said);
                assertTrue(said.contains(why), said);
            }
        } finally {
            runner.destroy();
            runner.waitFor(30, TimeUnit.SECONDS);
            Files.deleteIfExists(socket);
            Files.delete(build);
            Files.delete(dir);
        }
    }

    private static String output(Process process) throws java.io.IOException {
        if (process.isAlive()) return "(still running)";
        return new String(process.getInputStream().readAllBytes());
    }

    /**
     * The native build leaves the runner out (docs/buildbarn.md, Native build) and says so: then
     * this test is skipped, naming why, and that refusal is what is checked.
     */
    private static void assumeTheRunnerIsBuiltIn() throws Exception {
        Process help = new ProcessBuilder(BwrapdProcess.command("buildbarn-runner", "--help")).redirectErrorStream(true).start();
        String said = new String(help.getInputStream().readAllBytes());
        assertTrue(help.waitFor(60, TimeUnit.SECONDS));
        if (said.contains("not in the native build")) {
            assertEquals(2, help.exitValue(), said);
            assertTrue(said.contains("BWRAPD_JVM=1 ./bwrapd buildbarn-runner"), said);
            Assumptions.abort("this binary has no Buildbarn runner (the native build): " + said.strip());
        }
        assertEquals(0, help.exitValue(), said);
        assertTrue(said.contains("--build-directory"), said);
    }

    /** The stdio mode loads nothing of gRPC or Netty: its start-up and memory stay what they were. */
    @Test
    void theStdioModeLoadsNoGrpcClass() throws Exception {
        String command = System.getProperty("bwrapd.command");
        Assumptions.assumeTrue(command == null || command.isBlank(), "a JVM check: this run tests " + command);
        Assumptions.assumeTrue(Files.isRegularFile(HOME.resolve("target/quarkus-app/quarkus-run.jar")), "no JVM build here");
        Path classes = Files.createTempFile("bwrapd-classes-", ".log");
        try {
            ProcessBuilder builder = new ProcessBuilder(HOME.resolve("bwrapd").toString())
                    .redirectErrorStream(false).redirectError(ProcessBuilder.Redirect.DISCARD);
            builder.environment().put("BWRAPD_JVM", "1");
            builder.environment().put("BWRAPD_JVM_OPTS", "-Xlog:class+load=info:file=" + classes + "::filecount=0"); // no rotated .0 left behind
            Process process = builder.start();
            process.getOutputStream().write(("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}\n"
                    + "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"sandbox/run\",\"params\":{\"command\":[\"true\"]}}\n").getBytes());
            process.getOutputStream().close(); // end of input: it answers, then exits
            String stdout = new String(process.getInputStream().readAllBytes());
            assertTrue(process.waitFor(60, TimeUnit.SECONDS), "the stdio mode did not exit");
            assertTrue(stdout.contains("\"id\":2"), stdout);
            List<String> loaded = Files.readAllLines(classes);
            assertTrue(loaded.stream().anyMatch(l -> l.contains("dev.bwrapd.Main ")), "the log holds no class loads: " + classes);
            List<String> grpc = loaded.stream().filter(l -> l.contains(" io.grpc.") || l.contains(".netty.") || l.contains("dev.bwrapd.buildbarn"))
                    .toList();
            assertEquals(List.of(), grpc, "the stdio mode loaded gRPC or Netty classes");
        } finally {
            Files.deleteIfExists(classes);
        }
    }
}
