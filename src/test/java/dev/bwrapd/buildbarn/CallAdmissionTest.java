package dev.bwrapd.buildbarn;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

class CallAdmissionTest {
    /** 2 × --concurrency + 4 calls, unless the heap could not hold their requests at their largest: then what it holds, at least one. */
    @Test
    void callsHeldAreTwiceTheConcurrencyAndFourOrWhatTheHeapHolds() {
        long launcherHeap = 253440L << 10; // Runtime.maxMemory() with the launcher's -Xmx256m and SerialGC
        assertEquals(20, CallAdmission.callsHeld(8, launcherHeap));
        assertEquals(88, CallAdmission.callsHeld(42, launcherHeap));
        assertEquals(89, CallAdmission.callsHeld(48, launcherHeap));
        assertEquals(1, CallAdmission.callsHeld(4, 16L << 20));
        assertEquals(2 * 4096 + 4, CallAdmission.callsHeld(4096, Long.MAX_VALUE));
    }
}
