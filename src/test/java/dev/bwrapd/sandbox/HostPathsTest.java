package dev.bwrapd.sandbox;

import dev.bwrapd.process.Libc;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** One test per rule of HostPaths: what a host path in a request may be, checked on the open descriptor. */
class HostPathsTest {
    Path dir;

    @BeforeEach
    void makeDir() throws IOException {
        dir = Files.createTempDirectory("bwrapd-hostpaths-");
        Files.writeString(dir.resolve("file"), "data");
        Files.createSymbolicLink(dir.resolve("to-root"), Path.of("/"));
    }

    @AfterEach
    void removeDir() throws IOException {
        Files.delete(dir.resolve("to-root"));
        Files.delete(dir.resolve("file"));
        Files.delete(dir);
    }

    static RunSpec spec(Path root, List<RunSpec.Mount> mounts, List<String> devices) {
        return new RunSpec(List.of("true"), root, null, "/", Map.of(), false, false, "h", 0, 0, false, mounts, devices, false,
                false, new RunSpec.Stdin.Null(), new RunSpec.Output.Capture(), new RunSpec.Output.Capture(), 0, null, 0, false, true, List.of(), null, null, dev.bwrapd.cgroup.Limits.NONE, List.of(), true);
    }

    static HostPaths.Refused refused(RunSpec spec) {
        return assertThrows(HostPaths.Refused.class, () -> HostPaths.open(spec, -1, new HostPaths.Devices()).close());
    }

    @ParameterizedTest
    @ValueSource(strings = {"/proc/self/fd/0", "/dev/stdin", "/dev/fd/0", "/proc/self/root", "/proc/thread-self/cwd"})
    void magicLinksAreRefusedNotResolved(String path) {
        assertTrue(refused(spec(dir, List.of(new RunSpec.Mount(path, "/m", true)), List.of())).notAllowed, path);
        HostPaths.Refused stdio = assertThrows(HostPaths.Refused.class, () -> Libc.close(HostPaths.openStdio(-1, "stdin.file", path, Libc.O_RDONLY, List.of())));
        assertTrue(stdio.notAllowed, path);
    }

    @Test
    void theSpellingRuleForKernelsWithoutOpenat2() {
        for (String path : List.of("/proc/self/fd/0", "/proc/1/root", "/dev/fd/3", "/dev/stdout", "/dev/./stdin", "/proc")) {
            assertTrue(HostPaths.namesADescriptor(path), path);
        }
        for (String path : List.of("/dev/null", "/srv/proc", "/tmp/dev/fd", "/home/u/dev/stdin")) assertFalse(HostPaths.namesADescriptor(path), path);
    }

    @Test
    void nothingOnAProcfs() {
        assertTrue(refused(spec(dir, List.of(new RunSpec.Mount("/proc/self", "/m", true)), List.of())).notAllowed);
        assertThrows(HostPaths.Refused.class, () -> Libc.close(HostPaths.openStdio(-1, "stdout.file", "/proc/self/status", Libc.O_RDONLY, List.of())));
    }

    @Test
    void theHostRootIsKnownByItsIdentityHoweverSpelled() throws Exception {
        for (String root : List.of("/", "/.", "//", "/usr/..", dir.resolve("to-root").toString(), dir.resolve("to-root") + "/.")) {
            try (HostPaths paths = HostPaths.open(spec(Path.of(root), List.of(), List.of()), -1, new HostPaths.Devices())) {
                assertTrue(paths.hostRoot(), root);
            }
        }
        // Never a mount source, read-only or not: bound recursively, it would bring the host's /run and /proc along.
        for (String source : List.of("/", "//", "/tmp/..", dir.resolve("to-root").toString())) {
            for (boolean readOnly : new boolean[] {true, false}) {
                assertTrue(refused(spec(dir, List.of(new RunSpec.Mount(source, "/h", readOnly)), List.of())).notAllowed, source);
            }
        }
        try (HostPaths paths = HostPaths.open(spec(dir, List.of(new RunSpec.Mount(dir.toString(), "/h", true)), List.of()), -1, new HostPaths.Devices())) {
            assertFalse(paths.hostRoot());
            assertEquals(2, paths.descriptors().size(), "any other directory is");
        }
    }

