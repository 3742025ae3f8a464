package dev.bwrapd.cgroup;

import java.util.ArrayList;
import java.util.List;

/**
 * A sandbox's resource limits, each null when not asked for (PROTOCOL.md section 8): memory of the
 * whole sandbox, its number of processes and threads, CPU time, CPU bandwidth (1.5 = one and a half
 * CPUs), the largest file a process may write, and open descriptors per process.
 */
public record Limits(Long memoryBytes, Long pids, Long cpuMs, Double cpus, Long fileSizeBytes, Long openFiles) {
    public static final Limits NONE = new Limits(null, null, null, null, null, null);

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
