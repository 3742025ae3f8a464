package dev.bwrapd;

import org.graalvm.nativeimage.RuntimeOptions;
import org.jboss.logging.Logger;

/**
 * The native image's idle collection: a full collection that also unmaps the free heap chunks.
 * After a collection the image's collector keeps free chunks mapped, as many as its young
 * generation holds, for the next allocations; the adaptive policy sizes that generation from the
 * last burst, so an idle helper's RSS followed whichever burst came last (docs/performance.md,
 * "Soak"). Capping what is kept ({@code MaxHeapFree}) for every collection costs ~1 ms a run, each
 * chunk faulted in again; capped for this one collection only, an idle helper gives back all but
 * {@link #KEPT_WHILE_IDLE}, and the next burst maps its chunks once. {@link RuntimeOptions} is
 * GraalVM's API for a runtime option: the option is read at each collection. Only ever loaded in
 * a native image ({@link IdleCollector} picks it while the image is built).
 */
final class FreeHeapRelease {
    private static final Logger LOG = Logger.getLogger(FreeHeapRelease.class);
    private static final String MAX_HEAP_FREE = "MaxHeapFree"; // bytes; 0 = as the policy sizes it
    /** What the idle collection keeps: 1 MiB, one or two aligned chunks (512 KiB here), for the next allocations. */
    static final long KEPT_WHILE_IDLE = 1L << 20;

    private FreeHeapRelease() {}

    static void collect() {
        Long kept;
        try {
            kept = RuntimeOptions.get(MAX_HEAP_FREE);
            RuntimeOptions.set(MAX_HEAP_FREE, KEPT_WHILE_IDLE);
        } catch (RuntimeException e) { // an image without the option (another collector): collect as ever
            LOG.debugf("%s cannot be set (%s): the idle collection keeps the free heap", MAX_HEAP_FREE, e);
            System.gc();
            return;
        }
        try {
            System.gc();
        } finally {
            RuntimeOptions.set(MAX_HEAP_FREE, kept);
        }
        LOG.debug("idle: collected, and the free heap given back");
    }
}
