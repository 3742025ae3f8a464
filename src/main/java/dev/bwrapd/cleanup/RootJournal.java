package dev.bwrapd.cleanup;

import dev.bwrapd.process.Libc;
import org.jboss.logging.Logger;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.channels.FileChannel;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.LinkOption;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/**
 * A record, outside every root, of what bwrap may create in each root in use: written before
 * bwrap starts, removed once the root is clean. A bwrapd killed (SIGKILL) in the middle of a run
 * never cleans; the next bwrapd to use that root finds the record of the dead one and removes
 * what it names, the same link-safe way as any cleanup (only empty directories and empty files).
 *
 * <p>The records live in a directory of bwrapd's user only: {@code $XDG_RUNTIME_DIR/bwrapd},
 * else {@code /run/bwrapd} for root, else {@code /tmp/bwrapd-UID}; one that is not a directory
 * of this user with mode 0700 (a link, someone else's) disables the journal rather than trusting it.
 * It is used through a descriptor, the directory the sandboxes' hiding knows; where its path leads
 * to another one (removed and made again), the journals are learned again ({@link #place}).
 * Each root has a directory there named after its device and inode, and each writer a record in it
 * named after its pid, holding the root's path: a lease lists only its own root's records (the
 * directory as a whole grows with every root ever used, and every run used to list it all). A
 * record whose writer still runs is left alone (a reused pid only leaves debris, as without a
 * journal), one whose path differs (a reused inode) is dropped unused, unless the root is older
 * than its directory of records (the same root by another name: see {@link #take}). The directories of roots
 * never used again stay, empty.
 */
public final class RootJournal {
    private static final Logger LOG = Logger.getLogger(RootJournal.class);

    /** Where the journal is, as this helper was told. */
    private final Path path;
    private final int uid;
    private final long pid = ProcessHandle.current().pid();
    /**
     * The journal's directory (O_PATH), which every look and write here goes through: the very
     * directory the hiding knows ({@link #learned}), whatever its path leads to meanwhile.
     * Replaced, and the old one closed, under {@link #lockedHere} only, which every use holds.
     */
    private int dirFd = -1;
    /** Where this user's journals are, this one's among them, for runs to keep them out of their sandboxes. */
    private volatile Learned learned;

    private RootJournal(Path path, int uid) {
        this.path = path;
        this.uid = uid;
    }

    /**
     * Where this user's journals are: runs keep them out of their sandboxes. Learned again where
     * a journal's path leads to another directory than when they were learned (one removed, by
     * tmpfiles or at logout, and made again): a few lstat(2)s a run.
     */
    public JournalPlace place() {
        Learned known = learned;
        if (known.unchanged(known.watched().size())) return known.place();
        followTheJournals();
        return learned.place();
    }

    /** A path where this user's journals are, and what was there when they were learned (null: nothing). */
    private record Watched(String path, Libc.FileStat seen) {
        static Watched now(Path path) {
            return new Watched(path.toString(), lstat(path.toString()));
        }

        boolean unchanged() {
            Libc.FileStat now = lstat(path);
            return now == null ? seen == null : seen != null && now.sameFile(seen);
        }

        private static Libc.FileStat lstat(String path) {
            try {
                return Libc.statIfPresent(Libc.AT_FDCWD, path, Libc.AT_SYMLINK_NOFOLLOW);
            } catch (Libc.Error e) {
                return null; // cannot look: nothing usable there
            }
        }
    }

    /** The journals' place, and their paths as they were looked at just before: this helper's own first. */
    private record Learned(JournalPlace place, List<Watched> watched) {
        /** Whether the first {@code count} paths lead where they did. */
        boolean unchanged(int count) {
            for (int i = 0; i < count; i++) if (!watched.get(i).unchanged()) return false;
            return true;
        }
    }

    /** The journal of this user, or null when no private directory can be had. Reads the environment: call from Main. */
    public static RootJournal open(String xdgRuntimeDir, int uid) {
        Path dir = xdgRuntimeDir != null && xdgRuntimeDir.startsWith("/") ? Path.of(xdgRuntimeDir, "bwrapd") : fallback(uid);
        RootJournal journal = new RootJournal(dir, uid);
        try {
            journal.learn();
            return journal;
        } catch (IOException e) {
            LOG.warnf("no root journal (%s): a bwrapd killed mid-run leaves its mount points in the root", e.getMessage());
            return null;
        }
    }

