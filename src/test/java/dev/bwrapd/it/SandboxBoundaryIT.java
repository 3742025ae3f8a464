package dev.bwrapd.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.TreeMap;

import static dev.bwrapd.it.Runs.assertContains;
import static dev.bwrapd.it.Runs.assertExited;
import static dev.bwrapd.it.Runs.mount;
import static dev.bwrapd.it.Runs.run;
import static dev.bwrapd.it.Runs.sh;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The sandbox boundary against hostile requests, roots and commands (docs/architecture.md,
 * Threat model). Every victim is a directory this test made, with a snapshot taken before the
 * attack and compared after it: the attack must be refused, or fail harmlessly.
 */
class SandboxBoundaryIT {
    static final long CAP_SYS_ADMIN = 1L << 21, CAP_SYS_PTRACE = 1L << 19, CAP_CHOWN = 1L;

    static BwrapdProcess bwrapd;
    TestRoot root;
    Path victim;
    TreeMap<String, String> victimBefore;

    @BeforeAll
    static void start() throws Exception {
        bwrapd = BwrapdProcess.start();
        Runs.initialize(bwrapd);
    }

    @AfterAll
    static void stop() throws Exception {
        Runs.closeChecked(bwrapd);
    }

    @BeforeEach
    void prepare() throws Exception {
        root = TestRoot.create();
        victim = Runs.hostDir("bwrapd-victim-");
        Files.writeString(victim.resolve("precious"), "host data\n");
        Files.createDirectories(victim.resolve("dir"));
        Files.writeString(victim.resolve("dir/null"), "not a device\n");
        victimBefore = TestRoot.snapshot(victim);
    }

    @AfterEach
    void cleanUp() throws Exception {
        root.close();
        TestRoot.deleteTree(victim);
    }

    void assertVictimUntouched() throws Exception {
        Runs.assertSameTree(victimBefore, TestRoot.snapshot(victim), "the victim directory changed");
    }

    static long capEff(JsonNode result) {
        for (String line : Runs.out(result).split("\n")) {
            if (line.startsWith("CapEff:")) return Long.parseUnsignedLong(line.substring(7).trim(), 16);
        }
        throw new AssertionError("no CapEff in " + result);
    }

    /**
     * Review finding: as root, a sandbox's uid 0 (and any uid it is given) is the host's, and the
     * kernel lets the host's uid 0 write sysctls (core_pattern names a program the kernel runs as
     * root) and IRQ affinities without a capability; bwrap left /proc/sys writable, and /proc/irq
     * too for a uid other than 0. Nothing is written: each file is only opened for appending.
     */
    @Test
    void noUidOfASandboxCanOpenTheKernelsSettingsForWriting() throws Exception {
        // Unprivileged, the sandbox's ids are its user's, who may write none of these anyway.
        org.junit.jupiter.api.Assumptions.assumeTrue("root".equals(System.getProperty("user.name")), "the host's uid 0 in the sandbox: root");
        String script = "for f in /proc/sys/kernel/core_pattern /proc/sys/vm/drop_caches /proc/irq/*/smp_affinity /proc/sysrq-trigger /proc/acpi/wakeup "
                + "/proc/bus/pci/devices /proc/fs/*/*/options /proc/scsi/scsi; do "
                + "[ ! -e \"$f\" ] || ! (true >> \"$f\") 2>/dev/null || echo \"writable $f\"; done; echo checked";
        for (int uid : new int[] {0, 1000}) {
            ObjectNode p = sh(root, script);
            p.put("uid", uid).put("gid", uid);
            JsonNode r = Runs.ok(bwrapd, p);
            assertEquals("checked\n", Runs.out(r), "uid " + uid + ": " + r);
        }
    }

    /**
     * Review finding (of the Buildbarn runner; the same here): bwrap ran with the request's
     * environment, so the host's dynamic loader obeyed an LD_PRELOAD the request named, and ran a
     * library of its choosing in bwrap, on the host, with bwrapd's rights, before any sandbox
     * existed. LD_DEBUG shows it without a library: the loader writes to bwrap's stderr, which is
     * the command's. The command (static busybox: no loader in the sandbox) still gets every variable.
     */
    @Test
    void whatTheLoaderObeysNeverReachesBwrapItself() throws Exception {
        ObjectNode p = sh(root, "echo \"$LD_DEBUG $LD_PRELOAD $GLIBC_TUNABLES $TMPDIR\"");
        p.putObject("env").put("PATH", "/bin:/usr/bin").put("LD_DEBUG", "libs").put("LD_PRELOAD", "/no-such-dir-for-bwrapd/lib.so")
                .put("GLIBC_TUNABLES", "glibc.malloc.check=3").put("TMPDIR", "/tmp");
        JsonNode r = Runs.ok(bwrapd, p);
        assertEquals("libs /no-such-dir-for-bwrapd/lib.so glibc.malloc.check=3 /tmp\n", Runs.out(r), r::toString);
        assertEquals("", Runs.err(r), "the host's loader read the request's variables in bwrap");
    }

