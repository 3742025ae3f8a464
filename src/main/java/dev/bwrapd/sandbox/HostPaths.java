package dev.bwrapd.sandbox;

import dev.bwrapd.cleanup.JournalPlace;
import dev.bwrapd.process.Libc;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The host paths of a request (root, mount sources, devices), opened once by bwrapd and checked
 * on the open descriptor; bwrap then gets the descriptor, never the path. A path is a string
 * that bwrap would resolve again, later, with its own descriptors: {@code /proc/self/fd/0} or
 * {@code /dev/stdin} meant bwrapd's stdin when checked and bwrap's (a directory chosen by the
 * request) when mounted, and any link could be swapped in between.
 *
 * <p>The rules, each checked on the descriptor:
 * <ul>
 * <li>No path may pass through a magic link ({@code /proc/PID/fd/N}, {@code /proc/PID/root},
 *     {@code /dev/stdin}, {@code /dev/fd/N}...): such a path names some process's descriptor,
 *     bwrapd's own included. Refused (openat2 {@code RESOLVE_NO_MAGICLINKS}), not resolved: a
 *     client that means a file can name the file.</li>
 * <li>Nothing on a procfs: its magic links would hand the command other processes' files and
 *     roots, whatever the mount's {@code readOnly}.</li>
 * <li>The root is a directory; it is the host root when it is the same file (device and inode) as
 *     bwrapd's {@code /}, however it was spelled (a bind mount of {@code /} included).</li>
 * <li>A mount source is never the host root: bound recursively, it would bring every mount of the
 *     host along, /run and the host's procfs among them, which {@code root: "/"} hides
 *     (MountPoints.hiddenOfTheHostRoot; a review mounted it read-only at /srv and reached both).</li>
 * <li>A device is a character or block device whose real path is under {@code /dev/}.</li>
 * <li>A relative path (which a caller with a directory of its own gives, the Buildbarn runner's
 *     build directory) is resolved beneath that directory's descriptor and through no symbolic
 *     link at all (openat2 {@code RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS}): it cannot leave it.</li>
 * </ul>
 */
public final class HostPaths implements AutoCloseable {
    /** A host path that may not be used ({@code notAllowed}), or that cannot be opened. */
    public static final class Refused extends Exception {
        public final boolean notAllowed;

        Refused(boolean notAllowed, String message) {
            super(message);
            this.notAllowed = notAllowed;
        }

        /** As the sandbox layer reports it: -32005 (not allowed) or -32602 (invalid) on the wire. */
        SandboxException asSandboxException() {
            return notAllowed ? new SandboxException.NotAllowed(getMessage()) : new SandboxException.Invalid(getMessage());
        }
    }

    /**
     * The host's memory devices ({@link RunSpec#DEFAULT_DEVICES}: null, zero, full, random,
     * urandom), each opened and checked on first use and then kept open for the helper's life:
     * the kernel defines them, no request or sandbox can change them, and opening and checking
     * one costs four system calls, five devices in every run. Any other device is opened for its
     * run alone: a disk or a link under /dev may be replaced (hot-plug) and must be looked up anew.
     */
    public static final class Devices {
        private final Map<String, Integer> kept = new HashMap<>();

        /** The descriptor of device {@code path} for {@code run}: a kept one, or one {@code run} owns. */
        synchronized int descriptor(String field, String path, HostPaths run) throws Refused {
            if (!RunSpec.DEFAULT_DEVICES.contains(path)) return run.own(openDevice(field, path));
            Integer fd = kept.get(path);
            if (fd == null) {
                fd = openDevice(field, path);
                kept.put(path, fd);
            }
            return fd;
        }

        /** How many devices are kept open (for tests). */
        synchronized int kept() {
            return kept.size();
        }
    }

    private final List<Integer> owned = new ArrayList<>();
    private RunSpec spec;
    private int root = -1;
    private boolean hostRoot;
    private List<String> hidden;
    private Libc.FileStat rootStat;
    private final List<Integer> mounts = new ArrayList<>();
    /** The stat of each of {@link #mounts}, as taken on its descriptor when it was opened. */
    private final List<Libc.FileStat> mountStats = new ArrayList<>();
    private final List<Integer> devices = new ArrayList<>();

