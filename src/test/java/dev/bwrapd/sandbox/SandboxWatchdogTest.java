package dev.bwrapd.sandbox;

import dev.bwrapd.process.Reaper;
import dev.bwrapd.process.Spawner;
import dev.bwrapd.process.Watchdog;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What a sandbox tells the watchdog of bwrap's group, as the watchdog acts on it when bwrapd dies.
 * A bwrap that shows no mark (a script: the kernel starts its interpreter without the mark) must be
 * told as unmarked, and its group is then killed; told as marked, the watchdog would find no marked
 * member in it and leave it, and with it a sandbox held in its setup for ever.
 */
class SandboxWatchdogTest {
    @Test
    @Timeout(value = 60, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    void theGroupOfABwrapThatShowsNoMarkIsKilledWhenBwrapdDies(@TempDir Path dir) throws Exception {
        Watchdog watchdog = new Watchdog(new Spawner(new Reaper())); // the reaper's loop is not started: nothing of the JVM's is reaped
        Path script = Files.writeString(dir.resolve("bwrap"), "#!/bin/sh\nexec sleep 300\n");
        assertTrue(script.toFile().setExecutable(true));
        // spawned as a run spawns bwrap: the mark as its argv[0], a session of its own (setsid execs in place)
        Process bwrap = new ProcessBuilder("setsid", "bash", "-c", "exec -a \"$0\" \"$1\"", watchdog.mark(), script.toString()).start();
        try {
            for (int i = 0; i < 500 && !Files.readString(Path.of("/proc", Long.toString(bwrap.pid()), "cmdline")).startsWith("sleep"); i++) {
                Thread.sleep(10);
            }
            Sandbox sandbox = new Sandbox("sb-script", List.of("true"), watchdog);
            sandbox.spawned((int) bwrap.pid(), true, List.of());
            watchdog.closeInput(); // as bwrapd's death does
            assertTrue(bwrap.waitFor(30, TimeUnit.SECONDS), "the watchdog killed the group of a bwrap that shows no mark");
        } finally {
            bwrap.destroyForcibly();
        }
    }
}
