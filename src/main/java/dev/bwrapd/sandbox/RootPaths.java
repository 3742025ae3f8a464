package dev.bwrapd.sandbox;

import dev.bwrapd.process.Libc;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Optional;

/**
 * Paths inside a sandbox root, seen from the host. Symbolic links are resolved as the sandbox
 * would see them (an absolute link target starts again at the root, {@code ..} stops at the root),
 * so nothing here ever reaches outside the root.
 */
public final class RootPaths {
    private static final int MAX_LINKS = 40;

    private RootPaths() {}

    /**
     * The root behind a descriptor, as a path the JDK can walk: the kernel resolves
     * /proc/self/fd/N to the very directory bwrapd opened, however the path it came from changed since.
     */
    public static Path of(int rootFd) {
        return Path.of("/proc/self/fd/" + rootFd);
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

    /** The host path of {@code absolute} inside {@code root}, following links within the root; empty if missing. */
    public static Optional<Path> resolve(Path root, String absolute) {
        Deque<String> todo = new ArrayDeque<>(List.of(absolute.split("/")));
        List<String> done = new ArrayList<>();
        int links = 0;
        while (!todo.isEmpty()) {
            String name = todo.removeFirst();
            if (name.isEmpty() || name.equals(".")) continue;
            if (name.equals("..")) {
                if (!done.isEmpty()) done.removeLast();
                continue;
            }
            Path candidate = hostPath(root, done).resolve(name);
            if (Files.isSymbolicLink(candidate)) {
                if (++links > MAX_LINKS) return Optional.empty();
                String target;
                try {
                    target = Files.readSymbolicLink(candidate).toString();
                } catch (IOException e) {
                    return Optional.empty();
                }
                if (target.startsWith("/")) done.clear();
                List<String> parts = List.of(target.split("/"));
                for (int i = parts.size() - 1; i >= 0; i--) todo.addFirst(parts.get(i));
            } else if (Files.exists(candidate, LinkOption.NOFOLLOW_LINKS)) {
                done.add(name);
            } else {
                return Optional.empty();
            }
        }
        return Optional.of(hostPath(root, done));
    }

    private static Path hostPath(Path root, List<String> names) {
        Path path = root;
        for (String name : names) path = path.resolve(name);
        return path;
    }

    /**
     * Where in the root bwrap will really create each of {@code paths} (relative to the root,
     * parents first, as {@link BwrapCommand#createdPaths} gives them): the symbolic links of a
     * path's existing leading part are resolved inside the root, as bwrap resolves them when it
     * makes a mount point. In a merged-/usr root (lib -> usr/lib) a mount at /lib/x/y creates
     * usr/lib/x and usr/lib/x/y; recording "lib/x" instead would leave them behind, and cleanup
     * (which never follows a link) would report /lib as a link it refused. Parents still come
     * first, duplicates once.
     */
    public static List<String> physical(Path root, List<String> paths) {
        java.util.LinkedHashSet<String> result = new java.util.LinkedHashSet<>();
        for (String path : paths) {
            String real = physical(root, path);
            for (int slash = real.indexOf('/'); slash > 0; slash = real.indexOf('/', slash + 1)) {
                result.add(real.substring(0, slash));
            }
            if (!real.isEmpty()) result.add(real);
        }
        return List.copyOf(result);
    }

    private static String physical(Path root, String relative) {
        String[] names = relative.split("/");
        for (int n = names.length; n > 0; n--) {
            Optional<Path> found = resolve(root, "/" + String.join("/", java.util.Arrays.copyOf(names, n)));
            if (found.isPresent()) {
                String base = root.relativize(found.get()).toString();
                String rest = String.join("/", java.util.Arrays.copyOfRange(names, n, names.length));
                return base.isEmpty() ? rest : rest.isEmpty() ? base : base + "/" + rest;
            }
        }
        return relative;
    }

    /**
     * Finds the command as the sandbox's execvp would: a name with a slash is taken as is (relative
     * to the working directory when not absolute), otherwise each directory of PATH is tried.
     */
    public static boolean hasCommand(Path root, String command, String cwd, String pathVariable) {
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

    private static boolean isExecutable(Path root, String absolute) {
        return resolve(root, absolute).filter(p -> Files.isRegularFile(p) && Files.isExecutable(p)).isPresent();
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
