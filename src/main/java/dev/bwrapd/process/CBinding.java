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
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * libc through GraalVM's C interface: the native image's binding. Each {@link Downcall} is a
 * {@code @CFunction} below, compiled into a direct call. Memory C reads or writes is a Java array
 * pinned for the call (no stack values: they are not allowed on virtual threads, no malloc), and
 * errno is read right after each call, before anything else can change it.
 *
 * <p>Only ever loaded in a native image ({@link Libc} picks it while the image is built); on the
 * JVM GraalVM's API is not even on the class path.
 */
final class CBinding implements LibcBinding {
    private static final ThreadLocal<int[]> ERRNO = ThreadLocal.withInitial(() -> new int[1]);

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
        @CFunction static native int sigfillset(VoidPointer set);
        @CFunction static native int pipe2(CIntPointer fds, int flags);
        @CFunction static native int open(CCharPointer path, int flags, int mode);
        @CFunction static native int openat(int dirFd, CCharPointer name, int flags, int mode);
        @CFunction static native int mkdirat(int dirFd, CCharPointer name, int mode);
        @CFunction static native int close(int fd);
        @CFunction static native long read(int fd, CCharPointer buffer, long count);
        @CFunction static native long pread(int fd, CCharPointer buffer, long count, long offset);
        @CFunction static native int fcntl(int fd, int command, int arg);
        @CFunction static native long write(int fd, CCharPointer buffer, long count);
        @CFunction static native int poll(CCharPointer fds, long count, int timeout);
        @CFunction static native int ioctl(int fd, long request, CCharPointer arg);
        @CFunction static native long syscall(long number, long dirFd, CCharPointer path, CLongPointer how, long size);
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

    /** Keeps errno of the call that just returned {@code result}, for {@link #errno()}; returns the result. */
    private static int kept(int result) {
        int errno = Functions.__errno_location().read();
        ERRNO.get()[0] = errno;
        return result;
    }

    private static long kept(long result) {
        int errno = Functions.__errno_location().read();
        ERRNO.get()[0] = errno;
        return result;
    }

    /** Java arrays pinned while one call runs, so that C reads and writes them in place. */
    private static final class Pins implements AutoCloseable {
        private final List<PinnedObject> pinned = new ArrayList<>();

        <T extends PointerBase> T array(Object array, int index) {
            PinnedObject pin = PinnedObject.create(array);
            pinned.add(pin);
            return pin.addressOfArrayElement(index);
        }

        <T extends PointerBase> T array(Object array) {
            return array(array, 0);
        }

        /** A NUL-terminated UTF-8 copy of {@code value}, as FFM's {@code allocateFrom} makes. */
        CCharPointer string(String value) {
            byte[] utf8 = value.getBytes(StandardCharsets.UTF_8);
            return array(Arrays.copyOf(utf8, utf8.length + 1));
        }

        /** A NULL-terminated array of C strings. */
        CCharPointerPointer strings(List<String> values) {
            long[] addresses = new long[values.size() + 1];
            for (int i = 0; i < values.size(); i++) addresses[i] = string(values.get(i)).rawValue();
            return array(addresses);
        }

        @Override
        public void close() {
            for (PinnedObject pin : pinned) pin.close();
        }
    }

    @Override
    public int errno() {
        return ERRNO.get()[0];
    }

    @Override
    public String strerror(int errno) {
        return CTypeConversion.toJavaString(Functions.strerror(errno));
    }

    @Override
    public int prctl(int option, long arg) {
        return kept(Functions.prctl(option, arg));
    }

