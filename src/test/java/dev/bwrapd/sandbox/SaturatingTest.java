package dev.bwrapd.sandbox;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class SaturatingTest {
    @Test
    void productsThatFitAreExactAndTheRestAreTheMost() {
        assertEquals(1_000_000_000L, Saturating.times(1000, 1_000_000));
        assertEquals(0, Saturating.times(0, Long.MAX_VALUE));
        assertEquals(Long.MAX_VALUE / 1000 * 1000, Saturating.times(Long.MAX_VALUE / 1000, 1000));
        assertEquals(Long.MAX_VALUE, Saturating.times(Long.MAX_VALUE / 1000 + 1, 1000));
        assertEquals(Long.MAX_VALUE, Saturating.times(Long.MAX_VALUE / 2, 1_000_000)); // the protocol's most, in ns
        assertEquals(Long.MAX_VALUE, Saturating.times(1L << 32, 1L << 32)); // wraps to 0 unchecked
    }

    @Test
    void instantsPastWhatALongHoldsAreNever() {
        assertEquals(5_000_000L + 7, Saturating.msAfter(7, 5));
        assertEquals(Long.MAX_VALUE, Saturating.msAfter(1L << 40, Long.MAX_VALUE / 2));
        assertEquals(Long.MAX_VALUE, Saturating.msAfter(Long.MAX_VALUE - 10, 1));
        assertEquals(Long.MAX_VALUE - 1_000_000, Saturating.msAfter(Long.MAX_VALUE - 3_000_000, 2)); // near the end, still exact
    }
}
