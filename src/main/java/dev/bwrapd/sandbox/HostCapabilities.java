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
        String linux32Path) {

    public boolean linux32() {
        return linux32Path != null;
    }
}
