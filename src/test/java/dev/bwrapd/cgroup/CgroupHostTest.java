package dev.bwrapd.cgroup;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Detection: parsing /proc/self/cgroup and mountinfo as real hosts write them, and this host itself. */
class CgroupHostTest {

    /** This machine's layout: v1 controllers beside a v2 mount at /sys/fs/cgroup/unified. */
    static final String HYBRID_MOUNTINFO = """
            21 26 0:20 / /proc rw,relatime - proc proc rw
            30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
            31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
            34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
            36 30 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
            38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
            39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
            40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
            """;
    static final String HYBRID_CGROUP = """
            9:name=systemd:/
            8:pids:/
            6:freezer:/
            4:memory:/jobs/42
            2:cpu,cpuacct:/
            0::/
            """;

    /** Any hierarchy but v2's, a named one alone included, makes a host with v1 (HostCapabilities.nestedUserNamespaces). */
    @Test
    void knowsAHostWithV1Hierarchies() {
        assertTrue(CgroupHost.hasV1Hierarchies(HYBRID_CGROUP));
        assertTrue(CgroupHost.hasV1Hierarchies("1:name=systemd:/user.slice\n0::/user.slice/session-1.scope\n"));
        assertTrue(CgroupHost.hasV1Hierarchies("3:memory:/\n"), "legacy: v1 alone");
        assertFalse(CgroupHost.hasV1Hierarchies("0::/user.slice/user-1000.slice/session-2.scope\n"), "pure v2");
        // What detection read is what the probe gets (HostProbe.start); unreadable, as if it had.
        String noMounts = "21 26 0:20 / /proc rw - proc proc rw\n";
        assertTrue(CgroupHost.detect(HYBRID_CGROUP, noMounts, null, 1).v1Hierarchies());
        assertFalse(CgroupHost.detect("0::/\n", noMounts, null, 1).v1Hierarchies());
        assertTrue(CgroupHost.none("unreadable", null).v1Hierarchies());
        assertFalse(CgroupHost.none("no mountinfo", "0::/\n").v1Hierarchies());
    }

    @Test
    void parsesProcSelfCgroup() {
        List<CgroupHost.Membership> lines = CgroupHost.parseCgroup(HYBRID_CGROUP);
        assertEquals(6, lines.size());
        assertEquals(new CgroupHost.Membership(4, Set.of("memory"), "/jobs/42"), lines.get(3));
        assertEquals(new CgroupHost.Membership(2, Set.of("cpu", "cpuacct"), "/"), lines.get(4));
        assertEquals(new CgroupHost.Membership(0, Set.of(), "/"), lines.get(5));
        assertEquals(Set.of("name=systemd"), lines.get(0).controllers(), "a named hierarchy, never matched as a controller");
    }

    @Test
    void parsesCgroupMountsOnly() {
        List<CgroupHost.Mount> mounts = CgroupHost.parseMountinfo(HYBRID_MOUNTINFO);
        assertEquals(6, mounts.size(), "the tmpfs and proc are not cgroup mounts");
        assertEquals(new CgroupHost.Mount(Path.of("/sys/fs/cgroup/cpu,cpuacct"), "/", false, Set.of("cpu", "cpuacct")), mounts.get(0));
        assertEquals(Set.of(), mounts.get(4).controllers(), "name=systemd");
        assertTrue(mounts.get(5).v2());
    }

    @Test
    void controllersAreThoseSandboxesCanGet() {
        Map<String, Path> v1 = Map.of("memory", Path.of("/m"), "freezer", Path.of("/f"), "cpuacct", Path.of("/c"));
        assertEquals(Set.of("memory", "pids"), new CgroupHost(Path.of("/v2"), Set.of("pids"), v1, null, false).controllers(),
                "a v2 cgroup freezes and counts CPU time itself: v1's freezer and cpuacct are never used");
        assertEquals(Set.of("cpuacct", "freezer", "memory"), new CgroupHost(null, Set.of(), v1, null, false).controllers());
        assertEquals("cgroup v1 cpuacct.usage (whole sandbox)", Mechanisms.of(new CgroupHost(null, Set.of(), v1, null, false)).get("cpuMs"));
    }

    @Test
    void mountinfoEscapesAreDecoded() {
        String line = "40 30 0:37 /a\\040b /sys/fs/cgroup/my\\040mount rw - cgroup2 cgroup2 rw\n";
        CgroupHost.Mount mount = CgroupHost.parseMountinfo(line).getFirst();
        assertEquals(Path.of("/sys/fs/cgroup/my mount"), mount.mountPoint());
        assertEquals("/a b", mount.root());
    }

