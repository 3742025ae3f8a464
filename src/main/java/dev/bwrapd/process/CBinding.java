package dev.bwrapd.process;

import org.graalvm.nativeimage.PinnedObject;
import org.graalvm.nativeimage.UnmanagedMemory;
import org.graalvm.nativeimage.c.function.CFunction;
import org.graalvm.nativeimage.c.function.CFunctionPointer;
import org.graalvm.nativeimage.c.function.InvokeCFunctionPointer;
import org.graalvm.nativeimage.c.type.CCharPointer;
import org.graalvm.nativeimage.c.type.CCharPointerPointer;
import org.graalvm.nativeimage.c.type.CIntPointer;
import org.graalvm.nativeimage.c.type.CLongPointer;
import org.graalvm.nativeimage.c.type.CTypeConversion;
import org.graalvm.nativeimage.c.type.VoidPointer;
import org.graalvm.word.PointerBase;
import org.graalvm.word.WordFactory;

import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * libc through GraalVM's C interface: the native image's binding. Each {@link Downcall} is a
 * {@code @CFunction} below, compiled into a direct call. What C reads or writes is each thread's
 * own native memory ({@link ThreadMemory}: no stack values, which are not allowed on virtual
 * threads), except the data of read and write, whose Java array is pinned for the call; errno is
 * read right after each call, before anything else can change it.
 *
 * <p>Only ever loaded in a native image ({@link Libc} picks it while the image is built); on the
 * JVM GraalVM's API is not even on the class path.
 */
final class CBinding implements LibcBinding {
    private static final ThreadLocal<ThreadMemory> MEMORY = ThreadLocal.withInitial(ThreadMemory::new);

    /** The declarations, one per {@link Downcall} and of the same shape (NativeConfigTest checks it). */
    static final class Functions {
        private Functions() {}

        @CFunction static native int posix_spawn(CIntPointer pid, CCharPointer path, VoidPointer fileActions, VoidPointer attr,
                                                 CCharPointerPointer argv, CCharPointerPointer envp);
        @CFunction static native int posix_spawn_file_actions_init(VoidPointer fileActions);
        @CFunction static native int posix_spawn_file_actions_destroy(VoidPointer fileActions);
        @CFunction static native int posix_spawn_file_actions_adddup2(VoidPointer fileActions, int fd, int newFd);
        @CFunction static native int posix_spawn_file_actions_addclosefrom_np(VoidPointer fileActions, int from);
        @CFunction static native int posix_spawnattr_init(VoidPointer attr);
        @CFunction static native int posix_spawnattr_setflags(VoidPointer attr, short flags);
        @CFunction static native int posix_spawnattr_setsigmask(VoidPointer attr, VoidPointer set);
        @CFunction static native int posix_spawnattr_setsigdefault(VoidPointer attr, VoidPointer set);
        @CFunction static native int sigemptyset(VoidPointer set);
        @CFunction static native int pipe2(CIntPointer fds, int flags);
        @CFunction static native int open(CCharPointer path, int flags, int mode);
        @CFunction static native int openat(int dirFd, CCharPointer name, int flags, int mode);
        @CFunction static native int mkdirat(int dirFd, CCharPointer name, int mode);
        @CFunction static native int unlinkat(int dirFd, CCharPointer name, int flags);
        @CFunction static native int close(int fd);
        @CFunction static native long read(int fd, CCharPointer buffer, long count);
        @CFunction static native long pread(int fd, CCharPointer buffer, long count, long offset);
        @CFunction static native int fcntl(int fd, int command, int arg);
        @CFunction static native long write(int fd, CCharPointer buffer, long count);
        @CFunction static native int poll(CCharPointer fds, long count, int timeout);
        @CFunction static native int ioctl(int fd, long request, CCharPointer arg);
        /** Variadic in C; on x86_64 and aarch64 fixed longs and pointers pass the same way. openat2 and keyctl. */
        @CFunction static native long syscall(long number, long arg1, CCharPointer arg2, CLongPointer arg3, long arg4);
        @CFunction static native int statx(int dirFd, CCharPointer path, int flags, int mask, CCharPointer buffer);
        @CFunction static native int fstatfs(int fd, CCharPointer buffer);
        @CFunction static native int kill(int pid, int signal);
        @CFunction static native int prlimit(int pid, int resource, CLongPointer newLimit, CLongPointer oldLimit);
        @CFunction static native int pidfd_open(int pid, int flags);
        @CFunction static native int pidfd_send_signal(int pidfd, int signal, VoidPointer info, int flags);
        @CFunction static native int wait4(int pid, CIntPointer status, int options, CLongPointer rusage);
        @CFunction static native int waitid(int idType, int id, CIntPointer info, int options);
        @CFunction static native CCharPointer strerror(int errno);
        @CFunction static native int prctl(int option, long arg);
        @CFunction static native VoidPointer dlopen(CCharPointer file, int mode);
        @CFunction static native VoidPointer dlsym(VoidPointer handle, CCharPointer name);