    private HostPaths() {}

    /**
     * Opens and checks every host path of {@code spec}, the root first: once its descriptor says
     * whether it is the host's, a networked run there gets the resolver's file among its mounts
     * ({@link #withResolverConfiguration}; the run goes on with {@link #spec}). On a refusal
     * nothing stays open. {@code base}: the directory relative paths are resolved beneath, or -1
     * (they are refused); {@code devices}: where the host's device nodes are kept open.
     */
    public static HostPaths open(RunSpec request, int base, Devices devices) throws Refused {
        HostPaths paths = new HostPaths();
        try {
            paths.root = paths.own(openPath(base, "root", request.root().toString(), Libc.O_DIRECTORY, stat -> {
                paths.rootStat = stat;
                paths.hostRoot = isHostRoot(stat);
            }));
            // /var/run looked at once for the run: it may become a directory meanwhile.
            List<String> daemonDirectories = paths.hostRoot ? MountPoints.daemonDirectories() : List.of();
            paths.hidden = paths.hostRoot ? MountPoints.hiddenOfTheHostRoot(request.hidden(), daemonDirectories) : request.hidden();
            RunSpec spec = paths.hostRoot && request.network()
                    ? withResolverConfiguration(request, java.nio.file.Path.of(RESOLV_CONF), daemonDirectories) : request;
            paths.spec = spec;
            for (int i = 0; i < spec.mounts().size(); i++) {
                RunSpec.Mount mount = spec.mounts().get(i);
                String field = "mounts[" + i + "].source";
                paths.mounts.add(paths.own(openPath(base, field, mount.source(), 0, stat -> {
                    if (isHostRoot(stat)) {
                        throw new Refused(true, field + ": " + mount.source() + " is the host root /, which is never a mount source"
                                + " (it would bring the host's /run and /proc along): use root \"/\"");
                    }
                    paths.mountStats.add(stat);
                })));
            }
            if (!spec.interactive()) {
                for (int i = 0; i < spec.devices().size(); i++) {
                    String field = "devices[" + i + "]";
                    paths.devices.add(devices.descriptor(field, spec.devices().get(i), paths));
                }
            }
            return paths;
        } catch (Refused | RuntimeException e) {
            paths.close();
            throw e;
        }
    }

    /** The spec these paths were opened for: the request's, with the resolver's file on a networked host root. */
    public RunSpec spec() {
        return spec;
    }

    static final String RESOLV_CONF = "/etc/resolv.conf";

    /**
     * A sandbox on the host's root gets /run empty (MountPoints.hiddenOfTheHostRoot), where
     * systemd-resolved keeps the file /etc/resolv.conf links to: that file (a regular one, never a
     * socket) is bound read-only at its own path, so that a networked run still resolves names.
     * A client's own mount there wins, and so does a path it hid. {@code daemonDirectories}: /run
     * and the like (MountPoints.daemonDirectories).
     */
    static RunSpec withResolverConfiguration(RunSpec spec, java.nio.file.Path resolvConf, List<String> daemonDirectories) {
        java.nio.file.Path file;
        try {
            file = resolvConf.toRealPath();
        } catch (java.io.IOException e) {
            return spec; // none, or a dangling link: nothing to keep
        }
        String path = file.toString();
        boolean hiddenByUs = daemonDirectories.stream().anyMatch(d -> RootPaths.isOrBeneath(path, d));
        boolean clientsOwn = spec.mounts().stream().anyMatch(m -> m.target().equals(path) || m.target().equals(RESOLV_CONF))
                || spec.hidden().stream().anyMatch(h -> RootPaths.isOrBeneath(path, h));
        if (!hiddenByUs || clientsOwn || !java.nio.file.Files.isRegularFile(file)) return spec;
        List<RunSpec.Mount> mounts = new ArrayList<>(spec.mounts());
        mounts.add(new RunSpec.Mount(path, path, true));
        return spec.withMounts(mounts);
    }