    @Test
    void ownCgroupIsFoundUnderTheMountsRoot() {
        Path mountPoint = Path.of("/sys/fs/cgroup");
        // a plain mount shows the whole hierarchy
        assertEquals(Path.of("/sys/fs/cgroup/user.slice/app.scope"),
                CgroupHost.locate(new CgroupHost.Mount(mountPoint, "/", true, Set.of()), "/user.slice/app.scope"));
        assertEquals(mountPoint, CgroupHost.locate(new CgroupHost.Mount(mountPoint, "/", true, Set.of()), "/"));
        // a container's mount shows only its subtree: paths are relative to that root
        CgroupHost.Mount container = new CgroupHost.Mount(mountPoint, "/machine/ct1", true, Set.of());
        assertEquals(Path.of("/sys/fs/cgroup/build"), CgroupHost.locate(container, "/machine/ct1/build"));
        assertEquals(mountPoint, CgroupHost.locate(container, "/machine/ct1"));
        assertNull(CgroupHost.locate(container, "/machine/ct10"), "a sibling that merely shares a prefix");
        assertNull(CgroupHost.locate(container, "/elsewhere"));
        assertNull(CgroupHost.locate(new CgroupHost.Mount(mountPoint, "/", true, Set.of()), "/../../etc"));
    }

