package dev.bwrapd.cleanup;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Tracks which sandbox roots are in use and what existed in them before bwrap ran. Runs that
 * share a root share one lease: what bwrap creates for one run (device mount points, /tmp, ...)
 * is still mounted on by the others, so only the last run to finish removes it.
 */
public final class RootLeases {
    private final Map<Path, Lease> leases = new HashMap<>();

    /** One root's shared state: how many runs use it, and for each watched path whether it pre-existed. */
    private static final class Lease {
        int users;
        final Map<String, Boolean> existedBefore = new LinkedHashMap<>();
    }

    /**
     * Starts using {@code root}; {@code paths} (relative, parents first) are those this run's
     * bwrap may create. Their prior existence is recorded once, by the first run that names them.
     */
    public synchronized void acquire(Path root, List<String> paths) {
        Lease lease = leases.computeIfAbsent(root, r -> new Lease());
        lease.users++;
        for (String path : paths) {
            lease.existedBefore.computeIfAbsent(path, p -> Files.exists(root.resolve(p), LinkOption.NOFOLLOW_LINKS));
        }
    }

    /** Stops using {@code root}; the last user removes what bwrap created there. */
    public CleanupReport release(Path root) {
        List<String> toRemove = new ArrayList<>();
        synchronized (this) {
            Lease lease = leases.get(root);
            if (lease == null) return CleanupReport.NOTHING;
            if (--lease.users > 0) return CleanupReport.DEFERRED;
            leases.remove(root);
            lease.existedBefore.forEach((path, existed) -> { if (!existed) toRemove.add(path); });
        }
        // Children before parents: the paths were recorded parents first.
        return RootCleaner.remove(root, toRemove.reversed());
    }

    /** Roots in use right now (for tests and diagnostics). */
    public synchronized int inUse() {
        return leases.size();
    }
}
