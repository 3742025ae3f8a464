package dev.bwrapd.cgroup;

import dev.bwrapd.process.Libc;
import dev.bwrapd.process.Signals;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One sandbox's cgroups: a v2 cgroup when the host has a writable v2 base (kill, freeze, CPU time,
 * and the limits of the controllers enabled there), plus a v1 cgroup per v1 controller needed for
 * what v2 lacks here (a limit, the freezer, CPU accounting). Named before bwrap is spawned, made
 * while it sets the sandbox up; the sandbox's init is moved in before it may start the command, so
 * every process of the sandbox is inside; removed once the sandbox is gone.
 *
 * <p>Each has two levels: the limits are set on the cgroup, the processes live in its {@link #LEAF}
 * below. A sandbox can make a cgroup namespace of its own (in a user namespace it makes) and
 * mount cgroupfs there: that shows the cgroup it is in as the root, with files its uid may own
 * (a root-run sandbox's uid 0 is the host's, an unprivileged one's is its user's, who was
 * delegated the cgroup). A review raised a sandbox's own memory, pids and CPU limits that way.
 * The cgroup above its own, where the limits are, it cannot see.
 */
public final class SandboxCgroup {
    private static final AtomicLong SEQUENCE = new AtomicLong();
    /** The cgroup the processes are in, below the one with the limits. */
    static final String LEAF = "s";
    /**
     * How deep cgroups may go below a sandbox's cgroup (v2): its leaf and seven levels the sandbox
     * makes (a systemd inside needs two or three). Deeper ones, with names of up to 255 bytes, can
     * reach past PATH_MAX, and then no path removes them (a review left one that way).
     */
    static final int MAX_DEPTH = 8;
    /** How many cgroups may be below a sandbox's cgroup (v2): each is one more to remove after the run. */
    static final int MAX_DESCENDANTS = 256;
    /** cpu.max / cpu.cfs_period_us: 100 ms, the kernel's default period. */
    static final long CPU_PERIOD_MICROS = 100_000;

    private final Path v2;
    /** The controllers enabled in {@link #v2}: only their files are there (memory.peak, pids.events...). */
    private final Set<String> v2Controllers;
    /** v1 directories by controller; co-mounted controllers (cpu,cpuacct) share one. */
    private final Map<String, Path> v1;

    private SandboxCgroup(Path v2, Set<String> v2Controllers, Map<String, Path> v1) {
        this.v2 = v2;
        this.v2Controllers = v2Controllers;
        this.v1 = v1;
    }

    /**
     * Makes the cgroups for one sandbox and sets {@code limits} in them. Limits without a cgroup
     * mechanism here (rlimits) are not this class's business; a cgroup limit that this host cannot
     * set is an IOException (callers refuse such requests before, through {@link Mechanisms}).
     */
    public static SandboxCgroup create(CgroupHost host, Limits limits) throws IOException {
        return plan(host, limits).make();
    }

    /**
     * The cgroups one sandbox will have, named but not made: the watchdog must know a cgroup before
     * it exists, or a helper killed in between leaves it behind (the names are never reused, so
     * knowing one that is never made is harmless).
     */
    public static Plan plan(CgroupHost host, Limits limits) {
        String name = "bwrapd-" + ProcessHandle.current().pid() + "-" + helperToken() + "-" + SEQUENCE.incrementAndGet();
        Set<String> needed = new LinkedHashSet<>();
        if (limits.memoryBytes() != null && "v1".equals(host.version("memory"))) needed.add("memory");
        if (limits.pids() != null && "v1".equals(host.version("pids"))) needed.add("pids");
        if (limits.cpus() != null && "v1".equals(host.version("cpu"))) needed.add("cpu");
        if (host.v2Base() == null) {
            needed.add("freezer"); // kill and freeze as a whole
            if (host.v1Bases().containsKey("cpuacct")) needed.add("cpuacct"); // CPU time of the whole sandbox
        }
        Map<String, Path> v1 = new LinkedHashMap<>();
        for (String controller : needed) {
            Path base = host.v1Bases().get(controller);
            if (base != null) v1.put(controller, base.resolve(name));
        }
        return new Plan(host, limits, host.v2Base() == null ? null : host.v2Base().resolve(name), v1);
    }

    /** See {@link #plan}. */
    public record Plan(CgroupHost host, Limits limits, Path v2, Map<String, Path> v1) {
        /** Every directory it will make, v2 first. */
        public List<Path> directories() {
            return SandboxCgroup.directories(v2, v1);
        }

        /** Makes the directories, their leaves, and sets the limits; on failure removes what it made. */
        public SandboxCgroup make() throws IOException {
            List<Path> made = new ArrayList<>();
            try {
                for (Path dir : directories()) {
                    makeDirectory(dir);
                    made.addFirst(dir);
                    makeDirectory(dir.resolve(LEAF));
                    made.addFirst(dir.resolve(LEAF));
                }
                SandboxCgroup cgroup = new SandboxCgroup(v2, v2 == null ? Set.of() : host.v2Controllers(), v1);
                cgroup.limit(host, limits);
                return cgroup;
            } catch (IOException e) {
                remove(made, 0);
                throw e;
            }
        }
    }

    private static volatile String helperToken;

    /**
     * A random word of this helper, in every cgroup's name: a pid alone is reused (CI met a cgroup
     * that an earlier helper with the same pid had left), and helpers in other PID namespaces may
     * share the cgroup tree. Made at the first sandbox, never in a static initializer (a native
     * image would bake one value into every process).
     */
    private static String helperToken() {
        String token = helperToken;
        if (token == null) {
            synchronized (SandboxCgroup.class) {
                if (helperToken == null) helperToken = Long.toHexString(new java.security.SecureRandom().nextLong() >>> 4);
                token = helperToken;
            }
        }
        return token;
    }

    /** One mkdir(2): the JDK's costs an object graph and a check of the file system's provider each time. */
    private static void makeDirectory(Path dir) throws IOException {
        if (Libc.mkdirat(Libc.AT_FDCWD, dir.toString(), 0777) == 0) return;
        int errno = Libc.errno();
        if (errno == Libc.EEXIST) throw new IOException("cgroup " + dir + " exists already (a helper with the same pid elsewhere?)");
        throw new Libc.Error("mkdir " + dir, errno);
    }

    private void limit(CgroupHost host, Limits limits) throws IOException {
        if (v2 != null) {
            try { // every v2 cgroup has them (4.14 on): written without a look first
                CgroupFiles.write(v2.resolve("cgroup.max.depth"), Integer.toString(MAX_DEPTH));
                CgroupFiles.write(v2.resolve("cgroup.max.descendants"), Integer.toString(MAX_DESCENDANTS));
            } catch (IOException e) {
                // an older kernel: no caps
            }
        }
        if (limits.memoryBytes() != null) {
            String bytes = Long.toString(limits.memoryBytes());
            if ("v2".equals(host.version("memory"))) {
                CgroupFiles.write(v2.resolve("memory.max"), bytes);
                optional(v2.resolve("memory.swap.max"), "0"); // else the sandbox swaps instead of meeting its limit
            } else {
                Path dir = v1.get("memory");
                CgroupFiles.write(dir.resolve("memory.limit_in_bytes"), bytes);
                optional(dir.resolve("memory.memsw.limit_in_bytes"), bytes);
            }
        }
        if (limits.pids() != null) {
            // bwrap's init is in the cgroup too: it is not one of the sandbox's processes.
            String max = Long.toString(limits.pids() + 1);
            CgroupFiles.write(("v2".equals(host.version("pids")) ? v2 : v1.get("pids")).resolve("pids.max"), max);
        }
        if (limits.cpus() != null) {
            long quota = Math.max(1000, Math.round(limits.cpus() * CPU_PERIOD_MICROS));
            if ("v2".equals(host.version("cpu"))) {
                CgroupFiles.write(v2.resolve("cpu.max"), quota + " " + CPU_PERIOD_MICROS);
            } else {
                Path dir = v1.get("cpu");
                CgroupFiles.write(dir.resolve("cpu.cfs_period_us"), Long.toString(CPU_PERIOD_MICROS));
                CgroupFiles.write(dir.resolve("cpu.cfs_quota_us"), Long.toString(quota));
            }
        }
    }

    private static void optional(Path file, String value) {
        try {
            if (Files.exists(file)) CgroupFiles.write(file, value);
        } catch (IOException e) {
            // an optional refinement (no swap accounting here): the limit itself is set
        }
    }

    /** Every directory made (each with its leaf below), v2 first: what the watchdog kills and removes should bwrapd die. */
    public List<Path> directories() {
        return directories(v2, v1);
    }

    /** Co-mounted v1 controllers (cpu,cpuacct) share a directory: it is there once. */
    private static List<Path> directories(Path v2, Map<String, Path> v1) {
        List<Path> dirs = new ArrayList<>();
        if (v2 != null) dirs.add(v2);
        for (Path dir : v1.values()) if (!dirs.contains(dir)) dirs.add(dir);
        return dirs;
    }

    /** Moves process {@code pid} (and so everything it will start) into every cgroup of the sandbox: their leaves. */
    public void add(int pid) throws IOException {
        for (Path dir : directories()) CgroupFiles.write(dir.resolve(LEAF).resolve("cgroup.procs"), Integer.toString(pid));
    }

    /**
     * Kills every process in the sandbox: v2's cgroup.kill where the kernel has it (5.14), else
     * freeze, SIGKILL every member, thaw (a v1 frozen task dies only once thawed), until empty.
     * Whether the kill was sent.
     */
    public boolean kill() {
        if (v2 != null) {
            try {
                CgroupFiles.write(v2.resolve("cgroup.kill"), "1");
                return true;
            } catch (IOException e) {
                // no cgroup.kill (before 5.14): kill member by member
            }
        }
        for (int round = 0; round < 1000; round++) {
            freeze(true);
            List<Path> tree = tree(); // one walk a round: frozen, nothing in it makes another cgroup before the thaw (a round that missed one is followed by another)
            Set<Integer> members = members(tree);
            for (int pid : members) Libc.kill(pid, Signals.SIGKILL);
            thawAll(tree);
            if (members.isEmpty()) return true;
            sleepBriefly();
        }
        return false;
    }

    /** Every process in the sandbox's cgroups and in those it made below them. */
    Set<Integer> members() {
        return members(tree());
    }

    private static Set<Integer> members(List<Path> tree) {
        Set<Integer> pids = new LinkedHashSet<>();
        for (Path dir : tree) {
            String text = CgroupFiles.read(dir.resolve("cgroup.procs"));
            if (text == null) continue;
            for (String line : text.split("\n")) if (!line.isBlank()) pids.add(Integer.parseInt(line.trim()));
        }
        return pids;
    }

    /**
     * Thaws the v1 freezer cgroup and every one below it: a v1 frozen process dies of SIGKILL only
     * once thawed, and a sandbox can freeze a cgroup it made below its own (a review made its run
     * unkillable that way), whose own state a thawed parent leaves as it is.
     */
    private void thawAll(List<Path> tree) {
        if (!v1.containsKey("freezer")) {
            freeze(false);
            return;
        }
        for (Path dir : tree) { // parents before what is below them
            if (!dir.startsWith(v1.get("freezer"))) continue;
            try {
                CgroupFiles.write(dir.resolve("freezer.state"), "THAWED");
            } catch (IOException e) {
                // gone meanwhile
            }
        }
    }

    /** The sandbox's cgroup directories and every directory below them (a sandbox may make cgroups below its own). */
    private List<Path> tree() {
        List<Path> dirs = new ArrayList<>();
        for (Path dir : directories()) {
            try (var walk = Files.walk(dir)) {
                walk.filter(p -> Files.isDirectory(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)).forEach(dirs::add);
            } catch (IOException | java.io.UncheckedIOException e) {
                dirs.add(dir); // gone, or changing under the walk: at least the cgroup itself
            }
        }
        return dirs;
    }

    /** Freezes ({@code true}) or thaws every process of the sandbox; whether that could be asked. */
    public boolean freeze(boolean frozen) {
        try {
            if (v2 != null) {
                CgroupFiles.write(v2.resolve("cgroup.freeze"), frozen ? "1" : "0");
                return true;
            }
            Path freezer = v1.get("freezer");
            if (freezer != null) {
                CgroupFiles.write(freezer.resolve("freezer.state"), frozen ? "FROZEN" : "THAWED");
                return true;
            }
        } catch (IOException e) {
            // the cgroup is gone (the run is over) or the kernel lacks the freezer
        }
        return false;
    }

    /** Whether this cgroup counts the CPU time of the whole sandbox ({@link #cpuMicros}). */
    public boolean countsCpu() {
        return v2 != null || v1.containsKey("cpuacct");
    }

    /** CPU time (user and system) of every process the sandbox ever had, in microseconds; -1 if unknown. */
    public long cpuMicros() {
        if (v2 != null) return CgroupFiles.keyed(v2.resolve("cpu.stat")).getOrDefault("usage_usec", -1L);
        if (!v1.containsKey("cpuacct")) return -1;
        long nanos = CgroupFiles.number(v1.get("cpuacct").resolve("cpuacct.usage"));
        return nanos < 0 ? -1 : nanos / 1000;
    }

    /** CPU time of every process the sandbox ever had, and its memory peak; -1 where unknown. */
    public record Usage(long userMicros, long systemMicros, long peakBytes) {}

    public Usage usage() {
        long user = -1, system = -1;
        if (v2 != null) {
            Map<String, Long> stat = CgroupFiles.keyed(v2.resolve("cpu.stat"));
            user = stat.getOrDefault("user_usec", -1L);
            system = stat.getOrDefault("system_usec", -1L);
        } else if (v1.containsKey("cpuacct")) {
            long userNanos = CgroupFiles.number(v1.get("cpuacct").resolve("cpuacct.usage_user"));
            long systemNanos = CgroupFiles.number(v1.get("cpuacct").resolve("cpuacct.usage_sys"));
            if (userNanos >= 0 && systemNanos >= 0) {
                user = userNanos / 1000;
                system = systemNanos / 1000;
            }
        }
        long peak = -1;
        if (v2Controllers.contains("memory")) peak = CgroupFiles.number(v2.resolve("memory.peak"));
        if (peak < 0 && v1.containsKey("memory")) peak = CgroupFiles.number(v1.get("memory").resolve("memory.max_usage_in_bytes"));
        return new Usage(user, system, peak);
    }

    /**
     * The cgroup limit the sandbox ran into: "memory" when the kernel killed a process for memory
     * (the OOM killer within the cgroup), "pids" when a fork or clone failed at pids.max; else null.
     */
    public String limitExceeded() {
        // Counted where the limit is or where the process was, as the kernel and the version have it: both looked at.
        for (Path dir : withLeaf(v2Controllers.contains("memory") ? v2 : null)) {
            if (CgroupFiles.keyed(dir.resolve("memory.events")).getOrDefault("oom_kill", 0L) > 0) return "memory";
        }
        for (Path memory : withLeaf(v1.get("memory"))) {
            Map<String, Long> control = CgroupFiles.keyed(memory.resolve("memory.oom_control"));
            long kills = control.containsKey("oom_kill") ? control.get("oom_kill")
                    : CgroupFiles.number(memory.resolve("memory.failcnt")); // kernels before 4.13 count no kills
            if (kills > 0) return "memory";
        }
        for (Path dir : withLeaf(v2Controllers.contains("pids") ? v2 : null, v1.get("pids"))) {
            if (CgroupFiles.keyed(dir.resolve("pids.events")).getOrDefault("max", 0L) > 0) return "pids";
        }
        return null;
    }

    /** Each directory given (null: none) and its leaf. */
    private static List<Path> withLeaf(Path... dirs) {
        List<Path> both = new ArrayList<>();
        for (Path dir : dirs) {
            if (dir == null) continue;
            both.add(dir);
            both.add(dir.resolve(LEAF));
        }
        return both;
    }

    /**
     * Removes every directory once its processes are gone, waiting up to {@code waitMillis} for
     * them (a killed process leaves its cgroup when it has exited). Whether all are gone.
     */
    public boolean remove(long waitMillis) {
        List<Path> dirs = new ArrayList<>();
        for (Path dir : directories()) dirs.add(dir.resolve(LEAF));
        dirs.addAll(directories());
        return remove(dirs, waitMillis);
    }

    private static boolean remove(List<Path> dirs, long waitMillis) {
        long giveUp = System.nanoTime() + waitMillis * 1_000_000;
        boolean all = true;
        for (Path dir : dirs) {
            while (true) {
                // rmdir(2) alone: the JDK's deleteIfExists looks at the directory first, one statx more a run.
                if (Libc.rmdir(dir.toString()) == 0 || Libc.errno() == Libc.ENOENT) break;
                // EBUSY: a member has not exited yet, or a cgroup below it is there. Looked for only
                // now: listing a cgroup and asking what each entry is costs a hundred system calls,
                // for a run that made none below its own.
                if (removeChildren(dir) && System.nanoTime() < giveUp) continue;
                if (System.nanoTime() >= giveUp) {
                    all = false;
                    break;
                }
                sleepBriefly();
            }
        }
        return all;
    }

    /**
     * The cgroups the sandbox made below its own, deepest first: a root-run sandbox can mount
     * cgroupfs in a cgroup namespace of its own and mkdir there (and without nsdelegate nothing
     * stops it), and its cgroup could not be removed while they are there. Whether one was removed.
     */
    private static boolean removeChildren(Path dir) {
        List<Path> children = new ArrayList<>();
        try (var entries = Files.newDirectoryStream(dir, entry -> Files.isDirectory(entry, java.nio.file.LinkOption.NOFOLLOW_LINKS))) {
            entries.forEach(children::add);
        } catch (IOException | java.nio.file.DirectoryIteratorException e) {
            return false;
        }
        boolean removed = false;
        for (Path child : children) {
            removeChildren(child);
            try {
                removed |= Files.deleteIfExists(child);
            } catch (IOException e) {
                // still busy: the next look at the parent tries again
            }
        }
        return removed;
    }

    private static void sleepBriefly() {
        try {
            Thread.sleep(1);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public String toString() {
        return directories().toString();
    }
}
