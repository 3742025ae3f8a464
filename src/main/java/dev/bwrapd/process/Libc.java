package dev.bwrapd.process;

import java.util.Arrays;
import java.util.List;

/**
 * The few libc calls the JDK does not offer: spawning into a new session with extra file
 * descriptors, signalling process groups and pidfds, waiting with rusage, becoming a subreaper.
 * Plain Java values in, plain Java values out: native memory stays inside the binding (of
 * posix_spawn's attributes and file actions, kept between spawns, only their addresses leave it).
 *
 * <p>Two bindings do the calls ({@link LibcBinding}, both following the one list in
 * {@link Downcall}): the Foreign Function & Memory API on the JVM ({@link FfmBinding}: no C
 * toolchain needed, and posix_spawn avoids ProcessBuilder's jspawnhelper hop, about 3 ms a
 * spawn), GraalVM's C interface in a native image ({@link CBinding}: direct calls, and it works
 * in every native-image, with or without FFM support). Linux/glibc only, like bwrap itself.
 */
public final class Libc {
    private Libc() {}

    // Linux constants (generic values; the few that differ by architecture are picked below).
    public static final int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2;
    public static final int O_CREAT = 0100, O_EXCL = 0200, O_NOCTTY = 0400, O_TRUNC = 01000, O_APPEND = 02000, O_NONBLOCK = 04000, O_CLOEXEC = 02000000;
    public static final int O_DIRECTORY = isAarch64() ? 040000 : 0200000;
    public static final int O_NOFOLLOW = isAarch64() ? 0100000 : 0400000;
    public static final int O_PATH = 010000000;
    /** An unnamed file in the directory opened (open(2)'s O_TMPFILE: its own bit and O_DIRECTORY). */
    public static final int O_TMPFILE = 020000000 | O_DIRECTORY;
    public static final int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, AT_EMPTY_PATH = 0x1000;
    /** openat2(2) resolve flags. */
    public static final long RESOLVE_NO_MAGICLINKS = 0x02, RESOLVE_NO_SYMLINKS = 0x04, RESOLVE_BENEATH = 0x08, RESOLVE_IN_ROOT = 0x10;
    public static final int EINTR = 4, EAGAIN = 11, EIO = 5, ENOMEM = 12, EINVAL = 22, ESRCH = 3, ENOENT = 2, ECHILD = 10,
            EEXIST = 17, EXDEV = 18, ELOOP = 40, ENOTDIR = 20, ENOSYS = 38, ENOTTY = 25, ENODEV = 19, EISDIR = 21,
            EOPNOTSUPP = 95, EACCES = 13;
    /** File types of {@link FileStat#mode()}. */
    public static final int S_IFMT = 0170000, S_IFDIR = 0040000, S_IFREG = 0100000, S_IFLNK = 0120000, S_IFCHR = 0020000,
            S_IFBLK = 0060000;
    public static final short POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSIGMASK = 0x08, POSIX_SPAWN_SETSID = 0x80;
    public static final int PR_SET_CHILD_SUBREAPER = 36;
    /** keyctl(2)'s system call number (glibc has no wrapper), and its operation that joins a session keyring. */
    static final long SYS_KEYCTL = isAarch64() ? 219 : 250, KEYCTL_JOIN_SESSION_KEYRING = 1;
    public static final int WNOHANG = 1, WEXITED = 4, WNOWAIT = 0x01000000;
    public static final int P_ALL = 0, P_PID = 1;
    public static final int RLIMIT_CPU = 0, RLIMIT_FSIZE = 1, RLIMIT_NOFILE = 7;
    public static final long RLIM_INFINITY = -1L;
    public static final short POLLIN = 0x1, POLLOUT = 0x4, POLLERR = 0x8, POLLHUP = 0x10, POLLNVAL = 0x20;

    /**
     * The binding, chosen once in this class's initializer. A native image runs that initializer
     * while it is built (Quarkus initializes application classes at build time), where GraalVM's
     * builder sets this property: the image holds a CBinding and never reaches FfmBinding, and
     * the JVM never loads CBinding (nor GraalVM's API, which is not on its class path).
     */
    private static final LibcBinding BINDING =
            System.getProperty("org.graalvm.nativeimage.imagecode") != null ? new CBinding() : new FfmBinding();

