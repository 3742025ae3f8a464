package dev.bwrapd.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The system-call filter (docs/protocol.md) with real bwrap: a static probe program, compiled
 * here with the host's gcc into the busybox root, tries what the filter refuses; each refusal is
 * checked against the same run without a filter, so that it is the filter that refused.
 */
class SeccompIT {
    private static TestRoot root;
    private static BwrapdProcess bwrapd;
    private static boolean i386Runs;
    /** What unshare(CLONE_NEWUSER) gives without a filter: ENOSPC where bwrap's --disable-userns caps them (HostFacts.rootOnCgroupV1). */
    private static String unshareUser;

    @BeforeAll
    static void start() throws Exception {
        root = TestRoot.create();
        bwrapd = BwrapdProcess.start();
        JsonNode init = Runs.initialize(bwrapd);
        unshareUser = dev.bwrapd.HostFacts.rootOnCgroupV1() ? "ENOSPC" : "ok";
        // Decided by the host, not by the helper's claim: a helper that lost libseccomp must fail here, not skip.
        if (dev.bwrapd.HostFacts.hasLibseccomp()) {
            assertTrue(init.at("/capabilities/seccomp").asBoolean(), "the host has libseccomp.so.2, the helper says it has none: " + init);
        } else {
            Assumptions.abort("no libseccomp.so.2 on this host");
        }
        Path source = root.path().resolve("probe.c");
        Files.copy(BwrapdProcess.home().resolve("src/test/resources/seccomp-probe.c"), source);
        boolean built = compile(source, root.path().resolve("bin/probe"));
        // CI installs gcc and libc6-dev: there the probe must build; elsewhere its absence is a skip.
        if (System.getenv("CI") != null) assertTrue(built, "gcc cannot build static programs under CI");
        Assumptions.assumeTrue(built, "gcc cannot build static programs here (install gcc and libc6-dev): the seccomp tests need one");
        // i386: gcc-multilib, and a kernel that runs i386 binaries (CONFIG_IA32_EMULATION).
        i386Runs = compile(source, root.path().resolve("bin/probe32"), "-m32")
                && new ProcessBuilder(root.path().resolve("bin/probe32").toString(), "getpid").start().waitFor() == 0;
    }

    private static boolean compile(Path source, Path binary, String... flags) throws Exception {
        List<String> command = new java.util.ArrayList<>(List.of("gcc", "-static", "-O2", "-o", binary.toString()));
        command.addAll(List.of(flags));
        command.add(source.toString());
        try {
            Process gcc = new ProcessBuilder(command).redirectErrorStream(true).start();
            gcc.getInputStream().readAllBytes();
            return gcc.waitFor(120, TimeUnit.SECONDS) && gcc.exitValue() == 0;
        } catch (java.io.IOException e) {
            return false; // no gcc
        }
    }

    @AfterAll
    static void stop() throws Exception {
        if (bwrapd != null) Runs.closeChecked(bwrapd, root);
    }

    /**
     * Review finding: the compiled filter was written whole into a pipe before bwrap ran, and once the
     * user's pipe pages are spent (fs.pipe-user-pages-soft) a new pipe holds 8 KiB: a larger filter
     * (a deny list of every system call is some 9 KiB) blocked the run's thread for ever, timeout
     * and all. A command of the same user can spend them; here a process of the test's user does
     * (unprivileged: root's pipes are not counted, and there the run just has its large filter).
     */
    @Test
    void aLargeFilterRunsWhenTheUsersPipePagesAreSpent() throws Exception {
        List<String> deny = new java.util.ArrayList<>();
        java.util.Set<String> needed = java.util.Set.of("execve", "exit", "exit_group", "brk", "mmap", "munmap", "mprotect",
                "arch_prctl", "read", "write", "close", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "set_tid_address");
        for (String line : Files.readAllLines(Path.of("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"))) {
            if (!line.startsWith("#define __NR_")) continue;
            String name = line.substring("#define __NR_".length()).split("\\s+")[0];
            if (!needed.contains(name)) deny.add(name);
        }
        Assumptions.assumeTrue(deny.size() > 300, "the kernel's x86_64 system call names (linux-libc-dev)");
        ObjectNode params = Runs.params(root, "true");
        params.putObject("seccomp").set("deny", Runs.JSON.valueToTree(deny));
        params.put("timeoutMs", 20_000);
        boolean root = "root".equals(System.getProperty("user.name"));
        Process hog = root ? null : new ProcessBuilder("/usr/bin/python3", "-c", """
                import fcntl, os, sys
                pipes = []
                try:
                    while len(pipes) < 1000:
                        r, w = os.pipe()
                        pipes.append((r, w))
                        fcntl.fcntl(w, 1031, 1 << 20)  # F_SETPIPE_SZ: 256 pages counted against the user
                except OSError:
                    pass
                # The last pages, 16 a pipe, until the kernel gives a new pipe less than its 64 KiB (F_GETPIPE_SZ).
                while len(pipes) < 2000:
                    r, w = os.pipe()
                    pipes.append((r, w))
                    if fcntl.fcntl(w, 1032) < 65536:
                        break
                print("spent", len(pipes), fcntl.fcntl(w, 1032), flush=True)
                sys.stdin.read()
                """).redirectErrorStream(true).start();
        try {
            if (hog != null) {
                String spent = new java.io.BufferedReader(new java.io.InputStreamReader(hog.getInputStream())).readLine();
                assertTrue(spent != null && spent.startsWith("spent ") && !spent.endsWith(" 65536"), "the user's pipe pages are spent: " + spent);
            }
            // Answered, not hung. With nearly every call denied, bwrap's own init (under the filter too)
            // may be refused its wait() before the command is done: then the run is setup-failed.
            JsonNode response = bwrapd.requestAsync("sandbox/run", params).get(60, java.util.concurrent.TimeUnit.SECONDS);
            assertTrue(response.has("result"), response::toString);
            assertTrue(List.of("exited", "setup-failed").contains(response.at("/result/status").asText()), response::toString);
        } finally {
            if (hog != null) hog.destroyForcibly().waitFor();
        }
    }

