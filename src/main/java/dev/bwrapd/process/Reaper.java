package dev.bwrapd.process;

import org.jboss.logging.Logger;

import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;

/**
 * The one place where children are reaped. The server is a child subreaper, so the sandbox's
 * PID-namespace init, which bwrap leaves unreaped when it exits, is re-parented here: reaping it
 * gives the whole sandbox's rusage and leaves no zombie.
 *
 * <p>Every reaping is a {@code wait4} under the lock, which delivers the exit to whoever waits for
 * it. A run reaps its own processes on its own thread, when their pidfds say they ended
 * ({@link #reapIfExited}, {@link #parentGone}, and {@link #awaitExit} where it has no pidfd). The
 * loop only sweeps for exits nobody reaped (a process a failed run left): every
 * {@link #SWEEP_MILLIS} after a spawn, less and less often while its sweeps find nothing. It does
 * not wake at every exit, two a run, to find the run had reaped it already, nor hold the lock a
 * run's thread then wanted. Spawning and the "is it still my child?" question
 * also take the lock, so no exit is ever delivered to the wrong waiter or missed. A pid is
 * reused once its process is reaped: a watch or a record left for an earlier process with the
 * same pid is never handed to a later one.
 */
public final class Reaper {
    private static final Logger LOG = Logger.getLogger(Reaper.class);

    private final Object lock = new Object();
    private final Map<Integer, CompletableFuture<ExitStatus>> waiters = new HashMap<>();
    /** The pids in {@link #waiters} that are children spawned here (the rest are watched descendants). */
    private final Set<Integer> children = new HashSet<>();
    /** Exits nobody was waiting for yet (a fast init reaped before its run asked about it). */
    private final Map<Integer, ExitStatus> unclaimed = new HashMap<>();
    private boolean childrenMayExist;
    /** How long the loop waits until its next sweep: doubled by each that finds nothing, back to {@link #SWEEP_MILLIS} at a spawn. */
    private long sweepMillis = SWEEP_MILLIS;
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
            try {
                unclaimed.remove(pid); // a stale record of an earlier process with this pid
                CompletableFuture<ExitStatus> exit = new CompletableFuture<>();
                CompletableFuture<ExitStatus> stale = waiters.put(pid, exit);
                if (stale != null) stale.complete(null); // a watch of an earlier process with this pid: not ours
                children.add(pid);
                sweepMillis = SWEEP_MILLIS; // from the loop's next wake-up on (not woken for it: that would be a wake-up a run)
                if (!childrenMayExist) {
                    childrenMayExist = true;
                    lock.notifyAll(); // the loop sleeps without end while there is no child at all
                }
                return new Child(pid, exit);
            } catch (RuntimeException | Error e) {
                // The heap spent between the spawn and the record (OutOfMemoryError): nobody would
                // know the child to kill it, and it runs on, unwatched. Its session (spawned with
                // setsid) is killed now, and a sandbox's init, in a session of its own, dies with
                // bwrap (--die-with-parent, where bwrap has it); unreaped, the pid is not anyone
                // else's yet, and the sweep reaps it.
                Libc.kill(-pid, Signals.SIGKILL);
                throw e;
            }
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
            // Reaped here before it was asked for, unless a process with this pid lives now: then
            // the record was of an earlier one.
            if (done != null && Libc.kill(pid, 0) == -1 && Libc.errno() == Libc.ESRCH) return CompletableFuture.completedFuture(done);
            CompletableFuture<ExitStatus> watch = waiters.get(pid);
            if (watch != null && children.contains(pid)) return watch; // a child of ours: its exit is this
            if (watch != null) watch.complete(null); // left by a run for an earlier process with this pid
            watch = new CompletableFuture<>();
            waiters.put(pid, watch);
            return watch;
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
                waiters.remove(pid, watch);
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

    /**
     * {@code child}'s exit, reaped on the caller's thread: for a caller without a pidfd that said
     * the child ended (none could be opened), which waits here until it has. The wait is outside
     * the lock and does not reap ({@code WNOWAIT}); the reaping is under it. Should the sweep
     * reap the child meanwhile, the wait finds it gone (ECHILD) and its exit delivered.
     */
    public ExitStatus awaitExit(Child child) {
        return awaitReaped(child.pid(), child.exit(), () -> reapIfExited(child));
    }