    private static boolean isAarch64() {
        return "aarch64".equals(System.getProperty("os.arch"));
    }

    /** This process's real uid (the owner of /proc/self), or -1 if it cannot be read. */
    public static int uid() {
        try {
            return (int) java.nio.file.Files.getAttribute(java.nio.file.Path.of("/proc/self"), "unix:uid");
        } catch (java.io.IOException | RuntimeException e) {
            return -1;
        }
    }

    /**
     * Frees the native memory this thread keeps for its calls (errno's slot, a buffer for reads):
     * for a pooled thread about to end. Left to the garbage collector, it would be freed only when
     * a full collection finds the thread's memory unreachable — after many threads have come and
     * gone, which grew the helper by megabytes per thousand runs. A later call on this thread
     * makes new ones.
     */
    public static void threadEnding() {
        BINDING.threadEnding();
    }

    /** {@code threads}, whose threads each call {@link #threadEnding} as they end: for threads that come and go. */
    public static java.util.concurrent.ThreadFactory freeingAtEnd(java.util.concurrent.ThreadFactory threads) {
        return task -> threads.newThread(() -> {
            try {
                task.run();
            } finally {
                threadEnding();
            }
        });
    }

    /** Links every downcall now (on the JVM, where that takes a while), so that the first real call is quick. */
    public static void link() {
        BINDING.link();
    }

    /** errno of the last failed call on this thread. */
    public static int errno() {
        return BINDING.errno();
    }

    public static String strerror(int errno) {
        try {
            return BINDING.strerror(errno);
        } catch (RuntimeException e) {
            return "errno " + errno;
        }
    }

    /** A failed libc call: the function and errno, worded like strerror. */
    public static final class Error extends java.io.IOException {
        public final int errno;

        public Error(String call, int errno) {
            super(call + ": " + strerror(errno));
            this.errno = errno;
        }
    }

    /** For the calls that return an error number instead of setting errno (posix_spawn and its helpers). */
    static void check(String call, int rc) throws Error {
        if (rc != 0) throw new Error(call, rc);
    }

    /** prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants come back to this process. Whether that worked. */
    public static boolean becomeSubreaper() {
        try {
            return BINDING.prctl(PR_SET_CHILD_SUBREAPER, 1L) == 0;
        } catch (RuntimeException | LinkageError e) {
            return false;
        }
    }

    /**
     * Gives the calling thread a new, empty session keyring (keyctl(KEYCTL_JOIN_SESSION_KEYRING,
     * NULL)). Keyrings are a thread's credentials: the threads it creates afterwards, and the
     * processes they spawn, get this one; every other thread keeps the one it had.
     *
     * @throws Error with keyctl's errno (EDQUOT: the user's key quota is spent; ENOSYS, EPERM:
     *         no keyrings here, or a filter refuses them)
     */
    public static void joinNewSessionKeyring() throws Error {
        if (BINDING.joinNewSessionKeyring() < 0) throw new Error("keyctl(KEYCTL_JOIN_SESSION_KEYRING)", errno());
    }

    /**
     * posix_spawn in a new session, with default signal dispositions, an empty signal mask,
     * exactly {@code environment}, and {@code fds[i]} as descriptor i (every other one closed).
     *
     * @return the child's pid
     */
    public static int spawn(String executable, List<String> argv, List<String> environment, int[] fds) throws Error {
        return KEPT_SPAWN.spawn(executable, argv, environment, fds);
    }

    private static final KeptSpawn KEPT_SPAWN = new KeptSpawn();

    /**
     * posix_spawn's attributes and file actions, kept from one spawn to the next: glibc checks every
     * dup2 action with two getrlimit calls (37 system calls a run), and a run's descriptors mostly
     * have the numbers the run before had. The actions are refilled when the descriptors differ.
     * Made at the first spawn, never at image build time. Spawns take turns here (the reaper's lock
     * serializes them anyway).
     */
    private static final class KeptSpawn {
        private long attributes, fileActions;
        /** The descriptors the kept file actions give the child; null while they are not whole. */
        private int[] fds;