    @Override
    public long spawnAttributes(short flags) throws Libc.Error {
        VoidPointer attr = UnmanagedMemory.calloc(Downcall.SPAWN_ATTR_SIZE);
        try (Pins pins = new Pins()) {
            VoidPointer emptySet = pins.array(new long[Downcall.SIGSET_SIZE / 8]);
            VoidPointer allSignals = pins.array(new long[Downcall.SIGSET_SIZE / 8]);
            Functions.posix_spawnattr_init(attr); // only sets fields: nothing to destroy
            Functions.sigemptyset(emptySet);
            Functions.sigfillset(allSignals);
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
        try (Pins pins = new Pins()) {
            int[] pid = new int[1];
            CIntPointer cPid = pins.array(pid);
            Libc.check("posix_spawn " + path, Functions.posix_spawn(cPid, pins.string(path), WordFactory.pointer(fileActions),
                    WordFactory.pointer(attributes), pins.strings(argv), pins.strings(environment)));
            return pid[0];
        }
    }

    @Override
    public int pipe2(int[] fds, int flags) {
        try (Pins pins = new Pins()) {
            return kept(Functions.pipe2(pins.array(fds), flags));
        }
    }

    @Override
    public int open(String path, int flags, int mode) {
        try (Pins pins = new Pins()) {
            return kept(Functions.open(pins.string(path), flags, mode));
        }
    }

    @Override
    public int openat(int dirFd, String name, int flags, int mode) {
        try (Pins pins = new Pins()) {
            return kept(Functions.openat(dirFd, pins.string(name), flags, mode));
        }
    }

    @Override
    public int mkdirat(int dirFd, String name, int mode) {
        try (Pins pins = new Pins()) {
            return kept(Functions.mkdirat(dirFd, pins.string(name), mode));
        }
    }

    @Override
    public int close(int fd) {
        return kept(Functions.close(fd));
    }

    @Override
    public long read(int fd, byte[] buffer, int offset, int length) {
        try (Pins pins = new Pins()) {
            return kept(Functions.read(fd, pins.array(buffer, offset), length));
        }
    }

    @Override
    public long pread(int fd, byte[] buffer, int offset, int length, long position) {
        try (Pins pins = new Pins()) {
            return kept(Functions.pread(fd, pins.array(buffer, offset), length, position));
        }
    }

    @Override
    public int fcntl(int fd, int command, int arg) {
        return kept(Functions.fcntl(fd, command, arg));
    }

    @Override
    public long write(int fd, byte[] data, int offset, int length) {
        try (Pins pins = new Pins()) {
            return kept(Functions.write(fd, pins.array(data, offset), length));
        }
    }

    @Override
    public int openat2(int dirFd, String path, long[] how) {
        try (Pins pins = new Pins()) {
            return (int) kept(Functions.syscall(437, dirFd, pins.string(path), pins.array(how), 8L * how.length));
        }
    }

    @Override
    public int statx(int dirFd, String path, int flags, int mask, byte[] buffer) {
        try (Pins pins = new Pins()) {
            return kept(Functions.statx(dirFd, pins.string(path), flags, mask, pins.array(buffer)));
        }
    }

    @Override
    public int fstatfs(int fd, byte[] buffer) {
        try (Pins pins = new Pins()) {
            return kept(Functions.fstatfs(fd, pins.array(buffer)));
        }
    }

    @Override
    public int poll(byte[] pollfds, int count, int timeoutMs) {
        try (Pins pins = new Pins()) {
            return kept(Functions.poll(pins.array(pollfds), count, timeoutMs));
        }
    }

    @Override
    public int ioctl(int fd, long request, byte[] arg) {
        try (Pins pins = new Pins()) {
            return kept(Functions.ioctl(fd, request, pins.array(arg)));
        }
    }

    @Override
    public int kill(int pid, int signal) {
        return kept(Functions.kill(pid, signal));
    }

    @Override
    public int prlimit(int pid, int resource, long[] newLimit, long[] oldLimit) {
        try (Pins pins = new Pins()) {
            CLongPointer next = newLimit == null ? WordFactory.nullPointer() : pins.array(newLimit);
            CLongPointer old = oldLimit == null ? WordFactory.nullPointer() : pins.array(oldLimit);
            return kept(Functions.prlimit(pid, resource, next, old));
        }
    }

    @Override
    public int pidfdOpen(int pid, int flags) {
        return kept(Functions.pidfd_open(pid, flags));
    }

    @Override
    public int pidfdSendSignal(int pidfd, int signal) {
        return kept(Functions.pidfd_send_signal(pidfd, signal, WordFactory.nullPointer(), 0));
    }

    @Override
    public int waitid(int idType, int id, int options) {
        int[] info = new int[Downcall.SIGINFO_SIZE / 4];
        try (Pins pins = new Pins()) {
            int rc = kept(Functions.waitid(idType, id, pins.array(info), options));
            return rc == -1 ? -1 : info[Downcall.SIGINFO_PID_OFFSET / 4];
        }
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
            try (Pins pins = new Pins()) {
                VoidPointer handle = Functions.dlopen(pins.string("libseccomp.so.2"), RTLD_NOW);
                seccompLibrary = handle.isNull() ? -1 : handle.rawValue();
                if (seccompLibrary != -1) {
                    seccompInit = symbol(pins, handle, "seccomp_init");
                    seccompArchAdd = symbol(pins, handle, "seccomp_arch_add");
                    seccompResolve = symbol(pins, handle, "seccomp_syscall_resolve_name");
                    seccompRuleAdd = symbol(pins, handle, "seccomp_rule_add_array");
                    seccompExport = symbol(pins, handle, "seccomp_export_bpf");
                    seccompRelease = symbol(pins, handle, "seccomp_release");
                    if (seccompInit.isNull() || seccompArchAdd.isNull() || seccompResolve.isNull() || seccompRuleAdd.isNull()
                            || seccompExport.isNull() || seccompRelease.isNull()) {
                        seccompLibrary = -1;
                    }
                }
            }
        }
        return seccompLibrary != -1;
    }

    private static <T extends CFunctionPointer> T symbol(Pins pins, VoidPointer handle, String name) {
        return WordFactory.pointer(Functions.dlsym(handle, pins.string(name)).rawValue());
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
        try (Pins pins = new Pins()) {
            return seccompResolve.call(pins.string(name));
        }
    }

    @Override
    public int seccompRuleAdd(long context, int action, int syscall, int count, byte[] comparisons) {
        try (Pins pins = new Pins()) {
            return seccompRuleAdd.call(WordFactory.pointer(context), action, syscall, count, pins.array(Arrays.copyOf(comparisons, Math.max(1, comparisons.length))));
        }
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
        int[] status = new int[1];
        long[] usage = new long[Downcall.RUSAGE_SIZE / 8];
        try (Pins pins = new Pins()) {
            int rc = kept(Functions.wait4(pid, pins.array(status), options, pins.array(usage)));
            if (rc > 0) {
                statusAndUsage[0] = status[0];
                System.arraycopy(usage, 0, statusAndUsage, 1, Downcall.RUSAGE_LONGS);
            }
            return rc;
        }
    }
}
