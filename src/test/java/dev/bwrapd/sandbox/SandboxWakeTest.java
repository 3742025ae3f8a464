package dev.bwrapd.sandbox;

import dev.bwrapd.process.Libc;
import dev.bwrapd.process.Watchdog;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A sandbox wakes its run's thread by writing to a pipe while it holds its lock (new input, a new
 * kill deadline). A client that sends input faster than a stalled run drains the wake-ups fills
 * that pipe: the write must not block, or the reading thread would hold the lock the run's thread
 * needs, and neither would ever go on.
 */
class SandboxWakeTest {
    @Test
    @Timeout(value = 10, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    void wakingARunWhosePipeIsFullNeverBlocks() throws Exception {
        Sandbox sandbox = new Sandbox("sb-wake", List.of("true"), new Watchdog(null)); // the watchdog is never started
        int[] pipe = Libc.pipe();
        try {
            sandbox.attachWake(pipe[1]);
            byte[] page = new byte[4096];
            while (true) { // fill it, as 65,536 wake-ups nobody drained would
                try {
                    Libc.write(pipe[1], page, 0, page.length);
                } catch (Libc.Error e) {
                    assertEquals(Libc.EAGAIN, e.errno);
                    break;
                }
            }
            for (int i = 1; i <= 1000; i++) sandbox.killAt(Long.MAX_VALUE - i); // each wakes the run, under the lock
            assertEquals(Long.MAX_VALUE - 1000, sandbox.killDeadline(), "the lock is free and every deadline was taken");
        } finally {
            Libc.close(pipe[0]);
            Libc.close(pipe[1]);
        }
    }
}