        /** How the C interface reads errno (FFM captures it instead): not a {@link Downcall}. */
        @CFunction(transition = CFunction.Transition.NO_TRANSITION)
        static native CIntPointer __errno_location();
    }

    /**
     * A thread's native memory for the arguments of its calls, and the errno of its last call.
     * A call reserves what it needs ({@link #memory}), takes its pieces, copies in what C reads and
     * out what C wrote. Pinning the Java arrays instead cost more than these copies: a pin is an
     * object and a place in the collector's list of pinned objects, taken and given back at every
     * call (about a tenth of the run's Java time, in a profile). Made anew as
     * {@link Downcall#remakeScratch} says; freed when the thread ends ({@link #threadEnding}).
     */
    private static final class ThreadMemory {
        int errno;
        private CCharPointer base = WordFactory.nullPointer();
        private long capacity;
        private long used;

        /** Room for {@code bytes}, all of it free: the pieces of an earlier call are no longer in use. */
        ThreadMemory reserve(long bytes) {
            if (base.isNull() || Downcall.remakeScratch(capacity, bytes)) {
                // Freed and forgotten before the malloc, which throws when it fails: the old block
                // is then neither freed again nor written into by the thread's next call.
                free();
                long size = Math.max(bytes, 1024);
                base = UnmanagedMemory.malloc(WordFactory.unsigned(size));
                capacity = size;
            }
            used = 0;
            return this;
        }

        /** {@code bytes} of the reserved room, 8-aligned (a reservation counts {@link Downcall#piece} for each). */
        @SuppressWarnings("unchecked")
        <T extends PointerBase> T take(long bytes) {
            if (used + bytes > capacity) throw new IllegalStateException("more native memory taken than reserved");
            CCharPointer piece = base.addressOf(WordFactory.signed(used)); // a long offset: a reservation may pass 2 GiB
            used += Downcall.piece(bytes);
            return (T) piece;
        }

        /** A NUL-terminated UTF-8 copy of {@code value}, as FFM's {@code allocateFrom} makes. */
        CCharPointer string(String value) {
            CCharPointer c = take(Downcall.stringSize(value));
            int length = value.length();
            for (int i = 0; i < length; i++) {
                char ch = value.charAt(i);
                if (ch >= 0x80) return encoded(c, value);
                c.write(i, (byte) ch);
            }
            c.write(length, (byte) 0);
            return c;
        }

        private static CCharPointer encoded(CCharPointer c, String value) {
            byte[] utf8 = value.getBytes(StandardCharsets.UTF_8);
            for (int i = 0; i < utf8.length; i++) c.write(i, utf8[i]);
            c.write(utf8.length, (byte) 0);
            return c;
        }

        /** A NULL-terminated array of C strings. */
        CCharPointerPointer strings(List<String> values) {
            CCharPointerPointer array = take(8L * (values.size() + 1));
            for (int i = 0; i < values.size(); i++) array.write(i, string(values.get(i)));
            array.write(values.size(), WordFactory.nullPointer());
            return array;
        }

        /** A copy of {@code bytes}. */
        CCharPointer bytes(byte[] bytes, int length) {
            CCharPointer c = take(length);
            for (int i = 0; i < length; i++) c.write(i, bytes[i]);
            return c;
        }

        /** A copy of {@code longs}. */
        CLongPointer longs(long[] longs) {
            CLongPointer c = take(8L * longs.length);
            for (int i = 0; i < longs.length; i++) c.write(i, longs[i]);
            return c;
        }

        /** Keeps errno of the call that just returned {@code result}, for {@link #errno()}; returns the result. */
        int kept(int result) {
            errno = Functions.__errno_location().read();
            return result;
        }

        long kept(long result) {
            errno = Functions.__errno_location().read();
            return result;
        }

        void free() {
            if (base.isNonNull()) UnmanagedMemory.free(base);
            base = WordFactory.nullPointer();
            capacity = 0;
        }
    }

    /** This thread's memory, with room for {@code bytes}. */
    private static ThreadMemory memory(long bytes) {
        return MEMORY.get().reserve(bytes);
    }

    /** This thread's memory, for a call that passes C none (to keep its errno). */
    private static ThreadMemory memory() {
        return MEMORY.get();
    }

