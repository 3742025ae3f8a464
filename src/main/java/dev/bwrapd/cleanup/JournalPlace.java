package dev.bwrapd.cleanup;

import dev.bwrapd.process.Libc;
import org.jboss.logging.Logger;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Where this user's root journals lie, for runs to keep them out of their sandboxes: a sandbox
 * that can write in one plants records that make the next run on another root remove what they
 * name, and one that can read it holds its lock (RootJournal.lock).
 *
 * <p>Each journal is known by the ways to it from the host's {@code /}: every directory on a way
 * by device and inode, with the names between them. A run's root or mount source that is one of
 * those directories shows the journal below it, whatever it is called (a bind mount of a
 * directory is that directory). The ways are its real path and each other place the mount table
 * shows it at: a bind mount of {@code /tmp}'s disk elsewhere, or one of {@code /tmp} below a
 * directory a client mounts (bwrap binds recursively). Looked at when the helper starts, and
 * again where a journal's path leads to another directory (RootJournal.place): a sandbox cannot
 * move the host's directories, and mounts made later are not known.
 */
public final class JournalPlace {
    private static final Logger LOG = Logger.getLogger(JournalPlace.class);

    /** One way from {@code /} to a journal: {@code ancestors.get(i)} is reached by {@code names[0..i)}. */
    record Way(List<Libc.FileStat> ancestors, List<String> names) {
        /** Where the journal lies in {@code tree}: "" (it is the journal), "a/b" (two levels below), or null. */
        String below(Libc.FileStat tree) {
            for (int i = ancestors.size() - 1; i >= 0; i--) {
                if (ancestors.get(i).sameFile(tree)) return String.join("/", names.subList(i, names.size()));
            }
            return null;
        }

        Libc.FileStat journal() {
            return ancestors.getLast();
        }

        String path() {
            return "/" + String.join("/", names);
        }
    }

    /** A line of /proc/self/mountinfo: the mount's id, the file system's device, the directory of it mounted, and where. */
    record Mount(long id, String device, String root, String mountPoint) {}

    /** Where a journal lies in its file system: the device as the mount table names it, and the path from that file system's top. */
    record InFileSystem(String device, String path) {}

    private final List<Way> ways;
    /** The journals' own directories, each once: asked of every tree of every run. */
    private final List<Libc.FileStat> journals;
    /** Where they lie in their file systems: for a directory bound elsewhere from inside one ({@link #holdsTheRootOfMount}). */
    private final List<InFileSystem> inFileSystems;

    JournalPlace(List<Way> ways) {
        this(ways, List.of());
    }

    JournalPlace(List<Way> ways, List<InFileSystem> inFileSystems) {
        this.ways = List.copyOf(ways);
        this.inFileSystems = List.copyOf(inFileSystems);
        List<Libc.FileStat> journals = new ArrayList<>();
        for (Way way : ways) if (journals.stream().noneMatch(j -> j.sameFile(way.journal()))) journals.add(way.journal());
        this.journals = List.copyOf(journals);
    }

    static final JournalPlace NOWHERE = new JournalPlace(List.of());

    /** The places of {@code journals} (directories that exist), as the mount table shows them now. */
    static JournalPlace of(List<Path> journals) {
        List<Mount> mounts;
        try {
            mounts = mountTable(Files.readString(Path.of("/proc/self/mountinfo"), StandardCharsets.UTF_8));
        } catch (IOException e) {
            LOG.warnf("cannot read the mount table (%s): a root journal mounted elsewhere is not kept from sandboxes there", e.getMessage());
            mounts = List.of();
        }
        List<Way> ways = new ArrayList<>();
        List<InFileSystem> inFileSystems = new ArrayList<>();
        for (Path journal : journals) {
            try {
                String real = journal.toRealPath().toString();
                Way way = way(real);
                ways.add(way);
                for (String other : otherPaths(real, mounts)) {
                    Way another = wayIfPresent(other);
                    if (another != null && another.journal().sameFile(way.journal())) ways.add(another);
                }
                InFileSystem inFileSystem = inFileSystem(real, mounts);
                if (inFileSystem != null) inFileSystems.add(inFileSystem);
            } catch (IOException e) {
                LOG.warnf("cannot tell where the root journal %s lies (%s): sandboxes that see it are not kept from it", journal, e.getMessage());
            }
        }
        return new JournalPlace(ways, inFileSystems);
    }

    /**
     * Whether the directory at the root of mount {@code mountId} (a bind mount's: what of its file
     * system is mounted there) is a journal or lies in one. A bind mount of a directory inside a
     * journal has the mount point's parent for {@code ..}, so no walk up from it meets the
     * journal: the mount table says what it is. Reads the mount table.
     */
    public boolean holdsTheRootOfMount(long mountId) throws IOException {
        if (inFileSystems.isEmpty()) return false;
        for (Mount mount : mountTable(Files.readString(Path.of("/proc/self/mountinfo"), StandardCharsets.UTF_8))) {
            if (mount.id() != mountId) continue;
            for (InFileSystem journal : inFileSystems) {
                if (journal.device().equals(mount.device()) && isOrBeneath(mount.root(), journal.path())) return true;
            }
            return false;
        }
        throw new IOException("mount " + mountId + " is not in the mount table");
    }