    /**
     * Review finding: network: true shared the host's IPC namespace too, and as root the command
     * removed the host's root-owned System V segments and queues. The network is all it shares now.
     */
    @Test
    void aNetworkedSandboxSeesNoneOfTheHostsIpcObjects() throws Exception {
        Process ipcmk = new ProcessBuilder("ipcmk", "-M", "4096").redirectErrorStream(true).start();
        String made = new String(ipcmk.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        assertEquals(0, ipcmk.waitFor(), made);
        String id = made.replaceAll("(?s).*?(\\d+)\\s*$", "$1");
        try {
            assertTrue(listsSegment(Files.readString(Path.of("/proc/sysvipc/shm")), id), "the host lists segment " + id);
            ObjectNode p = sh(root, "cat /proc/sysvipc/shm");
            p.put("network", true);
            String seen = Runs.out(Runs.ok(bwrapd, p));
            assertFalse(listsSegment(seen, id), "segment " + id + " seen inside: " + seen);
        } finally {
            new ProcessBuilder("ipcrm", "-m", id).inheritIO().start().waitFor();
        }
    }

    /**
     * Review finding: with the host's root the command reached the host daemons' sockets in /run
     * (the system bus, docker.sock; as root, each takes it for the host's root), and an unprivileged
     * one the user's session bus (systemd-run --user runs outside the sandbox). /run is an empty
     * tmpfs there now, however the root is spelled.
     */
    @Test
    void aSandboxOnTheHostsRootSeesNoneOfRun() throws Exception {
        try (java.util.stream.Stream<Path> run = Files.list(Path.of("/run"))) {
            assertTrue(run.findAny().isPresent(), "the host's /run holds something");
        }
        for (String spelling : List.of("/", "/.", "//run/..")) {
            ObjectNode p = Runs.params(null, "/bin/sh", "-c", "ls -A /run /var/run/; echo listed");
            p.put("root", spelling);
            JsonNode r = Runs.ok(bwrapd, p);
            assertEquals("/run:\n\n/var/run/:\nlisted\n", Runs.out(r), spelling + ": " + r);
        }
    }

    /**
     * With /run hidden, a networked run on the host's root still has the resolver configuration
     * that /etc/resolv.conf links into /run (systemd-resolved's stub), bound read-only at its own
     * path; nothing else of /run. Root only: the helper runs in a mount namespace of the test's
     * own, on a copy of /etc whose resolv.conf is such a link and a /run of its own.
     */
    @Test
    void aNetworkedRunOnTheHostsRootKeepsTheResolverConfigurationInRun() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue("root".equals(System.getProperty("user.name")), "mounts of its own: root");
        Path etc = Runs.hostDir("bwrapd-etc-");
        String setup = "mount -t tmpfs none /run && mkdir -p /run/systemd/resolve /run/dbus"
                + " && echo 'nameserver 192.0.2.53' > /run/systemd/resolve/stub-resolv.conf"
                + " && cp -a /etc/. " + etc + "/ && ln -sfn /run/systemd/resolve/stub-resolv.conf " + etc + "/resolv.conf"
                + " && mount --bind " + etc + " /etc && exec \"$@\"";
        try (BwrapdProcess helper = BwrapdProcess.startUnder(List.of("unshare", "-m", "--propagation", "private", "/bin/sh", "-c", setup, "sh"))) {
            Runs.initialize(helper);
            ObjectNode networked = Runs.params(null, "/bin/sh", "-c", "cat /etc/resolv.conf; find /run | sort");
            networked.put("network", true);
            assertEquals("nameserver 192.0.2.53\n/run\n/run/systemd\n/run/systemd/resolve\n/run/systemd/resolve/stub-resolv.conf\n",
                    Runs.out(Runs.ok(helper, networked)));
            ObjectNode offline = Runs.params(null, "/bin/sh", "-c", "find /run");
            assertEquals("/run\n", Runs.out(Runs.ok(helper, offline)), "without the network, no resolver either");
            // The host's root however spelled (HostPaths knows it by identity), and a client's own resolv.conf wins.
            ObjectNode spelled = Runs.params(null, "/bin/sh", "-c", "cat /etc/resolv.conf");
            spelled.put("root", "/usr/..").put("network", true);
            assertEquals("nameserver 192.0.2.53\n", Runs.out(Runs.ok(helper, spelled)), "root /usr/..");
            Path own = Files.writeString(etc.resolve("client-resolv.conf"), "nameserver 198.51.100.7\n");
            ObjectNode clients = Runs.params(null, "/bin/sh", "-c", "cat /etc/resolv.conf");
            clients.put("network", true).set("mounts", Runs.JSON.createArrayNode().add(mount(own.toString(), "/etc/resolv.conf", true)));
            assertEquals("nameserver 198.51.100.7\n", Runs.out(Runs.ok(helper, clients)), "the client's own mount");
        } finally {
            TestRoot.deleteTree(etc);
        }
    }

