package dev.bwrapd;

import dev.bwrapd.process.Watchdog;
import dev.bwrapd.sandbox.Sandbox;
import dev.bwrapd.sandbox.Sandboxes;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** One collection per quiet spell, and only after one and once its answers are written: short quiet times, and a counter for System.gc. */
class IdleCollectorTest {
    private final Sandboxes sandboxes = new Sandboxes(new Watchdog(null)); // never started: nothing is spawned
    private final AtomicInteger collections = new AtomicInteger();
    private final CountDownLatch written = new CountDownLatch(1);
    private Thread collector;

    /** A collector whose answers are all written (the usual case). */
    private void startCollector(long quietMs) {
        written.countDown();
        startCollectorAnswersUnwritten(quietMs);
    }

    /** A collector whose answers are written only once {@link #written} is counted down. */
    private void startCollectorAnswersUnwritten(long quietMs) {
        collector = new IdleCollector(sandboxes, written::await, quietMs, collections::incrementAndGet).start();
    }

    @AfterEach
    void stop() throws InterruptedException {
        collector.interrupt();
        collector.join(5000);
    }

    private Sandbox run(String id) throws Exception {
        return sandboxes.register(id, List.of("true"));
    }

    /** Waits (up to 10 s: a loaded machine) for the count to reach {@code expected}, then checks it. */
    private void awaitCollections(int expected) throws InterruptedException {
        for (int i = 0; i < 1000 && collections.get() < expected; i++) Thread.sleep(10);
        assertEquals(expected, collections.get());
    }

    @Test
    void aHelperThatRanNothingNeverCollects() throws Exception {
        startCollector(50);
        Thread.sleep(300);
        assertEquals(0, collections.get());
    }

    @Test
    void oneCollectionAQuietTimeAfterTheLastSandboxEnded() throws Exception {
        startCollector(50);
        Sandbox a = run("a");
        Sandbox b = run("b");
        sandboxes.remove(a);
        Thread.sleep(300);
        assertEquals(0, collections.get(), "b still runs");
        sandboxes.remove(b);
        awaitCollections(1);
        Thread.sleep(300);
        assertEquals(1, collections.get(), "once per quiet spell");

        sandboxes.remove(run("c"));
        awaitCollections(2);
    }

    /** The answers a burst made are live until written: the collection waits for them. */
    @Test
    void theCollectionWaitsUntilTheAnswersAreWritten() throws Exception {
        startCollectorAnswersUnwritten(50);
        sandboxes.remove(run("a"));
        Thread.sleep(300);
        assertEquals(0, collections.get(), "its answer is not written yet");
        written.countDown();
        awaitCollections(1);
    }

    @Test
    void aRunStartedDuringTheQuietTimeStartsItAgain() throws Exception {
        startCollector(3000);
        sandboxes.remove(run("a"));
        Sandbox b = run("b"); // well within the 3 s
        Thread.sleep(4000);
        assertEquals(0, collections.get(), "b runs");
        sandboxes.remove(b);
        awaitCollections(1);
    }
}
