package dev.bwrapd.cleanup;

import dev.bwrapd.process.Libc;

import java.nio.file.Files;
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
 *
 * <p>A root is the directory behind the descriptor each run opened at its start, known by its
 * device and inode: never by its path, which a sandboxed command that reaches the root's parent
 * could point elsewhere (a root swapped for a link) while the run goes on.
 *
 * <p>Runs on nested roots ({@code R} and {@code R/inner}) have a lease each, and can share a mount
 * point all the same ({@code R/inner/proc}): a release leaves to the other lease what it uses,
 * each mount point known by its own device and inode (see {@link #release}).
 */
public final class RootLeases {
    private static final org.jboss.logging.Logger LOG = org.jboss.logging.Logger.getLogger(RootLeases.class);
    private final Map<Identity, Lease> leases = new HashMap<>();
    /** Where what bwrap may create is recorded until cleaned (null: not recorded). */
    private final RootJournal journal;
    /** Roots whose last user is removing bwrap's leftovers right now: no new run starts there until it is done. */
    private final Set<Identity> cleaning = new HashSet<>();
    /**
     * What those releases are removing, by each mount point's own device and inode: a run on
     * another root that would mount on one of them (a root nested in the other) waits too.
     */
    private final Set<Identity> removing = new HashSet<>();

    private record Identity(long device, long inode) {
        String name() {
            return device + "-" + inode;
        }
    }

    public RootLeases() {
        this(null);
    }

    public RootLeases(RootJournal journal) {
        this.journal = journal;
    }

    /** One root's shared state: how many runs use it, and for each watched path whether it pre-existed. */
    private static final class Lease {
        int users;
        /** The lease's own descriptor of the root (O_PATH), for other leases' releases to look in it; closed with the lease. */
        int rootFd = -1;
        final Map<String, Boolean> existedBefore = new LinkedHashMap<>();
        /** What the journal holds for this lease: nothing until bwrap may create something here. */
        List<String> recorded = List.of();
        /** Whether the journal holds a record of this lease (maybe of nothing: see {@link #acquire}). */
        boolean inJournal;
    }

    /**
     * Starts using the root behind {@code rootFd}, whose stat is {@code rootStat}; {@code paths}
     * (relative, parents first) are those this run's bwrap may create. Their prior existence is
     * recorded once, by the first run that names them. If the previous last user of this root is
     * still cleaning it, waits for that first: what it is removing must neither be recorded as
     * "existed before" (it would never be removed) nor be removed from under this run's mounts.
     */
    public synchronized void acquire(int rootFd, Libc.FileStat rootStat, List<String> paths) throws InterruptedException, Libc.Error {
        Identity root = identity(rootStat);
        while (cleaning.contains(root) || removing.contains(root) || beingRemoved(rootFd, paths)) wait(); // the root itself may be a directory another root's release removes
        // What pre-exists is looked at, and this lease recorded, while no other helper looks for users of the root and cleans it.
        Lease unlisted = null;
        try (RootJournal.Held held = journal == null ? NOT_HELD : journal.lock()) {
            Lease existing = leases.get(root);
            Lease lease = existing != null ? existing : (unlisted = new Lease());
            if (existing == null) lease.rootFd = ownDescriptor(rootFd);
            if (existing == null && journal != null) restore(rootFd, root);
            for (String path : paths) lease.existedBefore.computeIfAbsent(path, p -> exists(rootFd, p));
            // Written only when it changes: a prepared root (its mount points already there) never is,
            // unless another bwrapd, alive or dead, has a record of it: then this one's record, even of
            // nothing, tells whoever would clean the root that its mount points are in use here (see
            // release; a dead one's leftovers would otherwise count as pre-existing here, and be
            // removed from under this lease's sandboxes by the next helper that takes them).
            List<String> created = created(lease);
            if (journal != null && (!created.equals(lease.recorded) || !lease.inJournal && journal.recordedByOthers(root.name()))) {
                journal.write(root.name(), where(rootFd), created);
                lease.recorded = created;
                lease.inJournal = true;
            }
            // Counted last: a lease that failed on the way (an Error) is no user that is never released.
            lease.users++;
            if (existing == null) leases.put(root, lease);
            unlisted = null;
        } finally {
            if (unlisted != null && unlisted.rootFd >= 0) Libc.close(unlisted.rootFd); // never listed: nobody else will close it
        }
    }

    private static int ownDescriptor(int rootFd) throws Libc.Error {
        int fd = Libc.openat(rootFd, ".", Libc.O_PATH | Libc.O_DIRECTORY);
        if (fd < 0) throw new Libc.Error("open the root again", Libc.errno());
        return fd;
    }

    /** Whether one of {@code paths} is a mount point that a release is removing right now (another root's, nested). */
    private boolean beingRemoved(int rootFd, List<String> paths) {
        if (removing.isEmpty()) return false;
        for (String path : paths) {
            Libc.FileStat stat = lookIfPresent(rootFd, path);
            if (stat != null && removing.contains(identity(stat))) return true;
        }
        return false;
    }

    private static final RootJournal.Held NOT_HELD = () -> {};

    /**
     * What a bwrapd that died using this root recorded, removed before anything here counts as
     * pre-existing; but for what a live lease of this helper uses (under this object's lock and the journal's).
     */
    private void restore(int rootFd, Identity root) {
        RootJournal.Orphans orphans = journal.takeOrphans(root.name(), () -> where(rootFd), () -> born(rootFd));
        if (orphans.paths().isEmpty()) return;
        List<String> paths = new ArrayList<>(orphans.paths());
        handOverToNestedLeases(lookAt(rootFd, paths), paths, true); // what a lease of this helper uses (a nested root's) is its to remove
        if (paths.isEmpty()) return;
        CleanupReport report = RootCleaner.remove(Path.of("/proc/self/fd/" + rootFd), paths.reversed(), Set.copyOf(paths), orphans.recordedSince());
        LOG.infof("removed what a killed bwrapd left in a root: %s (left: %s)", report.removed(), report.failed());
    }

    /** Where the root is now, as the kernel names it. */
    private static String where(int rootFd) {
        try {
            return Files.readSymbolicLink(Path.of("/proc/self/fd/" + rootFd)).toString();
        } catch (java.io.IOException e) {
            return "";
        }
    }

    /** When the root was made, or Libc.BIRTH_UNKNOWN. */
    private static long born(int rootFd) {
        try {
            Long born = Libc.birthNanos(rootFd, "", Libc.AT_EMPTY_PATH);
            return born == null ? Libc.BIRTH_UNKNOWN : born;
        } catch (Libc.Error e) {
            return Libc.BIRTH_UNKNOWN;
        }
    }

    private static List<String> created(Lease lease) {
        List<String> paths = new ArrayList<>();
        lease.existedBefore.forEach((path, existed) -> { if (!existed) paths.add(path); });
        return paths;
    }

    /**
     * Stops using the root behind {@code rootFd} (whose stat is {@code rootStat}); the last user
     * removes what bwrap created there, through that descriptor.
     */
    public CleanupReport release(int rootFd, Libc.FileStat rootStat) {
        Identity root = identity(rootStat);
        List<String> toRemove = new ArrayList<>();
        Set<Identity> removed = new HashSet<>();
        boolean recorded;
        Kept kept;
        synchronized (this) {
            Lease lease = leases.get(root);
            if (lease == null) return CleanupReport.NOTHING;
            if (--lease.users > 0) return CleanupReport.DEFERRED;
            leases.remove(root);
            Libc.close(lease.rootFd);
            toRemove.addAll(created(lease));
            recorded = lease.inJournal;
            // A prepared root, recorded nowhere: nothing of this helper's to remove or hand over, and
            // what others handed over is the next lease's to take (restore). No lock, no look.
            if (toRemove.isEmpty() && !recorded) return CleanupReport.NOTHING;
            Map<String, Identity> mountPoints = lookAt(rootFd, toRemove);
            kept = handOverToNestedLeases(mountPoints, toRemove, false);
            for (String path : toRemove) {
                Identity mountPoint = mountPoints.get(path);
                if (mountPoint != null && removing.add(mountPoint)) removed.add(mountPoint);
            }
            cleaning.add(root);
        }
        try {
            // Without a journal, removed outside this object's lock: runs on other roots go on meanwhile.
            if (journal == null) return removed(rootFd, toRemove, Set.of(), Libc.BIRTH_UNKNOWN, kept.leftToAnother());
            // With one, this lock first and then the journal's, as acquire takes them (the other way round,
            // each would wait for the other's): what another helper handed over is looked at against this
            // helper's leases. The journal's lock serializes this work across the helper all the same.
            synchronized (this) {
                return releaseRecorded(root, rootFd, toRemove, kept, recorded);
            }
        } finally {
            synchronized (this) {
                cleaning.remove(root);
                removing.removeAll(removed);
                notifyAll();
            }
        }
    }

    /**
     * The end of a release with a journal, under this object's lock and the journal's: another
     * bwrapd's sandboxes on this root may be mounted on what this one's bwrap made, and removing a
     * mount point unmounts it in their mount namespaces too, so the last bwrapd on the root removes
     * it, from the record handed over; what of that a live lease of this helper uses (a nested
     * root's) is left to it.
     */
    private CleanupReport releaseRecorded(Identity root, int rootFd, List<String> toRemove, Kept kept, boolean recorded) {
        try (RootJournal.Held held = journal.lock()) {
            if (journal.usedByOthers(root.name())) {
                if (recorded) journal.handOver(root.name());
                return CleanupReport.DEFERRED;
            }
            Set<String> othersRecorded = Set.of();
            long recordedSince = Libc.BIRTH_UNKNOWN;
            boolean leftToAnother = kept.leftToAnother();
            RootJournal.Orphans handedOver = journal.takeOrphansOfAnUnusedRoot(root.name(), () -> where(rootFd), () -> born(rootFd));
            if (!handedOver.paths().isEmpty()) {
                List<String> theirs = new ArrayList<>();
                for (String path : handedOver.paths()) if (!toRemove.contains(path) && !kept.paths().contains(path)) theirs.add(path);
                Kept nested = handOverToNestedLeases(lookAt(rootFd, theirs), theirs, true);
                leftToAnother |= nested.leftToAnother();
                toRemove.removeAll(nested.paths()); // the parents of what stays
                othersRecorded = Set.copyOf(theirs);
                recordedSince = handedOver.recordedSince();
                toRemove.addAll(theirs);
                // Parents first across both lists too, as each was recorded.
                toRemove.sort(java.util.Comparator.comparingLong(path -> path.chars().filter(c -> c == '/').count()));
            }
            CleanupReport report = removed(rootFd, toRemove, othersRecorded, recordedSince, leftToAnother);
            if (recorded) journal.forget(root.name());
            return report;
        }
    }

    /** Removes {@code toRemove} (recorded parents first) from the root, children first; {@code leftToAnother}: the cleanup is deferred. */
    private static CleanupReport removed(int rootFd, List<String> toRemove, Set<String> othersRecorded, long recordedSince, boolean leftToAnother) {
        CleanupReport report = RootCleaner.remove(Path.of("/proc/self/fd/" + rootFd), toRemove.reversed(), othersRecorded, recordedSince);
        return leftToAnother ? new CleanupReport(report.ok(), report.removed(), report.failed(), true) : report;
    }

    /** What is at each of {@code paths} in the root now, by device and inode (missing ones left out). */
    private static Map<String, Identity> lookAt(int rootFd, List<String> paths) {
        Map<String, Identity> mountPoints = new HashMap<>();
        for (String path : paths) {
            Libc.FileStat stat = lookIfPresent(rootFd, path);
            if (stat != null) mountPoints.put(path, identity(stat));
        }
        return mountPoints;
    }

    /**
     * What a release keeps ({@link #handOverToNestedLeases}); {@code leftToAnother}: some of it is
     * another lease's to remove now (its cleanup is deferred), not only another run's root, which
     * stays for good.
     */
    private record Kept(Set<String> paths, boolean leftToAnother) {
        static final Kept NOTHING = new Kept(Set.of(), false);
    }

    /**
     * Takes out of {@code toRemove} (what the ending lease of {@code root} would remove) each
     * mount point that a live lease of another root relies on, by the mount point's own device
     * and inode: with nested roots, {@code R/inner/proc} is the mount target {@code /inner/proc}
     * of a run on {@code R} and the {@code /proc} of a run on {@code R/inner}, and removing it
     * would unmount it in the other's sandbox too. The other lease removes it when it ends (its
     * journal record says so from now on), as a helper that shares a root hands its record over.
     * The parents of what stays, and another lease's root, stay too. What stayed. {@code
     * mountPoints}: what is at each path of {@code toRemove} now; {@code journalHeld}: the caller
     * holds the journal's lock (taken again, a second channel's close would release it).
     */
    private Kept handOverToNestedLeases(Map<String, Identity> mountPoints, List<String> toRemove, boolean journalHeld) {
        if (leases.isEmpty()) return Kept.NOTHING;
        Set<String> kept = new HashSet<>();
        boolean leftToAnother = false;
        Set<Lease> changed = new java.util.LinkedHashSet<>();
        for (String path : toRemove) {
            Identity mountPoint = mountPoints.get(path);
            if (mountPoint == null) continue;
            for (Map.Entry<Identity, Lease> other : leases.entrySet()) {
                if (other.getKey().equals(mountPoint)) kept.add(path); // another run's root: never this one's to remove
                Lease lease = other.getValue();
                for (Map.Entry<String, Boolean> watched : lease.existedBefore.entrySet()) {
                    if (!mayBeOneFile(path, watched.getKey())) continue;
                    Libc.FileStat theirs = lookIfPresent(lease.rootFd, watched.getKey());
                    if (theirs == null || !identity(theirs).equals(mountPoint)) continue;
                    kept.add(path);
                    leftToAnother = true;
                    if (watched.getValue()) {
                        watched.setValue(false); // existed before for that lease, as this one's bwrap made it: now that lease's to remove
                        changed.add(lease);
                    }
                }
            }
        }
        if (kept.isEmpty()) return Kept.NOTHING;
        for (String path : List.copyOf(kept)) {
            for (int slash = path.indexOf('/'); slash > 0; slash = path.indexOf('/', slash + 1)) kept.add(path.substring(0, slash));
        }
        toRemove.removeAll(kept);
        if (journal != null && !changed.isEmpty()) {
            try (RootJournal.Held held = journalHeld ? NOT_HELD : journal.lock()) {
                for (Map.Entry<Identity, Lease> other : leases.entrySet()) {
                    Lease lease = other.getValue();
                    if (!changed.contains(lease)) continue;
                    lease.recorded = created(lease);
                    journal.write(other.getKey().name(), where(lease.rootFd), lease.recorded);
                    lease.inJournal = true;
                }
            }
        }
        LOG.debugf("mount points left to runs on nested roots: %s", kept);
        return new Kept(kept, leftToAnother);
    }

    /**
     * Whether {@code a} and {@code b} (relative paths in two roots) may name one file: their last
     * names are the same (a name cheaper than a look). Not only when one path ends with the other
     * (a root nested in the other): a root may hold a bind mount of a directory of the other,
     * and then {@code a/proc} and {@code sub/proc}, or {@code x/proc} in both, are one directory.
     */
    static boolean mayBeOneFile(String a, String b) {
        return a.substring(a.lastIndexOf('/') + 1).equals(b.substring(b.lastIndexOf('/') + 1));
    }

    /**
     * The file at {@code path} in the root, or null when nothing is there or it cannot be looked at.
     * No link is followed on the way: a sandbox that can write its root could otherwise point a name
     * on the way at another root's directory that existed before, which would then be taken for
     * this run's mount point and handed to that root's lease to remove.
     */
    private static Libc.FileStat lookIfPresent(int rootFd, String path) {
        int fd = Libc.openat2(rootFd, path, Libc.O_PATH | Libc.O_NOFOLLOW, 0, Libc.RESOLVE_NO_SYMLINKS | Libc.RESOLVE_BENEATH);
        if (fd < 0) return null;
        try {
            return Libc.stat(fd, "", Libc.AT_EMPTY_PATH);
        } catch (Libc.Error e) {
            return null;
        } finally {
            Libc.close(fd);
        }
    }

    /** A descriptor's device and inode stay what they were when it was opened: its stat then names the root for good. */
    private static Identity identity(Libc.FileStat rootStat) {
        return new Identity(rootStat.device(), rootStat.inode());
    }

    /** Whether {@code path} is there, the last name not followed if it is a link. */
    private static boolean exists(int rootFd, String path) {
        try {
            return Libc.statIfPresent(rootFd, path, Libc.AT_SYMLINK_NOFOLLOW) != null;
        } catch (Libc.Error e) {
            return false;
        }
    }

    /** Where this user's journals are (sandboxes must not see them): nowhere known without a journal. */
    public JournalPlace journalPlace() {
        return journal == null ? JournalPlace.NOWHERE : journal.place();
    }

    /** Roots in use right now (for tests and diagnostics). */
    public synchronized int inUse() {
        return leases.size();
    }
}
