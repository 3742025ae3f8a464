package dev.bwrapd.process;

import org.jboss.logging.Logger;

/** bwrapd's own session keyring: called first by each mode, on the main thread. */
public final class SessionKeyring {
    private static final Logger LOG = Logger.getLogger(SessionKeyring.class);

    private SessionKeyring() {}

    /**
     * Gives bwrapd a new, empty session keyring of its own. The keyrings are not namespaced: every
     * sandbox would hold the session keyring bwrapd was started with (a login session's, with the
     * user keyring linked in), and could use its keys by serial through an AF_ALG socket, which
     * no filter refuses, or reach them with keyctl where there is no filter at all. A keyring
     * belongs to a thread's credentials, which a new thread copies from the one that creates it:
     * so this runs on the main thread before bwrapd starts any thread, and every thread that
     * spawns (runs, the watchdog, the probes; the runner's calls) descends from it. Failing
     * (keyrings compiled out, the user's key quota spent) is a warning, never an end: bwrapd then
     * runs as before, with the keyring it was given.
     */
    public static void joinOwn() {
        try {
            Libc.joinNewSessionKeyring();
        } catch (Libc.Error | RuntimeException | LinkageError e) {
            LOG.warnf("every sandbox holds the session keyring bwrapd was started with (%s), and can use its keys"
                    + " (docs/protocol.md, System-call filter)", e.getMessage());
        }
    }
}
