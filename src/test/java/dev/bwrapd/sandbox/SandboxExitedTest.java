package dev.bwrapd.sandbox;

import dev.bwrapd.process.Reaper;
import dev.bwrapd.process.Spawner;
import dev.bwrapd.process.Watchdog;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Review finding (reasoning): between the run's reaping of bwrap and its init and the sandbox's
 * end, a kill or signal went to their group by number, which the reap had made free to be given
 * again. Once the run says both have exited, nothing goes to those numbers.
 */
class SandboxExitedTest {
    @Test
    @Timeout(value = 60, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    void noKillGoesToTheGroupsOfASandboxWhoseProcessesHaveExited() throws Exception {
        Watchdog watchdog = new Watchdog(new Spawner(new Reaper())); // the reaper's loop is not started
        // A group of someone else's, with the number bwrap's had: what a reaped bwrap's pid may become.
        Process stranger = new ProcessBuilder("setsid", "sleep", "300").start();
        try {
            Sandbox sandbox = new Sandbox("sb-exited", List.of("true"), watchdog);
            sandbox.spawned((int) stranger.pid(), false, List.of());
            sandbox.exited();
            assertFalse(sandbox.kill(Sandbox.Ending.TERMINATED), "nothing left to kill");
            assertFalse(stranger.waitFor(300, TimeUnit.MILLISECONDS), "the stranger's group was not killed");
            sandbox.finished(); // the watchdog forgets the group
            watchdog.closeInput();
        } finally {
            stranger.destroyForcibly();
        }
        assertTrue(stranger.waitFor(10, TimeUnit.SECONDS));
    }
}