    /** The root's descriptor (O_PATH), held for the whole run: cleanup works on it, never on the path. */
    public int root() {
        return root;
    }

    /** What the root's descriptor was when checked: its device and inode are the root's for good. */
    public Libc.FileStat rootStat() {
        return rootStat;
    }

    /** What mount {@code i}'s source descriptor was when checked. */
    public Libc.FileStat mountStat(int i) {
        return mountStats.get(i);
    }

    /** What the sandbox can write: the root unless it is the host's, and each read-write mount's source (see {@link #openStdio}). */
    public List<Libc.FileStat> writableTrees() {
        List<Libc.FileStat> trees = new ArrayList<>();
        if (!hostRoot) trees.add(rootStat);
        for (int i = 0; i < mounts.size(); i++) {
            if (!spec.mounts().get(i).readOnly()) trees.add(mountStats.get(i));
        }
        return trees;
    }

    /**
     * Where the run's trees show a root journal of this user, by device and inode (JournalPlace):
     * for the root, then each mount source, the journals' paths below it (an empty list: nowhere
     * at all). A sandbox that sees a journal plants records in it that make the next run on
     * another root remove what they name, or holds its lock: MountPoints hides it. A tree inside a
     * journal is refused: nothing there is a sandbox's.
     */
    public List<List<String>> journalBelow(JournalPlace journals) throws Refused {
        if (journals.isEmpty()) return List.of();
        List<List<String>> below = new ArrayList<>();
        boolean seen = false;
        for (int i = -1; i < mounts.size(); i++) {
            String field = i < 0 ? "root" : "mounts[" + i + "].source";
            String path = i < 0 ? spec.root().toString() : spec.mounts().get(i).source();
            int fd = i < 0 ? root : mounts.get(i);
            try {
                Libc.FileStat stat = i < 0 ? rootStat : mountStats.get(i);
                List<String> at = stat.type() == Libc.S_IFDIR ? journals.below(stat) : List.of();
                // Only a tree on a journal's own file system can lie inside it.
                if (at.contains("") || at.isEmpty() && journals.journals().stream().anyMatch(j -> j.device() == stat.device())
                        && isInJournal(fd, stat, journals)) {
                    throw new Refused(true, field + ": " + path + " lies in a root journal of bwrapd (" + journals.paths()
                            + "), which no sandbox may see: a sandbox could make bwrapd remove what it names there");
                }
                below.add(at);
                seen |= !at.isEmpty();
            } catch (Libc.Error e) {
                throw new Refused(false, field + ": cannot examine " + path + ": " + e.getMessage());
            }
        }
        return seen ? below : List.of();
    }

    /**
     * Whether the tree behind {@code fd} lies in one of {@code journals}. A file: bound by itself
     * (a mount's root), or in the directory the kernel names it in, opened by that name through
     * no link and checked to hold it.
     */
    private static boolean isInJournal(int fd, Libc.FileStat stat, JournalPlace journals) throws Libc.Error, Refused {
        if (stat.type() == Libc.S_IFDIR) return reachesAJournalFirst(fd, journals);
        Libc.MountOf mount = Libc.statOnMount(fd).mount();
        if (mount != null && mount.isRoot()) return holdsTheRootOf(mount, journals);
        java.nio.file.Path file = java.nio.file.Path.of(realPath(fd));
        if (file.getParent() == null) return false;
        int dir = Libc.openat2(Libc.AT_FDCWD, file.getParent().toString(), Libc.O_PATH | Libc.O_DIRECTORY, 0,
                Libc.RESOLVE_NO_SYMLINKS | Libc.RESOLVE_NO_MAGICLINKS);
        if (dir < 0) throw new Libc.Error("open the directory of " + file, Libc.errno());
        try {
            Libc.FileStat there = Libc.statIfPresent(dir, file.getFileName().toString(), Libc.AT_SYMLINK_NOFOLLOW);
            if (there == null || !there.sameFile(stat)) throw new Libc.Error(file + " was moved while it was examined", Libc.ENOENT);
            return reachesAJournalFirst(dir, journals);
        } finally {
            Libc.close(dir);
        }
    }

