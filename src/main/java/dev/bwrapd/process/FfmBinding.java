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
import java.util.List;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * libc through the Foreign Function & Memory API: the JVM's binding. It needs no C toolchain and
 * calls libc directly; every downcall captures errno. Linking the downcalls costs about 200 ms,
 * so they link on first use of {@link Linked} (Main starts that on a thread of its own), apart
 * from prctl and syscall, which start-up needs at once (syscall for keyctl, on the main thread
 * before any other thread of bwrapd's exists).
 */
final class FfmBinding implements LibcBinding {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final MemoryLayout CALL_STATE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CALL_STATE.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    /**
     * Per thread: where downcalls leave errno, and a buffer for reads and small structs, in arenas
     * confined to the thread and closed by {@link #threadEnding} when a pooled thread ends. (Auto
     * arenas were freed only by a full collection, long after their threads had gone.) A thread
     * that ends without it keeps its few KiB until the process ends: only one-off start-up threads.
     */
    private static final ThreadLocal<ThreadMemory> MEMORY = ThreadLocal.withInitial(ThreadMemory::new);

    private static final class ThreadMemory {
        final Arena arena = Arena.ofConfined();
        final MemorySegment state = arena.allocate(CALL_STATE);
        Arena scratchArena;
        MemorySegment scratch;
    }

    static MethodHandle link(Downcall call) {
        MemoryLayout[] parameters = call.parameters.stream().map(FfmBinding::layout).toArray(MemoryLayout[]::new);
        FunctionDescriptor shape = FunctionDescriptor.of(layout(call.returns), parameters);
        Linker.Option errno = Linker.Option.captureCallState("errno");
        Linker.Option[] options = call.firstVariadicArg < 0 ? new Linker.Option[] {errno}
                : new Linker.Option[] {errno, Linker.Option.firstVariadicArg(call.firstVariadicArg)};
        MemorySegment symbol = LINKER.defaultLookup().find(call.function)
                .orElseThrow(() -> new UnsatisfiedLinkError("libc lacks " + call.function));
        return LINKER.downcallHandle(symbol, shape, options);
    }

    static MemoryLayout layout(Downcall.CType type) {
        return switch (type) {
            case INT -> JAVA_INT;
            case LONG -> JAVA_LONG;
            case SHORT -> JAVA_SHORT;
            case POINTER -> ADDRESS;
        };
    }

    private static final class Prctl {
        static final MethodHandle PRCTL = link(Downcall.PRCTL);
    }

    private static final class Syscall {
        static final MethodHandle SYSCALL = link(Downcall.SYSCALL);
    }

    private static final class Linked {
        static final MethodHandle POSIX_SPAWN = link(Downcall.POSIX_SPAWN);
        static final MethodHandle FA_INIT = link(Downcall.FILE_ACTIONS_INIT);
        static final MethodHandle FA_DESTROY = link(Downcall.FILE_ACTIONS_DESTROY);
        static final MethodHandle FA_ADDDUP2 = link(Downcall.FILE_ACTIONS_ADDDUP2);
        static final MethodHandle FA_ADDCLOSEFROM = link(Downcall.FILE_ACTIONS_ADDCLOSEFROM);
        static final MethodHandle ATTR_INIT = link(Downcall.ATTR_INIT);
        static final MethodHandle ATTR_SETFLAGS = link(Downcall.ATTR_SETFLAGS);
        static final MethodHandle ATTR_SETSIGMASK = link(Downcall.ATTR_SETSIGMASK);
        static final MethodHandle ATTR_SETSIGDEFAULT = link(Downcall.ATTR_SETSIGDEFAULT);
        static final MethodHandle SIGEMPTYSET = link(Downcall.SIGEMPTYSET);
        static final MethodHandle PIPE2 = link(Downcall.PIPE2);
        static final MethodHandle OPEN = link(Downcall.OPEN);
        static final MethodHandle OPENAT = link(Downcall.OPENAT);
        static final MethodHandle MKDIRAT = link(Downcall.MKDIRAT);
        static final MethodHandle UNLINKAT = link(Downcall.UNLINKAT);
        static final MethodHandle CLOSE = link(Downcall.CLOSE);
        static final MethodHandle READ = link(Downcall.READ);
        static final MethodHandle PREAD = link(Downcall.PREAD);
        static final MethodHandle FCNTL = link(Downcall.FCNTL);
        static final MethodHandle WRITE = link(Downcall.WRITE);
        static final MethodHandle POLL = link(Downcall.POLL);
        static final MethodHandle IOCTL = link(Downcall.IOCTL);
        static final MethodHandle STATX = link(Downcall.STATX);
        static final MethodHandle FSTATFS = link(Downcall.FSTATFS);
        static final MethodHandle KILL = link(Downcall.KILL);
        static final MethodHandle PRLIMIT = link(Downcall.PRLIMIT);
        static final MethodHandle PIDFD_OPEN = link(Downcall.PIDFD_OPEN);
        static final MethodHandle PIDFD_SEND_SIGNAL = link(Downcall.PIDFD_SEND_SIGNAL);
        static final MethodHandle WAIT4 = link(Downcall.WAIT4);
        static final MethodHandle WAITID = link(Downcall.WAITID);
        static final MethodHandle STRERROR = link(Downcall.STRERROR);

        static void now() {}
    }

    @Override
    public void link() {
        Linked.now();
    }

    private static MemorySegment state() {
        return MEMORY.get().state;
    }

    /**
     * This thread's scratch memory of at least {@code size} bytes: what a call passes C and what C
     * writes for it, copied in and out (an arena per call was most of what a run allocated on the
     * JVM). Made anew as {@link Downcall#remakeScratch} says; freed when the thread ends.
     */
    private static MemorySegment scratch(long size) {
        ThreadMemory memory = MEMORY.get();
        if (memory.scratch == null || Downcall.remakeScratch(memory.scratch.byteSize(), size)) {
            Arena old = memory.scratchArena;
            memory.scratchArena = null; // forgotten first: an allocation that fails leaves no closed arena behind
            memory.scratch = null;
            if (old != null) old.close();
            Arena arena = Arena.ofConfined();
            try {
                memory.scratch = arena.allocate(Math.max(size, 1024), 16);
            } catch (RuntimeException | Error e) {
                arena.close();
                throw e;
            }
            memory.scratchArena = arena;
        }
        return memory.scratch;
    }

    /** {@code value} as a C string in this thread's scratch memory. */
    private static MemorySegment string(String value) {
        MemorySegment c = scratch(Downcall.stringSize(value));
        c.setString(0, value);
        return c;
    }

    @Override
    public void threadEnding() {
        ThreadMemory memory = MEMORY.get();
        MEMORY.remove();
        if (memory.scratchArena != null) memory.scratchArena.close();
        memory.arena.close();
    }

    private static RuntimeException unexpected(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException(t);
    }

    @Override
    public int errno() {
        return (int) ERRNO.get(state(), 0L);
    }

    @Override
    public String strerror(int errno) {
        try {
            MemorySegment text = (MemorySegment) Linked.STRERROR.invokeExact(state(), errno);
            return text.reinterpret(Long.MAX_VALUE).getString(0);
        } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public int prctl(int option, long arg) {
        try { return (int) Prctl.PRCTL.invokeExact(state(), option, arg); } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public long joinNewSessionKeyring() {
        try {
            return (long) Syscall.SYSCALL.invokeExact(state(), Libc.SYS_KEYCTL, Libc.KEYCTL_JOIN_SESSION_KEYRING, MemorySegment.NULL,
                    MemorySegment.NULL, 0L);
        } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public long spawnAttributes(short flags) throws Libc.Error {
        MemorySegment attr = Arena.global().allocate(Downcall.SPAWN_ATTR_SIZE, 16); // a few hundred bytes, once
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment emptySet = arena.allocate(Downcall.SIGSET_SIZE, 16);
            MemorySegment allSignals = arena.allocate(Downcall.SIGSET_SIZE, 16);
            MemorySegment state = state();
            int ignored = (int) Linked.ATTR_INIT.invokeExact(state, attr); // only sets fields: nothing to destroy
            ignored = (int) Linked.SIGEMPTYSET.invokeExact(state, emptySet);
            allSignals.fill(Downcall.ALL_SIGNALS);
            Libc.check("posix_spawnattr_setsigmask", (int) Linked.ATTR_SETSIGMASK.invokeExact(state, attr, emptySet));
            Libc.check("posix_spawnattr_setsigdefault", (int) Linked.ATTR_SETSIGDEFAULT.invokeExact(state, attr, allSignals));
            Libc.check("posix_spawnattr_setflags", (int) Linked.ATTR_SETFLAGS.invokeExact(state, attr, flags));
            return attr.address();
        } catch (Libc.Error e) { throw e; } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public long spawnFileActions() {
        MemorySegment actions = Arena.global().allocate(Downcall.FILE_ACTIONS_SIZE, 16);
        try {
            int ignored = (int) Linked.FA_INIT.invokeExact(state(), actions);
            return actions.address();
        } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public void fillSpawnFileActions(long fileActions, int[] dup2Plan, int closeFrom) throws Libc.Error {
        MemorySegment actions = MemorySegment.ofAddress(fileActions).reinterpret(Downcall.FILE_ACTIONS_SIZE);
        try {
            MemorySegment state = state();
            int ignored = (int) Linked.FA_DESTROY.invokeExact(state, actions);
            ignored = (int) Linked.FA_INIT.invokeExact(state, actions);
            for (int i = 0; i < dup2Plan.length; i += 2) {
                Libc.check("posix_spawn_file_actions_adddup2", (int) Linked.FA_ADDDUP2.invokeExact(state, actions, dup2Plan[i], dup2Plan[i + 1]));
            }
            Libc.check("posix_spawn_file_actions_addclosefrom_np", (int) Linked.FA_ADDCLOSEFROM.invokeExact(state, actions, closeFrom));
        } catch (Libc.Error e) { throw e; } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public int spawn(String path, List<String> argv, List<String> environment, long fileActions, long attributes) throws Libc.Error {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pid = arena.allocate(JAVA_INT);
            Libc.check("posix_spawn " + path, (int) Linked.POSIX_SPAWN.invokeExact(state(), pid, arena.allocateFrom(Downcall.noNul(path)),
                    MemorySegment.ofAddress(fileActions), MemorySegment.ofAddress(attributes),
                    strings(arena, argv), strings(arena, environment)));
            return pid.get(JAVA_INT, 0);
        } catch (Libc.Error e) { throw e; } catch (Throwable t) { throw unexpected(t); }
    }

    /** A NULL-terminated array of C strings. */
    private static MemorySegment strings(Arena arena, List<String> values) {
        MemorySegment array = arena.allocate(ADDRESS, values.size() + 1L);
        for (int i = 0; i < values.size(); i++) array.setAtIndex(ADDRESS, i, arena.allocateFrom(Downcall.noNul(values.get(i))));
        array.setAtIndex(ADDRESS, values.size(), MemorySegment.NULL);
        return array;
    }

    @Override
    public int pipe2(int[] fds, int flags) {
        MemorySegment ends = scratch(8);
        try {
            int rc = (int) Linked.PIPE2.invokeExact(state(), ends, flags);
            if (rc == 0) {
                fds[0] = ends.getAtIndex(JAVA_INT, 0);
                fds[1] = ends.getAtIndex(JAVA_INT, 1);
            }
            return rc;
        } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public int open(String path, int flags, int mode) {
        MemorySegment c = string(path);
        try { return (int) Linked.OPEN.invokeExact(state(), c, flags, mode); } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public int openat(int dirFd, String name, int flags, int mode) {
        MemorySegment c = string(name);
        try { return (int) Linked.OPENAT.invokeExact(state(), dirFd, c, flags, mode); } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public int mkdirat(int dirFd, String name, int mode) {
        MemorySegment c = string(name);
        try { return (int) Linked.MKDIRAT.invokeExact(state(), dirFd, c, mode); } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public int unlinkat(int dirFd, String name, int flags) {
        MemorySegment c = string(name);
        try { return (int) Linked.UNLINKAT.invokeExact(state(), dirFd, c, flags); } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public int close(int fd) {
        try { return (int) Linked.CLOSE.invokeExact(state(), fd); } catch (Throwable t) { throw unexpected(t); }
    }

    /** Reads and writes go through the scratch buffer at most this much at a time (short counts are legal). */
    private static final int MAX_TRANSFER = 64 * 1024;

    @Override
    public long read(int fd, byte[] buffer, int offset, int length) {
        length = Math.min(length, MAX_TRANSFER);
        MemorySegment native_ = scratch(length);
        long n;
        try { n = (long) Linked.READ.invokeExact(state(), fd, native_, (long) length); } catch (Throwable t) { throw unexpected(t); }
        if (n > 0) MemorySegment.copy(native_, JAVA_BYTE, 0, buffer, offset, (int) n);
        return n;
    }

    @Override
    public long pread(int fd, byte[] buffer, int offset, int length, long position) {
        length = Math.min(length, MAX_TRANSFER);
        MemorySegment native_ = scratch(length);
        long n;
        try { n = (long) Linked.PREAD.invokeExact(state(), fd, native_, (long) length, position); } catch (Throwable t) { throw unexpected(t); }
        if (n > 0) MemorySegment.copy(native_, JAVA_BYTE, 0, buffer, offset, (int) n);
        return n;
    }

    @Override
    public int fcntl(int fd, int command, int arg) {
        try { return (int) Linked.FCNTL.invokeExact(state(), fd, command, arg); } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public long write(int fd, byte[] data, int offset, int length) {
        length = Math.min(length, MAX_TRANSFER);
        MemorySegment native_ = scratch(length);
        MemorySegment.copy(data, offset, native_, JAVA_BYTE, 0, length);
        try { return (long) Linked.WRITE.invokeExact(state(), fd, native_, (long) length); } catch (Throwable t) { throw unexpected(t); }
    }

    /** The syscall number of openat2 (the same on x86_64 and aarch64; glibc 2.36 has no wrapper). */
    private static final long SYS_OPENAT2 = 437;

    @Override
    public int openat2(int dirFd, String path, long[] how) {
        long pathAt = Downcall.piece(8L * how.length);
        MemorySegment memory = scratch(pathAt + Downcall.stringSize(path));
        MemorySegment.copy(how, 0, memory, JAVA_LONG, 0, how.length);
        memory.setString(pathAt, path);
        try {
            return (int) (long) Syscall.SYSCALL.invokeExact(state(), SYS_OPENAT2, (long) dirFd, memory.asSlice(pathAt), memory,
                    8L * how.length);
        } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public int statx(int dirFd, String path, int flags, int mask, byte[] buffer) {
        long pathAt = Downcall.piece(buffer.length);
        MemorySegment memory = scratch(pathAt + Downcall.stringSize(path));
        memory.setString(pathAt, path);
        int rc;
        try { rc = (int) Linked.STATX.invokeExact(state(), dirFd, memory.asSlice(pathAt), flags, mask, memory); } catch (Throwable t) { throw unexpected(t); }
        if (rc == 0) MemorySegment.copy(memory, JAVA_BYTE, 0, buffer, 0, buffer.length);
        return rc;
    }

    @Override
    public int fstatfs(int fd, byte[] buffer) {
        MemorySegment native_ = scratch(buffer.length);
        int rc;
        try { rc = (int) Linked.FSTATFS.invokeExact(state(), fd, native_); } catch (Throwable t) { throw unexpected(t); }
        if (rc == 0) MemorySegment.copy(native_, JAVA_BYTE, 0, buffer, 0, buffer.length);
        return rc;
    }

    @Override
    public int poll(byte[] pollfds, int count, int timeoutMs) {
        MemorySegment native_ = scratch(8L * count);
        MemorySegment.copy(pollfds, 0, native_, JAVA_BYTE, 0, 8 * count);
        int n;
        try { n = (int) Linked.POLL.invokeExact(state(), native_, (long) count, timeoutMs); } catch (Throwable t) { throw unexpected(t); }
        if (n > 0) MemorySegment.copy(native_, JAVA_BYTE, 0, pollfds, 0, 8 * count);
        return n;
    }

    @Override
    public int ioctl(int fd, long request, byte[] arg) {
        MemorySegment native_ = scratch(arg.length);
        MemorySegment.copy(arg, 0, native_, JAVA_BYTE, 0, arg.length);
        int rc;
        try { rc = (int) Linked.IOCTL.invokeExact(state(), fd, request, native_); } catch (Throwable t) { throw unexpected(t); }
        MemorySegment.copy(native_, JAVA_BYTE, 0, arg, 0, arg.length);
        return rc;
    }

    @Override
    public int ioctlValue(int fd, long request, long value) {
        try { return (int) Linked.IOCTL.invokeExact(state(), fd, request, MemorySegment.ofAddress(value)); } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public int kill(int pid, int signal) {
        try { return (int) Linked.KILL.invokeExact(state(), pid, signal); } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public int prlimit(int pid, int resource, long[] newLimit, long[] oldLimit) {
        MemorySegment memory = scratch(32);
        MemorySegment next = newLimit == null ? MemorySegment.NULL : memory.asSlice(0, 16);
        MemorySegment old = oldLimit == null ? MemorySegment.NULL : memory.asSlice(16, 16);
        if (newLimit != null) MemorySegment.copy(newLimit, 0, next, JAVA_LONG, 0, 2);
        int rc;
        try { rc = (int) Linked.PRLIMIT.invokeExact(state(), pid, resource, next, old); } catch (Throwable t) { throw unexpected(t); }
        if (rc == 0 && oldLimit != null) MemorySegment.copy(old, JAVA_LONG, 0, oldLimit, 0, 2);
        return rc;
    }

    @Override
    public int pidfdOpen(int pid, int flags) {
        try { return (int) Linked.PIDFD_OPEN.invokeExact(state(), pid, flags); } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public int pidfdSendSignal(int pidfd, int signal) {
        try {
            return (int) Linked.PIDFD_SEND_SIGNAL.invokeExact(state(), pidfd, signal, MemorySegment.NULL, 0);
        } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public int waitid(int idType, int id, int options) {
        MemorySegment info = scratch(Downcall.SIGINFO_SIZE).asSlice(0, Downcall.SIGINFO_SIZE).fill((byte) 0);
        int rc;
        try { rc = (int) Linked.WAITID.invokeExact(state(), idType, id, info, options); } catch (Throwable t) { throw unexpected(t); }
        return rc == -1 ? -1 : info.get(JAVA_INT, Downcall.SIGINFO_PID_OFFSET);
    }

    /** libseccomp, linked on first use; its absence shows as this class failing to initialize. */
    private static final class Seccomp {
        static final SymbolLookup LIBRARY = SymbolLookup.libraryLookup("libseccomp.so.2", Arena.global());
        static final MethodHandle INIT = link("seccomp_init", FunctionDescriptor.of(ADDRESS, JAVA_INT));
        static final MethodHandle ARCH_ADD = link("seccomp_arch_add", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        static final MethodHandle RESOLVE = link("seccomp_syscall_resolve_name", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle RULE_ADD = link("seccomp_rule_add_array",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS));
        static final MethodHandle EXPORT = link("seccomp_export_bpf", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        static final MethodHandle RELEASE = link("seccomp_release", FunctionDescriptor.ofVoid(ADDRESS));

        private static MethodHandle link(String name, FunctionDescriptor shape) {
            return LINKER.downcallHandle(LIBRARY.find(name).orElseThrow(() -> new UnsatisfiedLinkError("libseccomp lacks " + name)), shape);
        }
    }

    @Override
    public boolean seccompLoad() {
        try {
            return Seccomp.RELEASE != null;
        } catch (LinkageError | IllegalArgumentException e) {
            return false; // no libseccomp.so.2 here
        }
    }

    @Override
    public long seccompInit(int defaultAction) {
        try { return ((MemorySegment) Seccomp.INIT.invokeExact(defaultAction)).address(); } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public int seccompArchAdd(long context, int arch) {
        try { return (int) Seccomp.ARCH_ADD.invokeExact(MemorySegment.ofAddress(context), arch); } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public int seccompResolve(String name) {
        try (Arena arena = Arena.ofConfined()) {
            return (int) Seccomp.RESOLVE.invokeExact(arena.allocateFrom(Downcall.noNul(name)));
        } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public int seccompRuleAdd(long context, int action, int syscall, int count, byte[] comparisons) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment array = arena.allocate(Math.max(1, comparisons.length), 8);
            MemorySegment.copy(comparisons, 0, array, JAVA_BYTE, 0, comparisons.length);
            return (int) Seccomp.RULE_ADD.invokeExact(MemorySegment.ofAddress(context), action, syscall, count, array);
        } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public int seccompExportBpf(long context, int fd) {
        try { return (int) Seccomp.EXPORT.invokeExact(MemorySegment.ofAddress(context), fd); } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public void seccompRelease(long context) {
        try { Seccomp.RELEASE.invokeExact(MemorySegment.ofAddress(context)); } catch (Throwable t) { throw unexpected(t); }
    }

    @Override
    public int wait4(int pid, int options, long[] statusAndUsage) {
        MemorySegment memory = scratch(16 + Downcall.RUSAGE_SIZE);
        MemorySegment status = memory.asSlice(0, 8), usage = memory.asSlice(16, Downcall.RUSAGE_SIZE);
        int rc;
        try { rc = (int) Linked.WAIT4.invokeExact(state(), pid, status, options, usage); } catch (Throwable t) { throw unexpected(t); }
        if (rc > 0) {
            statusAndUsage[0] = status.get(JAVA_INT, 0);
            for (int i = 0; i < Downcall.RUSAGE_LONGS; i++) statusAndUsage[1 + i] = usage.getAtIndex(JAVA_LONG, i);
        }
        return rc;
    }
}
