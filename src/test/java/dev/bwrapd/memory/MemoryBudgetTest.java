package dev.bwrapd.memory;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MemoryBudgetTest {
    /**
     * Answers already made are held whatever the limit, so the count can pass it: a message that
     * is not counted (0 bytes: a control request, $/cancelRequest, exit) still gets through then,
     * as the protocol promises; anything counted waits or is refused until bytes are given back.
     */
    @Test
    void nothingFitsEvenPastTheLimitAndAnythingElseDoesNot() {
        MemoryBudget budget = new MemoryBudget(100);
        assertTrue(budget.tryReserve(60));
        budget.hold(60); // answers waiting to be written
        assertEquals(120, budget.used());
        assertTrue(budget.tryReserve(0), "a message that is not counted is never refused");
        assertFalse(budget.tryReserve(1));
        budget.release(60);
        assertTrue(budget.tryReserve(40));
        assertFalse(budget.tryReserve(1));
        assertEquals(100, budget.used());
    }

    /** A holder with a file to go to takes only what keeps the budget within its ceiling; nothing still fits. */
    @Test
    void aReservationWithinACeilingLeavesTheRestToOthers() {
        MemoryBudget budget = new MemoryBudget(100);
        assertTrue(budget.tryReserveWithin(40, 50));
        assertFalse(budget.tryReserveWithin(11, 50), "past the ceiling");
        assertTrue(budget.tryReserveWithin(10, 50));
        assertTrue(budget.tryReserveWithin(0, 50));
        assertTrue(budget.tryReserve(50), "the rest is there for the others");
        assertFalse(budget.tryReserveWithin(1, 1000), "a ceiling over the limit is the limit");
        assertEquals(100, budget.used());
    }
}