    /**
     * Whether, going up from directory {@code dir} by {@code ..}, the first directory met that is
     * on a way to a journal (JournalPlace.below) is a journal: from inside one, the way up meets
     * it before any of its ancestors, and from elsewhere it meets one of them at the latest at
     * {@code /}, which is where the walk ends (a directory like /tmp/build stops at /tmp). A
     * mount's root met first ends the walk too: its {@code ..} is the mount point's parent, not
     * the directory's own, so the mount table says what of its file system is mounted there (a
     * directory inside a journal, bound elsewhere, is no way's).
     */
    private static boolean reachesAJournalFirst(int dir, JournalPlace journals) throws Libc.Error, Refused {
        int current = dir; // dir itself first: not reopened, and not ours to close
        try {
            for (int depth = 0; depth < 4096; depth++) {
                Libc.StatOnMount here = Libc.statOnMount(current); // one statx a step: which directory, and whether a mount's root
                List<String> below = journals.below(here.stat());
                if (!below.isEmpty()) return below.contains("");
                if (here.mount() != null && here.mount().isRoot()) return holdsTheRootOf(here.mount(), journals);
                int parent = Libc.openat(current, "..", Libc.O_PATH | Libc.O_DIRECTORY);
                if (parent < 0) throw new Libc.Error("open a parent directory on the way", Libc.errno());
                if (current != dir) Libc.close(current);
                current = parent;
            }
            return true; // deeper than any path can be: taken as inside
        } finally {
            if (current != dir) Libc.close(current);
        }
    }

    private static boolean holdsTheRootOf(Libc.MountOf mount, JournalPlace journals) throws Refused {
        try {
            return journals.holdsTheRootOfMount(mount.id());
        } catch (java.io.IOException e) {
            throw new Refused(false, "cannot tell whether a mount lies in a root journal of bwrapd: " + e.getMessage());
        }
    }

    /** The host paths behind empty tmpfs mounts (MountPoints.hidden), as decided when the root was opened. */
    public List<String> hidden() {
        return hidden;
    }

    /** The root is the host's own {@code /}: bound read-only, never written or cleaned. */
    public boolean hostRoot() {
        return hostRoot;
    }

    /** The mount sources as trees, through bwrapd's descriptors of them. */
    public List<RootPaths.Tree> mountSources() {
        return mounts.stream().map(RootPaths.Tree::of).toList();
    }

    /** Every descriptor bwrap needs, in the order {@link #inChild} numbers them. */
    public List<Integer> descriptors() {
        List<Integer> all = new ArrayList<>();
        all.add(root);
        all.addAll(mounts);
        all.addAll(devices);
        return all;
    }

    /** Where bwrap finds the descriptors when they are handed to it from number {@code first} on. */
    public BwrapCommand.Descriptors inChild(int first) {
        List<Integer> mountFds = new ArrayList<>();
        List<Integer> deviceFds = new ArrayList<>();
        int next = first + 1;
        for (int i = 0; i < mounts.size(); i++) mountFds.add(next++);
        for (int i = 0; i < devices.size(); i++) deviceFds.add(next++);
        return new BwrapCommand.Descriptors(first, hostRoot, mountFds, deviceFds);
    }

    private int own(int fd) {
        owned.add(fd);
        return fd;
    }

    @Override
    public void close() {
        for (int fd : owned) Libc.close(fd);
        owned.clear();
    }

