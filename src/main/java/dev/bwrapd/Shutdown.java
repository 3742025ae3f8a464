package dev.bwrapd;

import dev.bwrapd.jsonrpc.RpcException;
import dev.bwrapd.jsonrpc.Server;
import dev.bwrapd.protocol.BwrapdMethods;
import dev.bwrapd.protocol.ProtocolErrors;
import dev.bwrapd.sandbox.Sandboxes;
import org.jboss.logging.Logger;

/**
 * How the helper ends (end of input, exit, SIGTERM/SIGINT/SIGHUP), within a bound: refuse what
 * comes next, kill every sandbox, then wait at most {@link #GRACE_MS} for the runs to be cleaned
 * up and every request to be answered. A run that is still there then (its thread stuck: a
 * client that reads nothing while its output waits for the budget, a cleanup on a hung file
 * system) is killed again and its request answered -32006; the answers get at most
 * {@link #FLUSH_MS} to reach the client. A client that has not read them by then is given up (what
 * it did not read is dropped), and the runs that waited for it get {@link #CLEANUP_MS} to clean
 * their roots up. Whatever still lives when the process ends dies with it:
 * bwrap through --die-with-parent, the groups the watchdog holds through the watchdog.
 */
final class Shutdown {
    private static final Logger LOG = Logger.getLogger(Shutdown.class);
    /** How long runs and answers may take to end once everything has been killed (docs/protocol.md). */
    static final long GRACE_MS = 5_000;
    /** How long the last answers may take to be written after the grace. */
    static final long FLUSH_MS = 1_000;
    /** How long the runs then have to clean up, once a client that reads nothing is given up. */
    static final long CLEANUP_MS = 2_000;

    private final BwrapdMethods methods;
    private final Sandboxes sandboxes;
    private final Server server;

    Shutdown(BwrapdMethods methods, Sandboxes sandboxes, Server server) {
        this.methods = methods;
        this.sandboxes = sandboxes;
        this.server = server;
    }

    /** Ends every run and answers every request, waiting at most {@link #GRACE_MS} + {@link #FLUSH_MS}. */
    void finish(String why) throws InterruptedException {
        methods.close();
        int killed = sandboxes.killAll();
        LOG.debugf("%s: %d sandbox(es) killed", why, killed);
        long deadline = System.currentTimeMillis() + GRACE_MS;
        if (sandboxes.awaitEnded(GRACE_MS) && server.awaitIdle(Math.max(0, deadline - System.currentTimeMillis()))) return;
        LOG.warnf("%s: runs or answers not done after %d ms; killing what is left and answering for it", why, GRACE_MS);
        sandboxes.killAll();
        server.failPending(new RpcException(ProtocolErrors.SHUTTING_DOWN, "bwrapd is exiting and this request did not end within "
                + GRACE_MS + " ms of being killed"));
        if (server.flush(FLUSH_MS)) return;
        LOG.warnf("%s: the client did not read the last answers within %d ms; dropping what it did not read", why, FLUSH_MS);
        // A run's thread waiting for room for its output now goes on, and cleans its root up.
        server.abandon();
        if (!sandboxes.awaitEnded(CLEANUP_MS)) LOG.warnf("%s: runs not cleaned up %d ms after that", why, CLEANUP_MS);
    }

    /**
     * {@link #finish} on a thread of its own (the request or signal that asked for it is answered
     * meanwhile), then the process ends with {@code code}.
     */
    void finishInBackground(String why, int code) {
        methods.close(); // the barrier, now: what is read from here on is refused
        Thread.ofPlatform().name("bwrapd-exit").start(() -> {
            try {
                finish(why);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            System.err.flush();
            Runtime.getRuntime().halt(code);
        });
    }
}
