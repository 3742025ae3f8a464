package dev.bwrapd.process;

import java.util.List;

/**
 * Starts a program with posix_spawn: in a new session (so it is its own process group, apart from
 * the server's and the terminal's), with default signal dispositions and an empty signal mask
 * (the JVM blocks and handles some), exactly the given environment, and exactly the given file
 * descriptors: {@code fds[i]} becomes descriptor {@code i}; every other descriptor is closed.
 *
 * <p>bwrap's --die-with-parent fires when the spawning <em>thread</em> exits, so callers spawn from
 * a platform thread that outlives the child.
 */
public final class Spawner {
    private final Reaper reaper;

    public Spawner(Reaper reaper) {
        this.reaper = reaper;
    }

    public record Spec(String executable, List<String> argv, List<String> environment, int[] fds) {}

    public Reaper.Child spawn(Spec spec) throws Libc.Error {
        return reaper.spawnChild(() -> Libc.spawn(spec.executable(), spec.argv(), spec.environment(), spec.fds()));
    }
}
