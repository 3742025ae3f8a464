package dev.bwrapd;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * What this host has, asked of the host itself: a test decides from these whether the helper must
 * have a capability, so that a helper that lost one fails instead of skipping.
 */
public final class HostFacts {
    private HostFacts() {}

    /** Whether the dynamic linker knows libseccomp.so.2 (ldconfig's cache), which the helper loads at run time. */
    public static boolean hasLibseccomp() throws Exception {
        for (String ldconfig : List.of("/sbin/ldconfig", "/usr/sbin/ldconfig")) {
            if (!Files.isExecutable(Path.of(ldconfig))) continue;
            Process p = new ProcessBuilder(ldconfig, "-p").redirectErrorStream(true).start();
            String cache = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            p.waitFor();
            return cache.contains("libseccomp.so.2 ");
        }
        return false;
    }

    /** This host's cgroup v1 hierarchies by their controllers (each is in /proc/self/cgroup, mounted or not). */
    public static List<String> cgroupV1Hierarchies() throws Exception {
        List<String> hierarchies = new ArrayList<>();
        for (String line : Files.readAllLines(Path.of("/proc/self/cgroup"))) {
            String[] parts = line.split(":", 3);
            if (parts.length == 3 && !parts[0].equals("0")) hierarchies.add(parts[1]);
        }
        return hierarchies;
    }

    /**
     * Whether the helper, run by this user, must refuse its sandboxes user namespaces of their own:
     * as root on a host with cgroup v1 hierarchies (capabilities.nestedUserNamespaces).
     */
    public static boolean rootOnCgroupV1() throws Exception {
        return "root".equals(System.getProperty("user.name")) && !cgroupV1Hierarchies().isEmpty();
    }
}
