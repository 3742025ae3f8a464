package dev.bwrapd.cgroup;

import org.jboss.logging.Logger;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Where this process may make cgroups for its sandboxes, found once at start-up from
 * /proc/self/cgroup and /proc/self/mountinfo (never from assumed paths):
 *
 * <ul>
 * <li>cgroup v2: our own cgroup, or {@code --cgroup-parent}, when we can write it. Every v2 cgroup
 *     has {@code cgroup.kill}, {@code cgroup.freeze} and {@code cpu.stat}, controllers or not;
 *     {@code memory}, {@code pids} and {@code cpu} are usable below the base only when they are in
 *     its {@code cgroup.subtree_control}.</li>
 * <li>cgroup v1: the {@code memory}, {@code pids}, {@code cpu}, {@code cpuacct} and {@code freezer}
 *     hierarchies, each where our own cgroup in it is writable; used for what v2 lacks.</li>
 * </ul>
 *
 * <p>The v2 "no internal processes" rule: controllers can be enabled for a cgroup's children only
 * while the cgroup itself holds no process (the root cgroup excepted). When our own cgroup could
 * delegate controllers but holds us, and nobody but us, we move into a leaf child
 * ({@value #SELF_LEAF}) first and then enable them (see {@link #detect}).
 */
public final class CgroupHost {
    private static final Logger LOG = Logger.getLogger(CgroupHost.class);

    /** The leaf bwrapd moves itself into so that its own cgroup may enable controllers for its sandboxes. */
    public static final String SELF_LEAF = "bwrapd";
    /** The v2 controllers sandboxes can use for limits. */
    static final List<String> WANTED_V2 = List.of("memory", "pids", "cpu");
    /** The v1 hierarchies sandboxes can use, each for what v2 cannot do here. */
    static final List<String> WANTED_V1 = List.of("memory", "pids", "cpu", "cpuacct", "freezer");

    private final Path v2Base;
    private final Set<String> v2Controllers;
    private final Map<String, Path> v1Bases;
    private final String note;
    private final boolean v1Hierarchies;

    CgroupHost(Path v2Base, Set<String> v2Controllers, Map<String, Path> v1Bases, String note, boolean v1Hierarchies) {
        this.v2Base = v2Base;
        this.v2Controllers = Set.copyOf(v2Controllers);
        this.v1Bases = Map.copyOf(v1Bases);
        this.note = note;
        this.v1Hierarchies = v1Hierarchies;
    }

    /**
     * No cgroups at all (detection failed, or not Linux): rlimits are all there is.
     * {@code procSelfCgroup}: /proc/self/cgroup as read, or null if it could not be.
     */
    static CgroupHost none(String why, String procSelfCgroup) {
        return new CgroupHost(null, Set.of(), Map.of(), why, procSelfCgroup == null || hasV1Hierarchies(procSelfCgroup));
    }

    /** The v2 directory sandboxes' cgroups are made in, or null. */
    public Path v2Base() { return v2Base; }

    /** Controllers enabled for the v2 base's children (a subset of memory, pids, cpu). */
    public Set<String> v2Controllers() { return v2Controllers; }

    /** Writable v1 directories by controller (the hierarchy's mount plus our cgroup in it). */
    public Map<String, Path> v1Bases() { return v1Bases; }

    /** Why cgroups are missing or partial, for the log; null if nothing to say. */
    public String note() { return note; }

    /**
     * Whether the host has cgroup v1 hierarchies ({@link #hasV1Hierarchies}), from what detection
     * read; when /proc/self/cgroup is unreadable, as if it had (see HostCapabilities.nestedUserNamespaces).
     */
    public boolean v1Hierarchies() { return v1Hierarchies; }

    /** Whether each sandbox gets a cgroup that can be killed and frozen as a whole. */
    public boolean available() {
        return v2Base != null || v1Bases.containsKey("freezer");
    }

    /**
     * Whether each sandbox's cgroup counts the CPU time of all its processes: v2's cpu.stat (every
     * v2 cgroup has it, controllers or not), else v1's cpuacct beside the freezer.
     */
    public boolean countsCpu() {
        return v2Base != null || available() && v1Bases.containsKey("cpuacct");
    }

    /**
     * The controllers a sandbox's cgroups can have, v2 or v1, by name: v1's freezer and cpuacct
     * only where there is no v2 cgroup (which freezes and counts CPU time by itself).
     */
    public Set<String> controllers() {
        Set<String> all = new TreeSet<>(v2Controllers);
        all.addAll(v1Bases.keySet());
        if (v2Base != null) all.removeAll(List.of("freezer", "cpuacct"));
        return all;
    }

    /** The controller for {@code name}, v2 first: "v2", "v1", or null if neither. */
    String version(String controller) {
        if (v2Controllers.contains(controller)) return "v2";
        if (v1Bases.containsKey(controller)) return "v1";
        return null;
    }

    @Override
    public String toString() {
        return "cgroups: v2 " + (v2Base == null ? "none" : v2Base + " " + v2Controllers) + ", v1 " + v1Bases
                + (note == null ? "" : " (" + note + ")");
    }

    // ----- detection -----

    /** One line of /proc/self/cgroup: hierarchy id, controllers (empty for v2 and named hierarchies), path. */
    record Membership(int hierarchy, Set<String> controllers, String path) {}

    /** One cgroup mount from /proc/self/mountinfo. */
    record Mount(Path mountPoint, String root, boolean v2, Set<String> controllers) {}

    /** Detects from this process's own view. {@code parent} is {@code --cgroup-parent}, or null. */
    public static CgroupHost detect(String parent) {
        String cgroup = null;
        try {
            cgroup = Files.readString(Path.of("/proc/self/cgroup"));
            String mountinfo = Files.readString(Path.of("/proc/self/mountinfo"));
            return detect(cgroup, mountinfo, parent == null ? null : Path.of(parent), ProcessHandle.current().pid());
        } catch (IOException | RuntimeException e) {
            return none("cannot read /proc/self/cgroup or /proc/self/mountinfo: " + e.getMessage(), cgroup);
        }
    }

    static CgroupHost detect(String procSelfCgroup, String mountinfo, Path parent, long selfPid) {
        List<Membership> memberships = parseCgroup(procSelfCgroup);
        List<Mount> mounts = parseMountinfo(mountinfo);
        List<String> notes = new ArrayList<>();

        Path v2Base = null;
        Set<String> v2Controllers = new LinkedHashSet<>();
        Mount v2 = mounts.stream().filter(Mount::v2).findFirst().orElse(null);
        Membership ownV2 = memberships.stream().filter(m -> m.hierarchy() == 0).findFirst().orElse(null);
        Path ownDir = v2 == null || ownV2 == null ? null : locate(v2, ownV2.path());
        if (parent != null) {
            // The kernel moves a process between cgroups for a writer of their common ancestor's
            // cgroup.procs: a writable parent elsewhere took every run to setup-failed (a review).
            Path ancestor = ownDir == null ? null : commonAncestor(parent.normalize(), ownDir);
            if (!isCgroup2(parent, mounts) || !writable(parent)) {
                notes.add("--cgroup-parent " + parent + " is not a writable cgroup v2 directory");
            } else if (ancestor != null && !Files.isWritable(ancestor.resolve("cgroup.procs"))) {
                notes.add("--cgroup-parent " + parent + ": a sandbox moves there from bwrapd's own cgroup " + ownDir
                        + " only for a writer of " + ancestor.resolve("cgroup.procs") + ", the common ancestor's: start bwrapd inside "
                        + parent + "'s delegation");
            } else {
                v2Base = parent;
            }
        } else {
            if (ownDir == null) notes.add("no cgroup v2 hierarchy holding this process");
            else if (!writable(ownDir)) notes.add("own cgroup v2 " + ownDir + " is not writable");
            else {
                v2Base = ownDir;
                if (!ownV2.path().equals("/")) delegateToChildren(ownDir, selfPid, notes);
            }
        }
        if (v2Base != null) {
            Set<String> enabled = words(read(v2Base.resolve("cgroup.subtree_control")));
            for (String c : WANTED_V2) if (enabled.contains(c)) v2Controllers.add(c);
        }

        Map<String, Path> v1Bases = new LinkedHashMap<>();
        for (String controller : WANTED_V1) {
            if (v2Controllers.contains(controller)) continue;
            Mount mount = mounts.stream().filter(m -> !m.v2() && m.controllers().contains(controller)).findFirst().orElse(null);
            Membership own = memberships.stream().filter(m -> m.controllers().contains(controller)).findFirst().orElse(null);
            Path dir = mount == null || own == null ? null : locate(mount, own.path());
            if (dir != null && writable(dir)) v1Bases.put(controller, dir);
        }
        return new CgroupHost(v2Base, v2Controllers, v1Bases, notes.isEmpty() ? null : String.join("; ", notes),
                hasV1Hierarchies(procSelfCgroup));
    }

    /**
     * Enables memory, pids and cpu for the children of our own cgroup {@code dir} where the parent
     * delegated them. That needs {@code dir} empty of processes: if we are its only process we move
     * into the leaf {@value #SELF_LEAF} (which stays, reused by the next start); if others share it
     * (the client, a shell), we leave it as it is and sandboxes get cgroups without controllers.
     */
    private static void delegateToChildren(Path dir, long selfPid, List<String> notes) {
        Set<String> available = words(read(dir.resolve("cgroup.controllers")));
        Set<String> enabled = words(read(dir.resolve("cgroup.subtree_control")));
        List<String> missing = WANTED_V2.stream().filter(c -> available.contains(c) && !enabled.contains(c)).toList();
        if (missing.isEmpty()) return;
        Set<String> procs = words(read(dir.resolve("cgroup.procs")));
        if (!procs.equals(Set.of(Long.toString(selfPid)))) {
            notes.add("own cgroup holds other processes: its controllers " + missing + " stay off for sandboxes");
            return;
        }
        try {
            Path leaf = dir.resolve(SELF_LEAF);
            if (!Files.isDirectory(leaf)) Files.createDirectory(leaf);
            CgroupFiles.write(leaf.resolve("cgroup.procs"), Long.toString(selfPid));
        } catch (IOException e) {
            notes.add("cannot move into a leaf cgroup (" + e.getMessage() + "): controllers " + missing + " stay off");
            return;
        }
        for (String c : missing) {
            try {
                CgroupFiles.write(dir.resolve("cgroup.subtree_control"), "+" + c);
            } catch (IOException e) {
                notes.add("cannot enable " + c + ": " + e.getMessage());
            }
        }
    }

    /** Whether {@code dir} lies on a cgroup2 mount. */
    private static boolean isCgroup2(Path dir, List<Mount> mounts) {
        Path normal = dir.toAbsolutePath().normalize();
        return mounts.stream().anyMatch(m -> m.v2() && normal.startsWith(m.mountPoint()));
    }

    /** Our cgroup {@code path} as a directory under {@code mount}, or null if the mount does not show it. */
    static Path locate(Mount mount, String path) {
        String root = mount.root();
        if (root.equals("/")) return relative(mount.mountPoint(), path);
        if (path.equals(root)) return mount.mountPoint();
        if (path.startsWith(root + "/")) return relative(mount.mountPoint(), path.substring(root.length()));
        return null; // our cgroup is outside what this mount shows
    }

    private static Path relative(Path mountPoint, String path) {
        String rest = path.replaceFirst("^/+", "");
        if (rest.isEmpty()) return mountPoint;
        Path dir = mountPoint.resolve(rest).normalize();
        return dir.startsWith(mountPoint) ? dir : null;
    }

    /** The deepest directory both are in (both absolute and normal), or null. */
    static Path commonAncestor(Path a, Path b) {
        Path common = a.getRoot();
        if (common == null || !common.equals(b.getRoot())) return null;
        for (int i = 0; i < Math.min(a.getNameCount(), b.getNameCount()) && a.getName(i).equals(b.getName(i)); i++) {
            common = common.resolve(a.getName(i));
        }
        return common;
    }

    /** Writable, and spelled without blank space (the watchdog's shell keeps paths in a blank-separated list). */
    private static boolean writable(Path dir) {
        return !dir.toString().matches(".*\\s.*") && Files.isDirectory(dir) && Files.isWritable(dir) && Files.isWritable(dir.resolve("cgroup.procs"));
    }

    /**
     * Whether /proc/self/cgroup names a v1 hierarchy (an id other than 0): every active one is
     * listed, mounted here or not, and a user and cgroup namespace may mount any of them.
     */
    public static boolean hasV1Hierarchies(String procSelfCgroup) {
        return parseCgroup(procSelfCgroup).stream().anyMatch(m -> m.hierarchy() != 0);
    }

    static List<Membership> parseCgroup(String text) {
        List<Membership> out = new ArrayList<>();
        for (String line : text.split("\n")) {
            String[] parts = line.split(":", 3);
            if (parts.length < 3) continue;
            try {
                Set<String> controllers = parts[1].isEmpty() ? Set.of() : Set.of(parts[1].split(","));
                out.add(new Membership(Integer.parseInt(parts[0]), controllers, parts[2]));
            } catch (IllegalArgumentException e) {
                // not a line we understand (a malformed id, a controller named twice): skip it
            }
        }
        return out;
    }

    /**
     * The cgroup mounts: field 4 is the mount's root within the hierarchy, field 5 the mount point,
     * and after the " - " separator come the type and the super options (v1's controllers).
     */
    static List<Mount> parseMountinfo(String text) {
        List<Mount> out = new ArrayList<>();
        for (String line : text.split("\n")) {
            int dash = line.indexOf(" - ");
            if (dash < 0) continue;
            String[] left = line.substring(0, dash).split(" ");
            String[] right = line.substring(dash + 3).split(" ");
            if (left.length < 5 || right.length < 3) continue;
            String type = right[0];
            if (!type.equals("cgroup2") && !type.equals("cgroup")) continue;
            Path mountPoint = Path.of(unescape(left[4]));
            Set<String> controllers = new LinkedHashSet<>();
            if (type.equals("cgroup")) {
                for (String option : right[2].split(",")) {
                    if (WANTED_V1.contains(option)) controllers.add(option);
                }
            }
            out.add(new Mount(mountPoint, unescape(left[3]), type.equals("cgroup2"), controllers));
        }
        return out;
    }

    /** mountinfo writes space, tab, newline and backslash as \040-style octal escapes. */
    static String unescape(String field) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < field.length(); i++) {
            char c = field.charAt(i);
            if (c == '\\' && i + 3 < field.length() && field.substring(i + 1, i + 4).matches("[0-7]{3}")) {
                out.append((char) Integer.parseInt(field.substring(i + 1, i + 4), 8));
                i += 3;
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }

    private static String read(Path file) {
        return CgroupFiles.read(file);
    }

    private static Set<String> words(String text) {
        Set<String> out = new LinkedHashSet<>();
        if (text == null) return out;
        for (String word : text.trim().split("\\s+")) if (!word.isEmpty()) out.add(word);
        return out;
    }
}
