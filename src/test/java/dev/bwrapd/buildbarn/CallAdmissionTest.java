package dev.bwrapd.buildbarn;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

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

    /**
     * A request's heap once parsed, from its bytes: its size, and 56 bytes for each field of a Run's
     * (a variable: 112), 256 for any other (a field of a number the message has not, one of another
     * method's request), in groups too.
     */
    @Test
    void theHeapOfARequestCountsItsFields() {
        byte[] run = dev.bwrapd.buildbarn.proto.RunRequest.newBuilder().addArguments("sh").addArguments("-c")
                .putEnvironmentVariables("PATH", "/bin").setStdoutPath("a/stdout").build().toByteArray();
        assertEquals(run.length + 3 * 56 + 112, CallAdmission.heapOf(run, true));
        assertEquals(run.length + 4 * 256, CallAdmission.heapOf(run, false)); // another method's: no field weighs less
        byte[] unknown = {(byte) 0xf8, 0x06, 0x01, (byte) 0x80, 0x07, 0x02}; // 111: 1, 112: 2: numbers a RunRequest has not
        assertEquals(unknown.length + 2 * 256, CallAdmission.heapOf(unknown, true));
        byte[] group = {(byte) 0xfb, 0x06, 0x08, 0x01, 0x08, 0x02, (byte) 0xfc, 0x06}; // group 111 { 1: 1, 1: 2 }
        assertEquals(group.length + 4 * 256, CallAdmission.heapOf(group, false));
        byte[] cut = java.util.Arrays.copyOf(run, run.length - 1); // no message: counted as far as it reads
        assertTrue(CallAdmission.heapOf(cut, true) >= cut.length);
    }
}