    /**
     * Opens the journal's directory and learns where this user's journals are ({@link
     * JournalPlace}); its paths are looked at before the place is learned, so that a change
     * meanwhile is seen the next time. The directory opened must be the one the place knows.
     */
    private void learn() throws IOException {
        PrivateDirectory.open(path, uid);
        int fd = Libc.openat(Libc.AT_FDCWD, path.toString(), Libc.O_PATH | Libc.O_DIRECTORY | Libc.O_NOFOLLOW);
        if (fd < 0) throw new Libc.Error("open " + path, Libc.errno());
        try {
            Libc.FileStat own = Libc.stat(fd, "", Libc.AT_EMPTY_PATH);
            if (own.uid() != uid || (own.mode() & 07777) != 0700) throw new IOException(path + " is not a private directory of this user");
            List<Path> journals = journalsOfThisUser(path, uid);
            List<Watched> watched = new ArrayList<>();
            for (Path journal : List.of(path, fallback(uid), usual(uid))) {
                if (watched.stream().noneMatch(w -> w.path().equals(journal.toString()))) watched.add(Watched.now(journal));
            }
            if (watched.getFirst().seen() == null || !watched.getFirst().seen().sameFile(own)) throw new IOException(path + " changed while opened");
            JournalPlace place = JournalPlace.of(journals);
            if (place.journals().stream().noneMatch(j -> j.sameFile(own))) throw new IOException(path + " changed while learned");
            if (dirFd >= 0) Libc.close(dirFd);
            dirFd = fd;
            fd = -1;
            learned = new Learned(place, watched);
        } finally {
            if (fd >= 0) Libc.close(fd);
        }
    }

    /**
     * A journal's path leads elsewhere than when they were learned: learned again (this helper's
     * own made again if missing, so that no sandbox makes it first), under {@link #lockedHere}.
     * Where that fails, this helper goes on with the directory it has (removed, its records fail
     * and say so) and does not try again until a path changes again.
     */
    private void followTheJournals() {
        lockedHere.lock();
        try {
            Learned before = learned;
            if (before.unchanged(before.watched().size())) return; // learned by another thread just now
            try {
                learn();
                LOG.infof("a root journal was removed or replaced since it was looked at (%s): where they are learned again", paths(before));
            } catch (IOException e) {
                List<Watched> now = new ArrayList<>();
                for (Watched w : before.watched()) now.add(Watched.now(Path.of(w.path())));
                learned = new Learned(before.place(), now);
                LOG.warnf("a root journal was removed or replaced, and cannot be had again (%s): this helper goes on with the one it had", e.getMessage());
            }
        } finally {
            lockedHere.unlock();
        }
    }

    private static String paths(Learned learned) {
        return String.join(", ", learned.watched().stream().map(Watched::path).toList());
    }

    /** The journal's directory, as a path the JDK can use: through its descriptor. Under {@link #lockedHere}. */
    private Path dir() {
        return Path.of("/proc/self/fd/" + dirFd);
    }

    /** The journal of a helper started without XDG_RUNTIME_DIR. */
    private static Path fallback(int uid) {
        return uid == 0 ? Path.of("/run/bwrapd") : Path.of("/tmp/bwrapd-" + uid);
    }

    /** The journal of a helper started with the usual XDG_RUNTIME_DIR. */
    private static Path usual(int uid) {
        return Path.of("/run/user/" + uid + "/bwrapd");
    }

    /**
     * The journals of this user's helpers that this one knows of, its own first: the fallback
     * and the usual {@code XDG_RUNTIME_DIR}'s (where that directory is), each made now if missing:
     * a sandbox that could make one first would fill it with records for the next helper that
     * uses it. A helper started with another {@code XDG_RUNTIME_DIR} keeps one this helper cannot know.
     */
    static List<Path> journalsOfThisUser(Path own, int uid) {
        List<Path> journals = new ArrayList<>(List.of(own));
        Path usual = usual(uid);
        for (Path other : List.of(fallback(uid), usual)) {
            if (other.equals(own)) continue;
            if (other == usual && !Files.isDirectory(usual.getParent(), LinkOption.NOFOLLOW_LINKS)) continue; // no runtime directory of the user's: not made here
            try {
                journals.add(PrivateDirectory.open(other, uid));
            } catch (IOException e) {
                // not a private directory of this user: no helper trusts it either
            }
        }
        return journals;
    }

