package dev.bwrapd.sandbox;

import dev.bwrapd.cgroup.SandboxCgroup;
import dev.bwrapd.process.Libc;
import dev.bwrapd.process.Signals;
import dev.bwrapd.process.Watchdog;

import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

/**
 * One sandbox from request to cleanup, and the only way to signal it.
 *
 * <p>Processes: bwrap (our child, its own session) forks the sandbox's init, which calls setsid
 * (--new-session) and forks the command. So the init's pid, reported by bwrap as child-pid, is
 * also the command's process-group id: group signals go there. The init itself ignores them
 * (a PID-namespace init only takes signals it handles), except SIGSTOP/SIGCONT. Killing the init
 * ends every process in the namespace, which is how a sandbox is terminated; it is done through
 * a pidfd, so a recycled pid is never hit.
 *
 * <p>Signals that arrive before the init exists are queued and delivered when it does.
 *
 * <p>With a cgroup (once the init is in it, before it may start the command): kills go to the
 * whole cgroup, so nothing survives however it left the group or session, and suspend/resume
 * freeze and thaw it as a whole.
 */
public final class Sandbox {
    public enum State { STARTING, RUNNING, SUSPENDED, FINISHED }

    /** Why the server ended a sandbox, if it did. */
    public enum Ending { NONE, TERMINATED, TIMED_OUT, CANCELLED, SHUTDOWN }

    private final String id;
    private final List<String> command;
    private final Watchdog watchdog;
    private final Instant startedAt = Instant.now();
    private State state = State.STARTING;
    private Ending ending = Ending.NONE;
    private int bwrapPid;
    private int initPid;
    private int initPidfd = -1;
    /** The init's list of children, open from its report until its first child is seen: one pread a look. */
    private int initChildren = -1;
    private boolean killWhenStarted;
    private boolean commandForked;
    /** See {@link #exited}. */
    private boolean exited;
    /** When the run's thread is to kill the sandbox (the end of a grace period), or Long.MAX_VALUE. */
    private long killDeadline = Long.MAX_VALUE;
    /** Writing a byte here wakes the run's thread to look at killDeadline again. */
    private int wakeFd = -1;
    private final List<Integer> queued = new ArrayList<>();
    private SandboxCgroup cgroup;
    /** The sandbox's cgroup directories the watchdog holds (told at the spawn, before they are made). */
    private List<Path> watchedCgroups = List.of();
    /** bwrap runs under the watchdog's mark (not under linux32). */
    private boolean marked;
    /** Whether the watchdog holds the init's group too: only without a cgroup, which holds it otherwise. */
    private boolean initWatched;
    /** Whether the init is in {@link #cgroup}: from then on the cgroup holds the whole sandbox. */
    private boolean confined;
    /** What the client sends while the command runs, if this run takes input (see {@link #takeInput}). */
    private Input input;
    private boolean hasTerminal;
    /** The terminal's master while the run has it open, and the size it is to have. */
    private int terminalFd = -1;
    private int rows, cols;

    Sandbox(String id, List<String> command, Watchdog watchdog) {
        this.id = id;
        this.command = command;
        this.watchdog = watchdog;
    }

    public String id() { return id; }
    public List<String> command() { return command; }
    public Instant startedAt() { return startedAt; }
    public synchronized State state() { return state; }
    public synchronized Ending ending() { return ending; }
    /** The sandbox init's host pid (the command's process group), or 0 before it exists. */
    public synchronized int pid() { return initPid; }

    /**
     * bwrap runs; {@code cgroups} are the directories of the sandbox's cgroup, about to be made.
     * {@code namedByMark}: bwrap's argv[0] is {@link #bwrapName} (see Watchdog.watch); the group
     * is marked if the watchdog then sees it (bwrap is no script, /proc shows it: Watchdog.showsMark).
     */
    synchronized void spawned(int pid, boolean namedByMark, List<Path> cgroups) {
        bwrapPid = pid;
        marked = namedByMark && watchdog.showsMark(pid);
        watchedCgroups = cgroups;
        watchdog.watch(bwrapPid, marked, cgroups); // bwrap's session: the init is in it until its setsid
        if (killWhenStarted) Libc.kill(-bwrapPid, Signals.SIGKILL);
    }

    /** bwrap reported the init. Queued signals wait for {@link #deliverQueued}, once the command runs. */
    synchronized void started(int pid) {
        if (state == State.FINISHED) return;
        initPid = pid;
        initPidfd = Libc.pidfdOpen(pid);
        initChildren = openChildren(pid);
        // The command's group, once the init has called setsid. A cgroup holds it instead: the
        // init is moved in while bwrap holds it, before its setsid, and is in bwrap's session until then.
        if (watchedCgroups.isEmpty()) {
            watchdog.watchLeader(initPid, marked); // the init keeps bwrap's command line, and leads its group
            initWatched = true;
        }
        state = State.RUNNING;
        if (killWhenStarted) killInit();
    }

