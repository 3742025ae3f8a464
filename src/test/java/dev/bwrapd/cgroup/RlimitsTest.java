package dev.bwrapd.cgroup;

import dev.bwrapd.process.Libc;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The open-files limit a command gets without an openFiles limit: its client's soft one. */
class RlimitsTest {
    private static final String LIMITS = """
            Limit                     Soft Limit           Hard Limit           Units    \s
            Max cpu time              unlimited            unlimited            seconds  \s
            Max open files            1024                 524288               files    \s
            Max locked memory         8388608              8388608              bytes    \s
            """;

    @Test
    void theSoftLimitIsReadFromProcLimits() {
        assertEquals(1024, Rlimits.softOpenFiles(LIMITS));
        assertEquals(-1, Rlimits.softOpenFiles(LIMITS.replace("1024  ", "unlimited")), "unlimited: nothing to lower to");
        assertEquals(-1, Rlimits.softOpenFiles("Limit Soft Hard Units\n"), "no such line");
        assertEquals(-1, Rlimits.softOpenFiles("Max open files            99999999999999999999 1 files\n"), "not a number we take");
    }

    @Test
    void aParentWithAHigherOrEqualLimitLowersNothing() throws Exception {
        // this JVM is its own client here: its soft limit is not below its own
        assertEquals(-1, Rlimits.clientOpenFiles(ProcessHandle.current().pid()));
        assertEquals(-1, Rlimits.clientOpenFiles(-1));
        assertEquals(-1, Rlimits.clientOpenFiles(Integer.MAX_VALUE), "no such process");
    }

    @Test
    void withoutAnOpenFilesLimitOnlyTheSoftLimitIsLowered() throws Exception {
        Process p = new ProcessBuilder("sleep", "30").start();
        try {
            int pid = (int) p.pid();
            long hard = Libc.getrlimit(pid, Libc.RLIMIT_NOFILE)[1];
            Rlimits.apply(pid, Limits.NONE, 200);
            assertEquals(200, Libc.getrlimit(pid, Libc.RLIMIT_NOFILE)[0]);
            assertEquals(hard, Libc.getrlimit(pid, Libc.RLIMIT_NOFILE)[1], "the hard limit is left");
            Rlimits.apply(pid, new Limits(null, null, null, null, null, 64L), 200);
            assertEquals(64, Libc.getrlimit(pid, Libc.RLIMIT_NOFILE)[0], "openFiles wins");
            assertEquals(64, Libc.getrlimit(pid, Libc.RLIMIT_NOFILE)[1]);
        } finally {
            p.destroyForcibly();
            p.waitFor();
        }
    }
}
