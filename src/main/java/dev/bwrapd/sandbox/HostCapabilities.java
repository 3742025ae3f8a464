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
        long permittedCapabilities) {

    /**
     * Without the privilege fields: an unprivileged bwrapd. {@code privileged} is bwrapd's
     * effective uid being 0; {@code permittedCapabilities} its CapPrm mask, what it can hand on.
     */
    public HostCapabilities(String bwrapPath, String bwrapVersion, boolean userNamespaces, boolean dieWithParent,
                            boolean jsonStatusFd, boolean subreaper, String linux32Path) {
        this(bwrapPath, bwrapVersion, userNamespaces, dieWithParent, jsonStatusFd, subreaper, linux32Path, false, 0);
    }

    public boolean linux32() {
        return linux32Path != null;
    }
}
