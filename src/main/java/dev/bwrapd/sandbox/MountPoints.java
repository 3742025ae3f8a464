package dev.bwrapd.sandbox;

import dev.bwrapd.process.Libc;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Where bwrap's setup will create and mount each destination of a run, resolved the way the
 * sandbox will see it. bwrap makes a mount point by following the path it is given from its own
 * root, where the host's root is {@code /oldroot}: a link {@code dev -> /oldroot/home/x} planted in
 * a root by an earlier run made bwrap create {@code null}, {@code zero}... in the host's
 * {@code /home/x}. So bwrap gets each destination with every link already resolved as in a chroot
 * (an absolute target starts again at the sandbox's root, {@code ..} stops there): a path with no
 * link left in it, which bwrap can only create inside the root.
 *
 * <p>Why resolve rather than refuse: roots hold ordinary absolute links ({@code /var/run ->
 * /run}, merged {@code /usr}), and inside the sandbox those links mean exactly this resolution;
 * the result is also where the command will find the mount.
 *
 * <p>Earlier mounts count, in bwrap's order: a destination below a bind mount is resolved in
 * the mount's source (through bwrapd's descriptor of it), one below {@code /tmp} or
 * {@code /dev/shm} lies in a fresh tmpfs (no links there), and one at or below {@code /proc} (or
 * below the {@code --dev /dev} of an interactive run, which holds links to {@code /proc/self/fd})
 * is refused: those links lead to processes' files and roots.
 *
 * <p>The host's {@code /} is placed the same way (a link planted in a world-writable directory
 * must not lead bwrap's mkdir out through {@code /oldroot} either), with its hidden paths as fresh
 * tmpfs layers, and one difference: a link in a mount's source is refused, not resolved. With the
 * host root the sources are the tree's only parts that whoever asked for the run can write (the
 * Buildbarn runner's input root lands in the action's temporary directory when the build directory
 * lies below {@code /tmp}), so a link there was planted by them or by an earlier run on the same
 * directory; the mount goes where the request says or nowhere.
 */
final class MountPoints {
    private static final int MAX_LINKS = 40;

    private enum Kind { TREE, FRESH, FORBIDDEN }

    /** What backs the sandbox's tree from {@code at} down (the most recent layer wins): {@code tree}, or a filesystem of {@code kind}. */
    private record Layer(List<String> at, RootPaths.Tree tree, Kind kind) {}

    /** A look at {@code below} (names joined by '/') in {@code tree}. */
    private record Look(RootPaths.Tree tree, String below) {}

    private final List<Layer> layers = new ArrayList<>();
    /** The host root's rule: a link in a mount's source (a layer other than the root's) is refused. */
    private final boolean refuseLinksInMounts;
    /** What each host path looked like when first asked (the devices share their /dev): one lstat each per plan. */
    private final Map<Look, Optional<Libc.FileStat>> looked = new HashMap<>();

    /** {@code root}: the root's tree (RootPaths.Tree.of its descriptor). */
    MountPoints(RootPaths.Tree root) {
        this(root, false);
    }

    private MountPoints(RootPaths.Tree root, boolean refuseLinksInMounts) {
        layers.add(new Layer(List.of(), root, Kind.TREE));
        this.refuseLinksInMounts = refuseLinksInMounts;
    }

    /**
     * Every destination of {@code spec}, placed in bwrap's order (see BwrapCommand); {@code hostRoot}:
     * the root is the host's {@code /}; {@code hidden}: the host paths behind empty tmpfs mounts ({@link #hidden}).
     */
    static BwrapCommand.Places plan(RunSpec spec, RootPaths.Tree root, List<RootPaths.Tree> mountSources, boolean hostRoot, List<String> hidden)
            throws HostPaths.Refused {
        return plan(spec, root, mountSources, hostRoot, hidden, List.of());
    }

