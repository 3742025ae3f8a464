package dev.bwrapd.process;

import java.util.List;

import static dev.bwrapd.process.Downcall.CType.INT;
import static dev.bwrapd.process.Downcall.CType.LONG;
import static dev.bwrapd.process.Downcall.CType.POINTER;
import static dev.bwrapd.process.Downcall.CType.SHORT;

/**
 * Every libc function bwrapd calls, with its C signature: the one description both bindings
 * follow. {@link FfmBinding} links each entry from here; {@link CBinding} declares each as a
 * {@code @CFunction} of the same name and shape; NativeConfigTest checks CBinding and
 * native-config/reachability-metadata.json (where a GraalVM image would find FFM downcalls)
 * against this list. A new libc function: an entry here, a method in {@link LibcBinding}, its
 * two implementations, and a line in the metadata (the test prints it).
 */
enum Downcall {
    POSIX_SPAWN("posix_spawn", INT, POINTER, POINTER, POINTER, POINTER, POINTER, POINTER),
    FILE_ACTIONS_INIT("posix_spawn_file_actions_init", INT, POINTER),
    FILE_ACTIONS_DESTROY("posix_spawn_file_actions_destroy", INT, POINTER),
    FILE_ACTIONS_ADDDUP2("posix_spawn_file_actions_adddup2", INT, POINTER, INT, INT),
    FILE_ACTIONS_ADDCLOSEFROM("posix_spawn_file_actions_addclosefrom_np", INT, POINTER, INT),
    ATTR_INIT("posix_spawnattr_init", INT, POINTER),
    ATTR_SETFLAGS("posix_spawnattr_setflags", INT, POINTER, SHORT),
    ATTR_SETSIGMASK("posix_spawnattr_setsigmask", INT, POINTER, POINTER),
    ATTR_SETSIGDEFAULT("posix_spawnattr_setsigdefault", INT, POINTER, POINTER),
    SIGEMPTYSET("sigemptyset", INT, POINTER),
    PIPE2("pipe2", INT, POINTER, INT),
    OPEN("open", 2, INT, POINTER, INT, INT),
    OPENAT("openat", 3, INT, INT, POINTER, INT, INT),
    MKDIRAT("mkdirat", INT, INT, POINTER, INT),
    UNLINKAT("unlinkat", INT, INT, POINTER, INT),
    CLOSE("close", INT, INT),
    READ("read", LONG, INT, POINTER, LONG),
    PREAD("pread", LONG, INT, POINTER, LONG, LONG),
    FCNTL("fcntl", 2, INT, INT, INT, INT),
    WRITE("write", LONG, INT, POINTER, LONG),
    POLL("poll", INT, POINTER, LONG, INT),
    IOCTL("ioctl", 2, INT, INT, LONG, POINTER),
    KILL("kill", INT, INT, INT),
    PIDFD_OPEN("pidfd_open", INT, INT, INT),
    PIDFD_SEND_SIGNAL("pidfd_send_signal", INT, INT, INT, POINTER, INT),
    WAIT4("wait4", INT, INT, POINTER, INT, POINTER),
    WAITID("waitid", INT, INT, INT, POINTER, INT),
    SYSCALL("syscall", 1, LONG, LONG, LONG, POINTER, POINTER, LONG),
    STATX("statx", INT, INT, POINTER, INT, INT, POINTER),
    FSTATFS("fstatfs", INT, INT, POINTER),
    STRERROR("strerror", POINTER, INT),
    PRCTL("prctl", 1, INT, INT, LONG),
    PRLIMIT("prlimit", INT, INT, INT, POINTER, POINTER),
    // Loading libseccomp in the native image (the JVM's FFM looks libraries up itself).
    DLOPEN("dlopen", POINTER, POINTER, INT),
    DLSYM("dlsym", POINTER, POINTER, POINTER);

    /** The C types in these signatures (64-bit Linux: pointers and longs are 8 bytes). */
    enum CType { INT, LONG, SHORT, POINTER }

    final String function;
    final CType returns;
    final List<CType> parameters;
    /** Index of the first variadic parameter (FFM must know it), or -1. */
    final int firstVariadicArg;

    Downcall(String function, CType returns, CType... parameters) {
        this(function, -1, returns, parameters);
    }

    Downcall(String function, int firstVariadicArg, CType returns, CType... parameters) {
        this.function = function;
        this.returns = returns;
        this.parameters = List.of(parameters);
        this.firstVariadicArg = firstVariadicArg;
    }

    // Layouts of the structs bindings fill, for 64-bit Linux/glibc (sizes of opaque ones rounded up generously).
    static final int SPAWN_ATTR_SIZE = 512, FILE_ACTIONS_SIZE = 256, SIGSET_SIZE = 128;
    /**
     * The signals a spawned child gets back at their default action (posix_spawnattr_setsigdefault):
     * every one, each byte of the set 0xff. Not sigfillset(3): glibc leaves out its own two (32, 33:
     * thread cancellation and setxid), and posix_spawn's child then sets those to SIG_IGN, which
     * exec keeps: bwrap and every process of every sandbox ignored them, where a fork and exec
     * (Python's Popen) leaves them at their default.
     */
    static final byte ALL_SIGNALS = (byte) 0xff;
    /** siginfo_t: 128 bytes; si_pid is the int at byte 16. */
    static final int SIGINFO_SIZE = 128, SIGINFO_PID_OFFSET = 16;
    /**
     * struct rusage: ru_utime and ru_stime (timevals: seconds, microseconds) then longs, ru_maxrss
     * (KiB) first: its first {@value #RUSAGE_LONGS} longs are what bwrapd reads.
     */
    static final int RUSAGE_SIZE = 144, RUSAGE_LONGS = 5;

    /**
     * Each thread's memory for its calls, in both bindings: made anew when a call needs more than
     * it has ({@code capacity}), and when a block over {@link #SCRATCH_KEPT} bytes (a long argv or
     * path) serves a call that needs no more than that, so such a block is given back at the
     * thread's next call; the rest goes when the thread ends.
     */
    static final long SCRATCH_KEPT = 64 * 1024;

    /** Whether a thread's memory of {@code capacity} bytes is to be made anew for a call that needs {@code size}. */
    static boolean remakeScratch(long capacity, long size) {
        return capacity < size || (capacity > SCRATCH_KEPT && size <= SCRATCH_KEPT);
    }

    /** The room a piece of a call's memory takes: its size, rounded up to 8 bytes (the next piece stays aligned). */
    static long piece(long bytes) {
        return (bytes + 7) & ~7L;
    }

    /** The room {@code value} takes as a C string: at most three UTF-8 bytes a UTF-16 unit (a surrogate pair is four), then NUL. */
    static long stringSize(String value) {
        return piece(3L * noNul(value).length() + 1);
    }

    /**
     * {@code value}, refused if it holds a NUL: C would read only the part before it, so a path
     * checked as one string would reach the kernel as another. Requests are refused earlier
     * (Params); this is the last line, in every string either binding hands C.
     */
    static String noNul(String value) {
        if (value.indexOf(0) >= 0) throw new IllegalArgumentException("a string for C holds a NUL");
        return value;
    }

    /** The room {@code values} take as a NULL-terminated array of C strings. */
    static long stringsSize(List<String> values) {
        long size = piece(8L * (values.size() + 1));
        for (String value : values) size += stringSize(value);
        return size;
    }
}