    private static void copyOut(CCharPointer from, byte[] to, int length) {
        for (int i = 0; i < length; i++) to[i] = from.read(i);
    }

    @Override
    public void threadEnding() {
        MEMORY.get().free();
        MEMORY.remove();
    }

    @Override
    public int errno() {
        return memory().errno;
    }

    @Override
    public String strerror(int errno) {
        return CTypeConversion.toJavaString(Functions.strerror(errno));
    }

    @Override
    public int prctl(int option, long arg) {
        return memory().kept(Functions.prctl(option, arg));
    }

    @Override
    public long joinNewSessionKeyring() {
        return memory().kept(Functions.syscall(Libc.SYS_KEYCTL, Libc.KEYCTL_JOIN_SESSION_KEYRING, WordFactory.nullPointer(),
                WordFactory.nullPointer(), 0));
    }

    @Override
    public long spawnAttributes(short flags) throws Libc.Error {
        VoidPointer attr = UnmanagedMemory.calloc(Downcall.SPAWN_ATTR_SIZE);
        try {
            ThreadMemory m = memory(2L * Downcall.SIGSET_SIZE);
            VoidPointer emptySet = m.take(Downcall.SIGSET_SIZE);
            VoidPointer allSignals = m.take(Downcall.SIGSET_SIZE);
            Functions.posix_spawnattr_init(attr); // only sets fields: nothing to destroy
            Functions.sigemptyset(emptySet);
            for (int i = 0; i < Downcall.SIGSET_SIZE; i++) ((CCharPointer) allSignals).write(i, Downcall.ALL_SIGNALS);
            Libc.check("posix_spawnattr_setsigmask", Functions.posix_spawnattr_setsigmask(attr, emptySet));
            Libc.check("posix_spawnattr_setsigdefault", Functions.posix_spawnattr_setsigdefault(attr, allSignals));
            Libc.check("posix_spawnattr_setflags", Functions.posix_spawnattr_setflags(attr, flags));
            return attr.rawValue();
        } catch (Libc.Error e) {
            UnmanagedMemory.free(attr);
            throw e;
        }
    }

    @Override
    public long spawnFileActions() {
        VoidPointer actions = UnmanagedMemory.calloc(Downcall.FILE_ACTIONS_SIZE);
        Functions.posix_spawn_file_actions_init(actions);
        return actions.rawValue();
    }

    @Override
    public void fillSpawnFileActions(long fileActions, int[] dup2Plan, int closeFrom) throws Libc.Error {
        VoidPointer actions = WordFactory.pointer(fileActions);
        Functions.posix_spawn_file_actions_destroy(actions);
        Functions.posix_spawn_file_actions_init(actions);
        for (int i = 0; i < dup2Plan.length; i += 2) {
            Libc.check("posix_spawn_file_actions_adddup2", Functions.posix_spawn_file_actions_adddup2(actions, dup2Plan[i], dup2Plan[i + 1]));
        }
        Libc.check("posix_spawn_file_actions_addclosefrom_np", Functions.posix_spawn_file_actions_addclosefrom_np(actions, closeFrom));
    }

    @Override
    public int spawn(String path, List<String> argv, List<String> environment, long fileActions, long attributes) throws Libc.Error {
        ThreadMemory m = memory(Downcall.piece(4) + Downcall.stringSize(path) + Downcall.stringsSize(argv) + Downcall.stringsSize(environment));
        CIntPointer pid = m.take(4);
        Libc.check("posix_spawn " + path, Functions.posix_spawn(pid, m.string(path), WordFactory.pointer(fileActions),
                WordFactory.pointer(attributes), m.strings(argv), m.strings(environment)));
        return pid.read();
    }

    @Override
    public int pipe2(int[] fds, int flags) {
        ThreadMemory m = memory(8);
        CIntPointer ends = m.take(8);
        int rc = m.kept(Functions.pipe2(ends, flags));
        if (rc == 0) {
            fds[0] = ends.read(0);
            fds[1] = ends.read(1);
        }
        return rc;
    }

    @Override
    public int open(String path, int flags, int mode) {
        ThreadMemory m = memory(Downcall.stringSize(path));
        return m.kept(Functions.open(m.string(path), flags, mode));
    }

    @Override
    public int openat(int dirFd, String name, int flags, int mode) {
        ThreadMemory m = memory(Downcall.stringSize(name));
        return m.kept(Functions.openat(dirFd, m.string(name), flags, mode));
    }

