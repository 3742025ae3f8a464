package dev.bwrapd.sandbox;

import dev.bwrapd.it.TestRoot;
import dev.bwrapd.sandbox.RootPaths.Tree;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Chroot-style paths: normalization, link resolution that stays in the root, command lookup, safe mkdir. */
class RootPathsTest {
    /** Not JUnit's @TempDir, which logs a warning for every link that points out of it. */
    Path tmp;
    Path root;
    /** A host directory outside the root, with things a lookup or mkdir must never reach. */
    Path outside;

    @BeforeEach
    void buildRoot() throws IOException {
        tmp = Files.createTempDirectory("bwrapd-rootpaths-");
        root = Files.createDirectory(tmp.resolve("root"));
        outside = Files.createDirectory(tmp.resolve("outside"));
        executable(outside.resolve("hosttool"));
        Files.createDirectories(outside.resolve("etc"));
        Files.writeString(outside.resolve("etc/only-outside"), "host");

        Files.createDirectories(root.resolve("bin"));
        Files.createDirectories(root.resolve("usr/bin"));
        Files.createDirectories(root.resolve("usr/lib"));
        Files.createDirectories(root.resolve("etc"));
        Files.createDirectories(root.resolve("work"));
        executable(root.resolve("bin/busybox"));
        Files.createSymbolicLink(root.resolve("bin/sh"), Path.of("busybox"));                 // relative, same dir
        Files.createSymbolicLink(root.resolve("usr/bin/env"), Path.of("/bin/busybox"));       // absolute: the root's /bin
        Files.createSymbolicLink(root.resolve("usr/bin/upsh"), Path.of("../../bin/sh"));      // relative, to a link
        Files.createSymbolicLink(root.resolve("lib"), Path.of("usr/lib"));                    // merged-usr style dir link
        Files.createSymbolicLink(root.resolve("sbin"), Path.of("/bin"));                      // absolute dir link
        Files.createSymbolicLink(root.resolve("climb"), Path.of("../../../../../../.."));     // .. stops at the root
        Files.createSymbolicLink(root.resolve("hostlink"), outside);                           // absolute host path
        Files.createSymbolicLink(root.resolve("bin/hosttool"), outside.resolve("hosttool"));   // a host binary, by absolute path
        Files.createSymbolicLink(root.resolve("bin/loop1"), Path.of("loop2"));
        Files.createSymbolicLink(root.resolve("bin/loop2"), Path.of("loop1"));
        Files.createSymbolicLink(root.resolve("bin/dangling"), Path.of("nothing-here"));
        Files.writeString(root.resolve("etc/passwd"), "root:x:0:0::/:/bin/sh\n");
        Files.writeString(root.resolve("bin/notexec"), "data");
        Files.createDirectories(root.resolve("usr/bin/adir"));
        executable(root.resolve("work/run.sh"));
    }

    @AfterEach
    void removeRoot() throws IOException {
        TestRoot.deleteTree(tmp);
    }

    static void executable(Path file) throws IOException {
        Files.writeString(file, "#!/bin/sh\n");
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rwxr-xr-x"));
    }

    // ----- normalize -----

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource(nullValues = "ESCAPES", value = {
            "/, /",
            "/., /",
            "//, /",
            "/a/./b/../c, /a/c",
            "//a//b/, /a/b",
            "/a/b/.., /a",
            "/a/.., /",
            "/.., ESCAPES",
            "/../a, ESCAPES",
            "/a/../.., ESCAPES",
            "/a/b/../../../c, ESCAPES",
            "/..., /...",
            "/a/..b, /a/..b",
    })
    void normalize(String path, String expected) {
        assertEquals(Optional.ofNullable(expected), RootPaths.normalize(path));
    }

