package dev.bwrapd.sandbox;

import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The CPUs a whole-sandbox cpuMs is watched for: the host's online ones, as the kernel lists them. */
class RunCpusTest {
    @Test
    void aKernelCpuListIsCounted() {
        assertEquals(1, Run.cpusIn("0"));
        assertEquals(2, Run.cpusIn("0-1"));
        assertEquals(7, Run.cpusIn("0-3,8,10-11"));
        assertEquals(64, Run.cpusIn("0-63"));
    }

    /** Not the helper's own affinity, which the sandbox can widen (review: a pinned helper let cpuMs overshoot by half). */
    @Test
    void theHostsOnlineCpusAreCountedNotTheHelpersAffinity() throws Exception {
        Path online = Path.of("/sys/devices/system/cpu/online");
        org.junit.jupiter.api.Assumptions.assumeTrue(Files.isReadable(online), "no " + online);
        assertEquals(Run.cpusIn(Files.readString(online).strip()), Run.onlineCpus());
        assertTrue(Run.onlineCpus() >= Runtime.getRuntime().availableProcessors());
    }
}