    @Override
    public int mkdirat(int dirFd, String name, int mode) {
        ThreadMemory m = memory(Downcall.stringSize(name));
        return m.kept(Functions.mkdirat(dirFd, m.string(name), mode));
    }

    @Override
    public int unlinkat(int dirFd, String name, int flags) {
        ThreadMemory m = memory(Downcall.stringSize(name));
        return m.kept(Functions.unlinkat(dirFd, m.string(name), flags));
    }

    @Override
    public int close(int fd) {
        return memory().kept(Functions.close(fd));
    }

    @Override
    public long read(int fd, byte[] buffer, int offset, int length) {
        try (PinnedObject pin = PinnedObject.create(buffer)) {
            return memory().kept(Functions.read(fd, pin.addressOfArrayElement(offset), length));
        }
    }

    @Override
    public long pread(int fd, byte[] buffer, int offset, int length, long position) {
        try (PinnedObject pin = PinnedObject.create(buffer)) {
            return memory().kept(Functions.pread(fd, pin.addressOfArrayElement(offset), length, position));
        }
    }

    @Override
    public int fcntl(int fd, int command, int arg) {
        return memory().kept(Functions.fcntl(fd, command, arg));
    }

    @Override
    public long write(int fd, byte[] data, int offset, int length) {
        try (PinnedObject pin = PinnedObject.create(data)) {
            return memory().kept(Functions.write(fd, pin.addressOfArrayElement(offset), length));
        }
    }

    @Override
    public int openat2(int dirFd, String path, long[] how) {
        ThreadMemory m = memory(Downcall.stringSize(path) + Downcall.piece(8L * how.length));
        return (int) m.kept(Functions.syscall(437, dirFd, m.string(path), m.longs(how), 8L * how.length));
    }

    @Override
    public int statx(int dirFd, String path, int flags, int mask, byte[] buffer) {
        ThreadMemory m = memory(Downcall.piece(buffer.length) + Downcall.stringSize(path));
        CCharPointer stat = m.take(buffer.length);
        int rc = m.kept(Functions.statx(dirFd, m.string(path), flags, mask, stat));
        if (rc == 0) copyOut(stat, buffer, buffer.length);
        return rc;
    }

    @Override
    public int fstatfs(int fd, byte[] buffer) {
        ThreadMemory m = memory(buffer.length);
        CCharPointer stat = m.take(buffer.length);
        int rc = m.kept(Functions.fstatfs(fd, stat));
        if (rc == 0) copyOut(stat, buffer, buffer.length);
        return rc;
    }

    @Override
    public int poll(byte[] pollfds, int count, int timeoutMs) {
        ThreadMemory m = memory(pollfds.length);
        CCharPointer fds = m.bytes(pollfds, pollfds.length);
        int rc = m.kept(Functions.poll(fds, count, timeoutMs));
        if (rc > 0) copyOut(fds, pollfds, pollfds.length);
        return rc;
    }

    @Override
    public int ioctl(int fd, long request, byte[] arg) {
        ThreadMemory m = memory(arg.length);
        CCharPointer memory = m.bytes(arg, arg.length);
        int rc = m.kept(Functions.ioctl(fd, request, memory));
        copyOut(memory, arg, arg.length);
        return rc;
    }

    @Override
    public int ioctlValue(int fd, long request, long value) {
        return memory().kept(Functions.ioctl(fd, request, WordFactory.pointer(value)));
    }

    @Override
    public int kill(int pid, int signal) {
        return memory().kept(Functions.kill(pid, signal));
    }

    @Override
    public int prlimit(int pid, int resource, long[] newLimit, long[] oldLimit) {
        ThreadMemory m = memory(32);
        CLongPointer next = newLimit == null ? WordFactory.nullPointer() : m.longs(newLimit);
        CLongPointer old = oldLimit == null ? WordFactory.nullPointer() : m.take(16);
        int rc = m.kept(Functions.prlimit(pid, resource, next, old));
        if (rc == 0 && oldLimit != null) {
            oldLimit[0] = old.read(0);
            oldLimit[1] = old.read(1);
        }
        return rc;
    }

    @Override
    public int pidfdOpen(int pid, int flags) {
        return memory().kept(Functions.pidfd_open(pid, flags));
    }

    @Override
    public int pidfdSendSignal(int pidfd, int signal) {
        return memory().kept(Functions.pidfd_send_signal(pidfd, signal, WordFactory.nullPointer(), 0));
    }

