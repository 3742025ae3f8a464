package dev.bwrapd.cgroup;

import java.util.ArrayList;
import java.util.List;

/**
 * A sandbox's resource limits, each null when not asked for (docs/protocol.md, Resource limits and
 * cgroups): memory of the whole sandbox, its number of processes and threads, CPU time, CPU
 * bandwidth (1.5 = one and a half CPUs), the largest file a process may write, and open
 * descriptors per process.
 */
public record Limits(Long memoryBytes, Long pids, Long cpuMs, Double cpus, Long fileSizeBytes, Long openFiles) {
    public static final Limits NONE = new Limits(null, null, null, null, null, null);

    /**
     * Each limit's range, the same for sandbox/run's {@code limits} and the Buildbarn runner's
     * {@code --limits}: the least that can work (a sandbox needs a MiB of memory), the most the
     * kernel takes (pid_max, nr_open's default), half of a long for the rest (sums stay exact).
     */
    public static final long MEMORY_BYTES_MIN = 1L << 20, PIDS_MAX = 1L << 22, OPEN_FILES_MAX = 1L << 20, WHOLE_MAX = Long.MAX_VALUE / 2;
    public static final double CPUS_MIN = 0.01, CPUS_MAX = 4096;

    /** The first limit out of its range, said as sandbox/run says it ({@code pids: must be between 1 and 4194304}), or null. */
    public String outOfRange() {
        if (memoryBytes != null && (memoryBytes < MEMORY_BYTES_MIN || memoryBytes > WHOLE_MAX)) return between("memoryBytes", MEMORY_BYTES_MIN, WHOLE_MAX);
        if (pids != null && (pids < 1 || pids > PIDS_MAX)) return between("pids", 1, PIDS_MAX);
        if (cpuMs != null && (cpuMs < 1 || cpuMs > WHOLE_MAX)) return between("cpuMs", 1, WHOLE_MAX);
        if (cpus != null && !(cpus >= CPUS_MIN && cpus <= CPUS_MAX)) return "cpus: must be between " + CPUS_MIN + " and " + CPUS_MAX;
        if (fileSizeBytes != null && (fileSizeBytes < 0 || fileSizeBytes > WHOLE_MAX)) return between("fileSizeBytes", 0, WHOLE_MAX);
        if (openFiles != null && (openFiles < 1 || openFiles > OPEN_FILES_MAX)) return between("openFiles", 1, OPEN_FILES_MAX);
        return null;
    }

    private static String between(String name, long min, long max) {
        return name + ": must be between " + min + " and " + max;
    }

    /** The protocol's names of the limits asked for, in the protocol's order. */
    public List<String> requested() {
        List<String> names = new ArrayList<>();
        if (memoryBytes != null) names.add("memoryBytes");
        if (pids != null) names.add("pids");
        if (cpuMs != null) names.add("cpuMs");
        if (cpus != null) names.add("cpus");
        if (fileSizeBytes != null) names.add("fileSizeBytes");
        if (openFiles != null) names.add("openFiles");
        return names;
    }

    /** These limits without {@code cpuMs}: for the rlimits when the cgroup watches the CPU time instead. */
    public Limits withoutCpuMs() {
        return new Limits(memoryBytes, pids, null, cpus, fileSizeBytes, openFiles);
    }

    public boolean isEmpty() {
        return requested().isEmpty();
    }
}
