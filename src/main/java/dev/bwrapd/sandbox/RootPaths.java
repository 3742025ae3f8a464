package dev.bwrapd.sandbox;

import dev.bwrapd.process.Libc;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Paths inside a sandbox root, seen from the host. Symbolic links are resolved as the sandbox
 * would see them (an absolute link target starts again at the root, {@code ..} stops at the root),
 * so nothing here ever reaches outside the root.
 */
public final class RootPaths {
    private RootPaths() {}

    /**
     * The root behind a descriptor, as a path the JDK can walk: the kernel resolves
     * /proc/self/fd/N to the very directory bwrapd opened, however the path it came from changed since.
     */
    public static Path of(int rootFd) {
        return Path.of(DESCRIPTORS + rootFd);
    }

    private static final String DESCRIPTORS = "/proc/self/fd/";

    /**
     * A tree that paths are looked up in, the root or a mount source: by bwrapd's descriptor of it
     * ({@code path} is then {@link RootPaths#of}'s), or by its path alone ({@code fd} -1). Below a
     * descriptor a name is looked at relative to it: the same file, found without the kernel
     * walking /proc and its magic link again at every look (a statx that way cost about four of
     * the other).
     */
    public record Tree(Path path, int fd) {
        /** The tree behind descriptor {@code fd}. */
        public static Tree of(int fd) {
            return new Tree(RootPaths.of(fd), fd);
        }

        /** A tree known by its path only: what is below it is looked at by its full path. */
        public static Tree at(Path path) {
            return new Tree(path, -1);
        }
    }

    /** Splits an absolute path into its names, resolving {@code .} and {@code ..}; empty if it climbs above {@code /}. */
    public static Optional<List<String>> names(String absolute) {
        List<String> names = new ArrayList<>();
        for (String part : absolute.split("/")) {
            if (part.isEmpty() || part.equals(".")) continue;
            if (part.equals("..")) {
                if (names.isEmpty()) return Optional.empty();
                names.removeLast();
            } else {
                names.add(part);
            }
        }
        return Optional.of(names);
    }

    /** The normalized form of an absolute path ("/a/./b/../c" is "/a/c"), or empty if it escapes "/". */
    public static Optional<String> normalize(String absolute) {
        return names(absolute).map(n -> "/" + String.join("/", n));
    }

    /**
     * {@code paths} (normalized absolute ones) sorted, each dropped that is or lies beneath one
     * kept: what covering each with a mount of its own takes (an ancestor sorts before what lies
     * beneath it).
     */
    public static List<String> outermost(java.util.Collection<String> paths) {
        List<String> kept = new ArrayList<>();
        for (String path : new java.util.TreeSet<>(paths)) {
            if (kept.stream().noneMatch(k -> isOrBeneath(path, k))) kept.add(path);
        }
        return List.copyOf(kept);
    }

    /** Whether {@code path} is {@code directory} or lies beneath it, by their normalized spellings ({@code /a-b} is not beneath {@code /a}). */
    public static boolean isOrBeneath(String path, String directory) {
        return path.equals(directory) || path.startsWith(directory + "/");
    }

    /** The host path of {@code absolute} inside {@code root}, following links within the root; empty if missing. */
    public static Optional<Path> resolve(Tree root, String absolute) {
        return find(root, absolute).map(Found::path);
    }

    /** A path found in a root, with what is there (no link: every one was resolved). */
    private record Found(Path path, Libc.FileStat stat) {}

    private static Optional<Found> find(Tree root, String absolute) {
        try {
            MountPoints view = new MountPoints(root);
            List<String> names = names(view.place(absolute)).orElseThrow();
            Libc.FileStat stat = view.lstat(root, names, absolute); // looked at while placing: not asked again
            return stat != null ? Optional.of(new Found(Path.of(MountPoints.hostPath(root.path(), names)), stat)) : Optional.empty();
        } catch (HostPaths.Refused e) {
            return Optional.empty(); // a link loop, or a path that cannot be looked at: not found
        }
    }

    /**
     * The target of symbolic link {@code link}, or null when it is not UTF-8: the JDK decodes such
     * a name with U+FFFD in it, which is not where the kernel (or bwrap) would go.
     */
    static String linkTarget(Path link) throws IOException {
        String target = Files.readSymbolicLink(link).toString();
        return target.indexOf('\uFFFD') >= 0 ? null : target;
    }

    /**
     * Finds the command as the sandbox's execvp would: a name with a slash is taken as is (relative
     * to the working directory when not absolute), otherwise each directory of PATH is tried.
     */
    public static boolean hasCommand(Tree root, String command, String cwd, String pathVariable) {
        if (command.contains("/")) {
            String absolute = command.startsWith("/") ? command : cwd + "/" + command;
            return isExecutable(root, absolute);
        }
        String search = pathVariable == null ? "/bin:/usr/bin" : pathVariable;
        for (String directory : search.split(":", -1)) {
            String dir = directory.isEmpty() ? cwd : directory;
            if (!dir.startsWith("/")) dir = cwd + "/" + dir;
            if (isExecutable(root, dir + "/" + command)) return true;
        }
        return false;
    }

    private static boolean isExecutable(Tree root, String absolute) {
        return find(root, absolute).filter(f -> f.stat().type() == Libc.S_IFREG && Files.isExecutable(f.path())).isPresent();
    }

    /**
     * Creates the working directory inside the root, one name at a time relative to an opened
     * directory and never through a symbolic link (a link is left for bwrap to resolve inside the
     * sandbox). Returns the directories it created, relative to the root.
     */
    static List<String> createDirectories(Path root, List<String> names) throws IOException {
        int rootFd = Libc.open(root.toString(), Libc.O_PATH | Libc.O_DIRECTORY, 0);
        try {
            return createDirectories(rootFd, names);
        } finally {
            Libc.close(rootFd);
        }
    }

    public static List<String> createDirectories(int rootFd, List<String> names) throws IOException {
        if (names.isEmpty()) return List.of(); // the root itself: nothing to open or make
        List<String> created = new ArrayList<>();
        int dir = Libc.openat(rootFd, ".", Libc.O_RDONLY | Libc.O_DIRECTORY);
        if (dir < 0) throw new Libc.Error("open the root", Libc.errno());
        try {
            StringBuilder relative = new StringBuilder();
            for (String name : names) {
                relative.append(relative.isEmpty() ? "" : "/").append(name);
                int next = Libc.openat(dir, name, Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_NOFOLLOW);
                if (next < 0 && Libc.errno() == Libc.ENOENT) {
                    if (Libc.mkdirat(dir, name, 0755) == 0) {
                        created.add(relative.toString());
                    } else if (Libc.errno() != Libc.EEXIST) {
                        throw new Libc.Error("mkdir " + relative, Libc.errno());
                    }
                    next = Libc.openat(dir, name, Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_NOFOLLOW);
                }
                if (next < 0) {
                    int errno = Libc.errno();
                    if (errno == Libc.ELOOP || errno == Libc.ENOTDIR) break; // a link or a file: bwrap decides
                    throw new Libc.Error("open " + relative, errno);
                }
                Libc.close(dir);
                dir = next;
            }
        } finally {
            Libc.close(dir);
        }
        return created;
    }
}