    /** bwrap's argv[0]: the name the watchdog finds this helper's sandboxes by (see Watchdog.mark). */
    String bwrapName() {
        return watchdog.mark();
    }

    /** The sandbox's cgroup, made while bwrap starts (the watchdog knows it from {@link #spawned}). */
    synchronized void attachCgroup(SandboxCgroup made) {
        cgroup = made;
    }

    /** The init is in the cgroup: kills and freezes go there from now on. */
    synchronized void confined() {
        confined = true;
        if (killWhenStarted) cgroup.kill();
    }

    /** The cgroup is removed: the watchdog forgets it, and the groups too if the sandbox is over. */
    synchronized void detachCgroup() {
        if (cgroup == null) return;
        cgroup = null;
        confined = false;
        if (state == State.FINISHED) {
            forgetAll(); // finished() left the groups for this write
        } else {
            watchdog.forget(watchedCgroups, marked);
            watchedCgroups = List.of();
        }
    }

    private void forgetAll() {
        watchdog.forget(watchedCgroups, marked, bwrapPid, initWatched ? initPid : 0);
        watchedCgroups = List.of();
    }

    /** The init's pidfd (readable once it has exited), or -1. */
    synchronized int initPidfd() {
        return initPidfd;
    }

    /** Without waiting: whether the init has forked the command, or will never (it is gone, or the sandbox ended). */
    synchronized boolean commandRunningOrGone() {
        return state == State.FINISHED || initPid == 0 || commandForked() || !initAlive();
    }

    /** Delivers the signals that came before the command ran. */
    synchronized void deliverQueued() {
        if (killWhenStarted) return;
        for (int signal : queued) deliver(signal);
        queued.clear();
    }

    /**
     * The write end of the run's wake-up pipe. Written under this lock, it must never block: made
     * non-blocking here, so a full pipe (a client sending input faster than a stalled run drains
     * its wake-ups) is a wake-up already pending, not a reading thread stuck in write(2) holding
     * the lock the run's thread needs to go on.
     */
    synchronized void attachWake(int fd) throws Libc.Error {
        Libc.setNonBlocking(fd);
        wakeFd = fd;
    }

    /** Wakes the run's thread (a new deadline, new input). */
    private void wake() {
        if (wakeFd < 0) return;
        try {
            Libc.write(wakeFd, new byte[] {1}, 0, 1);
        } catch (Libc.Error e) {
            // full (EAGAIN: a wake-up is pending), or the run is ending: nothing more to do
        }
    }

    // ----- input and terminal (sandbox/input, sandbox/resize) -----

    /** From arrival on, the run takes input from the client: a stdin stream, or a terminal of this size. */
    synchronized void takeInput(RunSpec.Terminal terminal) {
        input = new Input();
        if (terminal != null) {
            hasTerminal = true;
            rows = terminal.rows();
            cols = terminal.cols();
        }
    }

    synchronized Input input() {
        return input;
    }

    /**
     * Queues bytes for the command's stdin pipe or terminal; {@code written} hears how many went in
     * (all of them, or fewer if the pipe closed first; 0 once it is closed or the run is over).
     * {@code eof} closes the pipe after them; a terminal has no such thing (the client types the
     * EOF character, as on a real one).
     */
    public void input(byte[] data, boolean eof, java.util.function.IntConsumer written) throws SandboxException {
        Input target;
        synchronized (this) {
            if (input == null) throw new SandboxException.Invalid("sandboxId: " + id + " takes no input (its stdin is not \"stream\" and it has no terminal)");
            if (eof && hasTerminal) throw new SandboxException.Invalid("eof: a terminal has no end of input; send its EOF character (\\u0004) instead");
            target = input;
        }
        if (!target.offer(data, eof, written)) {
            written.accept(0);
            return;
        }
        synchronized (this) {
            wake();
        }
    }

    /** Sets the terminal's size (now, or when it is opened); false once the run is over. */
    public synchronized boolean resize(int rows, int cols) throws SandboxException {
        if (!hasTerminal) throw new SandboxException.Invalid("sandboxId: " + id + " has no terminal");
        if (state == State.FINISHED) return false;
        this.rows = rows;
        this.cols = cols;
        if (terminalFd < 0) return true;
        try {
            Libc.setWindowSize(terminalFd, rows, cols);
            return true;
        } catch (Libc.Error e) {
            return false;
        }
    }

