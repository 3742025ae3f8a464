package dev.bwrapd.process;

import java.util.List;

/**
 * The few libc calls the JDK does not offer: spawning into a new session with extra file
 * descriptors, signalling process groups and pidfds, waiting with rusage, becoming a subreaper.
 * Plain Java values in, plain Java values out: native memory stays inside the binding.
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
    public static final int O_CREAT = 0100, O_TRUNC = 01000, O_APPEND = 02000, O_CLOEXEC = 02000000;
    public static final int O_DIRECTORY = isAarch64() ? 040000 : 0200000;
    public static final int O_NOFOLLOW = isAarch64() ? 0100000 : 0400000;
    public static final int O_PATH = 010000000, O_NONBLOCK = 04000;
    public static final int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, AT_EMPTY_PATH = 0x1000;
    /** openat2(2) resolve flags. */
    public static final long RESOLVE_NO_MAGICLINKS = 0x02, RESOLVE_IN_ROOT = 0x10;
    public static final int EINTR = 4, ESRCH = 3, ENOENT = 2, ECHILD = 10, EEXIST = 17, ELOOP = 40, ENOTDIR = 20, ENOSYS = 38;
    /** File types of {@link FileStat#mode()}. */
    public static final int S_IFMT = 0170000, S_IFDIR = 0040000, S_IFREG = 0100000, S_IFLNK = 0120000, S_IFCHR = 0020000,
            S_IFBLK = 0060000;
    public static final short POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSIGMASK = 0x08, POSIX_SPAWN_SETSID = 0x80;
    public static final int PR_SET_CHILD_SUBREAPER = 36;
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
     * posix_spawn in a new session, with default signal dispositions, an empty signal mask,
     * exactly {@code environment}, and {@code fds[i]} as descriptor i (every other one closed).
     *
     * @return the child's pid
     */
    public static int spawn(String executable, List<String> argv, List<String> environment, int[] fds) throws Error {
        return BINDING.spawn(executable, argv, environment, fds,
                (short) (POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));
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
    private static final java.lang.invoke.VarHandle LONG_AT =
            java.lang.invoke.MethodHandles.byteArrayViewVarHandle(long[].class, java.nio.ByteOrder.nativeOrder());

    /**
     * statx(2) of {@code path} relative to {@code dirFd}; with {@link #AT_EMPTY_PATH} and "" it
     * is the descriptor itself, with {@link #AT_SYMLINK_NOFOLLOW} a final link is not followed.
     */
    public static FileStat stat(int dirFd, String path, int flags) throws Error {
        byte[] buf = new byte[256]; // struct statx: the same layout on every architecture
        if (BINDING.statx(dirFd, path, flags, STATX_BASIC_STATS, buf) != 0) throw new Error("statx " + path, errno());
        long device = ((long) (int) INT_AT.get(buf, 136) << 32) | Integer.toUnsignedLong((int) INT_AT.get(buf, 140));
        return new FileStat(Short.toUnsignedInt((short) SHORT_AT.get(buf, 28)), device, (long) LONG_AT.get(buf, 32),
                (long) LONG_AT.get(buf, 40), (int) INT_AT.get(buf, 20));
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
