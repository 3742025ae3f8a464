package dev.bwrapd.cleanup;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Tracks which sandbox roots are in use and what existed in them before bwrap ran. Runs that
 * share a root share one lease: what bwrap creates for one run (device mount points, /tmp, ...)
 * is still mounted on by the others, so only the last run to finish removes it.
 */
public final class RootLeases {
    private final Map<Path, Lease> leases = new HashMap<>();
    /** Roots whose last user is removing bwrap's leftovers right now: no new run starts there until it is done. */
    private final Set<Path> cleaning = new HashSet<>();

    /** One root's shared state: how many runs use it, and for each watched path whether it pre-existed. */
    private static final class Lease {
        int users;
        final Map<String, Boolean> existedBefore = new LinkedHashMap<>();
    }

    /**
     * Starts using {@code root}; {@code paths} (relative, parents first) are those this run's
     * bwrap may create. Their prior existence is recorded once, by the first run that names them.
     * If the previous last user of this root is still cleaning it, waits for that first: what it
     * is removing must neither be recorded as "existed before" (it would never be removed) nor be
     * removed from under this run's mounts.
     */
    public synchronized void acquire(Path root, List<String> paths) throws InterruptedException {
        while (cleaning.contains(root)) wait();
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
            cleaning.add(root);
            lease.existedBefore.forEach((path, existed) -> { if (!existed) toRemove.add(path); });
        }
        try {
            // Children before parents: the paths were recorded parents first.
            return RootCleaner.remove(root, toRemove.reversed());
        } finally {
            synchronized (this) {
                cleaning.remove(root);
                notifyAll();
            }
        }
    }

    /** Roots in use right now (for tests and diagnostics). */
    public synchronized int inUse() {
        return leases.size();
    }
}
