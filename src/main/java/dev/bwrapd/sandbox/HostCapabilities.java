package dev.bwrapd.sandbox;

/**
 * What this host's bwrap can do, found by trying (as BuildStream's platform probe did):
 * each flag is true only if a real bwrap run with that option succeeded.
 */
public record HostCapabilities(
        String bwrapPath,
        String bwrapVersion,
        boolean userNamespaces,
        boolean dieWithParent,
        boolean jsonStatusFd,
        boolean subreaper,
        String linux32Path,
        boolean privileged,
        long permittedCapabilities,
        boolean cgroupV1) {

    /**
     * Without the privilege fields: an unprivileged bwrapd. {@code privileged} is bwrapd's
     * effective uid being 0; {@code permittedCapabilities} its CapPrm mask, what it can hand on;
     * {@code cgroupV1} whether the host has cgroup v1 hierarchies (see {@link #nestedUserNamespaces}).
     */
    public HostCapabilities(String bwrapPath, String bwrapVersion, boolean userNamespaces, boolean dieWithParent,
                            boolean jsonStatusFd, boolean subreaper, String linux32Path) {
        this(bwrapPath, bwrapVersion, userNamespaces, dieWithParent, jsonStatusFd, subreaper, linux32Path, false, 0, false);
    }

    /**
     * Whether a sandbox's command may make user namespaces of its own. Not when bwrapd runs as root
     * on a host with cgroup v1 hierarchies ({@code cgroupV1}: hybrid and legacy hosts): there a user
     * namespace of the command's, whose uid 0 is the host's, can make a cgroup namespace and mount
     * any v1 hierarchy, whose files the host's uid 0 owns, rooted at the cgroup the command is in.
     * In the hierarchies where the sandbox has no cgroup of its own (cpuset, devices, name=systemd...)
     * that is bwrapd's, or the host's root cgroup: the command could freeze other processes or raise
     * their limits there. bwrap's {@code --disable-userns} takes that away (a review showed it).
     */
    public boolean nestedUserNamespaces() {
        return userNamespaces && !(privileged && cgroupV1);
    }

    public boolean linux32() {
        return linux32Path != null;
    }
}