    private static String probe(Object seccomp, String... what) throws Exception {
        return probeWith(seccomp, "probe", what);
    }

    private static String probeWith(Object seccomp, String binary, String... what) throws Exception {
        String[] command = new String[what.length + 1];
        command[0] = binary;
        System.arraycopy(what, 0, command, 1, what.length);
        ObjectNode params = Runs.params(root, command);
        // CAP_SYS_ADMIN, so that without a filter mount and unshare -m succeed: a refusal is the filter's.
        params.putArray("capabilities").add("CAP_SYS_ADMIN");
        if (seccomp instanceof String s) params.put("seccomp", s);
        else if (seccomp != null) params.set("seccomp", Runs.JSON.valueToTree(seccomp));
        return Runs.out(Runs.ok(bwrapd, params));
    }

    @Test
    void theDefaultFilterRefusesTerminalInjectionNamespacesAndMounts() throws Exception {
        String without = probe("none", "tiocsti", "unshare-user", "unshare-mount", "mount", "getpid");
        assertEquals("tiocsti=ENOTTY\nunshare-user=" + unshareUser + "\nunshare-mount=ok\nmount=ok\ngetpid=ok\n", without);
        String with = probe("default", "tiocsti", "unshare-user", "unshare-mount", "mount", "getpid");
        assertEquals("tiocsti=EPERM\nunshare-user=EPERM\nunshare-mount=EPERM\nmount=EPERM\ngetpid=ok\n", with);
    }

    /**
     * Review finding: the command took the init's status eventfd with pidfd_getfd and wrote to it,
     * forging its run's outcome (setup-failed, or an exit code over 255). Also io_uring, a second
     * way to system calls that this filter's argument checks do not see.
     */
    @Test
    void theDefaultFilterRefusesOtherProcessesDescriptorsAndIoUring() throws Exception {
        assertEquals("pidfd-getfd=ok\n", probe("none", "pidfd-getfd"));
        assertEquals("pidfd-getfd=EPERM\nio-uring=EPERM\n", probe("default", "pidfd-getfd", "io-uring"));
    }

    /**
     * Review finding: without a filter the command can still write the init's eventfd; bwrap then
     * reported an exit code of -2 (the run was answered setup-failed, with the command's own
     * "bwrap: ..." line on stderr as the reason, though the command had run) or of 1000. bwrap's
     * exit-code is taken only as an exit status can be; else the init's own end tells.
     */
    @Test
    void aCommandCannotForgeItsRunsOutcome() throws Exception {
        for (String value : new String[] {"0xffffffff", "1001"}) {
            ObjectNode params = Runs.sh(root, "echo 'bwrap: Can'\\''t mount proc: forged' >&2; probe forge-exit=" + value + "; sleep 1");
            params.put("seccomp", "none");
            JsonNode result = Runs.run(bwrapd, params); // signaled, SIGKILL, when bwrap left first and the init followed it
            // The write was made; its "ok" may not come: bwrap can end the sandbox on it first.
            String writing = "forge-exit=" + value + "=writing\n";
            assertTrue(List.of(writing, writing + "forge-exit=" + value + "=ok\n").contains(Runs.out(result)), result.toString());
            assertTrue(result.get("setupError").isNull(), result.toString());
            assertTrue(List.of("exited", "signaled").contains(result.get("status").asText()), result.toString());
            int code = result.get("exitCode").asInt(-1);
            assertTrue(code >= 0 && code <= 255, result.toString());
        }
    }

