package dev.bwrapd.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The keyrings are not namespaced (docs/protocol.md, System-call filter): bwrapd joins a session
 * keyring of its own at start-up, so its sandboxes do not hold the one it was started with.
 * Here the helper is started holding a key: by a wrapper that joins a new session keyring, adds a
 * "user" key to it and then becomes the helper. The key's permissions are the possessor's only,
 * so /proc/keys lists it exactly to the processes that hold it (possess it: reach it from their
 * keyrings), which is also what using it by serial through an AF_ALG socket needs. Meaningful as
 * root and unprivileged alike: the key is the helper's user's either way.
 */
class KeyringIT {
    private static final String PYTHON = "/usr/bin/python3";

    /**
     * argv[1]: the file for the key's serial; the rest is the helper's command. Exits non-zero,
     * before the helper runs, should it not hold the key itself (then the test would prove nothing).
     */
    private static final String HOLDING_A_KEY = """
            import ctypes, os, sys
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            def check(rc, what):
                if rc < 0:
                    sys.exit(what + ": " + os.strerror(ctypes.get_errno()))
                return rc
            keyctl, add_key = {"x86_64": (250, 248), "aarch64": (219, 217)}[os.uname().machine]
            check(libc.syscall(keyctl, 1, None), "keyctl(KEYCTL_JOIN_SESSION_KEYRING)")
            payload = b"bwrapd-test-key-0123456789abcdef"
            key = check(libc.syscall(add_key, b"user", b"bwrapd-test", payload, len(payload), -3), "add_key")  # KEY_SPEC_SESSION_KEYRING
            check(libc.syscall(keyctl, 5, key, 0x3f000000), "keyctl(KEYCTL_SETPERM)")  # KEY_POS_ALL: the possessor's only
            if not any(line.split()[0] == "%08x" % key for line in open("/proc/keys")):
                sys.exit("/proc/keys does not list the key to its holder")
            with open(sys.argv[1], "w") as f:
                f.write(str(key))
            os.execv(sys.argv[2], sys.argv[2:])
            """;

    /**
     * argv[1]: the key's serial. Says whether this process holds the key, then whether it can use
     * it: setsockopt(SOL_ALG, ALG_SET_KEY_BY_KEY_SERIAL) on an hmac socket (Linux 6.2; "no-af-alg"
     * where the kernel has no AF_ALG hash sockets).
     */
    private static final String PROBE = """
            import socket, struct, sys
            key = int(sys.argv[1])
            print("held" if any(line.split()[0] == "%08x" % key for line in open("/proc/keys")) else "not held")
            try:
                s = socket.socket(socket.AF_ALG, socket.SOCK_SEQPACKET)
                s.bind(("hash", "hmac(sha256)"))
            except OSError as e:
                print("no-af-alg")
                sys.exit()
            try:
                s.setsockopt(279, 7, struct.pack("i", key))  # SOL_ALG, ALG_SET_KEY_BY_KEY_SERIAL
                print("used")
            except OSError as e:
                print("refused", e.errno)
            """;

    @BeforeAll
    static void python() {
        Assumptions.assumeTrue(Files.isExecutable(Path.of(PYTHON)), PYTHON);
        Assumptions.assumeTrue(List.of("amd64", "x86_64", "aarch64").contains(System.getProperty("os.arch")), "keyctl's number known for x86_64 and aarch64");
    }

    /**
     * Before the fix the sandbox held bwrapd's session keyring, the key with it: /proc/keys listed
     * the key there (and where the kernel has AF_ALG hash sockets, an hmac could be keyed with it).
     */
    @Test
    void aSandboxDoesNotHoldTheSessionKeyringTheHelperWasStartedWith() throws Exception {
        Path serialFile = Files.createTempFile("bwrapd-key-", "");
        try (BwrapdProcess bwrapd = BwrapdProcess.startUnder(List.of(PYTHON, "-c", HOLDING_A_KEY, serialFile.toString()))) {
            Runs.initialize(bwrapd); // answered: the wrapper has written the serial and become the helper
            String serial = Files.readString(serialFile).trim();
            assertFalse(serial.isEmpty(), () -> "the wrapper gave no key: " + bwrapd.stderr());
            // The host's root: the probe runs the host's python, and /proc/keys is the kernel's, not the root's.
            ObjectNode params = Runs.params(null, PYTHON, "-c", PROBE, serial);
            List<String> said = Runs.lines(Runs.out(Runs.ok(bwrapd, params)));
            assertEquals("not held", said.get(0), () -> "the sandbox holds the key the helper was started with: " + said);
            if (!said.get(1).equals("no-af-alg")) {
                assertTrue(said.get(1).startsWith("refused "), () -> "the sandbox keyed an hmac with the helper's key: " + said);
            }
            assertFalse(bwrapd.stderr().contains("session keyring"), bwrapd::stderr);
            Runs.closeChecked(bwrapd);
        } finally {
            Files.deleteIfExists(serialFile);
        }
    }

    /**
     * Where keyctl fails (here a filter refuses it; elsewhere keyrings compiled out, or the user's
     * key quota spent), the helper says so on stderr and serves as before; nothing goes to stdout.
     */
    @Test
    void aHelperThatCannotJoinAKeyringWarnsAndServes() throws Exception {
        Assumptions.assumeTrue(dev.bwrapd.HostFacts.hasLibseccomp(), "no libseccomp.so.2 to refuse keyctl with");
        String refusingKeyctl = """
                import ctypes, os, sys
                seccomp = ctypes.CDLL("libseccomp.so.2")
                seccomp.seccomp_init.restype = ctypes.c_void_p
                context = seccomp.seccomp_init(0x7fff0000)  # SCMP_ACT_ALLOW
                keyctl = seccomp.seccomp_syscall_resolve_name(b"keyctl")  # this architecture's number
                # SCMP_ACT_ERRNO(EPERM) for keyctl
                if seccomp.seccomp_rule_add(ctypes.c_void_p(context), 0x00050000 | 1, keyctl, 0) or seccomp.seccomp_load(ctypes.c_void_p(context)):
                    sys.exit("libseccomp refused the filter")
                os.execv(sys.argv[1], sys.argv[1:])
                """;
        try (BwrapdProcess bwrapd = BwrapdProcess.startUnder(List.of(PYTHON, "-c", refusingKeyctl))) {
            JsonNode init = Runs.initialize(bwrapd);
            assertTrue(init.has("capabilities"), init::toString);
            assertEquals("ok\n", Runs.out(Runs.ok(bwrapd, Runs.params(null, "/bin/echo", "ok"))));
            Runs.assertContains(bwrapd.stderr(), "session keyring");
            Runs.closeChecked(bwrapd);
        }
    }
}