    /** The run opened the terminal: it gets the size asked for so far. Until {@link #finished}, resize and signals use it. */
    synchronized void attachTerminal(int master) throws Libc.Error {
        Libc.setWindowSize(master, rows, cols);
        terminalFd = master;
    }

    synchronized long killDeadline() {
        return killDeadline;
    }

    /** Has the run's thread kill the sandbox at {@code deadline} (System.nanoTime), unless it ends first. */
    synchronized void killAt(long deadline) {
        if (state == State.FINISHED || deadline >= killDeadline) return;
        killDeadline = deadline;
        wake();
    }

    /**
     * Waits until the init has forked the command, or has ended. bwrap reports the init as soon as
     * it exists, before it sets the sandbox up (mounts, ids), and the init arms --die-with-parent
     * only after that setup: sandbox/started waits for the command so that it means what the
     * protocol says ("once the command runs"), and a client that kills the helper right after it
     * does not catch the init still in its setup, where it would outlive the helper (a bwrap race).
     */
    synchronized void awaitCommand() {
        long giveUp = System.nanoTime() + 60_000_000_000L; // only should the init hang in its setup
        while (state != State.FINISHED && initPid != 0 && !commandForked() && initAlive() && System.nanoTime() < giveUp) {
            try {
                wait(1);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /**
     * bwrap and the init have ended (their pidfds said so) and are about to be reaped: from now on
     * no signal goes to their groups, whose numbers are free again once they are reaped.
     */
    synchronized void exited() {
        exited = true;
    }

    void finished() {
        Input ended;
        synchronized (this) {
            if (state != State.FINISHED && cgroup == null) forgetAll(); // else when the cgroup is removed: one write
            state = State.FINISHED;
            Libc.close(initPidfd);
            initPidfd = -1;
            Libc.close(initChildren);
            initChildren = -1;
            wakeFd = -1; // the run's, closed by it
            terminalFd = -1; // likewise
            queued.clear();
            ended = input;
        }
        if (ended != null) ended.close(); // outside the lock: it answers waiting sandbox/input requests
    }

    /**
     * Sends {@code signal} to the command's process group, now or as soon as it exists.
     * False only if the sandbox has already ended.
     */
    public synchronized boolean signal(int signal) {
        if (state == State.FINISHED) return false;
        if (initPid == 0) {
            queued.add(signal);
            return true;
        }
        return deliver(signal);
    }

    private boolean deliver(int signal) {
        // The init calls setsid at the very end of the sandbox's setup, and only then forks the
        // command. Until the command exists, a signal to the group finds nobody (ESRCH) or the init
        // alone, which ignores it: either way it would be lost. So wait for the command first, as
        // long as the init lives (a kill meanwhile ends it, and the wait).
        awaitCommand();
        if (state == State.FINISHED || !commandForked() || initEnded()) return false; // it ended (before its command ran)
        if (Libc.kill(-signalGroup(), signal) != 0) return false;
        if (signal == Signals.SIGSTOP) state = State.SUSPENDED;
        if (signal == Signals.SIGCONT) state = State.RUNNING;
        return true;
    }

    /** Stops the whole sandbox: freezes its cgroup, or SIGSTOP to the command's group without one. */
    public synchronized boolean suspend() {
        if (state == State.FINISHED || initEnded()) return false;
        if (!confined || !commandRunningOrGone()) return signal(Signals.SIGSTOP); // queued until the command runs
        if (!cgroup.freeze(true)) return signal(Signals.SIGSTOP);
        state = State.SUSPENDED;
        return true;
    }

    /** Lets a suspended sandbox go on: thaws its cgroup, and SIGCONT to the group (also undoes a SIGSTOP sent as a signal). */
    public synchronized boolean resume() {
        if (state == State.FINISHED || initEnded()) return false;
        boolean thawed = confined && cgroup.freeze(false);
        boolean continued = signal(Signals.SIGCONT);
        if (thawed && state != State.FINISHED) state = State.RUNNING;
        return thawed || continued;
    }

    /**
     * The process group signals go to: the command's, whose id is the init's pid (bwrap's
     * --new-session), except on a terminal, where the command leads a session of its own (setsid
     * -c) and the group is the terminal's foreground group, the one a typed Ctrl-C reaches.
     */
    private int signalGroup() {
        if (terminalFd >= 0) {
            int foreground = Libc.foregroundGroup(terminalFd);
            if (foreground > 0 && inSandbox(foreground)) return foreground;
        }
        return initPid; // setsid -c has not run yet: the command is still in the init's group
    }

    /**
     * Whether process group {@code group}'s leader lives in the sandbox's PID namespace. The
     * terminal names its foreground group by number, and the sandbox chooses that group: one it
     * emptied keeps the terminal's reference while its number goes free, and may be a host group's
     * by the time a signal is sent. A group whose leader is gone, or lives elsewhere, is not signalled.
     */
    private boolean inSandbox(int group) {
        try {
            Libc.FileStat namespace = Libc.statIfPresent(Libc.AT_FDCWD, "/proc/" + group + "/ns/pid", 0);
            Libc.FileStat sandbox = Libc.statIfPresent(Libc.AT_FDCWD, "/proc/" + initPid + "/ns/pid", 0);
            return namespace != null && sandbox != null && namespace.sameFile(sandbox);
        } catch (Libc.Error e) {
            return false; // not ours to look at (another user's process): not the sandbox's
        }
    }

    /**
     * Whether the init has forked the command (its first child, in its group since the init called
     * setsid before forking). Read from the init's children list, opened while the init lived (so
     * its pid was its own); a kernel without that list leaves the group's existence as the only sign.
     */
    private boolean commandForked() {
        if (!commandForked) {
            try {
                commandForked = initChildren < 0 || Libc.pread(initChildren, new byte[1], 0, 1, 0) > 0;
            } catch (Libc.Error e) {
                commandForked = true; // the init is gone
            }
            if (commandForked) {
                Libc.close(initChildren);
                initChildren = -1;
            }
        }
        return commandForked;
    }

    /** /proc/PID/task/PID/children of the init, or -1 (no such list: CONFIG_PROC_CHILDREN, or the init is gone). */
    private static int openChildren(int pid) {
        try {
            return Libc.open("/proc/" + pid + "/task/" + pid + "/children", Libc.O_RDONLY, 0);
        } catch (Libc.Error e) {
            return -1;
        }
    }

    /**
     * Whether the init has exited (its pidfd readable; without a pidfd, its pid gone). The
     * command's process group is the init's number, and bwrap reaps the init while the run's thread
     * may be elsewhere (waiting for the client to read streamed output) and has not yet said
     * {@link #exited}: from then on the number is free, and may be a host process's group. No
     * group signal is sent once this is true; while it is false the number is the init's (its
     * namespace's other processes are gone before its pidfd says it exited), and between this
     * look and the kill it could only come round again through a whole cycle of pids.
     */
    private boolean initEnded() {
        if (exited) return true;
        if (initPid == 0) return false;
        if (initPidfd < 0) return !initAlive();
        try {
            return Libc.poll(new int[] {initPidfd}, new short[] {Libc.POLLIN}, new short[1], 1, 0) > 0;
        } catch (Libc.Error e) {
            return true; // cannot tell: no signal to a number that may be another's
        }
    }

    /** Whether the init still exists (a zombie counts: bwrap, or the reaper once bwrap is gone, reaps it soon). */
    private boolean initAlive() {
        int rc = initPidfd >= 0 ? Libc.pidfdSendSignal(initPidfd, 0) : Libc.kill(initPid, 0);
        return rc == 0 || Libc.errno() != Libc.ESRCH;
    }

    /** Ends every process of the sandbox at once (SIGKILL to its init). */
    public synchronized boolean kill(Ending why) {
        if (state == State.FINISHED || initEnded()) return false;
        if (ending == Ending.NONE) ending = why;
        if (initPid == 0) {
            // Still being set up: kill bwrap's whole session now (the init dies with it through
            // --die-with-parent), and the init too should it appear.
            killWhenStarted = true;
            if (bwrapPid != 0) Libc.kill(-bwrapPid, Signals.SIGKILL);
            return true;
        }
        if (confined) cgroup.kill(); // every process, also those that left the init's namespace group or session
        killInit();
        return true;
    }

    private void killInit() {
        if (initPidfd >= 0) Libc.pidfdSendSignal(initPidfd, Signals.SIGKILL);
        else Libc.kill(initPid, Signals.SIGKILL);
        // A stopped group would hold the kill until resumed; SIGKILL wakes stopped processes anyway.
    }

    /**
     * Ends the sandbox for {@code why} with a grace period: SIGTERM to the command's group (resumed
     * first: a stopped command could not act on it), and the kill at {@code killDeadline} should it
     * still run. False, and nothing marked, once it has ended: a command that exited by itself
     * before is not reported as ended by the signal.
     */
    public synchronized boolean terminate(Ending why, long killDeadline) {
        if (state == State.FINISHED || initEnded()) return false;
        if (ending == Ending.NONE) ending = why;
        killAt(killDeadline);
        resume();
        signal(Signals.SIGTERM);
        return true;
    }
}