    /**
     * Review finding: an unprivileged helper's sandbox granted CAP_SYS_ADMIN remounted the host's
     * root read-write (its mounts are made in the sandbox's own user namespace) and unmounted the
     * empty /run. Refused there; a root helper's mounts are locked, and the same command undoes
     * nothing. Also: on the host's root /dev is the sandbox's own (the host's held /dev/mqueue).
     */
    @Test
    void onTheHostsRootNothingHiddenOrReadOnlyCanBeUndone() throws Exception {
        ObjectNode p = Runs.params(null, "/bin/sh", "-c", "mount -o remount,rw / 2>/dev/null && echo remounted; umount /run 2>/dev/null && echo unmounted; "
                + "umount /dev 2>/dev/null && echo dev; ls -A /dev; echo done");
        p.putArray("capabilities").add("CAP_SYS_ADMIN");
        if ("root".equals(System.getProperty("user.name"))) {
            assertEquals("fd\nfull\nnull\nrandom\nstderr\nstdin\nstdout\nurandom\nzero\ndone\n", Runs.out(Runs.ok(bwrapd, p)));
        } else {
            JsonNode e = Runs.error(bwrapd, p);
            assertEquals(-32602, e.get("code").asInt(), e::toString);
            assertContains(e.get("message").asText(), "capabilities[0]: CAP_SYS_ADMIN on the host's root");
        }
        assertEquals("fd\nfull\nnull\nrandom\nstderr\nstdin\nstdout\nurandom\nzero\n/dev/stdout\n",
                Runs.out(Runs.ok(bwrapd, Runs.params(null, "/bin/sh", "-c", "ls -A /dev; echo /dev/stdout > /dev/stdout"))));
    }

    /** Whether /proc/sysvipc/shm's table has a segment with this shmid (its second column). */
    private static boolean listsSegment(String table, String id) {
        return table.lines().map(line -> line.trim().split("\\s+")).anyMatch(fields -> fields.length > 1 && fields[1].equals(id));
    }

    // ----- class 1: host paths that bwrap would resolve differently from bwrapd -----

    void assertRefused(ObjectNode params, int code, String field) throws Exception {
        JsonNode error = Runs.error(bwrapd, params);
        assertEquals(code, error.get("code").asInt(), error::toString);
        assertContains(error.get("message").asText(), field);
        assertVictimUntouched();
    }

    /** The reported attack: stdin a host directory, and a mount of "bwrapd's stdin" that bwrap took as its own. */
    @Test
    void descriptorPathsNeverReachBwrap() throws Exception {
        for (String source : new String[] {"/proc/self/fd/0", "/dev/stdin", "/dev/fd/0", "/proc/self/root", "/proc/self/cwd",
                "/proc/thread-self/fd/1"}) {
            for (boolean readOnly : new boolean[] {false, true}) {
                ObjectNode p = sh(root, "echo owned > /h/precious");
                p.putObject("stdin").put("file", "/dev/null");
                p.set("mounts", Runs.JSON.createArrayNode().add(mount(source, "/h", readOnly)));
                assertRefused(p, -32005, "mounts[0].source");
            }
        }
        ObjectNode device = sh(root, "true");
        device.putArray("devices").add("/dev/stdin");
        assertRefused(device, -32005, "devices[0]");
        for (String stream : new String[] {"stdout", "stderr"}) {
            ObjectNode p = sh(root, "echo '{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"forged\"}'");
            p.putObject(stream).put("file", "/dev/stdout");
            assertRefused(p, -32005, stream + ".file");
        }
        ObjectNode stdin = sh(root, "cat");
        stdin.putObject("stdin").put("file", "/proc/self/fd/0");
        assertRefused(stdin, -32005, "stdin.file");
    }