    /**
     * Opens a file the command gets as stdin, stdout or stderr (flags as for open(2)), under the
     * same rules: no magic link, nothing on a procfs, and never a directory (a descriptor of a
     * directory lets the command open anything beneath it, with bwrapd's rights). An output goes
     * only to a regular file, never through a final symbolic link.
     *
     * <p>The file is found first without being opened for reading or writing (O_PATH) and checked,
     * then opened through that descriptor: opening a device or a FIFO can have effects of its own
     * (a terminal would become bwrapd's, a FIFO would wait for its other end), and an output that
     * is not a regular file is refused before anything of the sort. O_NONBLOCK is cleared once open.
     *
     * <p>{@code sandboxTrees}: what the run's sandbox can write, its root (not the host's, which
     * is read-only) and read-write mount sources ({@link #writableTrees}). A sandbox can plant
     * links there, and a later run's client may well name a file in them: no link inside one is
     * followed on the way (-32005), wherever the path enters it.
     */
    public static int openStdio(int base, String field, String path, int flags, List<Libc.FileStat> sandboxTrees) throws Refused {
        boolean output = (flags & (Libc.O_WRONLY | Libc.O_RDWR)) != 0;
        int found;
        if (output) {
            int slash = path.lastIndexOf('/');
            String name = path.substring(slash + 1);
            if (name.isEmpty() || name.equals(".") || name.equals("..")) throw new Refused(true, field + ": " + path + " is a directory");
            String parent = slash < 0 ? "." : slash == 0 ? "/" : path.substring(0, slash);
            int dir = locate(base, field, parent, sandboxTrees);
            try {
                found = Libc.openat(dir, name, Libc.O_PATH | Libc.O_NOFOLLOW);
                if (found < 0 && Libc.errno() == Libc.ENOENT && (flags & Libc.O_CREAT) != 0) {
                    // Created here and now: a regular file and nothing else.
                    return reopened(field, path, "/proc/self/fd/" + dir + "/" + name, flags | Libc.O_EXCL | Libc.O_NOFOLLOW);
                }
                if (found < 0) throw new Refused(false, field + ": cannot open " + path + ": " + Libc.strerror(Libc.errno()));
            } finally {
                Libc.close(dir);
            }
        } else {
            found = locate(base, field, path, sandboxTrees);
        }
        checked(field, path, found, stat -> {
            if (stat.type() == Libc.S_IFLNK) throw new Refused(true, field + ": " + path + " is a symbolic link: name the file itself");
            if (stat.type() == Libc.S_IFDIR) throw new Refused(true, field + ": " + path + " is a directory");
            if (output && stat.type() != Libc.S_IFREG) throw new Refused(false, field + ": " + path + " is not a regular file");
        });
        int fd;
        try {
            // The checked file itself, through bwrapd's own descriptor of it: no name is looked up again.
            fd = reopened(field, path, "/proc/self/fd/" + found, flags & ~(Libc.O_CREAT | Libc.O_EXCL));
        } finally {
            Libc.close(found);
        }
        if (!output && isTerminal(fd)) {
            // Terminal ioctls ignore the read-only open: the command could turn echo off and read what is
            // typed on someone's terminal (a review read a password that way).
            Libc.close(fd);
            throw new Refused(true, field + ": " + path + " is a terminal, which the command could control: give it a file or a stream");
        }
        return fd;
    }

    /** Whether {@code fd} is a terminal (TIOCGWINSZ answers only on one). */
    private static boolean isTerminal(int fd) {
        try {
            Libc.windowSize(fd);
            return true;
        } catch (Libc.Error e) {
            return false;
        }
    }

    private static int reopened(String field, String path, String viaDescriptor, int flags) throws Refused {
        int fd;
        try {
            fd = Libc.open(viaDescriptor, flags | Libc.O_NONBLOCK | Libc.O_NOCTTY, 0644);
        } catch (Libc.Error e) {
            throw new Refused(false, field + ": cannot open " + path + ": " + Libc.strerror(e.errno));
        }
        try {
            Libc.clearNonBlocking(fd);
            return fd;
        } catch (Libc.Error e) {
            Libc.close(fd);
            throw new Refused(false, field + ": " + path + ": " + e.getMessage());
        }
    }

    /**
     * An O_PATH descriptor of what {@code path} names, every link followed (a final one too) under
     * the rules of {@link #openChecked}, and none inside {@code sandboxTrees}.
     */
    private static int locate(int base, String field, String path, List<Libc.FileStat> sandboxTrees) throws Refused {
        if (sandboxTrees.isEmpty() || !path.startsWith("/")) return openChecked(base, field, path, Libc.O_PATH, 0);
        int fd = Libc.openat2(Libc.AT_FDCWD, path, Libc.O_PATH, 0, Libc.RESOLVE_NO_SYMLINKS | Libc.RESOLVE_NO_MAGICLINKS);
        if (fd >= 0) return fd; // no link at all on the way: the usual case
        int errno = Libc.errno();
        if (errno != Libc.ELOOP && errno != Libc.ENOSYS) throw new Refused(false, field + ": cannot open " + path + ": " + Libc.strerror(errno));
        return walk(field, path, sandboxTrees);
    }