    // ----- resolve -----

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource(nullValues = "MISSING", value = {
            "/bin/busybox, bin/busybox",
            "/bin/sh, bin/busybox",
            "/usr/bin/env, bin/busybox",
            "/usr/bin/upsh, bin/busybox",
            "/lib, usr/lib",
            "/lib/../etc/passwd, MISSING",
            "/lib/../bin/env, bin/busybox",
            "/sbin/sh, bin/busybox",
            "/climb/bin/sh, bin/busybox",
            "/climb/climb/etc/passwd, etc/passwd",
            "/../../bin/sh, bin/busybox",
            "/bin/../../../etc/passwd, etc/passwd",
            "/hostlink/hosttool, MISSING",
            "/hostlink/etc/only-outside, MISSING",
            "/bin/hosttool, MISSING",
            "/bin/loop1, MISSING",
            "/bin/dangling, MISSING",
            "/no/such/file, MISSING",
            "/, ''",
    })
    void resolveStaysInTheRoot(String path, String expected) {
        Optional<Path> resolved = RootPaths.resolve(Tree.at(root), path);
        if (expected == null) {
            assertEquals(Optional.empty(), resolved, () -> path + " must not resolve");
        } else {
            assertEquals(Optional.of(expected.isEmpty() ? root : root.resolve(expected)), resolved);
        }
    }

    /** Sorted, and nothing that one kept already covers; a sibling whose name only starts the same stays. */
    @Test
    void outermostDropsWhatLiesBeneathAnother() {
        assertEquals(List.of("/a", "/a-b", "/run"), RootPaths.outermost(List.of("/run/x", "/a/b", "/a-b", "/run", "/a", "/a")));
        assertEquals(List.of(), RootPaths.outermost(List.of()));
    }

    @Test
    void absoluteLinkToAHostPathResolvesInsideTheRoot() throws IOException {
        // hostlink -> <outside>; the same path spelled inside the root exists there only if the root has it.
        Path mirrored = root.resolve(outside.toString().substring(1));
        Files.createDirectories(mirrored);
        executable(mirrored.resolve("hosttool"));
        assertEquals(Optional.of(mirrored.resolve("hosttool")), RootPaths.resolve(Tree.at(root), "/hostlink/hosttool"));
        assertTrue(RootPaths.hasCommand(Tree.at(root), "hosttool", "/", "/hostlink"));
    }

    // ----- hasCommand -----

    @ParameterizedTest(name = "{0} with PATH={1} in {2}: {3}")
    @CsvSource(nullValues = "UNSET", value = {
            "sh, /bin, /, true",
            "sh, /usr/bin, /, false",
            "sh, /nowhere:/usr/bin:/bin, /, true",
            "sh, UNSET, /, true",
            "env, /usr/bin, /, true",
            "upsh, /usr/bin, /, true",
            "sh, /sbin, /, true",
            "sh, /climb/bin, /, true",
            "busybox, /lib/../bin, /, false",
            "env, /lib/../bin, /, true",
            "hosttool, /bin, /, false",
            "hosttool, /hostlink, /, false",
            "notexec, /bin, /, false",
            "adir, /usr/bin, /, false",
            "loop1, /bin, /, false",
            "dangling, /bin, /, false",
            "run.sh, /bin, /work, false",
            "run.sh, :/bin, /work, true",
            "run.sh, /bin:, /work, true",
            "run.sh, /bin::/usr/bin, /work, true",
            "run.sh, '', /work, true",
            "run.sh, ., /work, true",
            "run.sh, work, /, true",
            "run.sh, :/bin, /, false",
            "/bin/sh, '', /, true",
            "/usr/bin/env, '', /, true",
            "/bin/nope, /bin, /, false",
            "/bin/hosttool, /bin, /, false",
            "./run.sh, /bin, /work, true",
            "./run.sh, /bin, /, false",
            "work/run.sh, /nowhere, /, true",
            "../bin/sh, /nowhere, /work, true",
    })
    void hasCommand(String command, String path, String cwd, boolean expected) {
        assertEquals(expected, RootPaths.hasCommand(Tree.at(root), command, cwd, path));
    }

