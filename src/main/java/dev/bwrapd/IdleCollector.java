package dev.bwrapd;

import dev.bwrapd.sandbox.Sandboxes;

/**
 * Gives memory back once the helper falls idle. A burst of runs grows the heap (the JVM build's
 * and the native image's alike), and neither collector returns it to the system on its own while
 * nothing allocates; an editor keeps its helper for hours, mostly idle. So a second after the last
 * sandbox of a burst ended, with none started since, and once its answers are written (until
 * then they are live, and after it garbage no collection would come for), one full collection
 * runs (tens of milliseconds, once per quiet spell). Started in {@link Main}, a daemon: it never
 * holds the exit.
 */
final class IdleCollector {
    /** How long nothing must run before the collection. */
    static final long QUIET_MS = 1000;

    /** Waits until everything sent so far has been written to the client. */
    interface Written {
        void await() throws InterruptedException;
    }

    private final Sandboxes sandboxes;
    private final Written written;
    private final long quietMs;
    private final Runnable collect;

    /**
     * What an idle helper runs: in a native image, a collection that also unmaps the free heap
     * ({@link FreeHeapRelease}); on the JVM, System.gc(). Chosen when this class is initialized,
     * which a native image does while it is built: the JVM never loads FreeHeapRelease (nor
     * GraalVM's API, which is not on its class path).
     */
    private static final Runnable COLLECT =
            System.getProperty("org.graalvm.nativeimage.imagecode") != null ? FreeHeapRelease::collect : System::gc;

    /** Main's: {@link #COLLECT} after {@link #QUIET_MS}. */
    IdleCollector(Sandboxes sandboxes, Written written) {
        this(sandboxes, written, QUIET_MS, COLLECT);
    }

    IdleCollector(Sandboxes sandboxes, Written written, long quietMs, Runnable collect) {
        this.sandboxes = sandboxes;
        this.written = written;
        this.quietMs = quietMs;
        this.collect = collect;
    }

    Thread start() {
        return Thread.ofPlatform().daemon().name("bwrapd-idle").start(this::collectWhenIdle);
    }

    private void collectWhenIdle() {
        long collectedAt = 0; // sandboxes registered in all at the last collection
        try {
            while (true) {
                sandboxes.awaitRegisteredBeyond(collectedAt); // something ran since
                long count = sandboxes.awaitNoneRunning();
                Thread.sleep(quietMs);
                written.await();
                if (!sandboxes.stillIdleSince(count)) continue;
                collect.run();
                collectedAt = count;
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
