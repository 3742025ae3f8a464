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
    private boolean shuttingDown;
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
        return sandbox;
    }

    public synchronized void remove(Sandbox sandbox) {
        running.remove(sandbox.id(), sandbox);
        killed.remove(sandbox);
        notifyAll();
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
        List<Sandbox> victims;
        synchronized (this) {
            shuttingDown = true;
            victims = new ArrayList<>(running.values());
            victims.removeAll(killed);
            killed.addAll(victims);
        }
        for (Sandbox sandbox : victims) sandbox.kill(Sandbox.Ending.SHUTDOWN);
        synchronized (this) {
            while (!running.isEmpty()) wait();
        }
        return victims.size();
    }

    /** From now on no sandbox is registered (-32006); those there are left running. */
    public synchronized void refuseNew() {
        shuttingDown = true;
    }
}