    /**
     * Review finding: a FIFO named as an output file blocked the run's thread for ever in open(2);
     * enough of them and no run ever ran again. An output goes to a regular file only, opened
     * without waiting, and never through a final symbolic link.
     */
    @Test
    void anOutputFileIsARegularFileOpenedWithoutWaiting() throws Exception {
        Path fifo = victim.resolve("fifo");
        Process mkfifo = new ProcessBuilder("mkfifo", fifo.toString()).inheritIO().start();
        assertEquals(0, mkfifo.waitFor());
        Path link = Files.createSymbolicLink(victim.resolve("link"), victim.resolve("file-by-link"));
        victimBefore = TestRoot.snapshot(victim);
        for (String stream : new String[] {"stdout", "stderr"}) {
            for (String path : new String[] {fifo.toString(), "/dev/null"}) {
                ObjectNode p = sh(root, "echo escaped");
                p.putObject(stream).put("file", path);
                long start = System.nanoTime();
                assertRefused(p, -32602, stream + ".file");
                assertTrue(System.nanoTime() - start < 10_000_000_000L, "refused only after " + (System.nanoTime() - start) / 1_000_000 + " ms");
            }
            ObjectNode p = sh(root, "echo escaped");
            p.putObject(stream).put("file", link.toString());
            assertRefused(p, -32005, stream + ".file");
        }
        // The same run with a regular file works, and later runs are not held up.
        Path dir = Runs.hostDir("bwrapd-out-");
        try {
            ObjectNode p = sh(root, "echo fine");
            p.putObject("stdout").put("file", dir.resolve("out.log").toString());
            Runs.ok(bwrapd, p);
            assertEquals("fine\n", Files.readString(dir.resolve("out.log")));
        } finally {
            TestRoot.deleteTree(dir);
        }
    }

    /**
     * Review finding: a run planted {@code in.txt -> VICTIM/precious} and {@code logs -> VICTIM} in
     * its root; the next run's client named ROOT/in.txt as stdin and ROOT/logs/precious as
     * stdout: the command read the host file and the host file was overwritten. A stdio file is
     * reached through no link inside the run's root.
     */
    @Test
    void aStdioFileIsNeverReachedThroughALinkTheRootHolds() throws Exception {
        Runs.ok(bwrapd, sh(root, "ln -s " + victim.resolve("precious") + " /in.txt && ln -s " + victim + " /logs"));
        Path r = root.path();
        ObjectNode in = sh(root, "cat");
        in.putObject("stdin").put("file", r.resolve("in.txt").toString());
        assertRefused(in, -32005, "stdin.file");
        for (String stream : new String[] {"stdout", "stderr"}) {
            ObjectNode out = sh(root, "echo owned");
            out.putObject(stream).put("file", r.resolve("logs/precious").toString());
            assertRefused(out, -32005, stream + ".file");
        }
        // The same through a read-write mount's source, the sandbox's to write as much (second review).
        Path work = Runs.hostDir("bwrapd-work-");
        try {
            ObjectNode plant = sh(root, "ln -s " + victim + " /work/sub");
            plant.set("mounts", Runs.JSON.createArrayNode().add(mount(work.toString(), "/work", false)));
            Runs.ok(bwrapd, plant);
            ObjectNode out = sh(root, "echo owned");
            out.set("mounts", Runs.JSON.createArrayNode().add(mount(work.toString(), "/work", false)));
            out.putObject("stdout").put("file", work.resolve("sub/precious").toString());
            assertRefused(out, -32005, "stdout.file");
        } finally {
            TestRoot.deleteTree(work);
        }
        // A plain file in the root is still a file the client may name.
        ObjectNode plain = sh(root, "echo fine");
        plain.putObject("stdout").put("file", r.resolve("out.txt").toString());
        Runs.ok(bwrapd, plain);
        assertEquals("fine\n", Files.readString(r.resolve("out.txt")));
        assertVictimUntouched();
    }

