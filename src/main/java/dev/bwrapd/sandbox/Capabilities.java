package dev.bwrapd.sandbox;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Which Linux capabilities a sandbox's processes hold. bwrap keeps every capability for a
 * sandbox run by root (even in its own user namespace), which lets the command remount a
 * read-only bind read-write, load modules, or trace bwrapd. So every run starts from nothing
 * ({@code --cap-drop ALL}) and a sandbox whose user is uid 0 gets back only what installing
 * files needs: Docker's default set minus the members that reach beyond the sandbox.
 *
 * <p>Dropped from Docker's default, and why: CAP_MKNOD (a device node written into the root is a
 * device node on the host's disk), CAP_SYS_CHROOT (with a descriptor from outside, chroot is a
 * classic way out), CAP_NET_RAW (forged packets on the host network with {@code network: true}),
 * CAP_AUDIT_WRITE (the host's audit log). Never granted by default either, as in Docker:
 * CAP_SYS_ADMIN (mount, remount), CAP_SYS_MODULE, CAP_SYS_PTRACE, CAP_SYS_RAWIO, CAP_NET_ADMIN,
 * CAP_SYS_BOOT, CAP_DAC_READ_SEARCH (open_by_handle_at reaches any file of a mounted
 * filesystem). A request may add names through {@code capabilities}.
 */
public final class Capabilities {
    private Capabilities() {}

    /** Every capability by number (capability.h, Linux 5.9+), so a name can be checked without bwrap. */
    static final List<String> ALL = List.of(
            "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
            "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
            "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
            "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
            "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
            "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
            "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
            "CAP_CHECKPOINT_RESTORE");

    /**
     * What a uid-0 sandbox keeps: enough for a build to install files as root (chown, override
     * permissions, set ownership and set-id bits, file capabilities), switch users, signal its own
     * processes and bind low ports in its own network.
     */
    public static final List<String> ROOT_DEFAULT = List.of(
            "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
            "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SETFCAP");

    public static boolean isName(String name) {
        return ALL.contains(name);
    }

    /**
     * The capabilities the sandbox gets: the root default when its user is uid 0, none otherwise
     * (a non-root build keeps what permission checks mean), plus what the request adds.
     */
    static List<String> granted(boolean sandboxUserIsRoot, List<String> requested) {
        Set<String> caps = new LinkedHashSet<>();
        if (sandboxUserIsRoot) caps.addAll(ROOT_DEFAULT);
        caps.addAll(requested);
        return List.copyOf(caps);
    }

    /**
     * The capabilities bwrapd can hand on: as root, those in its own permitted set (given as the
     * hex mask of /proc/self/status CapPrm); unprivileged with user namespaces, any, since they
     * then act only inside the sandbox's own user namespace; otherwise none (setuid bwrap refuses
     * --cap-add).
     */
    public static boolean grantable(HostCapabilities host, String name) {
        if (host.privileged()) {
            int bit = ALL.indexOf(name);
            return bit >= 0 && (host.permittedCapabilities() & (1L << bit)) != 0;
        }
        return host.userNamespaces() && isName(name);
    }

    /** Parses a hex capability mask as /proc/self/status writes it; 0 if unreadable. */
    public static long parseMask(String hex) {
        try {
            return Long.parseUnsignedLong(hex.trim(), 16);
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    /** The names set in a mask, in number order (for messages and tests). */
    public static List<String> names(long mask) {
        List<String> names = new ArrayList<>();
        for (int bit = 0; bit < ALL.size(); bit++) if ((mask & (1L << bit)) != 0) names.add(ALL.get(bit));
        return names;
    }
}
