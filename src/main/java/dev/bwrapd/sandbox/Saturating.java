package dev.bwrapd.sandbox;

/**
 * Time limits in arithmetic that cannot wrap: the protocol takes limits up to 2^62 ms (centuries),
 * and one of those times a million (nanoseconds) or a thousand (microseconds) does not fit a long.
 * A wrapped product was negative, and the run was killed at once for a limit it could never reach.
 */
final class Saturating {
    private Saturating() {}

    /** {@code a * b} for {@code a, b >= 0}, or Long.MAX_VALUE when the product does not fit. */
    static long times(long a, long b) {
        long high = Math.multiplyHigh(a, b);
        long product = a * b;
        return high != 0 || product < 0 ? Long.MAX_VALUE : product;
    }

    /** The System.nanoTime() instant {@code ms} after {@code nanos}; Long.MAX_VALUE ("never") past what a long holds. */
    static long msAfter(long nanos, long ms) {
        long span = times(ms, 1_000_000L);
        return nanos > Long.MAX_VALUE - span ? Long.MAX_VALUE : nanos + span;
    }
}