    /** A descriptor of a host directory as stdin would let the command open anything beneath it. */
    @Test
    void aDirectoryIsNeverACommandsStdin() throws Exception {
        ObjectNode p = sh(root, "true");
        p.putObject("stdin").put("file", victim.toString());
        assertRefused(p, -32005, "stdin.file");
    }

    /**
     * Review finding: a terminal named as stdin.file let the command turn its echo off and read what
     * was typed there (terminal ioctls ignore the read-only open). Refused; /dev/null still serves.
     */
    @Test
    void aTerminalIsNeverACommandsStdinFile() throws Exception {
        Process holder = new ProcessBuilder("/usr/bin/python3", "-c",
                "import os, sys, time\nm, s = os.openpty()\nprint(os.ttyname(s), flush=True)\nsys.stdin.read()").start();
        try {
            String pty = new java.io.BufferedReader(new java.io.InputStreamReader(holder.getInputStream(), java.nio.charset.StandardCharsets.UTF_8)).readLine();
            assertTrue(pty != null && pty.startsWith("/dev/pts/"), "python made a pseudo-terminal: " + pty);
            ObjectNode p = sh(root, "stty -echo; echo controlled");
            p.putObject("stdin").put("file", pty);
            JsonNode error = Runs.error(bwrapd, p);
            assertEquals(-32005, error.get("code").asInt(), error::toString);
            assertContains(error.get("message").asText(), "stdin.file: " + pty + " is a terminal");
            ObjectNode devNull = sh(root, "cat; echo read");
            devNull.putObject("stdin").put("file", "/dev/null");
            assertEquals("read\n", Runs.out(Runs.ok(bwrapd, devNull)));
        } finally {
            holder.destroyForcibly();
        }
    }

    /** The host root read-write, however it is spelled: through a link the test made, or a bind mount's path. */
    @Test
    void theHostRootIsNeverMountedReadWrite() throws Exception {
        Path link = Files.createSymbolicLink(victim.resolve("to-root"), Path.of("/"));
        victimBefore = TestRoot.snapshot(victim);
        for (String source : new String[] {link.toString(), "/tmp/..", "//"}) {
            ObjectNode p = sh(root, "touch /h" + victim + "/owned");
            p.set("mounts", Runs.JSON.createArrayNode().add(mount(source, "/h", false)));
            assertRefused(p, -32005, "mounts[0].source");
        }
        ObjectNode procfs = sh(root, "true");
        procfs.set("mounts", Runs.JSON.createArrayNode().add(mount("/proc/self", "/h", true)));
        assertRefused(procfs, -32005, "mounts[0].source");
        ObjectNode notADevice = sh(root, "true");
        notADevice.putArray("devices").add("/dev/shm");
        assertRefused(notADevice, -32005, "devices[0]");
    }

    /** A missing source is the client's error, found before bwrap runs. */
    @Test
    void aMissingMountSourceIsRefusedUpFront() throws Exception {
        ObjectNode p = sh(root, "true");
        p.set("mounts", Runs.JSON.createArrayNode().add(mount(victim.resolve("missing").toString(), "/h", true)));
        assertRefused(p, -32602, "mounts[0].source");
    }

    // ----- class 3: cleanup after the root was swapped for a link -----

