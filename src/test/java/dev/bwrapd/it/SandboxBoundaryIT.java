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
import java.util.TreeMap;

import static dev.bwrapd.it.Runs.assertContains;
import static dev.bwrapd.it.Runs.assertExited;
import static dev.bwrapd.it.Runs.mount;
import static dev.bwrapd.it.Runs.run;
import static dev.bwrapd.it.Runs.sh;
import static org.junit.jupiter.api.Assertions.assertEquals;
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
