package dev.bwrapd.jsonrpc;

import dev.bwrapd.memory.MemoryBudget;
import org.jboss.logging.Logger;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The one way out: every frame the server sends is queued here, in the order it was sent, and
 * written by one writer thread. So no thread that sends ever blocks on a client that does not
 * read (the reading thread least of all: it must go on reading $/cancelRequest and exit), and the
 * order in which one thread sends is the order the client reads (a run's notifications before
 * its answer).
 *
 * <p>What waits here is held against the memory budget: taken whatever the limit (an answer that
 * is made must be written), so a client that does not read fills the budget, and then streamed
 * output waits and new requests are refused ({@link Server}), instead of the queue growing.
 */
final class Outbox {
    private static final Logger LOG = Logger.getLogger(Outbox.class);

    /**
     * One frame: a serialized body ({@code body[0..length)}, a spare byte after it), or a large one
     * serialized as it is written ({@code lazy}; {@code failed} runs if that fails). {@code held}
     * bytes of the budget are held until {@code written} runs, once the frame is out (or dropped:
     * the client is gone).
     */
    record Frame(byte[] body, int length, MessageWriter.Body lazy, Runnable failed, long held, Runnable written) {
        static Frame of(byte[] body, int length, Runnable written) {
            return new Frame(body, length, null, null, length, written);
        }
    }

    private final MessageWriter writer;
    private final MemoryBudget budget;
    private final ArrayDeque<Frame> queue = new ArrayDeque<>();
    /** Bytes held by the queued frames and the one being written. */
    private long held;
    private boolean writing;
    /** The client is given up: nothing more is queued. */
    private boolean abandoned;

    /** Starts the writer thread (a server is made in Main, never in a static initializer). */
    Outbox(MessageWriter writer, MemoryBudget budget) {
        this.writer = writer;
        this.budget = budget;
        Thread.ofPlatform().daemon().name("bwrapd-writer").start(this::drainForever);
    }

    /** Queues a frame, to be written after every frame queued before it (dropped once the client is given up). */
    void post(Frame frame) {
        synchronized (this) {
            if (!abandoned) {
                budget.hold(frame.held());
                queue.add(frame);
                held += frame.held();
                notifyAll();
                return;
            }
        }
        frame.written().run();
    }

    /**
     * Gives up on a client that does not read, at the very end: what waits is dropped, and so is
     * whatever is sent from now on, so that no producer waits for room any more (a run's thread
     * can then clean its root up before the process ends). The frame being written stays where it is.
     */
    void abandon() {
        List<Frame> dropped;
        synchronized (this) {
            abandoned = true;
            dropped = new ArrayList<>(queue);
            queue.clear();
            for (Frame frame : dropped) {
                held -= frame.held();
                budget.release(frame.held());
            }
            notifyAll();
        }
        for (Frame frame : dropped) frame.written().run();
    }

    /** Bytes waiting to be written. */
    synchronized long held() {
        return held;
    }

    /** Waits until everything queued so far is written, at most {@code timeoutMs}: whether it was. */
    synchronized boolean drain(long timeoutMs) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Math.min(timeoutMs, Long.MAX_VALUE / 4_000_000));
        while (!queue.isEmpty() || writing) {
            long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
            if (left <= 0) return false;
            wait(left);
        }
        return true;
    }

    /** Waits while more than {@code bytes} wait to be written (the reading thread's last resort). */
    synchronized void awaitAtMost(long bytes) throws InterruptedException {
        while (held > bytes && !abandoned) wait();
    }

    /** The same, running {@code whileWaiting} every {@link #TICK_MS} meanwhile (outside the lock: it may take its time). */
    void awaitAtMost(long bytes, Runnable whileWaiting) throws InterruptedException {
        while (true) {
            synchronized (this) {
                if (held <= bytes || abandoned) return;
                wait(TICK_MS);
                if (held <= bytes || abandoned) return;
            }
            whileWaiting.run();
        }
    }

    /** How often a waiting producer's own work runs: the precision of a stalled run's timers. */
    static final long TICK_MS = 10;

    private void drainForever() {
        while (true) {
            Frame frame;
            synchronized (this) {
                while (queue.isEmpty()) {
                    try {
                        wait();
                    } catch (InterruptedException e) {
                        return;
                    }
                }
                frame = queue.poll();
                writing = true;
            }
            try {
                write(frame);
            } finally {
                budget.release(frame.held());
                try {
                    frame.written().run();
                } catch (RuntimeException e) {
                    LOG.errorf(e, "after writing a frame");
                }
                synchronized (this) {
                    held -= frame.held();
                    writing = false;
                    notifyAll();
                }
            }
        }
    }

    private void write(Frame frame) {
        if (frame.lazy() == null) {
            writer.write(frame.body(), frame.length());
            return;
        }
        try {
            writer.write(frame.lazy());
        } catch (MessageWriter.BodyException | RuntimeException e) {
            LOG.errorf(e, "cannot write a message");
            if (frame.failed() != null) frame.failed().run();
        }
    }
}
