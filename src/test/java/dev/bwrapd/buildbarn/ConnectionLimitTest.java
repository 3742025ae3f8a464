package dev.bwrapd.buildbarn;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

class ConnectionLimitTest {
    /** What the open-files limit leaves beyond the runner's descriptors and its running actions', 64 at most, at least one. */
    @Test
    void connectionsAreWhatTheOpenFilesLimitLeavesUpToSixtyFour() {
        assertEquals(64, ConnectionLimit.limit(524288, 8));
        assertEquals(64, ConnectionLimit.limit(-1, 8)); // no limit
        assertEquals(64, ConnectionLimit.limit(400, 1));
        assertEquals(700 - 256 - 64 * 6, ConnectionLimit.limit(700, 6));
        assertEquals(1, ConnectionLimit.limit(1024, 12));
        assertEquals(64, ConnectionLimit.limit(ConnectionLimit.openFilesFor(16), 16));
        assertEquals(63, ConnectionLimit.limit(ConnectionLimit.openFilesFor(16) - 1, 16));
    }
}