    @Test
    void devicesAreDeviceNodesUnderDev() throws Exception {
        HostPaths.Devices devices = new HostPaths.Devices();
        List<Integer> first;
        try (HostPaths paths = HostPaths.open(spec(dir, List.of(), List.of("/dev/null", "/dev/zero")), -1, devices)) {
            assertEquals(new BwrapCommand.Descriptors(10, false, List.of(), List.of(11, 12)), paths.inChild(10));
            first = paths.descriptors();
        }
        try (HostPaths paths = HostPaths.open(spec(dir, List.of(), List.of("/dev/zero", "/dev/null")), -1, devices)) {
            List<Integer> again = paths.descriptors();
            assertEquals(List.of(first.get(2), first.get(1)), again.subList(1, 3), "each device opened once, kept after its run");
            assertEquals(Libc.S_IFCHR, Libc.stat(again.get(1), "", Libc.AT_EMPTY_PATH).type(), "still open");
        }
        try (HostPaths paths = HostPaths.open(spec(dir, List.of(), List.of("/dev/tty")), -1, devices)) {
            assertEquals(2, paths.descriptors().size());
        }
        assertEquals(2, devices.kept(), "only the kernel's memory devices are kept, not /dev/tty");
        assertTrue(refused(spec(dir, List.of(), List.of("/dev/shm"))).notAllowed, "a directory is not a device");
        assertTrue(refused(spec(dir, List.of(), List.of("/dev/stdin"))).notAllowed);
    }

    @Test
    void aDirectoryIsNeverAStdioFile() {
        assertTrue(assertThrows(HostPaths.Refused.class, () -> HostPaths.openStdio(-1, "stdin.file", "/", Libc.O_RDONLY, List.of())).notAllowed);
    }

    @Test
    void whatCannotBeOpenedIsTheClientsError() throws Exception {
        assertFalse(refused(spec(dir, List.of(new RunSpec.Mount(dir.resolve("missing").toString(), "/m", true)), List.of())).notAllowed);
        assertFalse(refused(spec(dir, List.of(), List.of("/dev/bwrapd-no-such-device"))).notAllowed);
        int fd = HostPaths.openStdio(-1, "stdin.file", dir.resolve("file").toString(), Libc.O_RDONLY, List.of());
        Libc.close(fd);
    }

    /** A relative path (the Buildbarn runner's) stays beneath its directory and follows no link. */
    @Test
    void relativePathsStayBeneathTheirDirectoryThroughNoLink() throws Exception {
        Path base = Files.createDirectories(dir.resolve("base/sub"));
        Files.createSymbolicLink(base.resolve("out"), dir);
        Files.createSymbolicLink(base.resolve("in"), base);
        int baseFd = Libc.open(base.getParent().toString(), Libc.O_PATH | Libc.O_DIRECTORY, 0);
        try {
            Libc.close(HostPaths.openBeneath(baseFd, "root", "sub", Libc.O_PATH | Libc.O_DIRECTORY, 0));
            int created = HostPaths.openStdio(baseFd, "stdout.file", "sub/stdout", Libc.O_WRONLY | Libc.O_CREAT | Libc.O_TRUNC, List.of());
            Libc.close(created);
            assertTrue(Files.isRegularFile(base.resolve("stdout")));
            for (String escape : List.of("../escaped", "sub/../../escaped", "sub/out/escaped", "sub/out", "sub/in", "sub/in/stdout")) {
                HostPaths.Refused e = assertThrows(HostPaths.Refused.class,
                        () -> Libc.close(HostPaths.openStdio(baseFd, "stdout.file", escape, Libc.O_WRONLY | Libc.O_CREAT, List.of())), escape);
                assertTrue(e.notAllowed, escape + ": " + e.getMessage());
            }
            assertFalse(Files.exists(dir.resolve("escaped")), "nothing was created outside");
            assertFalse(assertThrows(HostPaths.Refused.class, () -> HostPaths.openBeneath(baseFd, "root", "missing", Libc.O_PATH, 0)).notAllowed);
            assertTrue(assertThrows(HostPaths.Refused.class, () -> HostPaths.openBeneath(-1, "root", "sub", Libc.O_PATH, 0)).notAllowed,
                    "without a directory a relative path is refused");
        } finally {
            Libc.close(baseFd);
            for (String name : List.of("sub/stdout", "sub/out", "sub/in", "sub", "")) Files.deleteIfExists(base.getParent().resolve(name));
        }
    }