    /**
     * {@link #locate}'s way through links: one name at a time from {@code /}, each link read and
     * followed here (an absolute target from {@code /} again), after checking that it lies neither
     * inside one of {@code sandboxTrees} nor on a procfs (a magic link).
     */
    private static int walk(String field, String path, List<Libc.FileStat> sandboxTrees) throws Refused {
        Deque<String> todo = new ArrayDeque<>();
        push(todo, path);
        int dir = Libc.openat(Libc.AT_FDCWD, "/", Libc.O_PATH | Libc.O_DIRECTORY);
        int links = 0;
        try {
            while (true) {
                if (todo.isEmpty()) {
                    int result = dir;
                    dir = -1;
                    return result;
                }
                String name = todo.removeFirst();
                int next = Libc.openat(dir, name, Libc.O_PATH | Libc.O_NOFOLLOW);
                if (next < 0) throw new Refused(false, field + ": cannot open " + path + ": " + Libc.strerror(Libc.errno()));
                Libc.FileStat stat;
                try {
                    stat = Libc.stat(next, "", Libc.AT_EMPTY_PATH);
                } catch (Libc.Error e) {
                    Libc.close(next);
                    throw new Refused(false, field + ": cannot examine " + path + ": " + e.getMessage());
                }
                if (stat.type() != Libc.S_IFLNK) {
                    Libc.close(dir);
                    dir = next;
                    continue;
                }
                Libc.close(next);
                String target = linkTarget(field, path, dir, name, sandboxTrees);
                if (++links > MAX_LINKS) throw new Refused(false, field + ": " + path + ": too many levels of symbolic links");
                if (target.startsWith("/")) {
                    Libc.close(dir);
                    dir = Libc.openat(Libc.AT_FDCWD, "/", Libc.O_PATH | Libc.O_DIRECTORY);
                }
                push(todo, target);
            }
        } finally {
            if (dir >= 0) Libc.close(dir);
        }
    }

    private static final int MAX_LINKS = 40;

    /** Puts the names of {@code path} in front of {@code todo}, in order ({@code .} and empty names dropped). */
    private static void push(Deque<String> todo, String path) {
        String[] names = path.split("/");
        for (int i = names.length - 1; i >= 0; i--) {
            if (!names[i].isEmpty() && !names[i].equals(".")) todo.addFirst(names[i]);
        }
    }

    /** The target of link {@code name} in {@code dir}, once it is known to be followable. */
    private static String linkTarget(String field, String path, int dir, String name, List<Libc.FileStat> sandboxTrees) throws Refused {
        try {
            if (Libc.filesystemType(dir) == Libc.PROC_SUPER_MAGIC) throw magicLink(field, path);
            if (isWithin(dir, sandboxTrees)) {
                throw new Refused(true, field + ": " + path + " goes through a symbolic link in the run's root or a read-write mount ("
                        + name + "), which a sandbox may have put there: name the file itself");
            }
            String target = RootPaths.linkTarget(java.nio.file.Path.of("/proc/self/fd/" + dir + "/" + name));
            if (target == null) throw new Refused(true, field + ": " + path + " goes through a link whose target is not UTF-8");
            return target;
        } catch (java.io.IOException e) { // Libc.Error too
            throw new Refused(false, field + ": cannot follow a link on the way to " + path + ": " + e.getMessage());
        }
    }

