package dev.bwrapd.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static dev.bwrapd.it.Runs.assertContains;
import static dev.bwrapd.it.Runs.assertExited;
import static dev.bwrapd.it.Runs.err;
import static dev.bwrapd.it.Runs.error;
import static dev.bwrapd.it.Runs.lines;
import static dev.bwrapd.it.Runs.mount;
import static dev.bwrapd.it.Runs.ok;
import static dev.bwrapd.it.Runs.out;
import static dev.bwrapd.it.Runs.params;
import static dev.bwrapd.it.Runs.run;
import static dev.bwrapd.it.Runs.sh;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * sandbox/run end to end, one test (or a few) per row of the parameter table in docs/protocol.md
 * section 4: the built bwrapd, real bwrap, a busybox root.
 */
class SandboxRunIT {
    static BwrapdProcess bwrapd;
    static TestRoot root;
    static JsonNode init;
    static JsonNode capabilities;
    static Path hostDirs;

    @BeforeAll
    static void start() throws Exception {
        bwrapd = BwrapdProcess.start();
        root = TestRoot.create();
        init = Runs.initialize(bwrapd);
        capabilities = init.get("capabilities");
        hostDirs = Runs.hostDir("bwrapd-it-host-");
    }

    @AfterAll
    static void stop() throws Exception {
        Runs.closeChecked(bwrapd, root, () -> TestRoot.deleteTree(hostDirs));
    }

    static Path hostDir(String name) throws Exception {
        return Files.createDirectories(hostDirs.resolve(name));
    }

    // ----- command -----

    @Test
    void commandIsLookedUpInTheSandboxPath() throws Exception {
        assertEquals("hello\n", out(ok(bwrapd, params(root, "echo", "hello"))));
        assertEquals("abs\n", out(ok(bwrapd, params(root, "/bin/echo", "abs"))));
        ObjectNode p = params(root, "busybox", "echo", "via PATH");
        p.putObject("env").put("PATH", "/nowhere:/bin");
        assertEquals("via PATH\n", out(ok(bwrapd, p)));
    }

    @Test
    void missingCommandIsMinus32003NamingIt() throws Exception {
        JsonNode e = error(bwrapd, params(root, "no-such-tool-xyz", "arg"));
        assertEquals(-32003, e.get("code").asInt(), e::toString);
        assertContains(e.get("message").asText(), "no-such-tool-xyz");
        assertEquals("no-such-tool-xyz", e.path("data").path("command").asText(), e::toString);
        // data.root is the request's root as a path: its spelling kept, only a trailing / dropped.
        String parent = root.path().getParent().toString(), name = root.path().getFileName().toString();
        ObjectNode spelled = params(root, "no-such-tool-xyz");
        spelled.put("root", parent + "/./" + name + "/");
        JsonNode s = error(bwrapd, spelled);
        assertEquals(-32003, s.get("code").asInt(), s::toString);
        assertEquals(parent + "/./" + name, s.path("data").path("root").asText(), s::toString);
    }