    /** A v2 cgroup directory as the kernel shows it, for detection on a fake cgroupfs. */
    private static Path fakeCgroup(Path dir, String procs, String controllers, String subtreeControl) throws Exception {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("cgroup.procs"), procs);
        Files.writeString(dir.resolve("cgroup.controllers"), controllers);
        Files.writeString(dir.resolve("cgroup.subtree_control"), subtreeControl);
        return dir;
    }

    @Test
    void aPureV2HostDelegatingControllersToAnExistingSubtree(@TempDir Path fs) throws Exception {
        // A user's service cgroup where systemd delegated memory, pids and cpu, and bwrapd runs in
        // a cgroup of its own whose subtree already has them.
        Path own = fakeCgroup(fs.resolve("user.slice/user@1000.service/app.slice/build.scope"), "", "cpu memory pids\n", "cpu memory pids\n");
        String mountinfo = "25 22 0:23 / " + fs + " rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        CgroupHost host = CgroupHost.detect("0::/user.slice/user@1000.service/app.slice/build.scope\n", mountinfo, null, 4242);
        assertEquals(own, host.v2Base());
        assertEquals(Set.of("memory", "pids", "cpu"), host.v2Controllers());
        assertEquals(Map.of(), host.v1Bases());
        assertTrue(host.available());
        assertEquals("cgroup v2 memory.max", Mechanisms.of(host).get("memoryBytes"));
        assertEquals("cgroup v2 cpu.max", Mechanisms.of(host).get("cpus"));
    }

    @Test
    void sharedOwnCgroupKeepsItsControllersOff(@TempDir Path fs) throws Exception {
        // Others (the client, a shell) share our cgroup: enabling controllers would need them moved.
        Path own = fakeCgroup(fs.resolve("session.scope"), "100\n4242\n", "cpu memory pids\n", "");
        String mountinfo = "25 22 0:23 / " + fs + " rw - cgroup2 cgroup2 rw\n";
        CgroupHost host = CgroupHost.detect("0::/session.scope\n", mountinfo, null, 4242);
        assertEquals(own, host.v2Base(), "sandboxes still get cgroups: kill and freeze need no controller");
        assertEquals(Set.of(), host.v2Controllers());
        assertFalse(Files.exists(own.resolve(CgroupHost.SELF_LEAF)), "nothing was moved");
        assertTrue(host.note().contains("other processes"), host.note());
        Map<String, String> mechanisms = Mechanisms.of(host);
        assertFalse(mechanisms.containsKey("memoryBytes"));
        assertEquals("cgroup v2 cpu.stat (whole sandbox)", mechanisms.get("cpuMs"), "every v2 cgroup counts its CPU time");
    }

    @Test
    void aLoneHelperMovesIntoALeafThenEnablesControllers(@TempDir Path fs) throws Exception {
        // bwrapd alone in its cgroup: it moves into the leaf, then asks for the controllers (on a
        // real cgroupfs each write to cgroup.subtree_control is one request; here they land in a file).
        Path own = fakeCgroup(fs.resolve("app.slice/build.scope"), "4242\n", "cpu memory pids\n", "");
        Path leaf = Files.createDirectories(own.resolve(CgroupHost.SELF_LEAF));
        Files.writeString(leaf.resolve("cgroup.procs"), "");
        CgroupHost.detect("0::/app.slice/build.scope\n", "25 22 0:23 / " + fs + " rw - cgroup2 cgroup2 rw\n", null, 4242);
        assertEquals("4242", Files.readString(leaf.resolve("cgroup.procs")), "moved into the leaf first");
        assertTrue(Files.readString(own.resolve("cgroup.subtree_control")).startsWith("+"), "then enabled controllers");
    }

    @Test
    void cgroupParentMustBeAWritableV2Directory(@TempDir Path fs) throws Exception {
        Path parent = Files.createDirectories(fs.resolve("builds"));
        Files.writeString(parent.resolve("cgroup.procs"), "");
        Files.writeString(parent.resolve("cgroup.subtree_control"), "pids\n");
        String mountinfo = "25 22 0:23 / " + fs + " rw - cgroup2 cgroup2 rw\n";
        // Review finding: a writable parent whose common ancestor with bwrapd's own cgroup is not
        // writable was reported usable, and every run's move of its init then failed.
        CgroupHost apart = CgroupHost.detect("0::/elsewhere\n", mountinfo, parent, 1);
        assertNull(apart.v2Base());
        assertTrue(apart.note().contains(fs.resolve("cgroup.procs") + ", the common ancestor's"), apart.note());
        Files.writeString(fs.resolve("cgroup.procs"), "");
        CgroupHost host = CgroupHost.detect("0::/elsewhere\n", mountinfo, parent, 1);
        assertEquals(parent, host.v2Base());
        assertEquals(Set.of("pids"), host.v2Controllers());
        assertEquals(parent, CgroupHost.detect("0::/builds/bwrapd\n", mountinfo, parent, 1).v2Base(), "bwrapd inside it");
        CgroupHost notCgroup = CgroupHost.detect("0::/\n", mountinfo, Path.of("/tmp"), 1);
        assertNull(notCgroup.v2Base());
        assertTrue(notCgroup.note().contains("--cgroup-parent"));
    }

    @Test
    void theCommonAncestorIsTheDeepestDirectoryOfBoth() {
        assertEquals(Path.of("/sys/fs/cgroup/a"), CgroupHost.commonAncestor(Path.of("/sys/fs/cgroup/a/b"), Path.of("/sys/fs/cgroup/a/c/d")));
        assertEquals(Path.of("/sys/fs/cgroup/a/b"), CgroupHost.commonAncestor(Path.of("/sys/fs/cgroup/a/b"), Path.of("/sys/fs/cgroup/a/b/c")));
        assertEquals(Path.of("/sys/fs/cgroup/a"), CgroupHost.commonAncestor(Path.of("/sys/fs/cgroup/a"), Path.of("/sys/fs/cgroup/a")));
        assertEquals(Path.of("/sys/fs/cgroup"), CgroupHost.commonAncestor(Path.of("/sys/fs/cgroup/ab"), Path.of("/sys/fs/cgroup/a")));
        assertNull(CgroupHost.commonAncestor(Path.of("relative"), Path.of("/sys")));
    }

    @Test
    void noCgroupMountsMeansRlimitsOnly() {
        CgroupHost host = CgroupHost.detect("0::/\n", "21 26 0:20 / /proc rw - proc proc rw\n", null, 1);
        assertFalse(host.available());
        assertEquals(List.of("cpuMs", "fileSizeBytes", "openFiles"), List.copyOf(Mechanisms.of(host).keySet()));
        assertEquals("rlimit RLIMIT_CPU (per process)", Mechanisms.of(host).get("cpuMs"));
        assertEquals("memoryBytes", Mechanisms.unenforceable(new Limits(1L << 26, null, null, null, null, null), Mechanisms.of(host)).orElseThrow());
        assertTrue(Mechanisms.unenforceable(new Limits(null, null, 500L, null, 1024L, 64L), Mechanisms.of(host)).isEmpty());
    }

    /** This very host: what it reports must match what this user can actually write. */
    @Test
    void detectsThisHost() throws Exception {
        CgroupHost host = CgroupHost.detect(null);
        String own = CgroupHost.parseCgroup(Files.readString(Path.of("/proc/self/cgroup"))).stream()
                .filter(m -> m.hierarchy() == 0).findFirst().orElseThrow().path();
        Path v2Mount = CgroupHost.parseMountinfo(Files.readString(Path.of("/proc/self/mountinfo"))).stream()
                .filter(CgroupHost.Mount::v2).findFirst().map(CgroupHost.Mount::mountPoint).orElse(null);
        if (v2Mount == null) {
            assertNull(host.v2Base());
            return;
        }
        Path ownDir = CgroupHost.locate(new CgroupHost.Mount(v2Mount, "/", true, Set.of()), own);
        boolean writable = Files.isWritable(ownDir) || (host.v2Base() != null && host.v2Base().equals(ownDir));
        assertEquals(writable, host.v2Base() != null, host.toString());
        assertEquals(writable, host.available(), host.toString());
        for (Map.Entry<String, Path> v1 : host.v1Bases().entrySet()) {
            assertTrue(Files.isWritable(v1.getValue().resolve("cgroup.procs")), v1.toString());
        }
    }
}