    @Override
    public int waitid(int idType, int id, int options) {
        ThreadMemory m = memory(Downcall.SIGINFO_SIZE);
        CIntPointer info = m.take(Downcall.SIGINFO_SIZE);
        for (int i = 0; i < Downcall.SIGINFO_SIZE / 4; i++) info.write(i, 0); // WNOHANG with no exit leaves it as it was
        int rc = m.kept(Functions.waitid(idType, id, info, options));
        return rc == -1 ? -1 : info.read(Downcall.SIGINFO_PID_OFFSET / 4);
    }

    // libseccomp through dlopen/dlsym and calls through its function pointers.
    interface SeccompInit extends CFunctionPointer { @InvokeCFunctionPointer VoidPointer call(int defaultAction); }
    interface SeccompArchAdd extends CFunctionPointer { @InvokeCFunctionPointer int call(VoidPointer context, int arch); }
    interface SeccompResolve extends CFunctionPointer { @InvokeCFunctionPointer int call(CCharPointer name); }
    interface SeccompRuleAdd extends CFunctionPointer {
        @InvokeCFunctionPointer int call(VoidPointer context, int action, int syscall, int count, CCharPointer comparisons);
    }
    interface SeccompExport extends CFunctionPointer { @InvokeCFunctionPointer int call(VoidPointer context, int fd); }
    interface SeccompRelease extends CFunctionPointer { @InvokeCFunctionPointer void call(VoidPointer context); }

    private static final int RTLD_NOW = 2;
    private long seccompLibrary; // the dlopen handle, 0 before loading; -1 when it failed
    private SeccompInit seccompInit;
    private SeccompArchAdd seccompArchAdd;
    private SeccompResolve seccompResolve;
    private SeccompRuleAdd seccompRuleAdd;
    private SeccompExport seccompExport;
    private SeccompRelease seccompRelease;

    @Override
    public synchronized boolean seccompLoad() {
        if (seccompLibrary == 0) {
            String library = "libseccomp.so.2";
            ThreadMemory m = memory(Downcall.stringSize(library));
            VoidPointer handle = Functions.dlopen(m.string(library), RTLD_NOW);
            seccompLibrary = handle.isNull() ? -1 : handle.rawValue();
            if (seccompLibrary != -1) {
                seccompInit = symbol(handle, "seccomp_init");
                seccompArchAdd = symbol(handle, "seccomp_arch_add");
                seccompResolve = symbol(handle, "seccomp_syscall_resolve_name");
                seccompRuleAdd = symbol(handle, "seccomp_rule_add_array");
                seccompExport = symbol(handle, "seccomp_export_bpf");
                seccompRelease = symbol(handle, "seccomp_release");
                if (seccompInit.isNull() || seccompArchAdd.isNull() || seccompResolve.isNull() || seccompRuleAdd.isNull()
                        || seccompExport.isNull() || seccompRelease.isNull()) {
                    seccompLibrary = -1;
                }
            }
        }
        return seccompLibrary != -1;
    }

    private static <T extends CFunctionPointer> T symbol(VoidPointer handle, String name) {
        ThreadMemory m = memory(Downcall.stringSize(name));
        return WordFactory.pointer(Functions.dlsym(handle, m.string(name)).rawValue());
    }

    @Override
    public long seccompInit(int defaultAction) {
        return seccompInit.call(defaultAction).rawValue();
    }

    @Override
    public int seccompArchAdd(long context, int arch) {
        return seccompArchAdd.call(WordFactory.pointer(context), arch);
    }

    @Override
    public int seccompResolve(String name) {
        ThreadMemory m = memory(Downcall.stringSize(name));
        return seccompResolve.call(m.string(name));
    }

    @Override
    public int seccompRuleAdd(long context, int action, int syscall, int count, byte[] comparisons) {
        ThreadMemory m = memory(comparisons.length);
        return seccompRuleAdd.call(WordFactory.pointer(context), action, syscall, count, m.bytes(comparisons, comparisons.length));
    }

    @Override
    public int seccompExportBpf(long context, int fd) {
        return seccompExport.call(WordFactory.pointer(context), fd);
    }

    @Override
    public void seccompRelease(long context) {
        seccompRelease.call(WordFactory.pointer(context));
    }

    @Override
    public int wait4(int pid, int options, long[] statusAndUsage) {
        ThreadMemory m = memory(Downcall.piece(4) + Downcall.RUSAGE_SIZE);
        CIntPointer status = m.take(4);
        CLongPointer usage = m.take(Downcall.RUSAGE_SIZE);
        int rc = m.kept(Functions.wait4(pid, status, options, usage));
        if (rc > 0) {
            statusAndUsage[0] = status.read();
            for (int i = 0; i < Downcall.RUSAGE_LONGS; i++) statusAndUsage[1 + i] = usage.read(i);
        }
        return rc;
    }
}
