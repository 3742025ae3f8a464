package dev.bwrapd.process;

import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * The one place where children are reaped. The server is a child subreaper, so the sandbox's
 * PID-namespace init, which bwrap leaves unreaped when it exits, is re-parented here: reaping it
 * gives the whole sandbox's rusage and leaves no zombie.
 *
 * <p>The loop learns which child ended with {@code waitid(WNOWAIT)} outside the lock and reaps it
 * with {@code wait4} inside the lock. A waiter that knows its child ended may reap it first, on its
 * own thread ({@link #reapIfExited}). Spawning and the "is it still my child?" question also take
 * the lock, so no exit is ever delivered to the wrong waiter or missed.
 */
public final class Reaper {
    private final Object lock = new Object();
    private final Map<Integer, CompletableFuture<ExitStatus>> waiters = new HashMap<>();
    /** Exits nobody was waiting for yet (a fast init reaped before its run asked about it). */
    private final Map<Integer, ExitStatus> unclaimed = new HashMap<>();
    private boolean childrenMayExist;
    private volatile boolean subreaper;
    private volatile boolean started;

    /** Made in Main; nothing happens until {@link #start()}. */
    public Reaper() {}

    /**
     * Makes this process a child subreaper and starts reaping. Only once no child of the JDK's own
     * (ProcessBuilder) is still wanted: the loop reaps every child. Idempotent.
     */
    public synchronized boolean start() {
        if (!started) {
            subreaper = Libc.becomeSubreaper();
            Thread.ofPlatform().daemon().name("bwrapd-reaper").start(this::loop);
            started = true;
        }
        return subreaper;
    }

    /** Whether orphaned descendants come back to this process (PR_SET_CHILD_SUBREAPER took effect). */
    public boolean isSubreaper() {
        return subreaper;
    }

    /**
     * Runs {@code spawn} (which returns a new child's pid, or throws) and registers interest in
     * that child before the loop can reap it.
     */
    <E extends Exception> Child spawnChild(ThrowingIntSupplier<E> spawn) throws E {
        synchronized (lock) {
            int pid = spawn.getAsInt();
            unclaimed.remove(pid); // a stale record of an earlier process with this pid
            CompletableFuture<ExitStatus> exit = new CompletableFuture<>();
            waiters.put(pid, exit);
            childrenMayExist = true;
            lock.notifyAll();
            return new Child(pid, exit);
        }
    }

    /**
     * A pidfd for {@code child} (readable once it has exited), or -1 once it is reaped. Opened under
     * the lock, so the pid cannot have been reaped and reused meanwhile.
     */
    public int pidfdOfChild(Child child) {
        synchronized (lock) {
            return child.exit().isDone() ? -1 : Libc.pidfdOpen(child.pid());
        }
    }

    /** A spawned child and its exit. */
    public record Child(int pid, CompletableFuture<ExitStatus> exit) {}

    @FunctionalInterface
    interface ThrowingIntSupplier<E extends Exception> {
        int getAsInt() throws E;
    }

    /**
     * Starts waiting for a descendant (not a direct child): it becomes ours when its parent exits
     * without reaping it.
     */
    public CompletableFuture<ExitStatus> watchDescendant(int pid) {
        synchronized (lock) {
            ExitStatus done = unclaimed.remove(pid);
            if (done != null) return CompletableFuture.completedFuture(done);
            return waiters.computeIfAbsent(pid, p -> new CompletableFuture<>());
        }
    }

    /**
     * Called once the descendant's parent has been reaped: if the descendant is not ours to reap
     * (its parent reaped it), the watch completes with null instead of waiting forever; if it has
     * exited, it is reaped now, as {@link #reapIfExited} does.
     */
    public void parentGone(int pid, CompletableFuture<ExitStatus> watch) {
        synchronized (lock) {
            if (watch.isDone()) return;
            int found = Libc.waitid(Libc.P_PID, pid, Libc.WEXITED | Libc.WNOHANG | Libc.WNOWAIT);
            if (found == -1) {
                waiters.remove(pid);
                watch.complete(null);
            } else if (found == pid) {
                reap(pid);
            }
        }
    }

    /**
     * Reaps {@code child} now if it has exited, on the caller's thread: a run learns of bwrap's
     * exit from its pidfd when the loop does, and need not wait for the loop's thread to wake and
     * hand the exit over. The loop then finds nothing left to reap. Until its exit is delivered
     * the child is unreaped, so its pid is still its own.
     */
    public void reapIfExited(Child child) {
        synchronized (lock) {
            if (!child.exit().isDone()) reap(child.pid());
        }
    }

    /** Under the lock: reaps {@code pid} if it has exited (else nothing) and delivers its exit. */
    private void reap(int pid) {
        ExitStatus exit = Libc.wait4(pid, Libc.WNOHANG);
        if (exit != null) deliver(exit);
    }

    private void loop() {
        while (true) {
            int pid = Libc.waitid(Libc.P_ALL, 0, Libc.WEXITED | Libc.WNOWAIT);
            if (pid == -1) {
                if (Libc.errno() == Libc.ECHILD) awaitChildren();
                continue;
            }
            synchronized (lock) {
                reap(pid); // nothing, if a waiter reaped it first (reapIfExited)
            }
        }
    }

    private void awaitChildren() {
        synchronized (lock) {
            while (!childrenMayExist) {
                try {
                    lock.wait();
                } catch (InterruptedException e) {
                    return;
                }
            }
            childrenMayExist = false;
        }
    }

    private void deliver(ExitStatus exit) {
        CompletableFuture<ExitStatus> waiter = waiters.remove(exit.pid());
        if (waiter != null) {
            waiter.complete(exit);
        } else {
            if (unclaimed.size() > 4096) unclaimed.clear(); // bounded: only unclaimed orphans land here
            unclaimed.put(exit.pid(), exit);
        }
    }
}
