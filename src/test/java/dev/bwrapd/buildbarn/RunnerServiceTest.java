package dev.bwrapd.buildbarn;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RunnerServiceTest {
    /** Directories of actions at once overlap when one is, contains or lies in the other; a shared prefix of a name is not that. */
    @Test
    void directoriesOverlapByWholeNames() {
        assertTrue(RunnerService.overlap("1/root", "1/root"));
        assertTrue(RunnerService.overlap("1", "1/root"));
        assertTrue(RunnerService.overlap("1/root/usr", "1/root"));
        assertFalse(RunnerService.overlap("1/root", "1/root2"));
        assertFalse(RunnerService.overlap("1/root2", "1/root"));
        assertFalse(RunnerService.overlap("1/root", "2/root"));
        assertFalse(RunnerService.overlap("10", "1"));
    }
}
