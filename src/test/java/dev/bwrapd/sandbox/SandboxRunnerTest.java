package dev.bwrapd.sandbox;

import dev.bwrapd.cgroup.Limits;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What a host cannot give a sandbox, worded once for sandbox/run's -32602 and the Buildbarn
 * runner's start: the first capability it cannot grant, then the first limit it cannot enforce.
 */
class SandboxRunnerTest {
    private static final Limits MEMORY = new Limits(1L << 26, null, null, null, null, null);

    @Test
    void aCapabilityThatCannotBeGrantedIsNamedByItsPlace() {
        HostCapabilities noUserNs = new HostCapabilities("/usr/bin/bwrap", "0.8.0", false, true, true, true, null);
        assertEquals("capabilities[0]: this host cannot grant CAP_CHOWN (no user namespaces)",
                SandboxRunner.refusal(noUserNs, List.of("CAP_CHOWN", "CAP_SYS_ADMIN"), Limits.NONE, Map.of(), null));
        HostCapabilities rootWithout = new HostCapabilities("/usr/bin/bwrap", "0.8.0", false, true, true, true, null, true, 1L, false); // CAP_CHOWN only
        assertNull(SandboxRunner.refusal(rootWithout, List.of("CAP_CHOWN"), Limits.NONE, Map.of(), null));
        assertEquals("capabilities[1]: this host cannot grant CAP_SYS_ADMIN (bwrapd does not hold it)",
                SandboxRunner.refusal(rootWithout, List.of("CAP_CHOWN", "CAP_SYS_ADMIN"), Limits.NONE, Map.of(), null));
    }

    /** withMounts and withSeccomp change their own field and nothing else. */
    @Test
    void aSpecWithOtherMountsOrAnotherFilterIsOtherwiseTheSame() {
        RunSpec spec = BwrapCommandTest.spec(s -> {});
        List<RunSpec.Mount> mounts = List.of(new RunSpec.Mount("/srv/src", "/src", true));
        RunSpec mounted = spec.withMounts(mounts);
        assertEquals(mounts, mounted.mounts());
        assertEquals(spec, mounted.withMounts(spec.mounts()));
        RunSpec filtered = spec.withSeccomp(RunSpec.Seccomp.DEFAULT);
        assertEquals(RunSpec.Seccomp.DEFAULT, filtered.seccomp());
        assertEquals(spec, filtered.withSeccomp(spec.seccomp()));
    }

    /** Only a file /run hides is kept for a networked host-rooted run (the positive case needs root: SandboxBoundaryIT). */
    @Test
    void theResolverConfigurationIsKeptOnlyWhereRunHidesIt(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        RunSpec networked = BwrapCommandTest.spec(s -> { s.root = RunSpec.HOST_ROOT; s.network = true; });
        List<String> hidden = MountPoints.daemonDirectories();
        java.nio.file.Path plain = java.nio.file.Files.writeString(dir.resolve("resolv.conf"), "nameserver 192.0.2.1\n");
        assertEquals(networked, HostPaths.withResolverConfiguration(networked, plain, hidden), "a file outside /run is there anyway");
        assertEquals(networked, HostPaths.withResolverConfiguration(networked, dir.resolve("missing"), hidden));
        java.nio.file.Path dangling = java.nio.file.Files.createSymbolicLink(dir.resolve("dangling"), java.nio.file.Path.of("/run/no/such/file"));
        assertEquals(networked, HostPaths.withResolverConfiguration(networked, dangling, hidden));
        // A file in a directory bwrapd hides is bound at its own path, unless the run hides it itself.
        java.nio.file.Path daemons = java.nio.file.Files.createDirectory(dir.resolve("daemons"));
        java.nio.file.Path behind = java.nio.file.Files.writeString(daemons.resolve("resolv.conf"), "nameserver 192.0.2.1\n");
        assertEquals(List.of(new RunSpec.Mount(behind.toString(), behind.toString(), true)),
                HostPaths.withResolverConfiguration(networked, behind, List.of(daemons.toString())).mounts());
        RunSpec hiding = BwrapCommandTest.spec(s -> { s.root = RunSpec.HOST_ROOT; s.network = true; s.hidden = List.of(daemons.toString()); });
        assertEquals(hiding, HostPaths.withResolverConfiguration(hiding, behind, List.of(daemons.toString())), "the run hides it");
        RunSpec offline = BwrapCommandTest.spec(s -> s.root = RunSpec.HOST_ROOT);
        try (HostPaths paths = HostPaths.open(offline, -1, new HostPaths.Devices())) {
            assertEquals(offline, paths.spec(), "no network: no resolver");
        }
        assertEquals(dev.bwrapd.process.Libc.seccompAvailable() ? SeccompPolicy.KEYRINGS_REFUSED : null,
                SandboxRunner.asRunHere(offline).seccomp(), "the keyrings refused where libseccomp is");
    }

    /** Unprivileged, CAP_SYS_ADMIN would undo the host root's read-only / and hidden paths: refused there, by its place. */
    @Test
    void capSysAdminOnTheHostRootIsRefusedUnprivileged() throws Exception {
        RunSpec admin = BwrapCommandTest.spec(s -> { s.root = RunSpec.HOST_ROOT; s.capabilities = List.of("CAP_CHOWN", "CAP_SYS_ADMIN"); });
        HostCapabilities unprivileged = new HostCapabilities("/usr/bin/bwrap", "0.8.0", true, true, true, true, null);
        SandboxException.Invalid refused = org.junit.jupiter.api.Assertions.assertThrows(SandboxException.Invalid.class,
                () -> SandboxRunner.refuseOnTheHostRoot(admin, unprivileged, true));
        assertTrue(refused.getMessage().startsWith("capabilities[1]: CAP_SYS_ADMIN on the host's root"), refused.getMessage());
        SandboxRunner.refuseOnTheHostRoot(admin, unprivileged, false); // a root of its own: the client's read-only mounts are its to give up
        SandboxRunner.refuseOnTheHostRoot(admin, new HostCapabilities("/usr/bin/bwrap", "0.8.0", true, true, true, true, null, true, -1L, false), true);
    }

    @Test
    void aLimitWithoutAMechanismIsNamedWithWhy() {
        HostCapabilities status = new HostCapabilities("/usr/bin/bwrap", "0.8.0", true, true, true, true, null);
        assertEquals("limits.memoryBytes: this host cannot enforce it (no writable cgroup)",
                SandboxRunner.refusal(status, List.of(), MEMORY, Map.of(), "no writable cgroup"));
        assertNull(SandboxRunner.refusal(status, List.of(), MEMORY, Map.of("memoryBytes", "cgroup v2 memory.max"), null));
        HostCapabilities noStatus = new HostCapabilities("/usr/bin/bwrap", "0.7.0", true, true, false, true, null);
        assertEquals("limits.memoryBytes: this host cannot enforce it (bwrap has no --json-status-fd)",
                SandboxRunner.refusal(noStatus, List.of(), MEMORY, Map.of(), null));
    }
}
