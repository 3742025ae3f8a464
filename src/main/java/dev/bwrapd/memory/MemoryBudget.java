package dev.bwrapd.memory;

import java.util.concurrent.atomic.AtomicLong;

/**
 * The bytes the helper holds on behalf of its clients (requests in flight, stdin data, captured
 * output kept in memory, notifications waiting to be written), counted against one limit. Whoever
 * is about to hold bytes reserves them first and releases them when it lets go; a reservation
 * that does not fit is refused, and the caller then refuses the request or spools to a file,
 * never dies of an OutOfMemoryError.
 *
 * <p>Built once in {@code Main} (from {@code --max-memory}, or a share of the maximum heap) and
 * handed to every layer that holds client bytes.
 */
public final class MemoryBudget {
    private final long limit;
    private final AtomicLong used = new AtomicLong();

    public MemoryBudget(long limit) {
        if (limit <= 0) throw new IllegalArgumentException("a memory budget must be positive: " + limit);
        this.limit = limit;
    }

    /**
     * Reserves {@code bytes} if they fit under the limit; false (and nothing reserved) if not.
     * Nothing always fits, even past the limit ({@link #hold} may go there): a message that is not
     * counted (a control request, $/cancelRequest, exit) must never be refused for others' bytes.
     */
    public boolean tryReserve(long bytes) {
        return tryReserveWithin(bytes, limit);
    }

    /**
     * Reserves {@code bytes} only if the budget's use stays within {@code ceiling} (at most the
     * limit) with them: for holders that have somewhere else to put their bytes (captured output
     * goes to a file), so that they leave the rest of the budget to those that have not.
     */
    public boolean tryReserveWithin(long bytes, long ceiling) {
        if (bytes < 0) throw new IllegalArgumentException("negative reservation: " + bytes);
        if (bytes == 0) return true;
        long bound = Math.min(ceiling, limit);
        while (true) {
            long now = used.get();
            if (bytes > bound - now) return false;
            if (used.compareAndSet(now, now + bytes)) return true;
        }
    }

    /**
     * Reserves {@code bytes}, waiting while they do not fit: flow control for producers that can
     * wait (streamed output waits for the client to take earlier notifications, and the command
     * for its pipe). A reservation larger than the whole limit waits only for everything else to
     * be given back, then takes the limit's worth. {@code whileWaiting} runs every few milliseconds
     * while it waits (the producer's own timers).
     */
    public void reserve(long bytes, Runnable whileWaiting) throws InterruptedException {
        long wanted = Math.min(bytes, limit);
        while (!tryReserve(wanted)) {
            synchronized (this) {
                wait(5); // a release may have come between the try and the wait: look again soon
            }
            whileWaiting.run();
        }
        if (wanted < bytes) hold(bytes - wanted);
    }

    /**
     * Counts {@code bytes} whatever the limit, for what must be held anyway (an answer already
     * made waits to be written): past the limit, every other reservation waits or is refused
     * until they are released.
     */
    public void hold(long bytes) {
        if (bytes < 0) throw new IllegalArgumentException("negative reservation: " + bytes);
        used.addAndGet(bytes);
    }

    /** Gives back bytes an earlier {@link #tryReserve} took. */
    public void release(long bytes) {
        if (bytes < 0) throw new IllegalArgumentException("negative release: " + bytes);
        long after = used.addAndGet(-bytes);
        if (after < 0) throw new IllegalStateException("released more than was reserved: " + after);
        synchronized (this) {
            notifyAll();
        }
    }

    public long limit() {
        return limit;
    }

    public long used() {
        return used.get();
    }
}