    private static Way way(String path) throws IOException {
        List<Libc.FileStat> ancestors = new ArrayList<>();
        List<String> names = new ArrayList<>();
        ancestors.add(Libc.stat(Libc.AT_FDCWD, "/", 0));
        StringBuilder at = new StringBuilder();
        for (String name : path.split("/")) {
            if (name.isEmpty()) continue;
            at.append('/').append(name);
            ancestors.add(Libc.stat(Libc.AT_FDCWD, at.toString(), Libc.AT_SYMLINK_NOFOLLOW));
            names.add(name);
        }
        return new Way(List.copyOf(ancestors), List.copyOf(names));
    }

    /** {@link #way}, or null where the path leads nowhere now (a mount covered by a later one, say). */
    private static Way wayIfPresent(String path) {
        try {
            return way(path);
        } catch (IOException e) {
            return null;
        }
    }

    /**
     * Where else than {@code real} the mount table shows that directory: below each mount of the
     * same file system whose mounted directory holds it. {@code real}'s own mount is the one with
     * the longest mount point above it (the last of equals: it covers the earlier ones).
     */
    static List<String> otherPaths(String real, List<Mount> mounts) {
        InFileSystem own = inFileSystem(real, mounts);
        if (own == null) return List.of();
        Set<String> others = new LinkedHashSet<>();
        for (Mount mount : mounts) {
            if (!mount.device().equals(own.device()) || !isOrBeneath(own.path(), mount.root())) continue;
            String path = join(mount.mountPoint(), own.path().substring(mount.root().equals("/") ? 0 : mount.root().length()));
            if (!path.equals(real)) others.add(path);
        }
        return List.copyOf(others);
    }

    /** Where {@code real} lies in its file system, by its own mount (see {@link #otherPaths}); null if no mount holds it. */
    static InFileSystem inFileSystem(String real, List<Mount> mounts) {
        Mount own = null;
        for (Mount mount : mounts) {
            if (isOrBeneath(real, mount.mountPoint()) && (own == null || mount.mountPoint().length() >= own.mountPoint().length())) own = mount;
        }
        if (own == null) return null;
        return new InFileSystem(own.device(), join(own.root(), own.mountPoint().equals("/") ? real : real.substring(own.mountPoint().length())));
    }

    /** The mounts of a /proc/self/mountinfo text (its octal escapes undone). */
    static List<Mount> mountTable(String mountinfo) {
        List<Mount> mounts = new ArrayList<>();
        for (String line : mountinfo.split("\n")) {
            String[] fields = line.split(" ");
            if (fields.length < 5) continue;
            try {
                mounts.add(new Mount(Long.parseLong(fields[0]), fields[2], unescape(fields[3]), unescape(fields[4])));
            } catch (NumberFormatException e) {
                // not a mount line
            }
        }
        return mounts;
    }

    private static String unescape(String field) {
        if (field.indexOf('\\') < 0) return field;
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < field.length(); i++) {
            char c = field.charAt(i);
            if (c == '\\' && i + 3 < field.length() && field.substring(i + 1, i + 4).chars().allMatch(d -> d >= '0' && d <= '7')) {
                text.append((char) Integer.parseInt(field.substring(i + 1, i + 4), 8));
                i += 3;
            } else {
                text.append(c);
            }
        }
        return text.toString();
    }

    private static boolean isOrBeneath(String path, String directory) {
        return directory.equals("/") || path.equals(directory) || path.startsWith(directory + "/");
    }

    /** {@code directory} with {@code rest} ("" or "/a/b") below it. */
    private static String join(String directory, String rest) {
        if (rest.isEmpty()) return directory;
        return directory.equals("/") ? rest : directory + rest;
    }

    /**
     * Where a journal lies in directory {@code tree}, each once: "" when {@code tree} is one,
     * "a/b" when one is two levels below; empty when none is below {@code tree}.
     */
    public List<String> below(Libc.FileStat tree) {
        List<String> found = new ArrayList<>();
        for (Way way : ways) {
            String at = way.below(tree);
            if (at != null && !found.contains(at)) found.add(at);
        }
        return found;
    }

    /** The journals' own directories. */
    public List<Libc.FileStat> journals() {
        return journals;
    }

    /** Whether no journal is known. */
    public boolean isEmpty() {
        return ways.isEmpty();
    }

    /** The journals' paths, for messages. */
    public String paths() {
        Set<String> paths = new LinkedHashSet<>();
        for (Way way : ways) paths.add(way.path());
        return String.join(", ", paths);
    }
}