    @Test
    void hostCommandsAreNotFoundInAnEmptyRoot() throws IOException {
        Path empty = Files.createDirectory(tmp.resolve("empty"));
        assertFalse(RootPaths.hasCommand(Tree.at(empty), "sh", "/", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"));
        assertFalse(RootPaths.hasCommand(Tree.at(empty), "/bin/sh", "/", "/bin"));
        assertTrue(RootPaths.hasCommand(Tree.at(Path.of("/")), "sh", "/", "/usr/bin:/bin"));
    }

    // ----- MountPoints: where bwrap creates each destination, links resolved as in the sandbox -----

    String place(String path) throws HostPaths.Refused {
        return new MountPoints(Tree.at(root)).place(path);
    }

    @Test
    void placesWithoutLinksAreUnchanged() throws Exception {
        for (String path : List.of("/dev", "/dev/null", "/tmp", "/a/b/c", "/etc/passwd", "/etc/passwd/below-a-file")) {
            assertEquals(path, place(path));
        }
    }

    /**
     * Review finding: a look that failed otherwise than "not there" (a path too long for bwrapd's
     * spelling of it, which bwrap's shorter one still fits; a directory bwrapd may not search,
     * which bwrap in its user namespace may) was taken as "no link here", and bwrap followed the
     * link it then met out of the root. It refuses the destination now.
     */
    @Test
    void aPlaceThatCannotBeLookedAtIsRefused() throws Exception {
        String deep = ("/" + "d".repeat(250)).repeat(17) + "/null"; // over PATH_MAX below the root's path
        HostPaths.Refused e = org.junit.jupiter.api.Assertions.assertThrows(HostPaths.Refused.class, () -> place(deep));
        assertTrue(e.notAllowed && e.getMessage().contains("cannot look at"), e.getMessage());
    }

    @Test
    void relativeLinksAreFollowedInsideTheRoot() throws Exception {
        assertEquals("/usr/lib/modules/x", place("/lib/modules/x"));          // merged /usr
        assertEquals("/a/b", place("/climb/a/b"));                            // .. stops at the root
        assertEquals("/bin/nothing-here/x", place("/bin/dangling/x"));        // a dangling link: its target is created
    }

    @Test
    void absoluteLinksStartAgainAtTheRoot() throws Exception {
        assertEquals("/bin/x", place("/sbin/x"));
        // A link to a host path means that path inside the root: bwrap creates it there, never on the host.
        assertEquals(outside + "/null", place("/hostlink/null"));
        Files.createSymbolicLink(root.resolve("dev"), Path.of("/oldroot" + outside));
        assertEquals("/oldroot" + outside + "/null", place("/dev/null"));
        assertFalse(Files.exists(outside.resolve("null")));
    }

    @Test
    void linkLoopsAreRefused() {
        HostPaths.Refused refused = org.junit.jupiter.api.Assertions.assertThrows(HostPaths.Refused.class, () -> place("/bin/loop1/x"));
        assertTrue(refused.notAllowed);
    }

    @Test
    void destinationsBelowProcOrThroughALinkIntoItAreRefused() throws Exception {
        Files.createDirectories(root.resolve("src"));
        Files.createSymbolicLink(root.resolve("dev"), Path.of("/proc/self/fd"));
        Files.createSymbolicLink(root.resolve("evil"), Path.of("../proc/self/root/oldroot"));
        RunSpec.Mount mount = new RunSpec.Mount("/srv", "/evil/x", true);
        for (RunSpec spec : List.of(spec(List.of("/dev/null"), List.of()), spec(List.of(), List.of(mount)),
                spec(List.of(), List.of(new RunSpec.Mount("/srv", "/proc/x", true))))) {
            HostPaths.Refused refused = org.junit.jupiter.api.Assertions.assertThrows(HostPaths.Refused.class,
                    () -> plan(spec, root, List.of(root.resolve("src")), false));
            assertTrue(refused.notAllowed, refused.getMessage());
        }
    }

    @Test
    void destinationsBelowAnEarlierMountAreResolvedInItsSource() throws Exception {
        Path source = Files.createDirectory(tmp.resolve("source"));
        Files.createSymbolicLink(source.resolve("up"), Path.of("/etc"));
        Files.createSymbolicLink(root.resolve("tmp"), Path.of("/usr"));
        BwrapCommand.Places places = plan(spec(List.of(), List.of(new RunSpec.Mount("/s", "/a", true),
                new RunSpec.Mount("/s", "/a/up/x", true), new RunSpec.Mount("/s", "/tmp/y/z", true))), root, List.of(source, source, source), false);
        // /a/up is a link in the mount's source: an absolute one means the sandbox's /etc.
        // /tmp, a link to /usr in the root, is where bwrap mounts the tmpfs: below it nothing is resolved.
        assertEquals("/usr", places.tmp());
        assertEquals(List.of("/a", "/etc/x", "/usr/y/z"), places.mounts());
    }

    /**
     * Review finding: with the host's / as root, mount points were given to bwrap as spelled, and a
     * link planted in the Buildbarn runner's temporary directory (bound at /tmp, where the input
     * root's mount point lies when the build directory is below /tmp) had bwrap create directories
     * anywhere on the host. A link in a mount's source is refused there; the root's own links are
     * resolved as for any root; a hidden path is a fresh tmpfs, where nothing is looked at.
     */
    @Test
    void withTheHostRootALinkInAMountsSourceIsRefused() throws Exception {
        Path tmpSource = Files.createDirectory(tmp.resolve("action-tmp"));
        Files.createSymbolicLink(tmpSource.resolve("build"), Path.of("/oldroot" + outside));
        RunSpec.Mount atTmp = new RunSpec.Mount("/s", "/tmp", false);
        HostPaths.Refused refused = org.junit.jupiter.api.Assertions.assertThrows(HostPaths.Refused.class, () -> plan(
                spec(List.of(), List.of(atTmp, new RunSpec.Mount("/s", "/tmp/build/a/root", false))), root, List.of(tmpSource, tmpSource), true));
        assertTrue(refused.notAllowed);
        assertTrue(refused.getMessage().contains("/tmp/build is a symbolic link"), refused.getMessage());
        assertEquals(List.of("/tmp", "/tmp/plain/a/root"), plan(spec(List.of(), List.of(atTmp,
                new RunSpec.Mount("/s", "/tmp/plain/a/root", false))), root, List.of(tmpSource, tmpSource), true).mounts());
        // The root's own links: resolved, as for any root (the sandbox's /sbin is its /bin).
        assertEquals(List.of("/bin/x"), plan(spec(List.of(), List.of(new RunSpec.Mount("/s", "/sbin/x", false))), root,
                List.of(tmpSource), true).mounts());
        // Without the host root a link in a source is resolved, as before.
        assertEquals(List.of("/tmp", "/oldroot" + outside + "/a/root"), plan(spec(List.of(), List.of(atTmp,
                new RunSpec.Mount("/s", "/tmp/build/a/root", false))), root, List.of(tmpSource, tmpSource), false).mounts());
        assertFalse(Files.exists(outside.resolve("a")));
    }

    @Test
    void aTargetThatLeadsToTheRootIsRefused() throws Exception {
        Files.createSymbolicLink(root.resolve("top"), Path.of("/"));
        assertThrows(() -> plan(spec(List.of(), List.of(new RunSpec.Mount("/s", "/top", true))), root, List.of(root), false));
    }

    static void assertThrows(org.junit.jupiter.api.function.Executable executable) {
        org.junit.jupiter.api.Assertions.assertThrows(HostPaths.Refused.class, executable);
    }

    static RunSpec spec(List<String> devices, List<RunSpec.Mount> mounts) {
        return new RunSpec(List.of("true"), Path.of("/r"), null, "/", java.util.Map.of(), false, false, "h", 0, 0, false,
                mounts, devices, false, false, new RunSpec.Stdin.Null(), new RunSpec.Output.Capture(), new RunSpec.Output.Capture(),
                0, null, 0, false, true, List.of(), null, null, dev.bwrapd.cgroup.Limits.NONE, List.of(), true);
    }

    // ----- createDirectories -----

    @Test
    void createsMissingDirectoriesAndReportsThem() throws IOException {
        List<String> created = RootPaths.createDirectories(root, List.of("build", "src", "deep"));
        assertEquals(List.of("build", "build/src", "build/src/deep"), created);
        assertTrue(Files.isDirectory(root.resolve("build/src/deep"), LinkOption.NOFOLLOW_LINKS));
        assertEquals(List.of(), RootPaths.createDirectories(root, List.of("build", "src", "deep")));
    }

    @Test
    void existingDirectoriesAreNotReported() throws IOException {
        assertEquals(List.of("usr/lib/x"), RootPaths.createDirectories(root, List.of("usr", "lib", "x")));
        assertEquals(List.of(), RootPaths.createDirectories(root, List.of()));
    }

    @Test
    void neverCreatesThroughAnAbsoluteLinkOutOfTheRoot() throws IOException {
        // root/hostlink -> <outside> (a host directory the sandbox must never touch)
        List<String> created = RootPaths.createDirectories(root, List.of("hostlink", "b", "c"));
        assertEquals(List.of(), created);
        assertFalse(Files.exists(outside.resolve("b"), LinkOption.NOFOLLOW_LINKS), "created a directory outside the root");
    }

    @Test
    void neverCreatesThroughARelativeLinkOutOfTheRoot() throws IOException {
        Files.createSymbolicLink(root.resolve("work/up"), Path.of("../../outside"));
        assertTrue(Files.isDirectory(root.resolve("work/up")), "test setup: the link must reach the host directory");
        List<String> created = RootPaths.createDirectories(root, List.of("work", "up", "b"));
        assertEquals(List.of(), created);
        assertFalse(Files.exists(outside.resolve("b"), LinkOption.NOFOLLOW_LINKS), "created a directory outside the root");
    }

    @Test
    void aLinkAsTheLastNameIsNotFollowedEither() throws IOException {
        Files.createSymbolicLink(root.resolve("cwdlink"), outside.resolve("newdir"));
        assertEquals(List.of(), RootPaths.createDirectories(root, List.of("cwdlink")));
        assertFalse(Files.exists(outside.resolve("newdir"), LinkOption.NOFOLLOW_LINKS));
    }

    @Test
    void aFileInTheWayStopsQuietly() throws IOException {
        assertEquals(List.of(), RootPaths.createDirectories(root, List.of("etc", "passwd", "x")));
        assertTrue(Files.isRegularFile(root.resolve("etc/passwd")));
    }

    // ----- the root journal, kept out of the sandbox -----

    /** In a tree the sandbox can write, from the first directory on the way: it could move the journal's parent aside. */
    @Test
    void theJournalSeenThroughTheRootIsCoveredWhereTheSandboxSeesIt() throws HostPaths.Refused {
        RunSpec spec = spec(List.of(), List.of());
        List<List<String>> below = List.of(List.of("state/bwrapd"));
        assertEquals(List.of("/state"), MountPoints.plan(spec, Tree.at(root), List.of(), false, List.of(), below).journal());
    }

    /** A read-only root too: bwrap's --remount-ro / leaves a mount inside the root (say a /home bound there) writable. */
    @Test
    void theJournalSeenThroughAReadOnlyRootIsCoveredFromTheFirstDirectoryOnTheWay() throws HostPaths.Refused {
        RunSpec writable = spec(List.of(), List.of());
        RunSpec readOnly = new RunSpec(writable.command(), writable.root(), null, "/", java.util.Map.of(), false, true, "h", 0, 0, false,
                List.of(), List.of(), false, false, new RunSpec.Stdin.Null(), new RunSpec.Output.Capture(), new RunSpec.Output.Capture(),
                0, null, 0, false, true, List.of(), null, null, dev.bwrapd.cgroup.Limits.NONE, List.of(), true);
        assertEquals(List.of("/home"), MountPoints.plan(readOnly, Tree.at(root), List.of(), false, List.of(), List.of(List.of("home/u/.xdg/bwrapd"))).journal());
    }

    @Test
    void theJournalSeenThroughAMountIsCoveredBelowItsTarget() throws HostPaths.Refused {
        RunSpec spec = spec(List.of(), List.of(new RunSpec.Mount("/s", "/a/state", false)));
        List<List<String>> below = List.of(List.of(), List.of("bwrapd"));
        assertEquals(List.of("/a/state/bwrapd"), MountPoints.plan(spec, Tree.at(root), List.of(Tree.at(outside)), false, List.of(), below).journal());
        List<List<String>> deeper = List.of(List.of(), List.of("user/1000/bwrapd"));
        assertEquals(List.of("/a/state/user"), MountPoints.plan(spec, Tree.at(root), List.of(Tree.at(outside)), false, List.of(), deeper).journal());
        RunSpec readOnly = spec(List.of(), List.of(new RunSpec.Mount("/s", "/a/state", true)));
        assertEquals(List.of("/a/state/user/1000/bwrapd"), MountPoints.plan(readOnly, Tree.at(root), List.of(Tree.at(outside)), false, List.of(), deeper).journal(),
                "nothing on the way can be moved: the journal alone");
    }

    /** A mount target or device in the place the journal's tmpfs covers: bwrap would make it in the journal first. */
    @Test
    void aDestinationWhereTheJournalIsHiddenIsRefused() {
        List<List<String>> below = List.of(List.of("state/bwrapd"), List.of());
        RunSpec inside = spec(List.of(), List.of(new RunSpec.Mount("/s", "/state/bwrapd/x", false)));
        HostPaths.Refused refused = org.junit.jupiter.api.Assertions.assertThrows(HostPaths.Refused.class,
                () -> MountPoints.plan(inside, Tree.at(root), List.of(Tree.at(outside)), false, List.of(), below));
        assertTrue(refused.getMessage().contains("mounts[0].target: /state/bwrapd/x lies where the sandbox would see a root journal"),
                refused.getMessage());
        RunSpec beside = spec(List.of(), List.of(new RunSpec.Mount("/s", "/stateful/x", false)));
        assertDoesNotThrow(() -> MountPoints.plan(beside, Tree.at(root), List.of(Tree.at(outside)), false, List.of(), below));
    }

    /** A cwd there too: the sandbox would start in the journal's tmpfs, and bwrapd would make the cwd in the journal first. */
    @Test
    void aCwdWhereTheJournalIsHiddenIsRefused() {
        List<List<String>> below = List.of(List.of("state/bwrapd"));
        for (String cwd : List.of("/state/bwrapd/x", "/state/bwrapd", "/state", "/./state/../state/bwrapd/")) {
            HostPaths.Refused refused = org.junit.jupiter.api.Assertions.assertThrows(HostPaths.Refused.class,
                    () -> MountPoints.plan(withCwd(spec(List.of(), List.of()), cwd), Tree.at(root), List.of(), false, List.of(), below), cwd);
            assertTrue(refused.getMessage().contains("cwd: " + cwd + " lies where the sandbox would see a root journal"), refused.getMessage());
        }
        assertDoesNotThrow(() -> MountPoints.plan(withCwd(spec(List.of(), List.of()), "/stateful"), Tree.at(root), List.of(), false, List.of(), below));
    }

    /** Through a link in the root too: bwrap's chdir follows it to the journal's tmpfs. */
    @Test
    void aCwdThroughALinkToWhereTheJournalIsHiddenIsRefused() throws IOException {
        Files.createSymbolicLink(root.resolve("linked"), Path.of("/state/bwrapd"));
        List<List<String>> below = List.of(List.of("state/bwrapd"));
        HostPaths.Refused refused = org.junit.jupiter.api.Assertions.assertThrows(HostPaths.Refused.class,
                () -> MountPoints.plan(withCwd(spec(List.of(), List.of()), "/linked/x"), Tree.at(root), List.of(), false, List.of(), below));
        assertTrue(refused.getMessage().contains("cwd: /linked/x lies where the sandbox would see a root journal"), refused.getMessage());
    }

    /**
     * A journal the sandbox would not see (bwrap's /tmp covers the root's /tmp) is still in the
     * root on the host, where bwrapd makes a missing cwd, by its names: not there.
     */
    @Test
    void aCwdThatBwrapdWouldMakeInAJournalOfTheRootIsRefused() {
        List<List<String>> below = List.of(List.of("tmp/bwrapd-0"));
        HostPaths.Refused refused = org.junit.jupiter.api.Assertions.assertThrows(HostPaths.Refused.class,
                () -> MountPoints.plan(withCwd(spec(List.of(), List.of()), "/tmp/bwrapd-0/x"), Tree.at(root), List.of(), false, List.of(), below));
        assertTrue(refused.getMessage().contains("cwd: /tmp/bwrapd-0/x lies in a root journal of bwrapd"), refused.getMessage());
        assertDoesNotThrow(() -> MountPoints.plan(withCwd(spec(List.of(), List.of()), "/tmp/x"), Tree.at(root), List.of(), false, List.of(), below));
    }

    private static RunSpec withCwd(RunSpec spec, String cwd) {
        return new RunSpec(spec.command(), spec.root(), null, cwd, java.util.Map.of(), false, false, "h", 0, 0, false,
                spec.mounts(), spec.devices(), false, false, new RunSpec.Stdin.Null(), new RunSpec.Output.Capture(), new RunSpec.Output.Capture(),
                0, null, 0, false, true, List.of(), null, null, dev.bwrapd.cgroup.Limits.NONE, List.of(), true);
    }

    @Test
    void theJournalOfATreeThatALaterMountCoversIsNotSeen() throws HostPaths.Refused {
        // The root shows it at /state/bwrapd, but a mount at /state covers that; on the host's root, /tmp is a tmpfs of its own.
        RunSpec spec = spec(List.of(), List.of(new RunSpec.Mount("/s", "/state", false)));
        List<List<String>> below = List.of(List.of("state/bwrapd"), List.of());
        assertEquals(List.of(), MountPoints.plan(spec, Tree.at(root), List.of(Tree.at(outside)), false, List.of(), below).journal());
        RunSpec onHost = spec(List.of(), List.of());
        assertEquals(List.of(), MountPoints.plan(onHost, Tree.at(Path.of("/")), List.of(), true, List.of(), List.of(List.of("tmp/bwrapd-0"))).journal());
        assertEquals(List.of(), MountPoints.plan(onHost, Tree.at(Path.of("/")), List.of(), true, List.of("/run"), List.of(List.of("run/bwrapd"))).journal());
    }

    @Test
    void aLookBelowTheRootsDescriptorSeesWhatItsPathShows() throws Exception {
        int fd = dev.bwrapd.process.Libc.open(root.toString(), dev.bwrapd.process.Libc.O_PATH | dev.bwrapd.process.Libc.O_DIRECTORY, 0);
        try {
            MountPoints view = new MountPoints(Tree.of(fd));
            for (String name : List.of("bin/busybox", "bin/sh", "lib", "etc", "nothing", "bin/busybox/below")) {
                var seen = view.lstat(Tree.of(fd), List.of(name.split("/")), "/" + name);
                var byPath = dev.bwrapd.process.Libc.statIfPresent(dev.bwrapd.process.Libc.AT_FDCWD, root + "/" + name,
                        dev.bwrapd.process.Libc.AT_SYMLINK_NOFOLLOW);
                assertEquals(byPath == null, seen == null, name);
                if (byPath != null) {
                    assertTrue(byPath.sameFile(seen), name);
                    assertEquals(byPath.type(), seen.type(), name);
                }
            }
        } finally {
            dev.bwrapd.process.Libc.close(fd);
        }
    }

    /** A tree's descriptor is what a look below it goes through: its path, here one that names nothing, is not walked. */
    @Test
    void aLookBelowADescriptorGoesThroughIt() throws Exception {
        int fd = dev.bwrapd.process.Libc.open(root.toString(), dev.bwrapd.process.Libc.O_PATH | dev.bwrapd.process.Libc.O_DIRECTORY, 0);
        try {
            Tree throughFd = new Tree(tmp.resolve("nothing-here"), fd);
            var seen = new MountPoints(throughFd).lstat(throughFd, List.of("bin", "busybox"), "/bin/busybox");
            assertTrue(seen != null && seen.type() == dev.bwrapd.process.Libc.S_IFREG, "not seen through the descriptor: " + seen);
            Tree byPath = Tree.at(tmp.resolve("nothing-here"));
            assertEquals(null, new MountPoints(byPath).lstat(byPath, List.of("bin", "busybox"), "/bin/busybox"));
        } finally {
            dev.bwrapd.process.Libc.close(fd);
        }
    }

    /** As a run plans: the hidden paths decided as HostPaths decides them. */
    private static BwrapCommand.Places plan(RunSpec spec, Path root, List<Path> mountSources, boolean hostRoot) throws HostPaths.Refused {
        return MountPoints.plan(spec, Tree.at(root), mountSources.stream().map(Tree::at).toList(), hostRoot, MountPoints.hidden(spec, hostRoot));
    }
}