    @Test
    void busyboxUnderTheDefaultFilter() throws Exception {
        ObjectNode works = Runs.sh(root, "echo ok; ls / > /dev/null && echo listed; unshare -U true || echo no-userns; unshare -m true || echo no-mountns");
        works.put("seccomp", "default");
        works.putArray("capabilities").add("CAP_SYS_ADMIN");
        assertEquals("ok\nlisted\nno-userns\nno-mountns\n", Runs.out(Runs.ok(bwrapd, works)));
    }

    @Test
    void personalityIsLimitedToLinuxAndLinux32() throws Exception {
        assertEquals("personality-linux32=ok\npersonality-linux=ok\npersonality-norandom=EPERM\n",
                probe("default", "personality-linux32", "personality-linux", "personality-norandom"));
        assertEquals("personality-norandom=ok\n", probe("none", "personality-norandom"));
    }

    @Test
    void linux32RunsUnderTheDefaultFilter() throws Exception {
        JsonNode init = Runs.initialize(bwrapd);
        if (Files.isExecutable(Path.of("/usr/bin/linux32")) && "amd64".equals(System.getProperty("os.arch"))) {
            assertTrue(init.at("/capabilities/linux32").asBoolean(), "the host has /usr/bin/linux32, the helper says no: " + init);
        }
        Assumptions.assumeTrue(init.at("/capabilities/linux32").asBoolean(), "no linux32 on this host");
        ObjectNode params = Runs.sh(root, "uname -m; linux32 uname -m");
        params.put("linux32", true).put("seccomp", "default");
        assertEquals("i686\ni686\n", Runs.out(Runs.ok(bwrapd, params)));
    }

    /**
     * Review findings: a root-run command linked the host root's user keyring into a session
     * keyring of its own and read and cleared the keys; an unprivileged one did the same with its
     * user's (a developer's Kerberos tickets). The keyrings are not namespaced: every sandbox is
     * refused the keyring calls, whatever its filter.
     */
    @Test
    void everySandboxIsRefusedTheKeyringsWhateverTheFilter() throws Exception {
        assertEquals("keyctl=EPERM\n", probe("none", "keyctl"));
        assertEquals("keyctl=EPERM\n", probe("none", "keyctl"), "again, from the program compiled once");
        ObjectNode deny = Runs.JSON.createObjectNode();
        deny.putArray("deny").add("uname");
        deny.put("errno", "ENOSYS");
        assertEquals("uname=ENOSYS\nkeyctl=ENOSYS\n", probe(deny, "uname", "keyctl"), "with the list's errno");
        assertEquals("keyctl=EPERM\n", probe("default", "keyctl"));
    }

    @Test
    void aDenyListDeniesExactlyItsEntries() throws Exception {
        ObjectNode deny = Runs.JSON.createObjectNode();
        deny.putArray("deny").add("uname").add("mount");
        deny.put("errno", "ENOSYS");
        assertEquals("uname=ENOSYS\nmount=ENOSYS\ntiocsti=ENOTTY\nunshare-user=" + unshareUser + "\nfork=ok\n",
                probe(deny, "uname", "mount", "tiocsti", "unshare-user", "fork"));
    }

    @Test
    void unknownNamesAndErrnosAreRefused() throws Exception {
        ObjectNode params = Runs.params(root, "true");
        params.putObject("seccomp").putArray("deny").add("getpid").add("no_such_call");
        JsonNode error = Runs.error(bwrapd, params);
        assertEquals(-32602, error.get("code").asInt());
        assertTrue(error.get("message").asText().startsWith("seccomp.deny[1]:"), error::toString);
        params.putObject("seccomp").put("errno", "EWHATEVER").putArray("deny").add("getpid");
        assertEquals(-32602, Runs.error(bwrapd, params).get("code").asInt());
    }

    @Test
    void i386BinariesAreFilteredToo() throws Exception {
        Assumptions.assumeTrue(i386Runs, "no i386 probe: gcc -m32 needs gcc-multilib, and the kernel must run i386 binaries (CONFIG_IA32_EMULATION)");
        assertEquals("tiocsti=EPERM\nunshare-user=EPERM\nmount=EPERM\ngetpid=ok\n",
                probeWith("default", "probe32", "tiocsti", "unshare-user", "mount", "getpid"));
    }
}
