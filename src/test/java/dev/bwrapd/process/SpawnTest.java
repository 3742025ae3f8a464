package dev.bwrapd.process;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * posix_spawn's file actions are kept from one spawn to the next and rebuilt when the descriptors
 * differ: each child must get exactly the descriptors it was spawned with, whether the spawn
 * before it had other numbers, or the same numbers for other files.
 */
class SpawnTest {
    /** Spawns a child that writes {@code text} to its stdout, {@code out}; returns what the pipe's read end got. */
    private static String spawnWriting(String text, int devNull, int[] pipe) throws Libc.Error {
        int pid = Libc.spawn("/bin/sh", List.of("sh", "-c", "printf " + text), List.of(), new int[] {devNull, pipe[1], devNull});
        assertEquals(0, Libc.wait4(pid, 0).exitCode());
        Libc.close(pipe[1]);
        byte[] buffer = new byte[64];
        int n = Libc.read(pipe[0], buffer, 0, buffer.length);
        Libc.close(pipe[0]);
        return n <= 0 ? "" : new String(buffer, 0, n, StandardCharsets.UTF_8);
    }

    @Test
    void eachChildGetsTheDescriptorsItWasSpawnedWith() throws Libc.Error {
        int devNull = Libc.open("/dev/null", Libc.O_RDWR, 0);
        try {
            int[] first = Libc.pipe();
            int[] second = Libc.pipe();
            assertEquals("one", spawnWriting("one", devNull, first));
            int[] third = Libc.pipe(); // the first one's numbers again, another pipe
            assertEquals(first[1], third[1]);
            assertEquals("three", spawnWriting("three", devNull, third)); // the same numbers: the kept actions serve
            assertEquals("two", spawnWriting("two", devNull, second)); // other numbers: the actions are rebuilt
        } finally {
            Libc.close(devNull);
        }
    }
}