    /**
     * The command reaches the root's parent (mounted read-write), moves the root aside and puts a
     * link to the victim in its place. The victim holds what cleanup removes (an empty /tmp, /proc,
     * /parent; /dev/null with content): a cleaner that went by the root's path would empty it.
     */
    @Test
    void cleanupWorksOnTheRootItWasGivenNotOnItsPath() throws Exception {
        for (String dir : List.of("tmp", "proc", "parent", "dev")) Files.createDirectories(victim.resolve(dir));
        Files.writeString(victim.resolve("dev/null"), "host data\n");
        victimBefore = TestRoot.snapshot(victim);
        Path parent = Runs.hostDir("bwrapd-parent-");
        Path nested = parent.resolve("root");
        Files.move(root.path(), nested);
        try {
            TreeMap<String, String> rootBefore = TestRoot.snapshot(nested);
            ObjectNode p = Runs.params(null, "/bin/sh", "-c",
                    "mv /parent/root /parent/root.moved && ln -s " + victim + " /parent/root && echo swapped");
            p.put("root", nested.toString());
            p.set("mounts", Runs.JSON.createArrayNode().add(mount(parent.toString(), "/parent", false)));
            JsonNode result = run(bwrapd, p);
            assertExited(result, 0);
            assertEquals("swapped\n", Runs.out(result));
            assertVictimUntouched();
            assertTrue(result.get("cleanup").get("ok").asBoolean(), result::toString);
            assertTrue(Files.isSymbolicLink(nested));
            Runs.assertSameTree(rootBefore, TestRoot.snapshot(parent.resolve("root.moved")), "the moved root was not cleaned");
        } finally {
            if (Files.isDirectory(parent.resolve("root.moved"), java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                Files.move(parent.resolve("root.moved"), root.path());
            } else if (Files.isDirectory(nested, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                Files.move(nested, root.path());
            }
            TestRoot.deleteTree(parent);
        }
    }

    // ----- class 4: links in the root that would make bwrap create files on the host -----

    /**
     * bwrap meets its mount points from its own root, where the host is /oldroot: links planted in
     * the root (absolute, relative climbing out, a mount target's parent) must only ever lead to
     * places inside the root. Each run must work or be refused; the victim and the host stay as they were.
     */
    @Test
    void linksInTheRootNeverLeadBwrapOutOfIt() throws Exception {
        Path source = Files.createDirectory(victim.resolve("source"));
        victimBefore = TestRoot.snapshot(victim);
        String out = "/oldroot" + victim + "/dir";
        String climb = "../../../../../../../../.." + victim + "/dir";
        List<String[]> cases = List.of(
                new String[] {"dev", out, "/dev/null"},                    // the reported case
                new String[] {"dev", climb, "/dev/null"},                  // a relative link climbing out
                new String[] {"evil", out, "/evil/x"},                     // the parent of a mount target
                new String[] {"evil", "/oldroot", "/evil" + victim + "/dir/x"},
                new String[] {"tmp", out, "/tmp/x"},                       // where bwrap mounts the tmpfs
                new String[] {"proc", out, "/proc"});
        for (String[] c : cases) {
            Path link = root.path().resolve(c[0]);
            Files.createSymbolicLink(link, Path.of(c[1]));
            TreeMap<String, String> rootBefore = root.snapshot();
            ObjectNode p = sh(root, "echo x > /dev/null && echo ok");
            if (c[2].startsWith("/evil") || c[2].equals("/tmp/x")) {
                p.set("mounts", Runs.JSON.createArrayNode().add(mount(source.toString(), c[2], true)));
            }
            JsonNode response = bwrapd.request("sandbox/run", p);
            String what = String.join(" ", c) + ": " + response;
            if (response.has("result")) {
                assertExited(response.get("result"), 0);
                assertTrue(response.get("result").get("cleanup").get("ok").asBoolean(), what);
                Runs.assertSameTree(rootBefore, root.snapshot(), "the root changed: " + what);
            } else {
                assertEquals(-32005, response.at("/error/code").asInt(), what);
            }
            assertVictimUntouched();
            assertFalse(Files.exists(Path.of("/oldroot")), "nothing is created at the host's /oldroot");
            Files.delete(link);
        }
    }

    /** The same with the link planted by an earlier run's command (the root read-write), and a device link into /proc. */
    @Test
    void aLinkPlantedByOneRunIsHarmlessToTheNext() throws Exception {
        JsonNode plant = run(bwrapd, sh(root, "mkdir -p /work && mv /work /work.old && ln -s /oldroot" + victim + "/dir /work && echo planted"));
        assertExited(plant, 0);
        TreeMap<String, String> rootBefore = root.snapshot();
        ObjectNode p = sh(root, "test -d /work/src && echo ok");
        p.set("mounts", Runs.JSON.createArrayNode().add(mount(victim.toString(), "/work/src", true)));
        JsonNode result = run(bwrapd, p);
        assertExited(result, 0);
        Runs.assertSameTree(rootBefore, root.snapshot(), "the root changed");
        assertVictimUntouched();

        Files.createSymbolicLink(root.path().resolve("dev"), Path.of("/proc/self/fd"));
        assertRefused(sh(root, "true"), -32005, "/dev leads into /proc");
    }

    // ----- a helper killed mid-run -----

    /**
     * bwrapd is SIGKILLed while a sandbox runs: no cleanup happens then, and bwrap's mount points
     * stay in the root. The next bwrapd to use the root finds the dead one's record and removes them.
     */
    @Test
    void whatAKilledHelperLeftIsRemovedByTheNextRunOnTheRoot() throws Exception {
        TreeMap<String, String> before = root.snapshot();
        String marker = ProcessSupport.newMarker();
        try (BwrapdProcess doomed = BwrapdProcess.start()) {
            Runs.initialize(doomed);
            ObjectNode p = ProcessSupport.runParams(root, "doomed", marker, "sleep 60");
            p.put("devShm", true);
            p.set("mounts", Runs.JSON.createArrayNode().add(mount(victim.toString(), "/a/b", true)));
            doomed.requestAsync("sandbox/run", p);
            Runs.awaitNotification(doomed, "sandbox/started", "doomed", java.time.Duration.ofSeconds(30));
            assertTrue(Files.exists(root.path().resolve("a/b")), "the run made its mount point in the root");
            doomed.process().destroyForcibly(); // SIGKILL: no cleanup
            doomed.process().waitFor();
        }
        // The watchdog ends the killed helper's sandbox (its look through /proc takes seconds on a
        // loaded machine: a soak beside it took 13 s); the next run must not race a live one.
        ProcessSupport.awaitNoSurvivors(marker, java.time.Duration.ofSeconds(30), "the helper's SIGKILL");
        assertTrue(Files.exists(root.path().resolve("a/b")), "the killed run left its mount points behind");
        JsonNode next = run(bwrapd, sh(root, "true"));
        assertExited(next, 0);
        Runs.assertSameTree(before, root.snapshot(), "the next run must leave the root as it was before the killed one");
        assertVictimUntouched();
    }

    // ----- class 2: capabilities -----

    @Test
    void aRootSandboxHoldsNoCapabilityThatUndoesIt() throws Exception {
        JsonNode result = run(bwrapd, sh(root, "grep CapEff /proc/self/status"));
        assertExited(result, 0);
        long caps = capEff(result);
        assertEquals(0, caps & CAP_SYS_ADMIN, "CAP_SYS_ADMIN: " + Long.toHexString(caps));
        assertEquals(0, caps & CAP_SYS_PTRACE, "CAP_SYS_PTRACE: " + Long.toHexString(caps));
        assertNotEquals(0, caps & CAP_CHOWN, "a uid-0 build can still chown: " + Long.toHexString(caps));
    }

    @Test
    void aNonRootSandboxUserHoldsNoCapability() throws Exception {
        ObjectNode p = sh(root, "grep CapEff /proc/self/status");
        p.put("uid", 1000);
        JsonNode result = run(bwrapd, p);
        assertExited(result, 0);
        if (Runs.initialize(bwrapd).at("/capabilities/userNamespaces").asBoolean()) assertEquals(0, capEff(result));
    }

    /** The remount that gave a root-run sandbox write access to read-only binds and the read-only root. */
    @Test
    void readOnlyMountsCannotBeRemountedWritable() throws Exception {
        ObjectNode p = sh(root, "mount -o remount,rw,bind /v; mount -o remount,rw,bind /; echo owned > /v/precious; echo x > /x;"
                + " grep -c owned /v/precious");
        p.put("readOnlyRoot", true);
        p.set("mounts", Runs.JSON.createArrayNode().add(mount(victim.toString(), "/v", true)));
        TreeMap<String, String> rootBefore = root.snapshot();
        JsonNode result = run(bwrapd, p);
        assertExited(result, 1);
        assertVictimUntouched();
        Runs.assertSameTree(rootBefore, root.snapshot(), "the read-only root changed");
    }

    @Test
    void requestedCapabilitiesAreAdded() throws Exception {
        ObjectNode p = sh(root, "grep CapEff /proc/self/status");
        p.putArray("capabilities").add("CAP_SYS_PTRACE");
        JsonNode result = run(bwrapd, p);
        assertExited(result, 0);
        assertNotEquals(0, capEff(result) & CAP_SYS_PTRACE, Long.toHexString(capEff(result)));
        assertEquals(0, capEff(result) & CAP_SYS_ADMIN);

        ObjectNode unknown = sh(root, "true");
        unknown.putArray("capabilities").add("CAP_TIME_TRAVEL");
        JsonNode error = Runs.error(bwrapd, unknown);
        assertEquals(-32602, error.get("code").asInt());
        assertContains(error.get("message").asText(), "capabilities[0]");
    }
}
