package dev.bwrapd.process;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * The few libc calls the JDK does not offer: spawning into a new session with extra file
 * descriptors, signalling process groups and pidfds, waiting with rusage, becoming a subreaper.
 *
 * <p>Why the Foreign Function & Memory API and not JNI or ProcessBuilder: it needs no C
 * toolchain at build time, works unchanged in a native image (the downcall shapes are
 * registered in native-config/), and posix_spawn avoids ProcessBuilder's jspawnhelper hop
 * (about 3 ms a spawn here). Linux/glibc only, like bwrap itself.
 *
 * <p>Every downcall captures errno; {@link #errno()} reads it for the calling thread.
 */
public final class Libc {
    private Libc() {}

    // Linux constants (generic values; the few that differ by architecture are picked below).
    public static final int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2;
    public static final int O_CREAT = 0100, O_TRUNC = 01000, O_APPEND = 02000, O_CLOEXEC = 02000000;
    public static final int O_DIRECTORY = isAarch64() ? 040000 : 0200000;
    public static final int O_NOFOLLOW = isAarch64() ? 0100000 : 0400000;
    public static final int AT_FDCWD = -100;
    public static final int EINTR = 4, ESRCH = 3, ENOENT = 2, ECHILD = 10, EEXIST = 17, ELOOP = 40, ENOTDIR = 20;
    public static final short POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSIGMASK = 0x08, POSIX_SPAWN_SETSID = 0x80;
    public static final int PR_SET_CHILD_SUBREAPER = 36;
    public static final int WNOHANG = 1, WEXITED = 4, WNOWAIT = 0x01000000;
    public static final int P_ALL = 0, P_PID = 1;
    public static final int RLIMIT_CPU = 0, RLIMIT_FSIZE = 1, RLIMIT_NOFILE = 7;
    public static final long RLIM_INFINITY = -1L;

    /** Sizes of glibc's opaque structs on 64-bit Linux, rounded up generously. */
    static final long SPAWN_ATTR_SIZE = 512, FILE_ACTIONS_SIZE = 256, SIGSET_SIZE = 128, SIGINFO_SIZE = 128;
    /** struct rusage: two timevals then longs; ru_maxrss (KiB) is the first long. */
    static final long RUSAGE_SIZE = 144;

    /** A downcall's shape, as native-config/reachability-metadata.json must register it (kept in step by a test). */
    public record Shape(String function, FunctionDescriptor descriptor, int firstVariadicArg) {}

    /** Every downcall this class links, in declaration order. */
    public static final java.util.List<Shape> SHAPES = new java.util.ArrayList<>();

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final MemoryLayout CALL_STATE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CALL_STATE.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    /** Per-thread storage for the errno captured by the last downcall on that thread. */
    private static final ThreadLocal<MemorySegment> STATE =
            ThreadLocal.withInitial(() -> Arena.global().allocate(CALL_STATE));

    private static final MethodHandle POSIX_SPAWN = downcall("posix_spawn",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
    private static final MethodHandle FA_INIT = downcall("posix_spawn_file_actions_init", FunctionDescriptor.of(JAVA_INT, ADDRESS));
    private static final MethodHandle FA_DESTROY = downcall("posix_spawn_file_actions_destroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
    private static final MethodHandle FA_ADDDUP2 = downcall("posix_spawn_file_actions_adddup2",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
    private static final MethodHandle FA_ADDCLOSEFROM = downcall("posix_spawn_file_actions_addclosefrom_np",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle ATTR_INIT = downcall("posix_spawnattr_init", FunctionDescriptor.of(JAVA_INT, ADDRESS));
    private static final MethodHandle ATTR_DESTROY = downcall("posix_spawnattr_destroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
    private static final MethodHandle ATTR_SETFLAGS = downcall("posix_spawnattr_setflags", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_SHORT));
    private static final MethodHandle ATTR_SETSIGMASK = downcall("posix_spawnattr_setsigmask", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    private static final MethodHandle ATTR_SETSIGDEFAULT = downcall("posix_spawnattr_setsigdefault", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    private static final MethodHandle SIGEMPTYSET = downcall("sigemptyset", FunctionDescriptor.of(JAVA_INT, ADDRESS));
    private static final MethodHandle SIGFILLSET = downcall("sigfillset", FunctionDescriptor.of(JAVA_INT, ADDRESS));
    private static final MethodHandle PIPE2 = downcall("pipe2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle OPEN = downcall("open", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), 2);
    private static final MethodHandle OPENAT = downcall("openat", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), 3);
    private static final MethodHandle MKDIRAT = downcall("mkdirat", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle CLOSE = downcall("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle READ = downcall("read", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle WRITE = downcall("write", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle KILL = downcall("kill", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle PIDFD_OPEN = downcall("pidfd_open", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle PIDFD_SEND_SIGNAL = downcall("pidfd_send_signal",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle WAIT4 = downcall("wait4", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS));
    private static final MethodHandle WAITID = downcall("waitid", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle PRLIMIT = downcall("prlimit", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    private static final MethodHandle STRERROR = downcall("strerror", FunctionDescriptor.of(ADDRESS, JAVA_INT));

    private static MethodHandle downcall(String name, FunctionDescriptor shape, Linker.Option... extra) {
        return downcall(name, shape, -1, extra);
    }

    private static MethodHandle downcall(String name, FunctionDescriptor shape, int firstVariadicArg) {
        return downcall(name, shape, firstVariadicArg, Linker.Option.firstVariadicArg(firstVariadicArg));
    }

    private static MethodHandle downcall(String name, FunctionDescriptor shape, int firstVariadicArg, Linker.Option... extra) {
        SHAPES.add(new Shape(name, shape, firstVariadicArg));
        Linker.Option[] options = new Linker.Option[extra.length + 1];
        options[0] = Linker.Option.captureCallState("errno");
        System.arraycopy(extra, 0, options, 1, extra.length);
        MemorySegment symbol = LIBC.find(name).orElseThrow(() -> new UnsatisfiedLinkError("libc lacks " + name));
        return LINKER.downcallHandle(symbol, shape, options);
    }

    private static boolean isAarch64() {
        return "aarch64".equals(System.getProperty("os.arch"));
    }

    /** Links every downcall now (class initialization does it), so that the first real call is quick. */
    public static void link() {
        errno();
    }

    /** errno of the last failed call on this thread. */
    public static int errno() {
        return (int) ERRNO.get(STATE.get(), 0L);
    }

    public static String strerror(int errno) {
        try {
            MemorySegment text = (MemorySegment) STRERROR.invokeExact(STATE.get(), errno);
            return text.reinterpret(Long.MAX_VALUE).getString(0);
        } catch (Throwable t) {
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

    static RuntimeException unexpected(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof java.lang.Error e) throw e;
        return new IllegalStateException(t);
    }

    // ----- thin wrappers: each returns the raw result; callers check for -1 and read errno() -----

    static int posixSpawn(MemorySegment pid, MemorySegment path, MemorySegment actions, MemorySegment attr,
                          MemorySegment argv, MemorySegment envp) {
        try {
            return (int) POSIX_SPAWN.invokeExact(STATE.get(), pid, path, actions, attr, argv, envp);
        } catch (Throwable t) { throw unexpected(t); }
    }

    static int call(MethodHandle handle, MemorySegment a) {
        try { return (int) handle.invokeExact(STATE.get(), a); } catch (Throwable t) { throw unexpected(t); }
    }

    static int fileActionsInit(MemorySegment fa) { return call(FA_INIT, fa); }
    static int fileActionsDestroy(MemorySegment fa) { return call(FA_DESTROY, fa); }
    static int attrInit(MemorySegment attr) { return call(ATTR_INIT, attr); }
    static int attrDestroy(MemorySegment attr) { return call(ATTR_DESTROY, attr); }
    static int sigemptyset(MemorySegment set) { return call(SIGEMPTYSET, set); }
    static int sigfillset(MemorySegment set) { return call(SIGFILLSET, set); }

    static int fileActionsAddDup2(MemorySegment fa, int fd, int target) {
        try { return (int) FA_ADDDUP2.invokeExact(STATE.get(), fa, fd, target); } catch (Throwable t) { throw unexpected(t); }
    }

    static int fileActionsAddCloseFrom(MemorySegment fa, int from) {
        try { return (int) FA_ADDCLOSEFROM.invokeExact(STATE.get(), fa, from); } catch (Throwable t) { throw unexpected(t); }
    }

    static int attrSetFlags(MemorySegment attr, short flags) {
        try { return (int) ATTR_SETFLAGS.invokeExact(STATE.get(), attr, flags); } catch (Throwable t) { throw unexpected(t); }
    }

    static int attrSetSigMask(MemorySegment attr, MemorySegment set) {
        try { return (int) ATTR_SETSIGMASK.invokeExact(STATE.get(), attr, set); } catch (Throwable t) { throw unexpected(t); }
    }

    static int attrSetSigDefault(MemorySegment attr, MemorySegment set) {
        try { return (int) ATTR_SETSIGDEFAULT.invokeExact(STATE.get(), attr, set); } catch (Throwable t) { throw unexpected(t); }
    }

    /** A close-on-exec pipe: {read end, write end}. */
    public static int[] pipe() throws Error {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment fds = arena.allocate(JAVA_INT, 2);
            int rc = (int) PIPE2.invokeExact(STATE.get(), fds, O_CLOEXEC);
            if (rc != 0) throw new Error("pipe2", errno());
            return new int[] {fds.getAtIndex(JAVA_INT, 0), fds.getAtIndex(JAVA_INT, 1)};
        } catch (Error e) { throw e; } catch (Throwable t) { throw unexpected(t); }
    }

    /** open(2); O_CLOEXEC is always added. */
    public static int open(String path, int flags, int mode) throws Error {
        try (Arena arena = Arena.ofConfined()) {
            int fd = (int) OPEN.invokeExact(STATE.get(), arena.allocateFrom(path), flags | O_CLOEXEC, mode);
            if (fd < 0) throw new Error("open " + path, errno());
            return fd;
        } catch (Error e) { throw e; } catch (Throwable t) { throw unexpected(t); }
    }

    /** openat(2) with O_CLOEXEC; returns -1 and leaves errno on failure. */
    public static int openat(int dirFd, String name, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            return (int) OPENAT.invokeExact(STATE.get(), dirFd, arena.allocateFrom(name), flags | O_CLOEXEC, 0);
        } catch (Throwable t) { throw unexpected(t); }
    }

    /** mkdirat(2); returns -1 and leaves errno on failure. */
    public static int mkdirat(int dirFd, String name, int mode) {
        try (Arena arena = Arena.ofConfined()) {
            return (int) MKDIRAT.invokeExact(STATE.get(), dirFd, arena.allocateFrom(name), mode);
        } catch (Throwable t) { throw unexpected(t); }
    }

    public static void close(int fd) {
        if (fd < 0) return;
        try { int ignored = (int) CLOSE.invokeExact(STATE.get(), fd); } catch (Throwable t) { throw unexpected(t); }
    }

    /** read(2) into {@code buffer}, retrying EINTR; 0 at end of file. */
    public static int read(int fd, MemorySegment buffer) throws Error {
        while (true) {
            long n;
            try { n = (long) READ.invokeExact(STATE.get(), fd, buffer, buffer.byteSize()); } catch (Throwable t) { throw unexpected(t); }
            if (n >= 0) return (int) n;
            if (errno() != EINTR) throw new Error("read", errno());
        }
    }

    /** Writes all of {@code data}, retrying EINTR and short writes. */
    public static void writeFully(int fd, MemorySegment data) throws Error {
        long offset = 0, size = data.byteSize();
        while (offset < size) {
            long n;
            try { n = (long) WRITE.invokeExact(STATE.get(), fd, data.asSlice(offset), size - offset); } catch (Throwable t) { throw unexpected(t); }
            if (n < 0) {
                if (errno() == EINTR) continue;
                throw new Error("write", errno());
            }
            offset += n;
        }
    }

    /** Writes all of {@code data}, retrying EINTR and short writes. */
    public static void writeFully(int fd, byte[] data) throws Error {
        try (Arena arena = Arena.ofConfined()) {
            writeFully(fd, arena.allocateFrom(ValueLayout.JAVA_BYTE, data));
        }
    }

    /** Process {@code pid}'s limit {@code resource} as {soft, hard}; {@link #RLIM_INFINITY} means none. */
    public static long[] getrlimit(int pid, int resource) throws Error {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment old = arena.allocate(JAVA_LONG, 2);
            int rc = (int) PRLIMIT.invokeExact(STATE.get(), pid, resource, MemorySegment.NULL, old);
            if (rc != 0) throw new Error("prlimit", errno());
            return new long[] {old.getAtIndex(JAVA_LONG, 0), old.getAtIndex(JAVA_LONG, 1)};
        } catch (Error e) { throw e; } catch (Throwable t) { throw unexpected(t); }
    }

    /** prlimit(2): sets process {@code pid}'s limit {@code resource} (lowering needs no privilege). */
    public static void setrlimit(int pid, int resource, long soft, long hard) throws Error {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment limit = arena.allocate(JAVA_LONG, 2);
            limit.setAtIndex(JAVA_LONG, 0, soft);
            limit.setAtIndex(JAVA_LONG, 1, hard);
            int rc = (int) PRLIMIT.invokeExact(STATE.get(), pid, resource, limit, MemorySegment.NULL);
            if (rc != 0) throw new Error("prlimit", errno());
        } catch (Error e) { throw e; } catch (Throwable t) { throw unexpected(t); }
    }

    /** kill(2): a negative pid is a process group. Returns 0, or -1 with errno. */
    public static int kill(int pid, int signal) {
        try { return (int) KILL.invokeExact(STATE.get(), pid, signal); } catch (Throwable t) { throw unexpected(t); }
    }

    /** pidfd_open(2): a descriptor that names this process and never a later one with the same pid. */
    public static int pidfdOpen(int pid) {
        try { return (int) PIDFD_OPEN.invokeExact(STATE.get(), pid, 0); } catch (Throwable t) { throw unexpected(t); }
    }

    public static int pidfdSendSignal(int pidfd, int signal) {
        try { return (int) PIDFD_SEND_SIGNAL.invokeExact(STATE.get(), pidfd, signal, MemorySegment.NULL, 0); } catch (Throwable t) { throw unexpected(t); }
    }

    static int wait4(int pid, MemorySegment status, int options, MemorySegment rusage) {
        try { return (int) WAIT4.invokeExact(STATE.get(), pid, status, options, rusage); } catch (Throwable t) { throw unexpected(t); }
    }

    static int waitid(int idType, int id, MemorySegment siginfo, int options) {
        try { return (int) WAITID.invokeExact(STATE.get(), idType, id, siginfo, options); } catch (Throwable t) { throw unexpected(t); }
    }

    static final ValueLayout.OfInt INT = JAVA_INT;
    static final ValueLayout.OfLong LONG = JAVA_LONG;
}