    /** Whether directory {@code dir} is one of {@code trees} or beneath one: its parents, up to the top, are looked at. */
    static boolean isWithin(int dir, List<Libc.FileStat> trees) throws Libc.Error {
        int current = Libc.openat(dir, ".", Libc.O_PATH | Libc.O_DIRECTORY);
        if (current < 0) throw new Libc.Error("open a directory on the way", Libc.errno());
        try {
            Libc.FileStat stat = Libc.stat(current, "", Libc.AT_EMPTY_PATH);
            for (int depth = 0; depth < 4096; depth++) {
                for (Libc.FileStat tree : trees) if (stat.sameFile(tree)) return true;
                int parent = Libc.openat(current, "..", Libc.O_PATH | Libc.O_DIRECTORY);
                if (parent < 0) throw new Libc.Error("open a parent directory on the way", Libc.errno());
                Libc.close(current);
                current = parent;
                Libc.FileStat above = Libc.stat(current, "", Libc.AT_EMPTY_PATH);
                if (above.sameFile(stat)) return false; // the top: its .. is itself
                stat = above;
            }
            return true; // deeper than any path can be: taken as inside
        } finally {
            Libc.close(current);
        }
    }

    /** O_PATH open of a root or mount source: no device access, just a handle bwrap can bind. */
    private static int openPath(int base, String field, String path, int flags, Check check) throws Refused {
        return checked(field, path, openChecked(base, field, path, Libc.O_PATH | flags, 0), check);
    }

    private static int openDevice(String field, String path) throws Refused {
        int fd = openChecked(-1, field, path, Libc.O_PATH, 0);
        return checked(field, path, fd, stat -> {
            if (stat.type() != Libc.S_IFCHR && stat.type() != Libc.S_IFBLK) {
                throw new Refused(true, field + ": " + path + " is not a device node");
            }
            String real = realPath(fd);
            if (!real.startsWith("/dev/")) throw new Refused(true, field + ": " + path + " leads to " + real + ", outside /dev/");
        });
    }

    /** A rule about the file behind a descriptor. */
    private interface Check {
        void check(Libc.FileStat stat) throws Refused;
    }

    /** {@code fd} if its file is on no procfs and passes {@code check}; else it is closed and the path refused. */
    private static int checked(String field, String path, int fd, Check check) throws Refused {
        try {
            if (Libc.filesystemType(fd) == Libc.PROC_SUPER_MAGIC) {
                throw new Refused(true, field + ": " + path + " is on a procfs, whose links lead to other processes' files");
            }
            check.check(Libc.stat(fd, "", Libc.AT_EMPTY_PATH));
            return fd;
        } catch (Refused | RuntimeException e) {
            Libc.close(fd);
            throw e;
        } catch (Libc.Error e) {
            Libc.close(fd);
            throw new Refused(false, field + ": cannot examine " + path + ": " + e.getMessage());
        }
    }

    /**
     * Opens {@code path} without crossing a magic link. A kernel without openat2 (before 5.6)
     * gets the same rule from the spelling: nothing under /proc or /dev/fd, no /dev/std*.
     * A relative path is opened beneath {@code base} ({@link #openBeneath}).
     */
    static int openChecked(int base, String field, String path, int flags, int mode) throws Refused {
        if (!path.startsWith("/")) return openBeneath(base, field, path, flags, mode);
        int fd = Libc.openat2(Libc.AT_FDCWD, path, flags, (flags & Libc.O_CREAT) != 0 ? mode : 0, Libc.RESOLVE_NO_MAGICLINKS);
        if (fd < 0 && Libc.errno() == Libc.ENOSYS) {
            if (namesADescriptor(path)) throw magicLink(field, path);
            try {
                return Libc.open(path, flags, mode);
            } catch (Libc.Error e) {
                throw new Refused(false, field + ": cannot open " + path + ": " + Libc.strerror(e.errno));
            }
        }
        if (fd >= 0) return fd;
        int errno = Libc.errno();
        if (errno == Libc.ELOOP && (flags & Libc.O_NOFOLLOW) != 0 && isSymbolicLink(path)) {
            throw new Refused(true, field + ": " + path + " is a symbolic link: name the file itself");
        }
        if (errno == Libc.ELOOP && crossesMagicLink(path)) throw magicLink(field, path);
        throw new Refused(false, field + ": cannot open " + path + ": " + Libc.strerror(errno));
    }

