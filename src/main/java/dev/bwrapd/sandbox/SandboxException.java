package dev.bwrapd.sandbox;

import java.util.List;

/**
 * Why the sandbox layer could not run (or find) a sandbox: domain failures, each with what a
 * caller needs to explain it. The protocol layer turns them into error answers.
 */
public abstract sealed class SandboxException extends Exception {
    private SandboxException(String message) {
        super(message, null, false, false);
    }

    /** The request names something it may not use or that does not work as asked (a file, cwd, linux32). */
    public static final class Invalid extends SandboxException {
        public Invalid(String message) { super(message); }
    }

    /** A path the request may not use: relative, through a process's descriptor, on a procfs, the host's / read-write. */
    public static final class NotAllowed extends SandboxException {
        public NotAllowed(String message) { super(message); }
    }

    public static final class CommandNotFound extends SandboxException {
        public final String command;
        public final String root;

        public CommandNotFound(String command, String root) {
            super("command not found in the sandbox root: " + command);
            this.command = command;
            this.root = root;
        }
    }

    /** No bwrap to run ({@code tried} lists where it was looked for), or it could not be started. */
    public static final class BwrapUnusable extends SandboxException {
        public final String path;
        public final String error;
        public final List<String> tried;

        public BwrapUnusable(String message, String path, String error, List<String> tried) {
            super(message);
            this.path = path;
            this.error = error;
            this.tried = tried;
        }
    }

    public static final class NoSuchSandbox extends SandboxException {
        public NoSuchSandbox(String id) { super("no such sandbox: " + id); }
    }

    public static final class IdInUse extends SandboxException {
        public IdInUse(String id) { super("sandboxId " + id + " is already in use by a running sandbox"); }
    }

    public static final class ShuttingDown extends SandboxException {
        public ShuttingDown() { super("the server is shutting down: no new sandboxes"); }
    }

    /** Something on this host failed while preparing the run (a pipe, a descriptor). */
    public static final class Failed extends SandboxException {
        public Failed(String message) { super(message); }
    }
}
