package dev.bwrapd.sandbox;

import dev.bwrapd.process.Libc;
import dev.bwrapd.process.Libc.ArgCompare;
import dev.bwrapd.process.Libc.SeccompRule;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static dev.bwrapd.process.Libc.SCMP_CMP_GT;
import static dev.bwrapd.process.Libc.SCMP_CMP_MASKED_EQ;

/**
 * Which system calls a run's filter refuses (RunSpec.Seccomp), as rules libseccomp turns into
 * the BPF program bwrap installs: a pure function, unit-tested; Libc.exportSeccompFilter builds it.
 */
public final class SeccompPolicy {
    private SeccompPolicy() {}

    public static final int EPERM = 1, ENOSYS = 38;

    /** The errno names a deny list may ask for. */
    public static final Map<String, Integer> ERRNOS = Map.ofEntries(
            Map.entry("EPERM", 1), Map.entry("ENOENT", 2), Map.entry("ESRCH", 3), Map.entry("EIO", 5),
            Map.entry("EBADF", 9), Map.entry("EAGAIN", 11), Map.entry("ENOMEM", 12), Map.entry("EACCES", 13),
            Map.entry("EFAULT", 14), Map.entry("EBUSY", 16), Map.entry("ENODEV", 19), Map.entry("EINVAL", 22),
            Map.entry("EROFS", 30), Map.entry("ENOSYS", 38), Map.entry("EOPNOTSUPP", 95));

    /** Refused outright by "default": what reaches the kernel's or other processes' inner workings. */
    static final List<String> DEFAULT_DENIED = List.of(
            "setns", "mount", "umount", "umount2", "pivot_root",
            // the new mount API does what mount does
            "fsopen", "fsconfig", "fsmount", "fspick", "open_tree", "move_mount", "mount_setattr",
            "ptrace", "process_vm_readv", "process_vm_writev",
            // another process's descriptors: the init's status eventfd, through which a command forged its run's outcome
            "pidfd_getfd",
            // a second way to every system call, unseen by this filter's argument checks (as Docker's default)
            "io_uring_setup", "io_uring_enter", "io_uring_register",
            "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
            "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
            "syslog", "acct", "swapon", "swapoff", "reboot");

    /**
     * Refused in every sandbox, whatever its filter: the keyrings are not namespaced. A sandbox's
     * uid is bwrapd's own outside (the host's uid 0 for a root bwrapd), which owns that user's
     * keyring: two reviews linked the user keyring into a session keyring of their own and read
     * and cleared the keys (a developer's Kerberos tickets, the host root's). The session keyring
     * bwrapd was started with is out of reach anyway: bwrapd joins one of its own (SessionKeyring.joinOwn).
     */
    static final List<String> KEYRING_CALLS = List.of("keyctl", "add_key", "request_key");

    /** The filter of runs that ask for none: the same for every run, compiled once (SandboxRunner.sharedFilter). */
    static final RunSpec.Seccomp KEYRINGS_REFUSED = new RunSpec.Seccomp(KEYRING_CALLS, EPERM);

    /** The filter a run that asked for {@code seccomp} (null: none) gets: it, plus {@link #KEYRING_CALLS}. */
    static RunSpec.Seccomp withKeyringsRefused(RunSpec.Seccomp seccomp) {
        if (seccomp == null) return KEYRINGS_REFUSED;
        if (seccomp.isDefault()) return seccomp; // refuses them already
        java.util.LinkedHashSet<String> deny = new java.util.LinkedHashSet<>(seccomp.deny());
        deny.addAll(KEYRING_CALLS);
        return new RunSpec.Seccomp(List.copyOf(deny), seccomp.errno());
    }

    private static final long TIOCSTI = 0x5412, TIOCLINUX = 0x541C;
    /** CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET; CLONE_NEWTIME (0x80) only for unshare (clone's low byte is its exit signal). */
    private static final long[] NAMESPACE_FLAGS = {0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000};
    private static final long CLONE_NEWTIME = 0x80;
    private static final long PER_LINUX32 = 0x0008;

    /** The rules for {@code seccomp} (null: no filter). */
    public static List<SeccompRule> rules(RunSpec.Seccomp seccomp) {
        if (seccomp == null) return List.of();
        if (!seccomp.isDefault()) return seccomp.deny().stream().map(name -> new SeccompRule(name, seccomp.errno(), List.of())).toList();
        List<SeccompRule> rules = new ArrayList<>();
        // Typing into the terminal (the client's, should the command ever reach it) or the console.
        rules.add(when("ioctl", EPERM, new ArgCompare(1, SCMP_CMP_MASKED_EQ, 0xffffffffL, TIOCSTI)));
        rules.add(when("ioctl", EPERM, new ArgCompare(1, SCMP_CMP_MASKED_EQ, 0xffffffffL, TIOCLINUX)));
        // New namespaces: any namespace flag in unshare's or clone's flags (argument 0 on x86).
        for (long flag : NAMESPACE_FLAGS) {
            rules.add(when("unshare", EPERM, new ArgCompare(0, SCMP_CMP_MASKED_EQ, flag, flag)));
            rules.add(when("clone", EPERM, new ArgCompare(0, SCMP_CMP_MASKED_EQ, flag, flag)));
        }
        rules.add(when("unshare", EPERM, new ArgCompare(0, SCMP_CMP_MASKED_EQ, CLONE_NEWTIME, CLONE_NEWTIME)));
        // clone3 passes its flags in memory, where a filter cannot look: ENOSYS makes libc fall back to clone.
        rules.add(new SeccompRule("clone3", ENOSYS, List.of()));
        for (String name : DEFAULT_DENIED) rules.add(new SeccompRule(name, EPERM, List.of()));
        // personality: only PER_LINUX (0) and PER_LINUX32 (8), which linux32 needs. One comparison per
        // argument and rule (libseccomp's limit), so "anything else" is: above 8, or one of 1..7.
        rules.add(when("personality", EPERM, new ArgCompare(0, SCMP_CMP_GT, PER_LINUX32, 0)));
        for (long bit : new long[] {1, 2, 4}) {
            long otherLowBits = 0x7 & ~bit; // the kernel takes an unsigned int: 32-bit masks, the same on every architecture
            rules.add(when("personality", EPERM, new ArgCompare(0, SCMP_CMP_MASKED_EQ, 0xffffffffL & ~otherLowBits, bit)));
        }
        return rules;
    }

    private static SeccompRule when(String syscall, int errno, ArgCompare compare) {
        return new SeccompRule(syscall, errno, List.of(compare));
    }

    /** The names of {@code seccomp}'s deny list this host's libseccomp does not know, with their index. */
    static String unknownName(RunSpec.Seccomp seccomp) {
        if (seccomp == null || seccomp.isDefault()) return null;
        for (int i = 0; i < seccomp.deny().size(); i++) {
            if (!Libc.isSyscall(seccomp.deny().get(i))) return "seccomp.deny[" + i + "]: not a system call this host's libseccomp knows: " + seccomp.deny().get(i);
        }
        return null;
    }
}