    /**
     * Review finding: an earlier run planted {@code in.txt -> secret} and {@code logs -> victim} in
     * its root, and a later run's client named {@code ROOT/in.txt} as stdin and
     * {@code ROOT/logs/out.txt} as stdout: the command read the secret and the victim's file was
     * overwritten. No link inside the run's root is followed now, however the path gets there;
     * the host's own links still are.
     */
    @Test
    void aStdioFileIsReachedThroughNoLinkInTheRunsRoot() throws Exception {
        Path tree = Files.createTempDirectory("bwrapd-stdio-tree-");
        try {
            Path root = Files.createDirectories(tree.resolve("root/sub"));
            Path victim = Files.createDirectories(tree.resolve("victim"));
            Files.writeString(victim.resolve("out.txt"), "precious");
            Files.writeString(tree.resolve("secret"), "secret");
            Files.createSymbolicLink(root.getParent().resolve("in.txt"), tree.resolve("secret"));
            Files.createSymbolicLink(root.getParent().resolve("logs"), victim);
            Files.createSymbolicLink(root.resolve("deeper"), Path.of("../logs"));
            Files.createSymbolicLink(tree.resolve("into-root"), root); // the host's link, into the root's sub
            Files.createSymbolicLink(tree.resolve("host-link"), victim); // the host's own link, outside the root
            Libc.FileStat rootStat;
            int rootFd = Libc.open(root.getParent().toString(), Libc.O_PATH | Libc.O_DIRECTORY, 0);
            try {
                rootStat = Libc.stat(rootFd, "", Libc.AT_EMPTY_PATH);
            } finally {
                Libc.close(rootFd);
            }
            int write = Libc.O_WRONLY | Libc.O_CREAT | Libc.O_TRUNC;
            String r = root.getParent().toString();
            for (String[] c : new String[][] {{r + "/in.txt", "in"}, {r + "/logs/out.txt", "out"}, {r + "/sub/deeper/out.txt", "out"},
                    {tree + "/into-root/deeper/out.txt", "out"}, {r + "/sub/../logs/new.txt", "out"}}) {
                HostPaths.Refused e = assertThrows(HostPaths.Refused.class, () -> Libc.close(HostPaths.openStdio(-1, "stdio.file", c[0],
                        c[1].equals("in") ? Libc.O_RDONLY : write, List.of(rootStat))), c[0]);
                assertTrue(e.notAllowed && e.getMessage().contains("in the run's root"), c[0] + ": " + e.getMessage());
            }
            assertEquals("precious", Files.readString(victim.resolve("out.txt")));
            assertEquals(List.of("out.txt"), Files.list(victim).map(p -> p.getFileName().toString()).toList());
            // Without the root given (the host's root), and for the host's own links, links are followed as before.
            Libc.close(HostPaths.openStdio(-1, "stdin.file", r + "/in.txt", Libc.O_RDONLY, List.of()));
            Libc.close(HostPaths.openStdio(-1, "stdout.file", tree + "/host-link/by-host-link.txt", write, List.of(rootStat)));
            assertTrue(Files.isRegularFile(victim.resolve("by-host-link.txt")));
            Libc.close(HostPaths.openStdio(-1, "stdout.file", tree + "/into-root/plain.txt", write, List.of(rootStat)));
            assertTrue(Files.isRegularFile(root.resolve("plain.txt")), "a plain file in the root, reached by the host's link");
        } finally {
            try (var walk = Files.walk(tree)) {
                for (Path p : walk.sorted(java.util.Comparator.reverseOrder()).toList()) Files.delete(p);
            }
        }
    }

    /** A device or FIFO named as an output is refused before it is opened for writing (its open alone can act). */
    @Test
    void anOutputThatIsNotARegularFileIsRefusedBeforeItIsOpened() throws Exception {
        Path fifo = dir.resolve("fifo");
        assertEquals(0, new ProcessBuilder("mkfifo", fifo.toString()).inheritIO().start().waitFor());
        try {
            for (String path : List.of(fifo.toString(), "/dev/null", "/dev/tty")) {
                HostPaths.Refused e = assertThrows(HostPaths.Refused.class,
                        () -> Libc.close(HostPaths.openStdio(-1, "stdout.file", path, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_TRUNC, List.of())));
                assertTrue(e.getMessage().contains("is not a regular file"), path + ": " + e.getMessage());
            }
        } finally {
            Files.delete(fifo);
        }
    }
}