    /**
     * The same; {@code journalBelow}: where root journals lie in the root and in each mount
     * source (HostPaths.journalBelow; empty: in none). Where the sandbox would see one through
     * them, it gets an empty read-only tmpfs over it instead (Places.journal).
     */
    static BwrapCommand.Places plan(RunSpec spec, RootPaths.Tree root, List<RootPaths.Tree> mountSources, boolean hostRoot, List<String> hidden,
                                    List<List<String>> journalBelow) throws HostPaths.Refused {
        MountPoints view = new MountPoints(root, hostRoot);
        String proc = view.place("/proc");
        view.mounted(proc, null, Kind.FORBIDDEN);
        String tmp = view.place("/tmp");
        view.mounted(tmp, null, Kind.FRESH);
        String dev = view.place("/dev");
        List<String> devices = new ArrayList<>();
        String shm = null;
        boolean devOfItsOwn = devOfItsOwn(spec, hostRoot);
        if (spec.interactive()) {
            view.mounted(dev, null, Kind.FORBIDDEN);
        } else {
            if (devOfItsOwn) view.mounted(dev, null, Kind.FRESH);
            for (String device : spec.devices()) devices.add(view.place(device));
            if (spec.devShm()) {
                shm = view.place("/dev/shm");
                view.mounted(shm, null, Kind.FRESH);
            }
        }
        // The host root's hidden paths (real paths, given to bwrap as they are): empty tmpfs mounts, before the bind mounts.
        for (String path : hidden) view.mounted(path, null, Kind.FRESH);
        List<String> mounts = new ArrayList<>();
        List<Layer> trees = new ArrayList<>(List.of(view.layers.getFirst())); // the root, then each mount: as journalBelow counts them
        for (int i = 0; i < spec.mounts().size(); i++) {
            String target = view.place(spec.mounts().get(i).target());
            if (target.equals("/")) {
                throw new HostPaths.Refused(true, "mounts[" + i + "].target: " + spec.mounts().get(i).target()
                        + " leads to / through the root's links; use root instead");
            }
            mounts.add(target);
            view.mounted(target, mountSources.get(i), Kind.TREE);
            trees.add(view.layers.getLast());
        }
        // A read-only root is written all the same below a mount inside it (bwrap's --remount-ro / leaves submounts as they are).
        List<Boolean> writable = new ArrayList<>(List.of(!hostRoot));
        for (RunSpec.Mount mount : spec.mounts()) writable.add(!mount.readOnly());
        List<String> journal = view.journal(trees, writable, journalBelow);
        refuseWhereTheJournalIs(journal, mounts, i -> "mounts[" + i + "].target: " + spec.mounts().get(i).target(), MADE_THERE);
        refuseWhereTheJournalIs(journal, devices, i -> "devices[" + i + "]: " + spec.devices().get(i), MADE_THERE);
        if (!journalBelow.isEmpty()) refuseACwdInTheJournal(spec, view, journal, hostRoot ? List.of() : journalBelow.getFirst());
        return new BwrapCommand.Places(proc, tmp, dev, devOfItsOwn, shm, devices, mounts, hidden, journal);
    }

    /**
     * A destination at or below a place the journal's tmpfs covers: bwrap would make it in the
     * host's journal before the tmpfs covers it, and the sandbox would not see the mount asked for.
     */
    private static void refuseWhereTheJournalIs(List<String> hidden, List<String> destinations, java.util.function.IntFunction<String> named,
                                                String why) throws HostPaths.Refused {
        for (String place : hidden) for (int i = 0; i < destinations.size(); i++) {
            if (RootPaths.isOrBeneath(destinations.get(i), place)) {
                throw new HostPaths.Refused(true, named.apply(i) + " lies where the sandbox would see a root journal of bwrapd ("
                        + place + "), which no sandbox may see: " + why);
            }
        }
    }

    private static final String MADE_THERE = "bwrap would make it in the journal";

    /**
     * A cwd where the journal's tmpfs is (the sandbox would start in it), or, by its names, in a
     * journal the root holds ({@code inRoot}: where, as HostPaths.journalBelow has it): bwrapd makes
     * a missing cwd in the root that way, on the host, where bwrap's /tmp does not cover it.
     */
    private static void refuseACwdInTheJournal(RunSpec spec, MountPoints view, List<String> hidden, List<String> inRoot) throws HostPaths.Refused {
        String placed = hidden.isEmpty() ? null : view.placeIfItCanBe(spec.cwd());
        if (placed != null) {
            refuseWhereTheJournalIs(hidden, List.of(placed), i -> "cwd: " + spec.cwd(),
                    "the command would start in its empty tmpfs, and bwrapd make a missing cwd in the root below it");
        }
        List<String> names = RootPaths.names(spec.cwd()).orElseThrow();
        for (String journal : inRoot) {
            if (!journal.isEmpty() && isPrefix(List.of(journal.split("/")), names)) {
                throw new HostPaths.Refused(true, "cwd: " + spec.cwd() + " lies in a root journal of bwrapd (/" + journal
                        + " in the root), which no sandbox may see: bwrapd would make it there");
            }
        }
    }

