package dev.bwrapd.process;

import java.util.List;

/**
 * How {@link Libc} reaches libc: the {@link Downcall}s with plain Java values, native memory
 * being each binding's own business (posix_spawn's attributes and file actions aside: the binding
 * makes and fills them, {@link Libc} keeps their addresses from one spawn to the next).
 * {@link FfmBinding} on the JVM, {@link CBinding} (GraalVM's C interface) in a native image. Methods return what the C function returns; after a failure,
 * {@link #errno()} says why.
 */
interface LibcBinding {
    /** errno right after this thread's last call through this binding. */
    int errno();

    String strerror(int errno);

    /** Links every downcall now, where linking costs something (FFM), so that first calls are quick. */
    default void link() {}

    /** Frees the calling thread's own native memory (see {@link Libc#threadEnding}). */
    default void threadEnding() {}

    int prctl(int option, long arg);

    /**
     * keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL) through syscall(2) (glibc has no keyctl): the
     * calling thread's session keyring becomes a new anonymous one. Its serial, or -1.
     */
    long joinNewSessionKeyring();

    /**
     * posix_spawn attributes: {@code flags}, an empty signal mask, every signal at its default. In
     * native memory the process keeps.
     *
     * @return their address
     */
    long spawnAttributes(short flags) throws Libc.Error;

    /** @return the address of empty posix_spawn file actions, in native memory the process keeps */
    long spawnFileActions() throws Libc.Error;

    /**
     * Empties the file actions at {@code fileActions}, then adds a dup2 for each {from, to} pair of
     * {@code dup2Plan} in order and a closefrom({@code closeFrom}).
     *
     * @throws Libc.Error naming the step that failed (the actions are then incomplete)
     */
    void fillSpawnFileActions(long fileActions, int[] dup2Plan, int closeFrom) throws Libc.Error;

    /**
     * posix_spawn of {@code path} with the file actions and attributes at those addresses.
     *
     * @return the child's pid
     */
    int spawn(String path, List<String> argv, List<String> environment, long fileActions, long attributes) throws Libc.Error;

    /** pipe2: the two ends land in {@code fds[0]} (read) and {@code fds[1]} (write). */
    int pipe2(int[] fds, int flags);

    int open(String path, int flags, int mode);

    int openat(int dirFd, String name, int flags, int mode);

    int mkdirat(int dirFd, String name, int mode);

    int unlinkat(int dirFd, String name, int flags);

    /** syscall(SYS_openat2, dirFd, path, how, sizeof how): {@code how} is struct open_how {flags, mode, resolve}. */
    int openat2(int dirFd, String path, long[] how);

    /** statx into {@code buffer} (256 bytes: struct statx). */
    int statx(int dirFd, String path, int flags, int mask, byte[] buffer);

    /** fstatfs into {@code buffer} (256 bytes: struct statfs, f_type first). */
    int fstatfs(int fd, byte[] buffer);

    int close(int fd);

    long read(int fd, byte[] buffer, int offset, int length);

    long pread(int fd, byte[] buffer, int offset, int length, long position);

    /** fcntl with an int argument (F_GETFL, F_SETFL). */
    int fcntl(int fd, int command, int arg);

    long write(int fd, byte[] data, int offset, int length);

    /** poll over {@code count} struct pollfds packed in {@code pollfds} (8 bytes each: fd, events, revents; native byte order). */
    int poll(byte[] pollfds, int count, int timeoutMs);

    /** ioctl with a pointer argument: {@code arg} is the memory it points to, read and written in place. */
    int ioctl(int fd, long request, byte[] arg);

    /** ioctl with a value argument (as TIOCGPTPEER takes its flags). */
    int ioctlValue(int fd, long request, long value);

    int kill(int pid, int signal);

    /** prlimit: sets {@code newLimit} {soft, hard} unless null, and reads the old one into {@code oldLimit} unless null. */
    int prlimit(int pid, int resource, long[] newLimit, long[] oldLimit);

    int pidfdOpen(int pid, int flags);

    /** pidfd_send_signal without a siginfo or flags. */
    int pidfdSendSignal(int pidfd, int signal);

    /** waitid: -1, or the pid the siginfo names (0 when WNOHANG found nothing). */
    int waitid(int idType, int id, int options);

    /**
     * wait4: its result; when it is a pid, {@code statusAndUsage} holds the wait status, then the
     * first {@value Downcall#RUSAGE_LONGS} longs of the struct rusage.
     */
    int wait4(int pid, int options, long[] statusAndUsage);

    // libseccomp (libseccomp.so.2), loaded at run time: a host without it still runs bwrapd.
    // Its functions return a negative errno on failure; a filter context is an opaque handle.

    /** Loads libseccomp once; whether it is there (the other seccomp methods work only then). */
    boolean seccompLoad();

    /** seccomp_init: a new filter context, 0 on failure. */
    long seccompInit(int defaultAction);

    int seccompArchAdd(long context, int arch);

    /** seccomp_syscall_resolve_name: the native number, a negative pseudo number for another architecture's call, -1 if unknown. */
    int seccompResolve(String name);

    /** seccomp_rule_add_array over {@code count} struct scmp_arg_cmp (24 bytes each) packed in {@code comparisons}. */
    int seccompRuleAdd(long context, int action, int syscall, int count, byte[] comparisons);

    int seccompExportBpf(long context, int fd);

    void seccompRelease(long context);
}
