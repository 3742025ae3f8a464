package dev.bwrapd.cgroup;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;

/**
 * Which mechanism enforces each limit on this host: a cgroup v2 controller where one is enabled
 * for our sandboxes, else a writable cgroup v1 controller, else an rlimit where one means the same
 * thing. A limit missing from the map cannot be enforced here (a request naming it is refused).
 *
 * <p>{@code cpuMs} is the CPU time of the whole sandbox where its cgroup counts it (v2 cpu.stat,
 * v1 cpuacct.usage): the run watches that count and kills the cgroup at the limit. Elsewhere it
 * falls back to RLIMIT_CPU, per process (whole seconds, rounded up; SIGXCPU at the limit, SIGKILL
 * a second later).
 *
 * <p>rlimits are per process, set on the sandbox's init before it is released and inherited by
 * everything it starts: {@code fileSizeBytes} is RLIMIT_FSIZE (a longer write fails with EFBIG, or
 * kills with SIGXFSZ unless that is ignored), {@code openFiles} RLIMIT_NOFILE. Memory, processes
 * and CPU bandwidth have no per-process equivalent that means the same, so they need a cgroup
 * controller.
 */
public final class Mechanisms {
    /** cpuMs without a cgroup that counts CPU time: per process. */
    static final String RLIMIT_CPU = "rlimit RLIMIT_CPU (per process)";

    private Mechanisms() {}

    /** Limit name to mechanism, in the protocol's order, for {@code capabilities.limits}. */
    public static Map<String, String> of(CgroupHost host) {
        Map<String, String> out = new LinkedHashMap<>();
        controller(out, host, "memoryBytes", "memory", "memory.max", "memory.limit_in_bytes");
        controller(out, host, "pids", "pids", "pids.max", "pids.max");
        out.put("cpuMs", !host.countsCpu() ? RLIMIT_CPU
                : host.v2Base() != null ? "cgroup v2 cpu.stat (whole sandbox)" : "cgroup v1 cpuacct.usage (whole sandbox)");
        controller(out, host, "cpus", "cpu", "cpu.max", "cpu.cfs_quota_us");
        out.put("fileSizeBytes", "rlimit RLIMIT_FSIZE");
        out.put("openFiles", "rlimit RLIMIT_NOFILE");
        return out;
    }

    private static void controller(Map<String, String> out, CgroupHost host, String limit, String controller,
                                   String v2File, String v1File) {
        String version = host.version(controller);
        if ("v2".equals(version)) out.put(limit, "cgroup v2 " + v2File);
        else if ("v1".equals(version)) out.put(limit, "cgroup v1 " + v1File);
    }

    /** The first limit in {@code limits} that this host cannot enforce. */
    public static Optional<String> unenforceable(Limits limits, Map<String, String> mechanisms) {
        return limits.requested().stream().filter(name -> !mechanisms.containsKey(name)).findFirst();
    }
}