    /**
     * What to hide where the sandbox, as planned, sees a root journal: through a tree that shows it
     * ({@code below}, as {@link #plan} takes it) and that nothing mounted later covers there. In a
     * tree the sandbox can write, the first directory on the way, not the journal alone: one
     * there could move the journal's parent aside (a mount point cannot be moved, its parents can)
     * and make a directory of its own in its place, which this helper, by its path, and the next
     * ones would take for the journal. The names below a tree are the journal's real directories,
     * so no link is on the way.
     */
    private List<String> journal(List<Layer> trees, List<Boolean> writable, List<List<String>> below) {
        List<String> places = new ArrayList<>();
        for (int i = 0; i < below.size(); i++) {
            for (String journal : below.get(i)) {
                List<String> names = new ArrayList<>(trees.get(i).at());
                List<String> way = List.of(journal.split("/"));
                names.addAll(writable.get(i) ? way.subList(0, 1) : way);
                String place = "/" + String.join("/", names);
                if (backing(names) == trees.get(i) && !places.contains(place)) places.add(place);
            }
        }
        return RootPaths.outermost(places);
    }

    /** Whether the sandbox gets a /dev of its own (BwrapCommand.Places): on the host's root, unless bwrap makes one (--dev). */
    static boolean devOfItsOwn(RunSpec spec, boolean hostRoot) {
        return hostRoot && !BwrapCommand.fullDev(spec);
    }

    /** The host paths the sandbox never sees: on the host's root, {@link #hiddenOfTheHostRoot}; elsewhere none. */
    static List<String> hidden(RunSpec spec, boolean hostRoot) {
        return hostRoot ? hiddenOfTheHostRoot(spec.hidden()) : spec.hidden();
    }

    /**
     * What a sandbox whose root is the host's own never sees: {@code requested} and the host
     * daemons' sockets, {@code /run} ({@code /var/run} too when it is a directory of its own, not
     * the usual link to {@code /run}), each behind an empty read-only tmpfs. Neither a read-only
     * mount nor a network namespace stops connect(2) on a socket: through the system bus or
     * docker.sock a root-run command is the host's root outside the sandbox, and through the user's
     * session bus ({@code systemd-run --user}) an unprivileged one runs outside it (a review found
     * both). Ancestors first; a path beneath another is dropped (RootPaths.outermost).
     */
    static List<String> hiddenOfTheHostRoot(List<String> requested) {
        return hiddenOfTheHostRoot(requested, daemonDirectories());
    }

    /** As above, with {@link #daemonDirectories} already looked at. */
    static List<String> hiddenOfTheHostRoot(List<String> requested, List<String> daemonDirectories) {
        List<String> paths = new ArrayList<>(requested);
        paths.addAll(daemonDirectories);
        return RootPaths.outermost(paths);
    }

    /** Where the host's daemons keep their sockets: /run, and /var/run when it is a directory of its own. */
    static List<String> daemonDirectories() {
        return Files.isDirectory(Path.of("/var/run"), java.nio.file.LinkOption.NOFOLLOW_LINKS) ? List.of("/run", "/var/run") : List.of("/run");
    }

