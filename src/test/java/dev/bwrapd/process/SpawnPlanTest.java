package dev.bwrapd.process;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The dup2 actions posix_spawn runs in the child, played on a model of the child's descriptor
 * table: every target must end up with its source's file, and no action may be dup2(n, n), which
 * would leave n close-on-exec.
 */
class SpawnPlanTest {
    static Stream<int[]> layouts() {
        return Stream.of(
                new int[] {40, 41, 42},              // the JVM: every source above the targets
                new int[] {5, 6, 7, 3, 4},           // a native image: small numbers, sources among the targets
                new int[] {0, 1, 2},                 // each source already its own target
                new int[] {2, 1, 0},                 // a swap
                new int[] {4, 3, 9, 1, 0, 12},       // sources a later action would overwrite
                new int[] {7, 7, 8},                 // one source at two targets
                new int[] {1, 2, 0},                 // a cycle of three
                new int[] {1, 0, 3, 2, 2},           // two swaps, one of them read twice
                new int[] {12, 14, 16, 17, 4, 21, 6, 7, 8, 9, 10, 11}, // a run: root and devices already at their numbers
                new int[] {1, 0, 1023, 3});          // a swap beside the last descriptor the open-files limit allows
    }

    /**
     * Review finding: a parked descriptor went above the highest source, past the open-files limit
     * when that source was its last number (posix_spawn failed with EBADF, reported as bwrap
     * unusable). Parking takes the lowest numbers above the targets that no move reads.
     */
    @org.junit.jupiter.api.Test
    void parkingStaysBelowTheHighestSource() {
        int[] plan = Libc.dup2Plan(new int[] {1, 0, 1023, 3});
        for (int i = 1; i < plan.length; i += 2) assertTrue(plan[i] < 1023, "dup2 to " + plan[i]);
    }

    @ParameterizedTest
    @MethodSource("layouts")
    void everyTargetGetsItsSourcesFile(int[] fds) {
        Map<Integer, String> table = new HashMap<>();
        for (int fd : fds) table.put(fd, "file@" + fd); // every open descriptor is close-on-exec
        Set<Integer> dupped = new HashSet<>();
        int[] plan = Libc.dup2Plan(fds);
        for (int i = 0; i < plan.length; i += 2) {
            int from = plan[i], to = plan[i + 1];
            assertNotEquals(from, to, "dup2(n, n) keeps n close-on-exec");
            assertTrue(table.containsKey(from), "dup2 from a closed descriptor " + from);
            table.put(to, table.get(from));
            dupped.add(to);
        }
        for (int target = 0; target < fds.length; target++) {
            assertEquals("file@" + fds[target], table.get(target), "descriptor " + target);
            assertTrue(dupped.contains(target), "descriptor " + target + " must come from a dup2 (not close-on-exec)");
        }
    }

    /** glibc checks every action with a getrlimit call: a plan with no conflict takes one action per target. */
    @ParameterizedTest
    @MethodSource("withoutConflict")
    void oneActionPerTargetWhenNothingConflicts(int[] fds) {
        assertEquals(fds.length * 2, Libc.dup2Plan(fds).length);
    }

    static Stream<int[]> withoutConflict() {
        return Stream.of(
                new int[] {40, 41, 42},
                new int[] {12, 14, 16, 17, 19, 21, 13, 20, 22, 23, 25, 26},
                new int[] {5, 6, 7, 8, 2, 15},       // sources among the targets, each read before it is written
                new int[] {1, 2, 3});
    }
}
