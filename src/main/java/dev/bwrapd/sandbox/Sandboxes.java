package dev.bwrapd.sandbox;

import dev.bwrapd.process.Watchdog;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The running sandboxes by id; refuses new ones once shutting down. */
public final class Sandboxes {
    private final Map<String, Sandbox> running = new LinkedHashMap<>();
    private final Watchdog watchdog;
    private long nextId = 1;
    /** How many sandboxes were ever registered: tells a waiter whether any came meanwhile. */
    private long registered;
    private boolean shuttingDown;
    /** Sandboxes removed whose answers are not yet queued ({@link #removeThenAnswer}). */
    private int unanswered;
    /** Sandboxes a shutdown has already killed: a second shutdown does not count them again. */
    private final java.util.Set<Sandbox> killed = new java.util.HashSet<>();

    public Sandboxes(Watchdog watchdog) {
        this.watchdog = watchdog;
    }

    /** Reserves an id (the client's, or the next free sb-N) for a new sandbox. */
    public synchronized Sandbox register(String requestedId, List<String> command) throws SandboxException {
        if (shuttingDown) throw new SandboxException.ShuttingDown();
        String id = requestedId;
        if (id == null) {
            do id = "sb-" + nextId++; while (running.containsKey(id));
        } else if (running.containsKey(id)) {
            throw new SandboxException.IdInUse(id);
        }
        Sandbox sandbox = new Sandbox(id, command, watchdog);
        running.put(id, sandbox);
        registered++;
        notifyAll();
        return sandbox;
    }

    public synchronized void remove(Sandbox sandbox) {
        running.remove(sandbox.id(), sandbox);
        killed.remove(sandbox);
        notifyAll();
    }

    /**
     * Removes a finished sandbox, then runs {@code answer} (which queues its answer for the client):
     * its id is free at once (a client that reads the answer may reuse it straight away), and
     * {@link #awaitEnded} waits on until {@code answer} has returned, so that shutdown's answer never
     * comes before a run's. {@code answer} runs without this object's lock.
     */
    public void removeThenAnswer(Sandbox sandbox, Runnable answer) {
        synchronized (this) {
            unanswered++;
            remove(sandbox);
        }
        try {
            answer.run();
        } finally {
            synchronized (this) {
                unanswered--;
                notifyAll();
            }
        }
    }

    /** Waits until more than {@code count} sandboxes have been registered in all. */
    public synchronized void awaitRegisteredBeyond(long count) throws InterruptedException {
        while (registered <= count) wait();
    }

    /** Waits until none runs; then how many were registered in all. */
    public synchronized long awaitNoneRunning() throws InterruptedException {
        awaitEnded(Long.MAX_VALUE);
        return registered;
    }

    /** Whether none runs and none was registered beyond {@code count}: still the same quiet spell. */
    public synchronized boolean stillIdleSince(long count) {
        return running.isEmpty() && registered == count;
    }

    public synchronized Sandbox get(String id) throws SandboxException {
        Sandbox sandbox = running.get(id);
        if (sandbox == null) throw new SandboxException.NoSuchSandbox(id);
        return sandbox;
    }

    public synchronized List<Sandbox> list() {
        return new ArrayList<>(running.values());
    }

    /** Refuses new sandboxes, kills the running ones and waits until each has been cleaned up. */
    public int shutdown() throws InterruptedException {
        int killed = killAll();
        awaitEnded(Long.MAX_VALUE);
        return killed;
    }

    /**
     * Refuses new sandboxes and kills every one still there (a second call kills again those a
     * first call missed ending, but counts only the new ones): how many it had not killed before.
     */
    public int killAll() {
        List<Sandbox> all, victims;
        synchronized (this) {
            shuttingDown = true;
            all = new ArrayList<>(running.values());
            victims = new ArrayList<>(all);
            victims.removeAll(killed);
            killed.addAll(victims);
        }
        for (Sandbox sandbox : all) sandbox.kill(Sandbox.Ending.SHUTDOWN);
        return victims.size();
    }

    /** Waits until every sandbox has been cleaned up, removed and answered, at most {@code timeoutMs}: whether they all were. */
    public synchronized boolean awaitEnded(long timeoutMs) throws InterruptedException {
        long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(Math.min(timeoutMs, Long.MAX_VALUE / 2_000_000));
        while (!running.isEmpty() || unanswered > 0) {
            long left = java.util.concurrent.TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
            if (left <= 0) return false;
            wait(left);
        }
        return true;
    }

    /** From now on no sandbox is registered (-32006); those there are left running. */
    public synchronized void refuseNew() {
        shuttingDown = true;
    }
}