        synchronized int spawn(String executable, List<String> argv, List<String> environment, int[] fds) throws Error {
            if (attributes == 0) attributes = BINDING.spawnAttributes((short) (POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));
            if (fileActions == 0) fileActions = BINDING.spawnFileActions();
            if (!Arrays.equals(fds, this.fds)) {
                this.fds = null;
                BINDING.fillSpawnFileActions(fileActions, dup2Plan(fds), fds.length);
                this.fds = fds.clone();
            }
            return BINDING.spawn(executable, argv, environment, fileActions, attributes);
        }
    }

    /** The lowest number from {@code from} on that is none of {@code sources}. */
    private static int unread(int[] sources, int from) {
        for (int n = from; ; n++) {
            boolean read = false;
            for (int s : sources) read |= s == n;
            if (!read) return n;
        }
    }

    /**
     * The posix_spawn dup2 actions, as {from, to} pairs in order, that make {@code fds[i]}
     * descriptor i in the child: a parallel move. Done blindly in order, {@code dup2(fds[i], i)}
     * would go wrong when the numbers are small (as in a native image): a later source may be one
     * an earlier dup2 already replaced, and {@code dup2(i, i)} leaves i close-on-exec. So a target
     * is written only once no other pending move still reads it; a cycle (a swap) first parks one
     * of its descriptors above the targets (on a number no move reads), and a descriptor that is its own target goes up and back.
     * One action per target otherwise: glibc checks each action with a getrlimit call.
     */
    static int[] dup2Plan(int[] fds) {
        int[] source = fds.clone();
        boolean[] done = new boolean[fds.length];
        // The lowest numbers above the targets that no move reads: not above the highest source,
        // which may be the last number the open-files limit allows.
        int spare = unread(source, fds.length);
        int[] plan = new int[fds.length * 6];
        int actions = 0;
        for (int left = fds.length; left > 0; ) {
            boolean moved = false;
            for (int target = 0; target < fds.length; target++) {
                if (done[target] || readByAnother(source, done, target)) continue;
                if (source[target] == target) {
                    plan[actions++] = target;
                    plan[actions++] = spare;
                    source[target] = spare;
                    spare = unread(source, spare + 1);
                }
                plan[actions++] = source[target];
                plan[actions++] = target;
                done[target] = true;
                left--;
                moved = true;
            }
            if (!moved) { // every pending target is still read by another move: park one above
                int target = 0;
                while (done[target]) target++;
                plan[actions++] = target;
                plan[actions++] = spare;
                for (int i = 0; i < fds.length; i++) if (!done[i] && source[i] == target) source[i] = spare;
                spare = unread(source, spare + 1);
            }
        }
        return Arrays.copyOf(plan, actions);
    }

    /** Whether a move not yet done other than {@code target}'s own still reads descriptor {@code target}. */
    private static boolean readByAnother(int[] source, boolean[] done, int target) {
        for (int i = 0; i < source.length; i++) if (i != target && !done[i] && source[i] == target) return true;
        return false;
    }

    /** A close-on-exec pipe: {read end, write end}. */
    public static int[] pipe() throws Error {
        int[] fds = new int[2];
        if (BINDING.pipe2(fds, O_CLOEXEC) != 0) throw new Error("pipe2", errno());
        return fds;
    }

    /** open(2); O_CLOEXEC is always added. */
    public static int open(String path, int flags, int mode) throws Error {
        int fd = BINDING.open(path, flags | O_CLOEXEC, mode);
        if (fd < 0) throw new Error("open " + path, errno());
        return fd;
    }

    /** openat(2) with O_CLOEXEC; returns -1 and leaves errno on failure. */
    public static int openat(int dirFd, String name, int flags) {
        return BINDING.openat(dirFd, name, flags | O_CLOEXEC, 0);
    }

    /**
     * openat2(2) with O_CLOEXEC added: {@code resolve} restricts how the path is walked (e.g.
     * {@link #RESOLVE_NO_MAGICLINKS}: no /proc/PID/fd/N or /proc/PID/root on the way). Returns the
     * descriptor, or -1 and leaves errno (ENOSYS on kernels before 5.6).
     */
    public static int openat2(int dirFd, String path, int flags, int mode, long resolve) {
        return BINDING.openat2(dirFd, path, new long[] {Integer.toUnsignedLong(flags | O_CLOEXEC), mode, resolve});
    }