    /**
     * Opens {@code path} (relative) beneath the directory {@code base} (-1: none, refused), through
     * no symbolic link, magic or not, and never above {@code base}: the kernel checks every step
     * as it takes it, so nothing swapped in meanwhile can lead elsewhere.
     */
    public static int openBeneath(int base, String field, String path, int flags, int mode) throws Refused {
        if (base < 0) throw new Refused(true, field + ": " + path + " is not an absolute path");
        int fd = Libc.openat2(base, path, flags, (flags & Libc.O_CREAT) != 0 ? mode : 0,
                Libc.RESOLVE_BENEATH | Libc.RESOLVE_NO_SYMLINKS | Libc.RESOLVE_NO_MAGICLINKS);
        if (fd >= 0) return fd;
        int errno = Libc.errno();
        if (errno == Libc.EXDEV || errno == Libc.ELOOP) {
            throw new Refused(true, field + ": " + path + " leads out of its directory or through a symbolic link");
        }
        if (errno == Libc.ENOSYS) throw new Refused(false, field + ": resolving " + path + " safely needs openat2 (Linux 5.6)");
        throw new Refused(false, field + ": cannot open " + path + ": " + Libc.strerror(errno));
    }

    /** After ELOOP with O_NOFOLLOW: the path is itself a symbolic link (true), or it crosses a magic link on the way. */
    private static boolean isSymbolicLink(String path) {
        int fd = Libc.openat2(Libc.AT_FDCWD, path, Libc.O_PATH | Libc.O_NOFOLLOW, 0, Libc.RESOLVE_NO_MAGICLINKS);
        try {
            return fd >= 0 && Libc.stat(fd, "", Libc.AT_EMPTY_PATH).type() == Libc.S_IFLNK;
        } catch (Libc.Error e) {
            return false;
        } finally {
            Libc.close(fd);
        }
    }

    /** ELOOP has two causes: a magic link on the way (refused) or a real loop. An unrestricted O_PATH open tells them apart. */
    private static boolean crossesMagicLink(String path) {
        int fd = Libc.openat2(Libc.AT_FDCWD, path, Libc.O_PATH, 0, 0);
        Libc.close(fd);
        return fd >= 0;
    }

    private static Refused magicLink(String field, String path) {
        return new Refused(true, field + ": " + path + " goes through a process's descriptor or root (/proc/PID/fd, "
                + "/proc/PID/root, /dev/fd, /dev/std*): name the file itself");
    }

    /** The spelling-only form of the magic-link rule, for kernels without openat2. */
    static boolean namesADescriptor(String path) {
        String normal = RootPaths.normalize(path).orElse(path);
        return normal.equals("/proc") || normal.startsWith("/proc/") || normal.equals("/dev/fd") || normal.startsWith("/dev/fd/")
                || normal.startsWith("/dev/std");
    }

    /** The host's {@code /}, looked at once: this process never changes its root. Null until the first run needs it. */
    private static volatile Libc.FileStat hostSlash;

    private static boolean isHostRoot(Libc.FileStat stat) throws Refused {
        Libc.FileStat slash = hostSlash;
        if (slash == null) {
            try {
                hostSlash = slash = Libc.stat(Libc.AT_FDCWD, "/", 0);
            } catch (Libc.Error e) {
                throw new Refused(false, "cannot examine the host's /: " + e.getMessage());
            }
        }
        return stat.sameFile(slash);
    }

    /** Where the root really is: "/" for the host's, however reached. */
    public java.nio.file.Path realRoot() throws Refused {
        return hostRoot ? RunSpec.HOST_ROOT : java.nio.file.Path.of(realPath(root));
    }

    /** Where a descriptor really leads (the kernel's own account of it). */
    private static String realPath(int fd) throws Refused {
        try {
            return java.nio.file.Files.readSymbolicLink(java.nio.file.Path.of("/proc/self/fd/" + fd)).toString();
        } catch (java.io.IOException e) {
            throw new Refused(false, "cannot tell where descriptor " + fd + " leads: " + e.getMessage());
        }
    }
}
