package dev.bwrapd.sandbox;

import dev.bwrapd.process.Libc;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SeccompPolicyTest {
    @Test
    void theDefaultCoversProtocolSection9() {
        Set<String> named = SeccompPolicy.rules(RunSpec.Seccomp.DEFAULT).stream().map(Libc.SeccompRule::syscall).collect(Collectors.toSet());
        for (String call : List.of("ioctl", "unshare", "clone", "clone3", "setns", "mount", "umount2", "pivot_root", "ptrace",
                "process_vm_readv", "process_vm_writev", "pidfd_getfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "keyctl", "add_key", "request_key", "bpf", "perf_event_open",
                "userfaultfd", "kexec_load", "init_module", "finit_module", "delete_module", "syslog", "acct", "swapon",
                "swapoff", "reboot", "personality")) {
            assertTrue(named.contains(call), call);
        }
        for (Libc.SeccompRule rule : SeccompPolicy.rules(RunSpec.Seccomp.DEFAULT)) {
            assertEquals(rule.syscall().equals("clone3") ? SeccompPolicy.ENOSYS : SeccompPolicy.EPERM, rule.errno(), rule::toString);
        }
    }

    /** The personality rules refuse exactly what is neither PER_LINUX nor PER_LINUX32, evaluated as the kernel would. */
    @Test
    void personalityRulesAllowOnlyLinuxAndLinux32() {
        List<Libc.SeccompRule> rules = SeccompPolicy.rules(RunSpec.Seccomp.DEFAULT).stream().filter(r -> r.syscall().equals("personality")).toList();
        for (long value = 0; value < 0x20000; value++) {
            long x = value;
            boolean denied = rules.stream().anyMatch(rule -> rule.when().stream().allMatch(c -> switch (c.op()) {
                case Libc.SCMP_CMP_GT -> Long.compareUnsigned(x, c.a()) > 0;
                case Libc.SCMP_CMP_MASKED_EQ -> (x & c.a()) == c.b();
                default -> throw new AssertionError(c);
            }));
            assertEquals(x != 0 && x != 8, denied, () -> "personality(" + x + ")");
        }
    }

    /** Every run's filter refuses the keyring calls; a run that asks for none gets a filter of them. */
    @Test
    void everyFilterRefusesTheKeyrings() {
        assertEquals(new RunSpec.Seccomp(List.of("keyctl", "add_key", "request_key"), SeccompPolicy.EPERM), SeccompPolicy.withKeyringsRefused(null));
        assertEquals(RunSpec.Seccomp.DEFAULT, SeccompPolicy.withKeyringsRefused(RunSpec.Seccomp.DEFAULT), "the default refuses them already");
        assertEquals(new RunSpec.Seccomp(List.of("uname", "keyctl", "add_key", "request_key"), SeccompPolicy.ENOSYS),
                SeccompPolicy.withKeyringsRefused(new RunSpec.Seccomp(List.of("uname", "keyctl"), SeccompPolicy.ENOSYS)), "once each, with the list's errno");
        Set<String> named = SeccompPolicy.rules(RunSpec.Seccomp.DEFAULT).stream().map(Libc.SeccompRule::syscall).collect(Collectors.toSet());
        assertTrue(named.containsAll(SeccompPolicy.KEYRING_CALLS), named::toString);
    }

    @Test
    void aDenyListIsExactlyItsEntries() {
        assertEquals(List.of(new Libc.SeccompRule("getpid", 38, List.of())),
                SeccompPolicy.rules(new RunSpec.Seccomp(List.of("getpid"), 38)));
        assertEquals(List.of(), SeccompPolicy.rules(null));
    }

    /** libseccomp accepts every rule of the default filter (one comparison per argument, every architecture). */
    @Test
    void libseccompBuildsTheDefaultFilter() throws Exception {
        if (dev.bwrapd.HostFacts.hasLibseccomp()) {
            org.junit.jupiter.api.Assertions.assertTrue(Libc.seccompAvailable(), "the host has libseccomp.so.2; Libc cannot load it");
        }
        Assumptions.assumeTrue(Libc.seccompAvailable(), "no libseccomp.so.2 here");
        int[] pipe = Libc.pipe();
        try {
            Libc.exportSeccompFilter(SeccompPolicy.rules(RunSpec.Seccomp.DEFAULT), pipe[1]);
            Libc.close(pipe[1]);
            pipe[1] = -1;
            byte[] program = new byte[65536];
            int total = 0, n;
            while ((n = Libc.read(pipe[0], program, total, program.length - total)) > 0) total += n;
            assertTrue(total > 0 && total % 8 == 0, "a BPF program is whole instructions: " + total);
            assertTrue(Libc.isSyscall("getpid") && Libc.isSyscall("socketcall") && !Libc.isSyscall("no_such_call"));
        } finally {
            Libc.close(pipe[0]);
            Libc.close(pipe[1]);
        }
    }
}