    /**
     * -32004 in both its forms: no bwrap where the helper looked ({@code tried}: each path), and a
     * bwrap found that could not be started ({@code path} and {@code error}: an executable whose
     * interpreter does not exist). The helper serves on: the error is a run's, not the helper's.
     */
    @Test
    void anUnusableBwrapIsMinus32004SayingWhy() throws Exception {
        Path dir = Files.createTempDirectory("bwrapd-no-bwrap-");
        try {
            Path missing = dir.resolve("no-bwrap");
            Path notExecutable = Files.writeString(dir.resolve("not-executable"), "#!/bin/sh\n");
            Path badInterpreter = Files.writeString(dir.resolve("bad-interpreter"), "#!" + dir.resolve("no-interpreter") + "\n");
            Files.setPosixFilePermissions(badInterpreter, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
            for (Path bwrap : List.of(missing, notExecutable)) {
                try (BwrapdProcess helper = BwrapdProcess.start("--bwrap", bwrap.toString())) {
                    Runs.initialize(helper);
                    JsonNode e = error(helper, params(root, "true"));
                    assertEquals(-32004, e.get("code").asInt(), e::toString);
                    assertEquals(List.of(bwrap.toString()), Runs.JSON.convertValue(e.at("/data/tried"), List.class), e::toString);
                    assertTrue(helper.request("sandbox/list", null).get("result").isEmpty(), "the helper serves on; nothing is left listed");
                }
            }
            try (BwrapdProcess helper = BwrapdProcess.start("--bwrap", badInterpreter.toString())) {
                Runs.initialize(helper);
                JsonNode e = error(helper, params(root, "true"));
                assertEquals(-32004, e.get("code").asInt(), e::toString);
                assertEquals(badInterpreter.toString(), e.at("/data/path").asText(), e::toString);
                assertContains(e.at("/data/error").asText(), "No such file or directory");
                assertTrue(helper.request("sandbox/list", null).get("result").isEmpty(), "the helper serves on; nothing is left listed");
            }
        } finally {
            TestRoot.deleteTree(dir);
        }
    }

    @Test
    void commandLookupUsesTheRequestPathNotTheHosts() throws Exception {
        ObjectNode p = params(root, "echo", "x");
        p.putObject("env").put("PATH", "/usr/bin"); // the busybox root has echo in /bin only
        assertEquals(-32003, error(bwrapd, p).get("code").asInt());
    }

    @Test
    void aHostOnlyCommandIsNotFoundInTheRoot() throws Exception {
        Path bwrap = Path.of(init.path("bwrap").path("path").asText());
        assertTrue(Files.isExecutable(bwrap), "test setup: the host has bwrap at " + bwrap);
        assertFalse(Files.exists(root.path().resolve(bwrap.toString().substring(1))), "test setup: the root has no bwrap");
        String name = bwrap.getFileName().toString();
        ObjectNode p = params(root, name, "--version");
        p.putObject("env").put("PATH", bwrap.getParent() + ":/bin");
        JsonNode e = error(bwrapd, p);
        assertEquals(-32003, e.get("code").asInt(), e::toString);
        assertContains(e.get("message").asText(), name);
        JsonNode abs = error(bwrapd, params(root, bwrap.toString()));
        assertEquals(-32003, abs.get("code").asInt(), abs::toString);
    }

    @Test
    void aCommandNotFoundChangesNothingInTheRoot() throws Exception {
        TreeMap<String, String> before = root.snapshot();
        ObjectNode p = params(root, "no-such-tool-xyz");
        p.put("cwd", "/never/created");
        assertEquals(-32003, error(bwrapd, p).get("code").asInt());
        Runs.assertSameTree(before, root.snapshot(), "the root changed");
    }

    // ----- root -----

    static String rootMountOptions(JsonNode result) {
        for (String line : lines(out(result))) {
            String[] f = line.split(" ");
            if (f.length > 3 && f[1].equals("/")) return f[3];
        }
        throw new AssertionError("no / in the sandbox's mount table: " + out(result));
    }

    @Test
    void theDefaultRootIsTheHostRootReadOnly() throws Exception {
        JsonNode result = ok(bwrapd, params(null, "sh", "-c", "cat /proc/self/mounts; test -x /usr/bin/bwrap && echo host-has-bwrap"));
        assertTrue(rootMountOptions(result).matches("ro(,.*)?"), () -> "host root not read-only: " + out(result));
        assertContains(out(result), "host-has-bwrap");
        assertEquals(0, result.path("cleanup").path("removed").size(), "nothing is ever cleaned from the host root");
        Path linkToSlash = Files.createSymbolicLink(hostDir("slash-link").resolve("slash"), Path.of("/"));
        for (String spelling : List.of("//", "/.", "/usr/..", linkToSlash.toString())) {
            ObjectNode p = params(null, "cat", "/proc/self/mounts");
            p.put("root", spelling);
            JsonNode r = ok(bwrapd, p);
            assertTrue(rootMountOptions(r).matches("ro(,.*)?"), () -> spelling + " was mounted read-write: " + out(r));
        }
    }

    /**
     * The root is opened and checked by the run, never by the thread that reads requests (a root
     * on a hung file system would stall them all): a missing root, or a file, is -32602 naming it;
     * a root reached through a link is that directory (sandbox/argv shows its real path); the
     * host's root reached through ".." or a link may not be mounted read-write (-32005), nor a root
     * named through a magic link; sandbox/argv refuses what the run refuses.
     */
    @Test
    void theRootIsOpenedAndCheckedByTheRun() throws Exception {
        Path dir = hostDir("root-spellings");
        Files.writeString(dir.resolve("a-file"), "x");
        for (String bad : List.of(dir.resolve("missing").toString(), dir.resolve("a-file").toString())) {
            ObjectNode p = params(null, "true");
            p.put("root", bad);
            JsonNode error = Runs.error(bwrapd, p);
            assertEquals(-32602, error.get("code").asInt(), error::toString);
            assertTrue(error.get("message").asText().startsWith("root: ") && error.get("message").asText().contains(bad), error::toString);
        }
        Path link = Files.createSymbolicLink(dir.resolve("root-link"), root.path());
        ObjectNode viaLink = params(null, "sh", "-c", "test -e /usr/bin/bwrap || echo not-the-host");
        viaLink.put("root", link + "/.");
        JsonNode argv = bwrapd.call("sandbox/argv", viaLink).get("argv");
        assertTrue(argv.toString().contains(Runs.JSON.writeValueAsString(root.path().toRealPath().toString())), argv::toString);
        assertContains(out(ok(bwrapd, viaLink)), "not-the-host");
        List<ObjectNode> notAllowed = new java.util.ArrayList<>();
        for (String slash : List.of("/usr/..", "/tmp/../..")) {
            ObjectNode p = params(root, "true");
            p.set("mounts", Runs.JSON.createArrayNode().add(mount(slash, "/host", false)));
            notAllowed.add(p);
        }
        ObjectNode magic = params(null, "true");
        magic.put("root", "/proc/self/root");
        notAllowed.add(magic);
        for (ObjectNode p : notAllowed) {
            JsonNode error = Runs.error(bwrapd, p);
            assertEquals(-32005, error.get("code").asInt(), error::toString);
            JsonNode argvAnswer = bwrapd.request("sandbox/argv", p);
            assertEquals(-32005, argvAnswer.path("error").path("code").asInt(), () -> "sandbox/argv of " + p + ": " + argvAnswer);
        }
    }

    @Test
    void anotherRootIsMountedReadWrite() throws Exception {
        JsonNode result = ok(bwrapd, params(root, "sh", "-c", "cat /proc/self/mounts; test -e /usr/bin/bwrap || echo not-the-host"));
        assertTrue(rootMountOptions(result).matches("rw(,.*)?"), () -> out(result));
        assertContains(out(result), "not-the-host");
    }

    // ----- sandboxId -----

    @Test
    void aClientChosenSandboxIdIsEchoed() throws Exception {
        ObjectNode p = params(root, "true");
        p.put("sandboxId", "it-client-id-1");
        CompletableFuture<JsonNode> response = bwrapd.requestAsync("sandbox/run", p);
        JsonNode started = Runs.awaitNotification(bwrapd, "sandbox/started", "it-client-id-1", Duration.ofSeconds(30));
        JsonNode result = response.get(60, TimeUnit.SECONDS).get("result");
        assertEquals("it-client-id-1", result.get("sandboxId").asText());
        assertEquals(response.get().get("id"), started.get("params").get("requestId"));
        assertTrue(started.get("params").get("pid").asInt() > 0);
    }

    /**
     * A command that ends at once must be announced all the same: CI met an answer without its
     * sandbox/started (about 1 in 20 runs of `true`, when bwrap ended before the init was reaped).
     */
    @Test
    void everyQuickRunIsAnnouncedBeforeItsAnswer() throws Exception {
        bwrapd.drainNotifications();
        for (int i = 0; i < 200; i++) {
            ObjectNode p = params(root, "true");
            p.put("sandboxId", "it-quick-" + i);
            JsonNode response = bwrapd.requestAsync("sandbox/run", p).get(60, TimeUnit.SECONDS);
            assertExited(response.get("result"), 0);
            String id = "it-quick-" + i;
            // The reader files notifications before it completes the answer that came after them.
            assertTrue(bwrapd.drainNotifications().stream().anyMatch(n -> n.path("method").asText().equals("sandbox/started")
                    && n.path("params").path("sandboxId").asText().equals(id)), "no sandbox/started before the answer of run " + i);
        }
    }

    @Test
    void assignedSandboxIdsAreDistinct() throws Exception {
        String a = ok(bwrapd, params(root, "true")).get("sandboxId").asText();
        String b = ok(bwrapd, params(root, "true")).get("sandboxId").asText();
        assertTrue(a.matches("sb-[0-9]+"), a);
        assertTrue(b.matches("sb-[0-9]+"), b);
        assertNotEquals(a, b);
    }

    @Test
    void aRunningSandboxIdCannotBeReused() throws Exception {
        ObjectNode first = params(root, "sleep", "30");
        first.put("sandboxId", "it-dup");
        CompletableFuture<JsonNode> running = bwrapd.requestAsync("sandbox/run", first);
        Runs.awaitNotification(bwrapd, "sandbox/started", "it-dup", Duration.ofSeconds(30));

        ObjectNode second = params(root, "true");
        second.put("sandboxId", "it-dup");
        JsonNode e = error(bwrapd, second);
        assertEquals(-32002, e.get("code").asInt(), e::toString);
        assertFalse(running.isDone(), "the refused request disturbed the running one");

        bwrapd.call("sandbox/terminate", Map.of("sandboxId", "it-dup"));
        JsonNode ended = running.get(30, TimeUnit.SECONDS).get("result");
        assertEquals("it-dup", ended.get("sandboxId").asText());
        assertEquals("signaled", ended.get("status").asText(), ended::toString);
        // Once finished, the id is free again.
        assertEquals("it-dup", ok(bwrapd, second).get("sandboxId").asText());
    }

    // ----- cwd -----

    @Test
    void cwdIsCreatedInsideTheRootWhenMissing() throws Exception {
        ObjectNode p = params(root, "sh", "-c", "pwd; echo $PWD");
        p.put("cwd", "/work/a b/c");
        assertFalse(Files.exists(root.path().resolve("work")));
        assertEquals("/work/a b/c\n/work/a b/c\n", out(ok(bwrapd, p)));
        assertTrue(Files.isDirectory(root.path().resolve("work/a b/c"), LinkOption.NOFOLLOW_LINKS));
    }

    @Test
    void cwdIsNormalizedAndDefaultsToSlash() throws Exception {
        assertEquals("/\n", out(ok(bwrapd, params(root, "pwd"))));
        ObjectNode p = params(root, "pwd");
        p.put("cwd", "/etc/../usr/./bin/");
        assertEquals("/usr/bin\n", out(ok(bwrapd, p)));
    }

    @Test
    void aRelativeOrEscapingCwdIsNotAllowed() throws Exception {
        for (String cwd : List.of("work", "/../etc", "/a/../../x")) {
            ObjectNode p = params(root, "pwd");
            p.put("cwd", cwd);
            JsonNode e = error(bwrapd, p);
            assertEquals(-32005, e.get("code").asInt(), e::toString);
            assertContains(e.get("message").asText(), "cwd");
        }
    }

    // ----- env -----

    @Test
    void theEnvironmentIsExactlyTheRequestedOne() throws Exception {
        Map<String, String> env = new LinkedHashMap<>();
        env.put("PATH", "/bin");
        env.put("FOO", "bar");
        env.put("EMPTY", "");
        env.put("WITH_EQUALS", "a=b=c");
        env.put("SPACES", "  two  words ");
        env.put("UNICODE", "grüße ☃");
        ObjectNode p = params(root, "env");
        p.set("env", Runs.JSON.valueToTree(env));
        Set<String> expected = new HashSet<>();
        env.forEach((k, v) -> expected.add(k + "=" + v));
        expected.add("PWD=/");
        assertEquals(expected, new HashSet<>(lines(out(ok(bwrapd, p)))));
    }

    @Test
    void theDefaultEnvironmentIsJustPath() throws Exception {
        assertEquals(Set.of("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "PWD=/"),
                new HashSet<>(lines(out(ok(bwrapd, params(root, "env"))))));
    }

    // ----- network, hostname -----

    @Test
    void noNetworkLeavesOnlyLoopback() throws Exception {
        JsonNode result = ok(bwrapd, params(root, "sh", "-c", "cat /proc/net/dev; echo NS; readlink /proc/self/ns/net"));
        String[] parts = out(result).split("NS\n");
        assertEquals(List.of("lo"), Runs.interfaces(parts[0]));
        assertNotEquals(Files.readSymbolicLink(Path.of("/proc/self/ns/net")).toString(), parts[1].trim());
    }

    @Test
    void networkSharesTheHostsNetworkAndHostname() throws Exception {
        ObjectNode p = params(root, "sh", "-c", "cat /proc/net/dev; echo NS; readlink /proc/self/ns/net; hostname");
        p.put("network", true);
        String[] parts = out(ok(bwrapd, p)).split("NS\n");
        assertEquals(Set.copyOf(Runs.interfaces(Files.readString(Path.of("/proc/net/dev")))), Set.copyOf(Runs.interfaces(parts[0])));
        List<String> rest = lines(parts[1]);
        assertEquals(Files.readSymbolicLink(Path.of("/proc/self/ns/net")).toString(), rest.get(0));
        assertEquals(Files.readString(Path.of("/proc/sys/kernel/hostname")).trim(), rest.get(1));
    }

    @Test
    void hostname() throws Exception {
        assertEquals("sandbox\n", out(ok(bwrapd, params(root, "hostname"))));
        ObjectNode p = params(root, "sh", "-c", "hostname; uname -n");
        p.put("hostname", "builder-7");
        assertEquals("builder-7\nbuilder-7\n", out(ok(bwrapd, p)));
    }

    // ----- readOnlyRoot -----

    @Test
    void readOnlyRootRefusesWritesButMountsStayWritable() throws Exception {
        Path out = hostDir("ro-root-out");
        ObjectNode p = params(root, "sh", "-c", "echo kept > /out/file && echo tmp > /tmp/t && cat /tmp/t && touch /written-to-root");
        p.put("readOnlyRoot", true);
        p.set("mounts", Runs.JSON.createArrayNode().add(mount(out.toString(), "/out", false)));
        JsonNode result = run(bwrapd, p);
        assertEquals("exited", result.get("status").asText(), result::toString);
        assertNotEquals(0, result.get("exitCode").asInt(), result::toString);
        assertEquals("tmp\n", out(result));
        assertContains(err(result), "Read-only file system");
        assertEquals("kept\n", Files.readString(out.resolve("file")));
        assertFalse(Files.exists(root.path().resolve("written-to-root")));
    }

    @Test
    void withoutReadOnlyRootTheRootIsWritable() throws Exception {
        ok(bwrapd, params(root, "sh", "-c", "echo x > /written-to-root"));
        Path written = root.path().resolve("written-to-root");
        assertEquals("x\n", Files.readString(written));
        Files.delete(written);
    }

    // ----- uid, gid, inheritUid -----

    @Test
    void uidAndGid() throws Exception {
        ObjectNode p = params(root, "sh", "-c", "id -u; id -g");
        p.put("uid", 1000).put("gid", 1001);
        String expected = capabilities.get("userNamespaces").asBoolean() ? "1000\n1001\n" : Runs.hostUid() + "\n" + Runs.hostGid() + "\n";
        assertEquals(expected, out(ok(bwrapd, p)));
        String defaults = capabilities.get("userNamespaces").asBoolean() ? "0\n0\n" : Runs.hostUid() + "\n" + Runs.hostGid() + "\n";
        assertEquals(defaults, out(ok(bwrapd, params(root, "sh", "-c", "id -u; id -g"))));
    }

    @Test
    void inheritUidKeepsTheCallersIds() throws Exception {
        ObjectNode p = params(root, "sh", "-c", "id -u; id -g");
        p.put("inheritUid", true).put("uid", 1000).put("gid", 1000);
        assertEquals(Runs.hostUid() + "\n" + Runs.hostGid() + "\n", out(ok(bwrapd, p)));
    }

    // ----- mounts -----

    @Test
    void readWriteMountWritesReachTheHost() throws Exception {
        Path dir = hostDir("rw-mount");
        ObjectNode p = params(root, "sh", "-c", "echo from-sandbox > /out/made && mkdir /out/sub");
        p.set("mounts", Runs.JSON.createArrayNode().add(mount(dir.toString(), "/out", false)));
        ok(bwrapd, p);
        assertEquals("from-sandbox\n", Files.readString(dir.resolve("made")));
        assertTrue(Files.isDirectory(dir.resolve("sub")));
    }

    @Test
    void readOnlyMountRefusesWrites() throws Exception {
        Path dir = hostDir("ro-mount");
        Files.writeString(dir.resolve("data"), "host data\n");
        ObjectNode p = params(root, "sh", "-c", "cat /in/data && echo x > /in/new");
        p.set("mounts", Runs.JSON.createArrayNode().add(mount(dir.toString(), "/in", true)));
        JsonNode result = run(bwrapd, p);
        assertEquals("exited", result.get("status").asText(), result::toString);
        assertNotEquals(0, result.get("exitCode").asInt());
        assertEquals("host data\n", out(result));
        assertContains(err(result), "Read-only file system");
        assertFalse(Files.exists(dir.resolve("new")));
    }

    @Test
    void mountsAreAppliedInOrder() throws Exception {
        Path outer = hostDir("order-outer");
        Files.createDirectories(outer.resolve("sub"));
        Files.writeString(outer.resolve("sub/from-outer"), "");
        Path inner = hostDir("order-inner");
        Files.writeString(inner.resolve("from-inner"), "");
        ObjectNode p = params(root, "ls", "/m/sub");
        p.set("mounts", Runs.JSON.createArrayNode().add(mount(outer.toString(), "/m", false)).add(mount(inner.toString(), "/m/sub", true)));
        assertEquals("from-inner\n", out(ok(bwrapd, p)), "the later mount must be on top");
        p.set("mounts", Runs.JSON.createArrayNode().add(mount(inner.toString(), "/m/sub", true)).add(mount(outer.toString(), "/m", false)));
        assertEquals("from-outer\n", out(ok(bwrapd, p)), "the later mount must be on top");
    }

    /**
     * Every string bwrapd hands the kernel or bwrap is encoded into native memory of its own (not
     * a Java array pinned for the call): names of 2, 3 and 4 UTF-8 bytes a character must arrive
     * byte for byte, as mount source and target, output file, cwd, argv and environment.
     */
    @Test
    void namesOutsideAsciiArriveByteForByte() throws Exception {
        String name = "é-✓-𝄞";
        Path dir = Files.createDirectories(hostDir("non-ascii").resolve(name));
        Files.writeString(dir.resolve(name + ".txt"), "from the host\n");
        Path output = dir.resolve("out-" + name + ".log");
        ObjectNode p = params(root, "sh", "-c", "cat \"/in/$N/$N.txt\"; echo \"$1\" \"$N\"; pwd", "sh", name);
        p.set("mounts", Runs.JSON.createArrayNode().add(mount(dir.toString(), "/in/" + name, true)));
        p.putObject("env").put("N", name).put("PATH", "/bin");
        p.put("cwd", "/in/" + name);
        p.putObject("stdout").put("file", output.toString());
        ok(bwrapd, p);
        assertEquals("from the host\n" + name + " " + name + "\n/in/" + name + "\n", Files.readString(output, StandardCharsets.UTF_8));
    }

    @Test
    void aFileCanBeMounted() throws Exception {
        Path file = Files.writeString(hostDir("file-mount").resolve("config"), "setting=1\n");
        ObjectNode p = params(root, "cat", "/etc/build.conf");
        p.set("mounts", Runs.JSON.createArrayNode().add(mount(file.toString(), "/etc/build.conf", true)));
        assertEquals("setting=1\n", out(ok(bwrapd, p)));
        assertFalse(Files.exists(root.path().resolve("etc/build.conf"), LinkOption.NOFOLLOW_LINKS), "mount point not cleaned up");
    }

    /**
     * Review finding: the host root mounted read-only at /srv brought every mount of the host along
     * (bwrap binds recursively): its /run, which root "/" hides, and its procfs, every host process
     * in it. The host root is never a mount source, read-only or not, however spelled.
     */
    @Test
    void theHostRootIsNeverAMountSource() throws Exception {
        for (String source : List.of("/", "//", "/.", "/usr/..")) {
            for (boolean readOnly : new boolean[] {true, false}) {
                ObjectNode p = params(root, "sh", "-c", "ls /host/run /host/proc/1 && echo reached");
                p.set("mounts", Runs.JSON.createArrayNode().add(mount(source, "/host", readOnly)));
                JsonNode e = error(bwrapd, p);
                assertEquals(-32005, e.get("code").asInt(), () -> source + ": " + e);
                assertContains(e.get("message").asText(), "mounts[0].source");
            }
        }
        assertFalse(Files.exists(root.path().resolve("host"), LinkOption.NOFOLLOW_LINKS));
    }

    // ----- devices, devShm -----

    @Test
    void defaultDevices() throws Exception {
        JsonNode result = ok(bwrapd, params(root, "sh", "-c",
                "ls /dev; echo discarded > /dev/null && test -c /dev/null && head -c 16 /dev/zero | wc -c && head -c 8 /dev/urandom | wc -c"));
        assertEquals("full\nnull\nrandom\nurandom\nzero\n16\n8\n", out(result));
    }

    @Test
    void customDevices() throws Exception {
        ObjectNode p = params(root, "sh", "-c", "ls /dev; echo > /dev/null");
        p.set("devices", Runs.JSON.createArrayNode().add("/dev/null"));
        assertEquals("null\n", out(ok(bwrapd, p)));
        ObjectNode none = params(root, "sh", "-c", "test -e /dev/null");
        none.set("devices", Runs.JSON.createArrayNode());
        assertExited(run(bwrapd, none), 1);
    }

    /**
     * What the command holds: its stdio and, as docs/protocol.md says of `devices`, one O_PATH
     * descriptor of each device (bwrap binds a device only from a path, /proc/self/fd/N, and leaves
     * it open). Nothing else: not the root's or a mount source's descriptor (bwrap closes those of
     * --bind-fd), not the status or hold pipes, not a stdin pipe's other end.
     */
    @Test
    void theCommandHoldsItsStdioAndItsDevicesNothingElse() throws Exception {
        Path dir = hostDir("held-descriptors");
        // ls, a child of the shell, lists the shell's descriptors (its own would include the listing's).
        ObjectNode p = params(root, "sh", "-c", "cat >/dev/null; ls -l /proc/$$/fd");
        p.set("mounts", Runs.JSON.createArrayNode().add(mount(dir.toString(), "/in", true)));
        p.putObject("stdin").put("text", "input");
        List<String> devices = List.of("/dev/full", "/dev/null", "/dev/urandom");
        p.set("devices", Runs.JSON.valueToTree(devices));
        Map<Integer, String> held = new TreeMap<>();
        for (String line : lines(out(ok(bwrapd, p)))) {
            java.util.regex.Matcher fd = java.util.regex.Pattern.compile(" (\\d+) -> (.*)$").matcher(line);
            if (fd.find()) held.put(Integer.parseInt(fd.group(1)), fd.group(2));
        }
        assertEquals(List.of(0, 1, 2), held.keySet().stream().limit(3).toList(), held::toString);
        assertEquals(devices, held.entrySet().stream().filter(e -> e.getKey() > 2).map(Map.Entry::getValue).sorted().toList(),
                () -> "beyond stdio, the devices' descriptors only: " + held);
    }

    /**
     * The command starts as after a fork and exec: no signal ignored, none blocked, glibc's own two
     * (32, 33) included, which posix_spawn's child sets to SIG_IGN unless told otherwise. (bwrap's
     * init, pid 1, blocks SIGCHLD for itself; it ignores none.)
     */
    @Test
    void theCommandStartsWithNoSignalIgnoredOrBlocked() throws Exception {
        String status = out(ok(bwrapd, params(root, "grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status", "/proc/1/status")));
        List<String> zero = lines(status).stream().filter(line -> line.endsWith("\t0000000000000000")).toList();
        assertTrue(zero.containsAll(List.of("/proc/self/status:SigBlk:\t0000000000000000", "/proc/self/status:SigIgn:\t0000000000000000",
                "/proc/1/status:SigIgn:\t0000000000000000")), status);
    }

    @Test
    void devShm() throws Exception {
        ObjectNode p = params(root, "sh", "-c", "grep ' /dev/shm ' /proc/self/mounts | cut -d' ' -f3; echo shared > /dev/shm/f && cat /dev/shm/f");
        p.put("devShm", true);
        assertEquals("tmpfs\nshared\n", out(ok(bwrapd, p)));
        assertExited(run(bwrapd, params(root, "test", "-e", "/dev/shm")), 1);
    }

    // ----- linux32 -----

    @Test
    void linux32() throws Exception {
        ObjectNode p = params(root, "uname", "-m");
        p.put("linux32", true);
        if (capabilities.get("linux32").asBoolean()) {
            String machine = out(ok(bwrapd, p)).trim();
            assertTrue(machine.matches("i[3-6]86|armv[78]l|armv8l"), machine);
            assertNotEquals(out(ok(bwrapd, params(root, "uname", "-m"))).trim(), machine);
        } else {
            JsonNode e = error(bwrapd, p);
            assertEquals(-32602, e.get("code").asInt());
            assertContains(e.get("message").asText(), "linux32");
        }
    }

    // ----- stdin -----

    @Test
    void stdinNullIsEmpty() throws Exception {
        assertEquals("0\n", out(ok(bwrapd, params(root, "wc", "-c"))));
        ObjectNode p = params(root, "wc", "-c");
        p.put("stdin", "null");
        assertEquals("0\n", out(ok(bwrapd, p)));
    }

    @Test
    void stdinText() throws Exception {
        ObjectNode p = params(root, "cat");
        p.putObject("stdin").put("text", "héllo\nwörld ☃\n");
        assertEquals("héllo\nwörld ☃\n", out(ok(bwrapd, p)));
    }

    @Test
    void stdinBase64() throws Exception {
        byte[] all = new byte[256];
        for (int i = 0; i < all.length; i++) all[i] = (byte) i;
        ObjectNode p = params(root, "cat");
        p.putObject("stdin").put("base64", Base64.getEncoder().encodeToString(all));
        JsonNode result = ok(bwrapd, p);
        assertTrue(result.get("stdout").get("text").isNull(), "binary output must come as base64");
        assertArrayEquals(all, Base64.getDecoder().decode(result.get("stdout").get("base64").asText()));
    }

    @Test
    void stdinFile() throws Exception {
        Path file = Files.writeString(hostDir("stdin").resolve("input.txt"), "line one\nline two\n");
        ObjectNode p = params(root, "wc", "-l");
        p.putObject("stdin").put("file", file.toString());
        assertEquals("2\n", out(ok(bwrapd, p)));
        ObjectNode missing = params(root, "cat");
        missing.putObject("stdin").put("file", hostDirs.resolve("no-such-input").toString());
        JsonNode e = error(bwrapd, missing);
        assertEquals(-32602, e.get("code").asInt(), e::toString);
        assertContains(e.get("message").asText(), "stdin.file");
    }

    @Test
    void largeStdinTheCommandDoesNotReadDoesNotHang() throws Exception {
        String big = "x".repeat(1 << 20);
        ObjectNode p = params(root, "true");
        p.putObject("stdin").put("text", big);
        ok(bwrapd, p);
        ObjectNode counted = params(root, "wc", "-c");
        counted.putObject("stdin").put("text", big);
        assertEquals((1 << 20) + "\n", out(ok(bwrapd, counted)));
    }

    // ----- stdout, stderr -----

    @Test
    void captureBothStreams() throws Exception {
        JsonNode result = ok(bwrapd, sh(root, "echo out; echo err >&2"));
        assertEquals("out\n", out(result));
        assertEquals("err\n", err(result));
        assertFalse(result.get("stdout").get("truncated").asBoolean());
        assertFalse(result.get("stderr").get("truncated").asBoolean());
        assertTrue(result.get("stdout").get("base64").isNull());
    }

    @Test
    void captureLimitTruncatesEachStream() throws Exception {
        ObjectNode p = sh(root, "head -c 100 /dev/zero | tr '\\000' o; head -c 5 /dev/zero | tr '\\000' e >&2");
        p.put("captureLimitBytes", 10);
        JsonNode result = ok(bwrapd, p);
        assertEquals("oooooooooo", out(result));
        assertTrue(result.get("stdout").get("truncated").asBoolean());
        assertEquals("eeeee", err(result));
        assertFalse(result.get("stderr").get("truncated").asBoolean());
    }

    @Test
    void defaultCaptureLimitIsOneMebibyteAndTheCommandIsNotBlocked() throws Exception {
        JsonNode result = ok(bwrapd, sh(root, "head -c 3000000 /dev/zero | tr '\\000' x; echo done >&2"));
        assertEquals(1 << 20, out(result).length());
        assertTrue(result.get("stdout").get("truncated").asBoolean());
        assertEquals("done\n", err(result));
    }

    @Test
    void binaryOutputIsBase64() throws Exception {
        JsonNode result = ok(bwrapd, sh(root, "printf 'ok\\377\\376'"));
        assertTrue(result.get("stdout").get("text").isNull());
        assertArrayEquals(new byte[] {'o', 'k', (byte) 0xff, (byte) 0xfe}, Runs.bytes(result.get("stdout")));
    }

    @Test
    void discard() throws Exception {
        ObjectNode p = sh(root, "head -c 3000000 /dev/zero; head -c 3000000 /dev/zero >&2; echo end");
        p.put("stdout", "discard").put("stderr", "discard");
        JsonNode result = ok(bwrapd, p);
        assertTrue(result.get("stdout").isNull(), result::toString);
        assertTrue(result.get("stderr").isNull(), result::toString);

        ObjectNode merged = sh(root, "head -c 3000000 /dev/zero >&2; head -c 3000000 /dev/zero; echo end");
        merged.put("stdout", "discard").put("stderr", "stdout");
        JsonNode both = ok(bwrapd, merged);
        assertTrue(both.get("stdout").isNull(), both::toString);
        assertTrue(both.get("stderr").isNull(), both::toString);
    }

    @Test
    void streamSendsOutputNotificationsInOrderBeforeTheResponse() throws Exception {
        ObjectNode p = sh(root, "for i in 1 2 3 4 5 6; do echo out$i; echo err$i >&2; sleep 0.02; done; printf 'bin\\377\\376\\n'");
        p.put("sandboxId", "it-stream").put("stdout", "stream").put("stderr", "stream");
        bwrapd.drainNotifications();
        CompletableFuture<JsonNode> response = bwrapd.requestAsync("sandbox/run", p);
        // Runs on the reader thread the moment the response arrives: what had been notified by then.
        CompletableFuture<List<JsonNode>> notifiedBefore = response.thenApply(r -> bwrapd.drainNotifications());
        JsonNode result = response.get(60, TimeUnit.SECONDS).get("result");
        assertExited(result, 0);
        assertTrue(result.get("stdout").isNull(), "streamed output is not also captured");
        assertTrue(result.get("stderr").isNull());

        Map<String, java.io.ByteArrayOutputStream> streams = Map.of("stdout", new java.io.ByteArrayOutputStream(),
                "stderr", new java.io.ByteArrayOutputStream());
        int chunks = 0;
        boolean sawBase64 = false;
        for (JsonNode n : notifiedBefore.get()) {
            if (!n.get("method").asText().equals("sandbox/output")) continue;
            JsonNode params = n.get("params");
            assertEquals("it-stream", params.get("sandboxId").asText());
            byte[] data;
            if (params.has("text")) {
                data = params.get("text").asText().getBytes(StandardCharsets.UTF_8);
            } else {
                data = Base64.getDecoder().decode(params.get("base64").asText());
                sawBase64 = true;
            }
            streams.get(params.get("stream").asText()).writeBytes(data);
            chunks++;
        }
        assertEquals("out1\nout2\nout3\nout4\nout5\nout6\nbin\u00ff\u00fe\n",
                streams.get("stdout").toString(StandardCharsets.ISO_8859_1));
        assertEquals("err1\nerr2\nerr3\nerr4\nerr5\nerr6\n", streams.get("stderr").toString(StandardCharsets.UTF_8));
        assertTrue(chunks >= 4, "expected several chunks, got " + chunks);
        assertTrue(sawBase64, "the binary chunk must come as base64");
        for (JsonNode late : bwrapd.drainNotifications()) {
            assertFalse(late.get("method").asText().equals("sandbox/output"), "output after the response: " + late);
        }
    }

    @Test
    void outputToFiles() throws Exception {
        Path dir = hostDir("out-files");
        Path out = dir.resolve("out.log");
        Path errFile = dir.resolve("err.log");
        Files.writeString(out, "stale content that must go\n");
        ObjectNode p = sh(root, "echo second; echo oops >&2");
        p.putObject("stdout").put("file", out.toString());
        p.putObject("stderr").put("file", errFile.toString()).put("append", true);
        JsonNode result = ok(bwrapd, p);
        assertTrue(result.get("stdout").isNull());
        assertTrue(result.get("stderr").isNull());
        assertEquals("second\n", Files.readString(out));
        assertEquals("oops\n", Files.readString(errFile));

        ObjectNode again = sh(root, "echo third; echo again >&2");
        again.putObject("stdout").put("file", out.toString()).put("append", true);
        again.putObject("stderr").put("file", errFile.toString()).put("append", true);
        ok(bwrapd, again);
        assertEquals("second\nthird\n", Files.readString(out));
        assertEquals("oops\nagain\n", Files.readString(errFile));

        ObjectNode truncate = sh(root, "echo fourth");
        truncate.putObject("stdout").put("file", out.toString()).put("append", false);
        ok(bwrapd, truncate);
        assertEquals("fourth\n", Files.readString(out));
    }

    /**
     * stdout and stderr named as one file, however spelled (a second spelling, a hard link): one
     * open file for both, as 2>&1 is; two would each write from their own offset over the other's
     * bytes (review finding, in the Buildbarn runner).
     */
    @Test
    void oneFileNamedTwiceGetsBothStreamsInOrder() throws Exception {
        Path dir = hostDir("one-file");
        Path file = dir.resolve("log"), link = dir.resolve("link");
        Files.writeString(file, "stale\n");
        Files.createLink(link, file);
        for (String stderrPath : List.of(dir + "/./log", link.toString())) {
            ObjectNode p = sh(root, "echo one-one-one; echo two >&2; echo three");
            p.putObject("stdout").put("file", file.toString());
            p.putObject("stderr").put("file", stderrPath);
            ok(bwrapd, p);
            assertEquals("one-one-one\ntwo\nthree\n", Files.readString(file), stderrPath);
            // stdout's append applies to both: stderr's own open of the file must not truncate it.
            ObjectNode appended = sh(root, "echo four; echo five >&2");
            appended.putObject("stdout").put("file", file.toString()).put("append", true);
            appended.putObject("stderr").put("file", stderrPath);
            ok(bwrapd, appended);
            assertEquals("one-one-one\ntwo\nthree\nfour\nfive\n", Files.readString(file), stderrPath);
        }
        // Two different files, stderr's not appended to: it is truncated as before.
        Path other = dir.resolve("other");
        Files.writeString(other, "stale\n");
        ObjectNode two = sh(root, "echo out; echo err >&2");
        two.putObject("stdout").put("file", file.toString()).put("append", true);
        two.putObject("stderr").put("file", other.toString());
        ok(bwrapd, two);
        assertEquals("err\n", Files.readString(other));
    }

    @Test
    void stderrMergedIntoStdout() throws Exception {
        ObjectNode p = sh(root, "echo a; echo b >&2; echo c; echo d >&2");
        p.put("stderr", "stdout");
        JsonNode result = ok(bwrapd, p);
        assertEquals("a\nb\nc\nd\n", out(result));
        assertTrue(result.get("stderr").isNull());

        Path file = hostDir("merged").resolve("all.log");
        ObjectNode toFile = sh(root, "echo a; echo b >&2");
        toFile.putObject("stdout").put("file", file.toString());
        toFile.put("stderr", "stdout");
        ok(bwrapd, toFile);
        assertEquals("a\nb\n", Files.readString(file));
    }

    @Test
    void nothingIsListedBetweenRuns() throws Exception {
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < 3; i++) ids.add(ok(bwrapd, params(root, "true")).get("sandboxId").asText());
        assertEquals(3, new HashSet<>(ids).size());
        assertEquals(0, bwrapd.call("sandbox/list", null).size());
    }
}