    /** The path with no link in it that means {@code absolute} in the sandbox as set up so far. */
    String place(String absolute) throws HostPaths.Refused {
        Deque<String> todo = new ArrayDeque<>(Arrays.asList(absolute.split("/")));
        List<String> done = new ArrayList<>();
        int links = 0;
        while (!todo.isEmpty()) {
            String name = todo.removeFirst();
            if (name.isEmpty() || name.equals(".")) continue;
            if (name.equals("..")) {
                if (!done.isEmpty()) done.removeLast();
                continue;
            }
            done.add(name);
            Layer layer = backing(done);
            if (layer.kind() == Kind.FORBIDDEN) {
                throw new HostPaths.Refused(true, absolute + " leads into /" + String.join("/", layer.at())
                        + ", which bwrap fills itself and whose links lead to processes' files");
            }
            if (layer.kind() == Kind.FRESH || done.size() == layer.at().size()) continue;
            List<String> below = done.subList(layer.at().size(), done.size());
            // A directory, a file, or nothing yet: bwrap meets no link here (what it creates is plain).
            Libc.FileStat stat = lstat(layer.tree(), below, absolute);
            if (stat == null || stat.type() != Libc.S_IFLNK) continue;
            if (refuseLinksInMounts && layer != layers.getFirst()) {
                throw new HostPaths.Refused(true, absolute + ": /" + String.join("/", done) + " is a symbolic link in the source of the mount at /"
                        + String.join("/", layer.at()) + "; with the host's / as root no mount point is made through a link there");
            }
            if (++links > MAX_LINKS) throw new HostPaths.Refused(true, absolute + ": too many levels of symbolic links in the root");
            String target;
            try {
                target = RootPaths.linkTarget(Path.of(hostPath(layer.tree().path(), below)));
            } catch (IOException e) {
                throw new HostPaths.Refused(false, absolute + ": cannot read a link in the root: " + e.getMessage());
            }
            if (target == null) {
                throw new HostPaths.Refused(true, absolute + ": a link in the root (" + String.join("/", done)
                        + ") points to a name that is not UTF-8");
            }
            done.removeLast();
            if (target.startsWith("/")) done.clear();
            List<String> parts = Arrays.asList(target.split("/"));
            for (int i = parts.size() - 1; i >= 0; i--) todo.addFirst(parts.get(i));
        }
        return "/" + String.join("/", done);
    }

    /** {@link #place}, or null where it refuses (into /proc, a loop of links...): not a place in the journal. */
    private String placeIfItCanBe(String absolute) {
        try {
            return place(absolute);
        } catch (HostPaths.Refused e) {
            return null;
        }
    }

    /** {@code base} with {@code names} below it. */
    static String hostPath(Path base, List<String> names) {
        StringBuilder host = new StringBuilder(base.toString());
        for (String name : names) {
            if (host.charAt(host.length() - 1) != '/') host.append('/');
            host.append(name);
        }
        return host.toString();
    }

    /**
     * What is at {@code below} in {@code tree}, its last name not followed; null if nothing: relative
     * to the tree's descriptor when it has one and {@code below} names something under it, else by
     * the full path. Each is looked at once per plan. A look that fails otherwise refuses
     * {@code destination}: "nothing here" would be a guess, and bwrap, which resolves a shorter path
     * with other rights (a user namespace's CAP_DAC_OVERRIDE), may find a link there that leads out
     * of the root.
     */
    Libc.FileStat lstat(RootPaths.Tree tree, List<String> below, String destination) throws HostPaths.Refused {
        Look look = new Look(tree, String.join("/", below));
        Optional<Libc.FileStat> known = looked.get(look);
        if (known != null) return known.orElse(null);
        Libc.FileStat stat;
        try {
            stat = tree.fd() >= 0 && !below.isEmpty() ? Libc.statIfPresent(tree.fd(), look.below(), Libc.AT_SYMLINK_NOFOLLOW)
                    : Libc.statIfPresent(Libc.AT_FDCWD, hostPath(tree.path(), below), Libc.AT_SYMLINK_NOFOLLOW);
        } catch (Libc.Error e) {
            throw new HostPaths.Refused(true, destination + ": cannot look at what is on its way in the root (" + Libc.strerror(e.errno)
                            + "), so where bwrap would create it is unknown");
        }
        looked.put(look, Optional.ofNullable(stat));
        return stat;
    }

    /** From now on, what is at {@code placed} (a result of {@link #place}) is {@code tree}, or a filesystem of {@code kind}. */
    private void mounted(String placed, RootPaths.Tree tree, Kind kind) {
        layers.add(new Layer(List.copyOf(RootPaths.names(placed).orElseThrow()), tree, kind));
    }

    private Layer backing(List<String> names) {
        for (int i = layers.size() - 1; i >= 0; i--) {
            Layer layer = layers.get(i);
            if (isPrefix(layer.at(), names)) return layer;
        }
        throw new IllegalStateException("the root layer backs every path");
    }

    /** Whether {@code names} starts with {@code prefix}: the path they spell is it or lies below it. */
    static boolean isPrefix(List<String> prefix, List<String> names) {
        if (prefix.size() > names.size()) return false;
        for (int i = 0; i < prefix.size(); i++) if (!prefix.get(i).equals(names.get(i))) return false;
        return true;
    }
}