    /**
     * Records (replacing an earlier record of this process) what bwrap may create in {@code root},
     * found at {@code where}: a later root with the same device and inode (a reused inode) but
     * elsewhere is not this one.
     */
    void write(String root, String where, List<String> paths) {
        List<String> lines = new ArrayList<>();
        lines.add(where.indexOf('\n') < 0 ? where : ""); // a newline would spill the path into those named: the root's birth then decides (take)
        for (String path : paths) if (path.indexOf('\n') < 0) lines.add(path);
        Path records = dir().resolve(root);
        Path file = records.resolve(Long.toString(pid));
        Path temporary = records.resolve(pid + ".new");
        try {
            for (int attempt = 1; ; attempt++) {
                if (!hasRecords(records)) makeDirectory(records);
                try {
                    Files.write(temporary, lines, StandardCharsets.UTF_8);
                    break;
                } catch (NoSuchFileException e) { // another helper's last record of this root took the directory with it
                    if (attempt == 3) throw e;
                }
            }
            Files.move(temporary, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            LOG.warnf("cannot record the mount points of a run: %s", e.getMessage());
        }
    }

    /**
     * Whether a root's directory of records is there, asked without an exception (usually it is
     * not: nothing was ever recorded for that root); anything else at that name is an error.
     */
    private static boolean hasRecords(Path records) throws Libc.Error {
        Libc.FileStat stat = Libc.statIfPresent(Libc.AT_FDCWD, records.toString(), Libc.AT_SYMLINK_NOFOLLOW);
        if (stat == null) return false;
        if (stat.type() != Libc.S_IFDIR) throw new Libc.Error(records + " is not a directory", Libc.ENOTDIR);
        return true;
    }

    /** {@link #hasRecords}, a directory that cannot be looked at counting as none (logged). */
    private static boolean hasReadableRecords(Path records) {
        try {
            return hasRecords(records);
        } catch (Libc.Error e) {
            LOG.warnf("cannot read the root records: %s", e.getMessage());
            return false;
        }
    }

    private static void makeDirectory(Path records) throws IOException {
        try {
            Files.createDirectory(records, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        } catch (FileAlreadyExistsException e) {
            // another helper made it just now
        }
    }

    /**
     * The root is clean: this process's record of it goes, and the root's directory with its last
     * record, so that later leases of the root find nothing to list (a writer that finds the
     * directory gone makes it again).
     */
    void forget(String root) {
        Path records = dir().resolve(root);
        try {
            Files.deleteIfExists(records.resolve(Long.toString(pid)));
        } catch (IOException e) {
            LOG.warnf("cannot remove a root record: %s", e.getMessage());
            return;
        }
        try {
            Files.delete(records);
        } catch (IOException e) {
            // other helpers' records (or unfinished ones) are still there: theirs to remove
        }
    }

    /** What {@link #lock} gives: released by closing it. */
    public interface Held extends AutoCloseable {
        @Override
        void close();
    }

    /** How long {@link #lock} waits for another process to let go of the lock. */
    static final long LOCK_WAIT_MS = 2000;

    private final java.util.concurrent.locks.ReentrantLock lockedHere = new java.util.concurrent.locks.ReentrantLock();

    /**
     * Holds, among this user's helpers, the right to look at the others' records and act on what
     * is found: a lease's look at what pre-exists in a root and its record, a release's look for
     * other users of the root and its removal (see RootLeases). Otherwise a helper could find a
     * mount point there, and another, not yet seeing its record, remove it from under its bwrap.
     * An fcntl lock on {@code lock} here, which belongs to the process: so one thread at a time
     * holds it, with its own channel (closing any channel of that file would release it). Waited
     * for at most {@link #LOCK_WAIT_MS}: any process that can open the file for reading can hold a
     * lock on it (a sandbox that sees this directory, which it should not), and helpers take it
     * only for moments. Without the lock (it cannot be had: logged), the same steps are taken
     * unguarded.
     */
    public Held lock() {
        lockedHere.lock();
        FileChannel channel = null;
        try {
            if (!learned.unchanged(1)) followTheJournals(); // this helper's own: an lstat; the others' are the hiding's (place)
            if (System.nanoTime() - unguardedSince < UNGUARDED_NANOS) return lockedHere::unlock;
            channel = FileChannel.open(dir().resolve("lock"), StandardOpenOption.CREATE, StandardOpenOption.WRITE, LinkOption.NOFOLLOW_LINKS);
            long deadline = System.nanoTime() + LOCK_WAIT_MS * 1_000_000L;
            while (channel.tryLock() == null) {
                if (System.nanoTime() > deadline) {
                    unguardedSince = System.nanoTime(); // held for good, maybe: a run per wait would crawl
                    throw new IOException("held by another process for over " + LOCK_WAIT_MS + " ms; not asked for again for a minute");
                }
                Thread.sleep(1);
            }
        } catch (IOException | InterruptedException | java.nio.channels.OverlappingFileLockException e) {
            if (e instanceof InterruptedException) Thread.currentThread().interrupt();
            LOG.warnf("cannot lock the root records, going on without: %s", e.getMessage());
            closeQuietly(channel);
            channel = null;
        } catch (Throwable t) { // an Error: nothing may stay locked, here or in other helpers
            closeQuietly(channel);
            lockedHere.unlock();
            throw t;
        }
        FileChannel held = channel;
        return () -> {
            closeQuietly(held); // releases the lock
            lockedHere.unlock();
        };
    }

    /** After a wait for the lock timed out, this helper goes on without it for a while. */
    private static final long UNGUARDED_NANOS = 60_000_000_000L;
    private volatile long unguardedSince = System.nanoTime() - UNGUARDED_NANOS;

    private static void closeQuietly(FileChannel channel) {
        if (channel == null) return;
        try {
            channel.close();
        } catch (IOException ignored) {
            // closed all the same
        }
    }

    /**
     * Whether another bwrapd that is alive has a record of {@code root}: it uses the root now, and
     * its sandboxes may be mounted on what this one's bwrap made there (removing a mount point
     * unmounts it in their mount namespaces too).
     */
    boolean usedByOthers(String root) {
        return others(root, true);
    }

    /** Whether the records of {@code root} hold any but this process's: a live helper's, a dead one's, one handed over. */
    boolean recordedByOthers(String root) {
        return others(root, false);
    }

    private boolean others(String root, boolean aliveOnly) {
        Path dirOfRoot = dir().resolve(root);
        if (!hasReadableRecords(dirOfRoot)) return false;
        try (DirectoryStream<Path> records = Files.newDirectoryStream(dirOfRoot)) {
            for (Path record : records) {
                String writer = writer(record.getFileName().toString());
                if (writer.equals(Long.toString(pid))) continue;
                if (!aliveOnly || isNumber(writer) && Files.exists(Path.of("/proc", writer))) return true;
            }
        } catch (IOException e) {
            LOG.warnf("cannot read the root records: %s", e.getMessage());
        }
        return false;
    }

    /**
     * This process's record of {@code root} becomes one of nobody's, for the last bwrapd still
     * using the root to remove what it names ({@link #takeOrphans}), as a dead writer's would be.
     */
    void handOver(String root) {
        Path records = dir().resolve(root);
        try {
            // rename(2) replaces: the name must be new, also beside one a process of the same pid left before.
            Files.move(records.resolve(Long.toString(pid)),
                    records.resolve(HANDED_OVER + pid + "-" + System.nanoTime() + "-" + handedOver.incrementAndGet()), StandardCopyOption.ATOMIC_MOVE);
        } catch (NoSuchFileException e) {
            // nothing recorded: nothing to hand over
        } catch (IOException e) {
            LOG.warnf("cannot hand a root record over: %s", e.getMessage());
        }
    }

    /** Names of handed-over records start with this: no pid, so no writer that is alive. */
    private static final String HANDED_OVER = "left-";
    private final java.util.concurrent.atomic.AtomicLong handedOver = new java.util.concurrent.atomic.AtomicLong();

    /** The pid a record's name stands for ("" for a handed-over one). */
    private static String writer(String name) {
        if (name.startsWith(HANDED_OVER)) return "";
        return name.endsWith(".new") ? name.substring(0, name.length() - 4) : name; // .new: a writer killed while writing it
    }

    /**
     * What records name, and since when the root's directory of records has been there ({@link
     * Libc#birthNanos}): whatever a record names, bwrap made after its record, so no earlier.
     */
    record Orphans(List<String> paths, long recordedSince) {
        static final Orphans NONE = new Orphans(List.of(), Libc.BIRTH_UNKNOWN);
    }

    /**
     * What bwrapd processes that died while using {@code root}, or handed their records over,
     * recorded there (parents first), their records removed: the caller cleans it. Nothing while
     * another bwrapd that is alive uses the root: its sandboxes may be mounted there. {@code
     * whereNow} (the root's path now) is asked only when there is a record to compare it with.
     */
    Orphans takeOrphans(String root, Supplier<String> whereNow, LongSupplier rootBorn) {
        return take(root, whereNow, rootBorn, true);
    }

    /** {@link #takeOrphans} where the caller, holding the lock, found that no other bwrapd alive uses the root ({@link #usedByOthers}). */
    Orphans takeOrphansOfAnUnusedRoot(String root, Supplier<String> whereNow, LongSupplier rootBorn) {
        return take(root, whereNow, rootBorn, false);
    }

    /**
     * {@code rootBorn}: when the root was made ({@link Libc#birthNanos}), asked only of a record
     * whose path is not the root's now. A root older than its directory of records is the one they
     * were written for, named otherwise (a bind mount of it, a rename): a reused inode, another
     * root, is born after them. Where either birth is unknown, the path decides alone.
     */
    private Orphans take(String root, Supplier<String> whereNow, LongSupplier rootBorn, boolean askWhetherUsed) {
        List<String> paths = new ArrayList<>();
        Path dirOfRoot = dir().resolve(root);
        if (!hasReadableRecords(dirOfRoot)) return Orphans.NONE;
        if (askWhetherUsed && usedByOthers(root)) return Orphans.NONE;
        long since;
        try {
            Long born = Libc.birthNanos(Libc.AT_FDCWD, dirOfRoot.toString(), Libc.AT_SYMLINK_NOFOLLOW);
            if (born == null) return Orphans.NONE;
            since = born;
        } catch (Libc.Error e) {
            LOG.warnf("cannot read the root records: %s", e.getMessage());
            return Orphans.NONE;
        }
        String where = null;
        Boolean olderThanTheRecords = null;
        try (DirectoryStream<Path> records = Files.newDirectoryStream(dirOfRoot)) {
            for (Path record : records) {
                String name = record.getFileName().toString();
                boolean unfinished = name.endsWith(".new"); // a writer killed while writing it
                boolean handedOverRecord = name.startsWith(HANDED_OVER);
                String writer = writer(name);
                if (!handedOverRecord && (!isNumber(writer) || Files.exists(Path.of("/proc", writer)))) continue; // alive, or not a record
                if (!unfinished) {
                    if (where == null) where = whereNow.get();
                    List<String> lines = lines(record);
                    if (!lines.isEmpty() && !lines.getFirst().equals(where) && olderThanTheRecords == null) {
                        long born = rootBorn.getAsLong();
                        olderThanTheRecords = since != Libc.BIRTH_UNKNOWN && born != Libc.BIRTH_UNKNOWN && born < since;
                    }
                    if (!lines.isEmpty() && (lines.getFirst().equals(where) || olderThanTheRecords == Boolean.TRUE)) {
                        for (String path : lines.subList(1, lines.size())) if (RootCleaner.isBelowTheRoot(path) && !paths.contains(path)) paths.add(path);
                    }
                }
                Files.delete(record);
            }
        } catch (IOException e) {
            LOG.warnf("cannot read the root records: %s", e.getMessage());
        }
        try {
            Files.delete(dirOfRoot); // with the last record taken, as forget does: later leases list nothing
        } catch (IOException e) {
            // records of helpers alive, this one's among them: theirs to remove
        }
        return new Orphans(paths, since);
    }

    /**
     * A record's lines as {@link #write} wrote them: only a newline ends one. A name may hold a
     * carriage return (a link in the root can lead there), which {@code readAllLines} also ends a
     * line at: {@code x\r../victim} in the root came back as {@code ../victim}, beside it.
     */
    private static List<String> lines(Path record) throws IOException {
        String text = Files.readString(record, StandardCharsets.UTF_8);
        if (text.endsWith("\n")) text = text.substring(0, text.length() - 1);
        return text.isEmpty() ? List.of() : List.of(text.split("\n", -1));
    }

    private static boolean isNumber(String text) {
        if (text.isEmpty()) return false;
        for (int i = 0; i < text.length(); i++) if (text.charAt(i) < '0' || text.charAt(i) > '9') return false;
        return true;
    }
}