    /**
     * The exit of a watched descendant ({@link #watchDescendant}) once its parent is gone, reaped
     * on the caller's thread ({@link #parentGone}; if it still runs, waited for as {@link #awaitExit}
     * waits); null when it was not ours to reap.
     */
    public ExitStatus awaitDescendant(int pid, CompletableFuture<ExitStatus> watch) {
        return awaitReaped(pid, watch, () -> parentGone(pid, watch));
    }

    /**
     * Both waits: {@code reap} (under the lock) until {@code exit} is done, waiting outside the
     * lock, without reaping, for {@code pid} to exit in between. Once it is no child of ours
     * (reaped meanwhile, its exit delivered; or never ours) {@code reap} has the last word.
     */
    private static ExitStatus awaitReaped(int pid, CompletableFuture<ExitStatus> exit, Runnable reap) {
        reap.run();
        while (!exit.isDone()) {
            boolean gone = Libc.waitid(Libc.P_PID, pid, Libc.WEXITED | Libc.WNOWAIT) == -1 && Libc.errno() != Libc.EINTR;
            reap.run();
            if (gone) break;
        }
        // No child, and no exit delivered: something reaped it without this class (nothing should).
        // (Made only then: an exception walks the stack, and every run passes here twice.)
        if (!exit.isDone()) exit.completeExceptionally(new IllegalStateException("process " + pid + " was reaped elsewhere"));
        return exit.join();
    }

    /** Under the lock: reaps {@code pid} if it has exited (else nothing) and delivers its exit. */
    private void reap(int pid) {
        ExitStatus exit = Libc.wait4(pid, Libc.WNOHANG);
        if (exit != null) deliver(exit);
    }

    /** How often the loop sweeps for exits nobody reaped, after a spawn (every run reaps its own at once). */
    static final long SWEEP_MILLIS = 1000;
    /**
     * The longest wait between sweeps, reached by sweeps that find nothing: an idle helper, whose
     * watchdog is its child for good, wakes about once a minute, not every second.
     */
    static final long IDLE_SWEEP_MILLIS = 64_000;

    private void loop() {
        synchronized (lock) {
            while (true) {
                try {
                    sweep();
                } catch (RuntimeException e) { // the loop must outlive any one sweep
                    LOG.warnf(e, "reaper: a sweep failed");
                }
                try {
                    lock.wait(childrenMayExist ? sweepMillis : 0);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }
    }

    /** Under the lock: reaps every exited child nobody reaped, and says when to look again. Whether it reaped any. */
    boolean sweep() {
        synchronized (lock) {
            int pid;
            boolean reaped = false;
            while ((pid = Libc.waitid(Libc.P_ALL, 0, Libc.WEXITED | Libc.WNOHANG | Libc.WNOWAIT)) > 0) {
                reap(pid);
                reaped = true;
            }
            if (pid == -1 && Libc.errno() == Libc.ECHILD) childrenMayExist = false; // none at all: sleep until a spawn
            sweepMillis = nextSweepMillis(sweepMillis, reaped);
            return reaped;
        }
    }

    static long nextSweepMillis(long last, boolean reapedAny) {
        return reapedAny ? SWEEP_MILLIS : Math.min(2 * last, IDLE_SWEEP_MILLIS);
    }

    /** The wait before the loop's next sweep (for tests). */
    long sweepMillis() {
        synchronized (lock) {
            return sweepMillis;
        }
    }

    private void deliver(ExitStatus exit) {
        children.remove(exit.pid());
        CompletableFuture<ExitStatus> waiter = waiters.remove(exit.pid());
        if (waiter != null) {
            waiter.complete(exit);
        } else {
            if (unclaimed.size() > 4096) unclaimed.clear(); // bounded: only unclaimed orphans land here
            unclaimed.put(exit.pid(), exit);
        }
    }
}
