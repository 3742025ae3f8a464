package dev.bwrapd.it;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Runs each client's own test suite (Python unittest, go test, node --test) against the built
 * helper, so that the one test command covers them. Each suite spawns the real helper through
 * the launcher; its output is kept in target/client-tests/ and shown when it fails.
 */
class ClientSuitesIT {
    private static final Path HOME = BwrapdProcess.home();
    private static final Path LOGS = HOME.resolve("target/client-tests");

    @Test
    void pythonClient() throws Exception {
        run("python", HOME.resolve("clients/python"), Map.of(),
                List.of("python3", "-m", "unittest", "discover", "-s", "tests", "-v"));
    }

    @Test
    void goClient() throws Exception {
        Path cache = HOME.resolve("target/go");
        run("go", HOME.resolve("clients/go"),
                Map.of("GOCACHE", cache.resolve("cache").toString(), "GOPATH", cache.resolve("path").toString(),
                        "GOFLAGS", "-mod=mod", "GOPROXY", "off", "GOTOOLCHAIN", "local"),
                List.of("go", "test", "-count=1", "-v", "./..."));
    }

    @Test
    void nodeEditorExample() throws Exception {
        Path node = HOME.resolve("clients/node");
        if (!Files.isDirectory(node.resolve("node_modules"))) {
            run("npm-ci", node, Map.of("npm_config_cache", HOME.resolve("target/npm-cache").toString()),
                    List.of("npm", "ci", "--no-audit", "--no-fund"));
        }
        // TAP, whatever Node's default reporter (spec from Node 23): its "# SKIP" is what the skip check reads.
        run("node", node, Map.of(), List.of("node", "--test", "--test-reporter=tap"));
    }

    private static void run(String name, Path dir, Map<String, String> env, List<String> command)
            throws IOException, InterruptedException {
        Files.createDirectories(LOGS);
        Path log = LOGS.resolve(name + ".log");
        ProcessBuilder builder = new ProcessBuilder(command).directory(dir.toFile())
                .redirectErrorStream(true).redirectOutput(log.toFile());
        builder.environment().putAll(env);
        builder.environment().put("BWRAPD", BwrapdProcess.command().getFirst());
        Process process = builder.start();
        boolean finished = process.waitFor(10, TimeUnit.MINUTES);
        if (!finished) process.destroyForcibly();
        String output = Files.readString(log);
        System.out.println("----- " + name + " client suite (" + log + ") -----");
        System.out.println(output.length() > 20000 ? output.substring(output.length() - 20000) : output);
        assertTrue(finished, name + " suite timed out");
        assertEquals(0, process.exitValue(), name + " suite failed; see " + log);
        // A skip hides a broken build unless it is one of the host-dependent ones each suite names.
        List<String> lines = output.lines().toList(), skips = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i);
            // go test -v: "--- SKIP: TestName" after its t.Skip message, which follows the test's "=== RUN";
            // Python: "... skipped 'why'"; TAP: "# SKIP why"
            if (line.contains("--- SKIP:")) {
                StringBuilder skip = new StringBuilder(line);
                for (int j = i - 1; j >= 0 && !lines.get(j).startsWith("=== RUN") && !lines.get(j).startsWith("--- "); j--) {
                    skip.append(' ').append(lines.get(j).strip());
                }
                skips.add(skip.toString());
            }
            else if (line.contains(" ... skipped ") || line.contains("# SKIP") || line.contains("# TODO")) skips.add(line);
        }
        List<String> allowed = allowedSkips();
        List<String> unexplained = skips.stream().filter(line -> allowed.stream().noneMatch(line::contains)).toList();
        assertTrue(unexplained.isEmpty(), name + " suite skipped tests this host should run: " + unexplained);
    }

    /**
     * Why a client test may skip here: what this host's user cannot do (the suite checks it is refused
     * instead), decided from the host and the user, never from what the helper claims: a helper
     * that lost a capability must fail these suites, not skip its tests.
     */
    private static List<String> allowedSkips() throws IOException {
        List<String> allowed = new ArrayList<>(List.of("enforces every limit for this user"));
        if (!"root".equals(System.getProperty("user.name"))) allowed.add("cannot enforce pids for this user"); // root has the cgroups
        Path maxUserNamespaces = Path.of("/proc/sys/user/max_user_namespaces");
        if (!Files.exists(maxUserNamespaces) || Files.readString(maxUserNamespaces).strip().equals("0")) allowed.add("no user namespaces");
        if (!"amd64".equals(System.getProperty("os.arch"))) allowed.add("linux32 is checked");
        return allowed;
    }
}