    /** What statx(2) says of a file: its type and permission bits, identity and size. */
    public record FileStat(int mode, long device, long inode, long size, int uid) {
        public int type() {
            return mode & S_IFMT;
        }

        /** The same file as {@code other} (same device and inode). */
        public boolean sameFile(FileStat other) {
            return device == other.device && inode == other.inode;
        }
    }

    private static final int STATX_BASIC_STATS = 0x7ff;
    /** Each thread's struct statx, read into and out of at once: a run asks some twenty of them. */
    private static final ThreadLocal<byte[]> STATX_BUFFER = ThreadLocal.withInitial(() -> new byte[256]);
    private static final java.lang.invoke.VarHandle LONG_AT =
            java.lang.invoke.MethodHandles.byteArrayViewVarHandle(long[].class, java.nio.ByteOrder.nativeOrder());

    /**
     * statx(2) of {@code path} relative to {@code dirFd}; with {@link #AT_EMPTY_PATH} and "" it
     * is the descriptor itself, with {@link #AT_SYMLINK_NOFOLLOW} a final link is not followed.
     */
    public static FileStat stat(int dirFd, String path, int flags) throws Error {
        statx(dirFd, path, flags, STATX_BASIC_STATS, false);
        return fileStat(STATX_BUFFER.get());
    }

    /**
     * {@link #stat}, or null when nothing is there (ENOENT, or ENOTDIR: a name on the way is not a
     * directory). Runs ask this of paths that are usually missing, so missing is an answer here,
     * not an exception (a stack trace per missing path was most of what a run threw).
     */
    public static FileStat statIfPresent(int dirFd, String path, int flags) throws Error {
        return statx(dirFd, path, flags, STATX_BASIC_STATS, true) ? fileStat(STATX_BUFFER.get()) : null;
    }

    /**
     * statx(2) asking {@code mask} into the thread's buffer (struct statx: the same layout on every
     * architecture), the one call of them all: true; false when nothing is there (ENOENT, ENOTDIR)
     * and {@code missingIsAnAnswer} (the rule of {@link #statIfPresent} and {@link #birthNanos});
     * any other failure throws.
     */
    private static boolean statx(int dirFd, String path, int flags, int mask, boolean missingIsAnAnswer) throws Error {
        if (BINDING.statx(dirFd, path, flags, mask, STATX_BUFFER.get()) == 0) return true;
        int errno = errno();
        if (missingIsAnAnswer && (errno == ENOENT || errno == ENOTDIR)) return false;
        throw new Error("statx " + path, errno);
    }

    /** The stat in a struct statx. */
    private static FileStat fileStat(byte[] buf) {
        long device = ((long) (int) INT_AT.get(buf, 136) << 32) | Integer.toUnsignedLong((int) INT_AT.get(buf, 140));
        return new FileStat(Short.toUnsignedInt((short) SHORT_AT.get(buf, 28)), device, (long) LONG_AT.get(buf, 32),
                (long) LONG_AT.get(buf, 40), (int) INT_AT.get(buf, 20));
    }

    private static final int STATX_MNT_ID = 0x1000;
    private static final long STATX_ATTR_MOUNT_ROOT = 0x2000;

    /** The mount a file is on: its id (as /proc/self/mountinfo numbers it), and whether the file is that mount's root. */
    public record MountOf(long id, boolean isRoot) {}

    /** A file's stat, and the mount it is on: null where the kernel tells neither (before Linux 5.8). */
    public record StatOnMount(FileStat stat, MountOf mount) {}

