package dev.bwrapd.process;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

import static java.lang.foreign.ValueLayout.ADDRESS;

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
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment actions = arena.allocate(Libc.FILE_ACTIONS_SIZE, 16);
            MemorySegment attr = arena.allocate(Libc.SPAWN_ATTR_SIZE, 16);
            MemorySegment emptySet = arena.allocate(Libc.SIGSET_SIZE, 16);
            MemorySegment allSignals = arena.allocate(Libc.SIGSET_SIZE, 16);
            Libc.fileActionsInit(actions);
            Libc.attrInit(attr);
            try {
                int[] fds = spec.fds();
                for (int target = 0; target < fds.length; target++) {
                    check("posix_spawn_file_actions_adddup2", Libc.fileActionsAddDup2(actions, fds[target], target));
                }
                check("posix_spawn_file_actions_addclosefrom_np", Libc.fileActionsAddCloseFrom(actions, fds.length));
                Libc.sigemptyset(emptySet);
                Libc.sigfillset(allSignals);
                check("posix_spawnattr_setsigmask", Libc.attrSetSigMask(attr, emptySet));
                check("posix_spawnattr_setsigdefault", Libc.attrSetSigDefault(attr, allSignals));
                check("posix_spawnattr_setflags", Libc.attrSetFlags(attr,
                        (short) (Libc.POSIX_SPAWN_SETSID | Libc.POSIX_SPAWN_SETSIGMASK | Libc.POSIX_SPAWN_SETSIGDEF)));
                MemorySegment path = arena.allocateFrom(spec.executable());
                MemorySegment argv = strings(arena, spec.argv());
                MemorySegment envp = strings(arena, spec.environment());
                MemorySegment pid = arena.allocate(Libc.INT);
                return reaper.spawnChild(() -> {
                    int rc = Libc.posixSpawn(pid, path, actions, attr, argv, envp);
                    if (rc != 0) throw new Libc.Error("posix_spawn " + spec.executable(), rc);
                    return pid.get(Libc.INT, 0);
                });
            } finally {
                Libc.fileActionsDestroy(actions);
                Libc.attrDestroy(attr);
            }
        }
    }

    private static void check(String call, int rc) throws Libc.Error {
        if (rc != 0) throw new Libc.Error(call, rc);
    }

    /** A NULL-terminated array of C strings. */
    private static MemorySegment strings(Arena arena, List<String> values) {
        MemorySegment array = arena.allocate(ADDRESS, values.size() + 1L);
        for (int i = 0; i < values.size(); i++) {
            array.setAtIndex(ADDRESS, i, arena.allocateFrom(values.get(i)));
        }
        array.setAtIndex(ADDRESS, values.size(), MemorySegment.NULL);
        return array;
    }
}