    /**
     * The stat of the file behind {@code fd} and its mount, from one statx(2): a walk up by
     * {@code ..} (HostPaths) asks both of every directory on its way.
     */
    public static StatOnMount statOnMount(int fd) throws Error {
        statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_MNT_ID, false);
        byte[] buf = STATX_BUFFER.get();
        boolean told = ((int) INT_AT.get(buf, 0) & STATX_MNT_ID) != 0 && ((long) LONG_AT.get(buf, 56) & STATX_ATTR_MOUNT_ROOT) != 0;
        MountOf mount = told ? new MountOf((long) LONG_AT.get(buf, 144), ((long) LONG_AT.get(buf, 8) & STATX_ATTR_MOUNT_ROOT) != 0) : null;
        return new StatOnMount(fileStat(buf), mount);
    }

    private static final int STATX_BTIME = 0x800;
    /** What {@link #birthNanos} answers when the file system keeps no birth time. */
    public static final long BIRTH_UNKNOWN = Long.MIN_VALUE;

    /**
     * When the file at {@code path} (relative to {@code dirFd}, flags as for {@link #stat}) was
     * made, in nanoseconds since the epoch (statx's {@code stx_btime}), or {@link #BIRTH_UNKNOWN}
     * where its file system keeps none; null when nothing is there. Unlike the other times, no
     * process can set or change it.
     */
    public static Long birthNanos(int dirFd, String path, int flags) throws Error {
        if (!statx(dirFd, path, flags, STATX_BTIME, true)) return null;
        byte[] buf = STATX_BUFFER.get();
        if (((int) INT_AT.get(buf, 0) & STATX_BTIME) == 0) return BIRTH_UNKNOWN;
        return (long) LONG_AT.get(buf, 80) * 1_000_000_000L + Integer.toUnsignedLong((int) INT_AT.get(buf, 88));
    }

    /** f_type of procfs in fstatfs(2). */
    public static final long PROC_SUPER_MAGIC = 0x9fa0;

    /** The filesystem type (f_type, e.g. {@link #PROC_SUPER_MAGIC}) of the file behind {@code fd}. */
    public static long filesystemType(int fd) throws Error {
        byte[] buf = new byte[256]; // struct statfs: f_type is the first word
        if (BINDING.fstatfs(fd, buf) != 0) throw new Error("fstatfs", errno());
        return (long) LONG_AT.get(buf, 0);
    }

    /** mkdirat(2); returns -1 and leaves errno on failure. */
    public static int mkdirat(int dirFd, String name, int mode) {
        return BINDING.mkdirat(dirFd, name, mode);
    }

    public static final int AT_REMOVEDIR = 0x200;

    /** rmdir(2) of {@code path} (unlinkat with AT_REMOVEDIR); returns -1 and leaves errno on failure. */
    public static int rmdir(String path) {
        return BINDING.unlinkat(AT_FDCWD, path, AT_REMOVEDIR);
    }

    public static void close(int fd) {
        if (fd >= 0) BINDING.close(fd);
    }

    /** read(2) into {@code buffer}, retrying EINTR; 0 at end of file. */
    public static int read(int fd, byte[] buffer) throws Error {
        return read(fd, buffer, 0, buffer.length);
    }

    /** read(2) into {@code buffer[offset, offset + length)}, retrying EINTR; 0 at end of file. */
    public static int read(int fd, byte[] buffer, int offset, int length) throws Error {
        java.util.Objects.checkFromIndexSize(offset, length, buffer.length);
        while (true) {
            long n = BINDING.read(fd, buffer, offset, length);
            if (n >= 0) return (int) n;
            if (errno() != EINTR) throw new Error("read", errno());
        }
    }

    /** pread(2) into {@code buffer[offset, offset + length)} from file position {@code position}, retrying EINTR; 0 at end of file. */
    public static int pread(int fd, byte[] buffer, int offset, int length, long position) throws Error {
        java.util.Objects.checkFromIndexSize(offset, length, buffer.length);
        while (true) {
            long n = BINDING.pread(fd, buffer, offset, length, position);
            if (n >= 0) return (int) n;
            if (errno() != EINTR) throw new Error("pread", errno());
        }
    }

    private static final int F_GETFL = 3, F_SETFL = 4, F_SETPIPE_SZ = 1031, F_GETPIPE_SZ = 1032;

    /**
     * Lets the pipe behind {@code fd} hold at least {@code bytes} (F_SETPIPE_SZ), never shrinking
     * it: whether it now does. False for what is not a pipe, or beyond what this user may have
     * (fs.pipe-max-size, 1 MiB by default; fs.pipe-user-pages-soft).
     */
    public static boolean growPipe(int fd, int bytes) {
        int size = BINDING.fcntl(fd, F_GETPIPE_SZ, 0);
        return size >= 0 && (size >= bytes || BINDING.fcntl(fd, F_SETPIPE_SZ, bytes) >= 0);
    }

    /** Clears O_NONBLOCK on an open file (it was opened with it so that opening a FIFO could not block). */
    public static void clearNonBlocking(int fd) throws Error {
        setFlags(fd, 0, O_NONBLOCK);
    }

    /**
     * Sets O_NONBLOCK on an open file: on one end of a pipe, that end only (each end is an open
     * file of its own), so the other end's reader or writer, a command's stdin, is not changed.
     */
    public static void setNonBlocking(int fd) throws Error {
        setFlags(fd, O_NONBLOCK, 0);
    }

    private static void setFlags(int fd, int set, int clear) throws Error {
        int flags = BINDING.fcntl(fd, F_GETFL, 0);
        if (flags < 0 || BINDING.fcntl(fd, F_SETFL, (flags | set) & ~clear) < 0) throw new Error("fcntl(F_SETFL)", errno());
    }

    /** Writes all of {@code data}, retrying EINTR and short writes. */
    public static void writeFully(int fd, byte[] data) throws Error {
        int offset = 0;
        while (offset < data.length) offset += write(fd, data, offset, data.length - offset);
    }

    /**
     * write(2) of {@code data[offset, offset + length)} once, retrying EINTR: how many bytes went.
     * On a blocking pipe that poll reported writable, up to PIPE_BUF (4096) bytes never block.
     */
    public static int write(int fd, byte[] data, int offset, int length) throws Error {
        java.util.Objects.checkFromIndexSize(offset, length, data.length);
        while (true) {
            long n = BINDING.write(fd, data, offset, length);
            if (n >= 0) return (int) n;
            if (errno() != EINTR) throw new Error("write", errno());
        }
    }

    private static final java.lang.invoke.VarHandle INT_AT =
            java.lang.invoke.MethodHandles.byteArrayViewVarHandle(int[].class, java.nio.ByteOrder.nativeOrder());
    private static final java.lang.invoke.VarHandle SHORT_AT =
            java.lang.invoke.MethodHandles.byteArrayViewVarHandle(short[].class, java.nio.ByteOrder.nativeOrder());

    /**
     * poll(2) on the first {@code count} descriptors: {@code revents[i]} receives what happened on
     * {@code fds[i]} (a negative fd is ignored, as poll does). Returns how many have events (0 on
     * timeout); EINTR counts as a timeout, so callers recompute their deadlines and poll again.
     */
    public static int poll(int[] fds, short[] events, short[] revents, int count, int timeoutMs) throws Error {
        byte[] pollfds = new byte[8 * count]; // struct pollfd: int fd, short events, short revents
        for (int i = 0; i < count; i++) {
            INT_AT.set(pollfds, 8 * i, fds[i]);
            SHORT_AT.set(pollfds, 8 * i + 4, events[i]);
        }
        int n = BINDING.poll(pollfds, count, timeoutMs);
        if (n < 0) {
            if (errno() != EINTR) throw new Error("poll", errno());
            n = 0;
        }
        for (int i = 0; i < count; i++) revents[i] = n == 0 ? 0 : (short) SHORT_AT.get(pollfds, 8 * i + 6);
        return n;
    }

    // Terminal ioctls (asm-generic values, used by x86_64 and aarch64).
    private static final long TIOCGPGRP = 0x540F, TIOCSWINSZ = 0x5414, TIOCGWINSZ = 0x5413,
            TIOCGPTN = 0x80045430L, TIOCSPTLCK = 0x40045431L, TIOCGPTPEER = 0x5441;

    /**
     * A new pseudo-terminal's master, unlocked, non-blocking and close-on-exec, never this
     * process's controlling terminal; {@link #openPtySlave} opens its other end. (What posix_openpt,
     * grantpt and unlockpt do on Linux, where grantpt has nothing left to do with devpts.)
     */
    public static int openPtyMaster() throws Error {
        int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_NONBLOCK, 0);
        byte[] unlock = new byte[4]; // int 0: unlock
        if (BINDING.ioctl(master, TIOCSPTLCK, unlock) != 0) {
            int errno = errno();
            close(master);
            throw new Error("ioctl(TIOCSPTLCK)", errno);
        }
        return master;
    }

    /**
     * The slave end of {@code master}, opened read-write, never as the controlling terminal. Through
     * the master itself (TIOCGPTPEER, Linux 4.13): the very terminal, whatever devpts instance
     * /dev/pts is here (in a container /dev/ptmx and /dev/pts may differ, and the number then names
     * another terminal: the kernel then refuses, ENODEV). By its path only where the kernel predates
     * TIOCGPTPEER.
     */
    public static int openPtySlave(int master) throws Error {
        int slave = BINDING.ioctlValue(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave >= 0) return slave;
        int errno = errno();
        if (errno != ENOTTY && errno != EINVAL) throw new Error("ioctl(TIOCGPTPEER)", errno);
        return open(ptsName(master), O_RDWR | O_NOCTTY, 0);
    }

    /** The path of a pseudo-terminal master's slave end (ptsname_r), such as /dev/pts/3. */
    static String ptsName(int master) throws Error {
        byte[] number = new byte[4];
        if (BINDING.ioctl(master, TIOCGPTN, number) != 0) throw new Error("ioctl(TIOCGPTN)", errno());
        return "/dev/pts/" + (int) INT_AT.get(number, 0);
    }

    /** TIOCSWINSZ: the terminal's size; the kernel sends SIGWINCH to its foreground process group when it changes. */
    public static void setWindowSize(int fd, int rows, int cols) throws Error {
        byte[] size = new byte[8]; // struct winsize: unsigned short ws_row, ws_col, ws_xpixel, ws_ypixel
        SHORT_AT.set(size, 0, (short) rows);
        SHORT_AT.set(size, 2, (short) cols);
        if (BINDING.ioctl(fd, TIOCSWINSZ, size) != 0) throw new Error("ioctl(TIOCSWINSZ)", errno());
    }

    /** TIOCGWINSZ: {rows, cols}. */
    public static int[] windowSize(int fd) throws Error {
        byte[] size = new byte[8];
        if (BINDING.ioctl(fd, TIOCGWINSZ, size) != 0) throw new Error("ioctl(TIOCGWINSZ)", errno());
        return new int[] {Short.toUnsignedInt((short) SHORT_AT.get(size, 0)), Short.toUnsignedInt((short) SHORT_AT.get(size, 2))};
    }

    /** TIOCGPGRP on a master: the terminal's foreground process group (as this process sees pids), or 0 if it has none. */
    public static int foregroundGroup(int master) {
        byte[] group = new byte[4];
        if (BINDING.ioctl(master, TIOCGPGRP, group) != 0) return 0;
        return (int) INT_AT.get(group, 0);
    }

    // ----- seccomp filters, built by libseccomp (loaded at run time) -----

    /** Audit architecture tokens: every ABI an x86_64 kernel runs binaries as. */
    public static final int AUDIT_ARCH_X86_64 = 0xc000003e, AUDIT_ARCH_I386 = 0x40000003, AUDIT_ARCH_X32 = 0x4000003e;
    /** enum scmp_compare. */
    public static final int SCMP_CMP_NE = 1, SCMP_CMP_LT = 2, SCMP_CMP_GT = 6, SCMP_CMP_MASKED_EQ = 7;
    private static final int SCMP_ACT_ALLOW = 0x7fff0000, SCMP_ACT_ERRNO = 0x00050000, EEXIST_NEGATIVE = -17;

    /** One comparison of a system call's argument {@code arg} (0-5): {@code op} as in libseccomp, with its operands. */
    public record ArgCompare(int arg, int op, long a, long b) {}

    /** Fail {@code syscall} with {@code errno} when every comparison holds (always, without any). */
    public record SeccompRule(String syscall, int errno, List<ArgCompare> when) {}

    private static volatile Boolean seccomp;

    /** Whether libseccomp (libseccomp.so.2) can be loaded here; asked once. */
    public static boolean seccompAvailable() {
        Boolean known = seccomp;
        if (known == null) seccomp = known = BINDING.seccompLoad();
        return known;
    }

    /** Whether libseccomp knows a system call of this name, on any architecture. */
    public static boolean isSyscall(String name) {
        return seccompAvailable() && BINDING.seccompResolve(name) != -1;
    }

    /**
     * Writes a BPF program to {@code fd} (what bwrap's --seccomp reads) that allows everything
     * but {@code rules}, for x86_64, i386 and x32 binaries alike: libseccomp translates each call
     * to every architecture's number.
     */
    public static void exportSeccompFilter(List<SeccompRule> rules, int fd) throws Error {
        if (!seccompAvailable()) throw new Error("libseccomp", ENOENT);
        long context = BINDING.seccompInit(SCMP_ACT_ALLOW);
        if (context == 0) throw new Error("seccomp_init", ENOMEM);
        try {
            for (int arch : new int[] {AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, AUDIT_ARCH_X32}) {
                int rc = BINDING.seccompArchAdd(context, arch);
                if (rc != 0 && rc != EEXIST_NEGATIVE) throw new Error("seccomp_arch_add", -rc); // the native one is there already
            }
            for (SeccompRule rule : rules) {
                int syscall = BINDING.seccompResolve(rule.syscall());
                if (syscall == -1) throw new Error("seccomp: unknown system call " + rule.syscall(), EINVAL);
                byte[] comparisons = new byte[24 * rule.when().size()]; // struct scmp_arg_cmp: uint arg, enum op, u64 a, u64 b
                for (int i = 0; i < rule.when().size(); i++) {
                    ArgCompare c = rule.when().get(i);
                    INT_AT.set(comparisons, 24 * i, c.arg());
                    INT_AT.set(comparisons, 24 * i + 4, c.op());
                    LONG_AT.set(comparisons, 24 * i + 8, c.a());
                    LONG_AT.set(comparisons, 24 * i + 16, c.b());
                }
                int rc = BINDING.seccompRuleAdd(context, SCMP_ACT_ERRNO | (rule.errno() & 0xffff), syscall, rule.when().size(), comparisons);
                if (rc != 0) throw new Error("seccomp_rule_add " + rule.syscall(), -rc);
            }
            int rc = BINDING.seccompExportBpf(context, fd);
            if (rc != 0) throw new Error("seccomp_export_bpf", -rc);
        } finally {
            BINDING.seccompRelease(context);
        }
    }

    /** kill(2): a negative pid is a process group. Returns 0, or -1 with errno. */
    public static int kill(int pid, int signal) {
        return BINDING.kill(pid, signal);
    }

    /** Process {@code pid}'s limit {@code resource} as {soft, hard}; {@link #RLIM_INFINITY} means none. */
    public static long[] getrlimit(int pid, int resource) throws Error {
        long[] old = new long[2];
        if (BINDING.prlimit(pid, resource, null, old) != 0) throw new Error("prlimit", errno());
        return old;
    }

    /** prlimit(2): sets process {@code pid}'s limit {@code resource} (lowering needs no privilege). */
    public static void setrlimit(int pid, int resource, long soft, long hard) throws Error {
        if (BINDING.prlimit(pid, resource, new long[] {soft, hard}, null) != 0) throw new Error("prlimit", errno());
    }

    /** pidfd_open(2): a descriptor that names this process and never a later one with the same pid. */
    public static int pidfdOpen(int pid) {
        return BINDING.pidfdOpen(pid, 0);
    }

    public static int pidfdSendSignal(int pidfd, int signal) {
        return BINDING.pidfdSendSignal(pidfd, signal);
    }

    /** waitid(2): -1 with errno, or the pid of the child it found (0: WNOHANG and none). */
    public static int waitid(int idType, int id, int options) {
        return BINDING.waitid(idType, id, options);
    }

    /** wait4(2) for {@code pid}: its exit and rusage, or null when it has none to report (or -1 with errno). */
    public static ExitStatus wait4(int pid, int options) {
        long[] raw = new long[1 + Downcall.RUSAGE_LONGS];
        if (BINDING.wait4(pid, options, raw) != pid) return null;
        // struct rusage: ru_utime {seconds, microseconds}, ru_stime {...}, ru_maxrss (KiB)
        return new ExitStatus(pid, (int) raw[0], raw[1] * 1_000_000 + raw[2], raw[3] * 1_000_000 + raw[4], raw[5]);
    }
}
