package dev.bwrapd.sandbox;

import dev.bwrapd.cgroup.CgroupHost;
import dev.bwrapd.cgroup.Mechanisms;
import dev.bwrapd.cleanup.RootLeases;
import dev.bwrapd.process.Reaper;
import dev.bwrapd.process.Spawner;

import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * Starts sandbox runs, each on a thread of its own ({@link Run} has the steps), and ends them.
 * Speaks no wire protocol: it takes a {@link RunSpec} and reports to a {@link RunListener}.
 */
public final class SandboxRunner {
    private static final org.jboss.logging.Logger LOG = org.jboss.logging.Logger.getLogger(SandboxRunner.class);
    private final RootLeases leases;
    private final Spawner spawner;
    private final Reaper reaper;
    private final ExecutorService runThreads;
    private final CompletableFuture<HostCapabilities> host;
    private final List<String> bwrapTried;
    private final Capture.Store captures;
    private final CgroupHost cgroups;
    private final HostPaths.Devices devices = new HostPaths.Devices();
    private final long clientOpenFiles;

    /**
     * @param runThreads from {@link #runThreads()}, made in Main
     * @param host       this host's capabilities, once probed
     * @param bwrapTried where bwrap was looked for, for the error when it was not found
     * @param captures   where captured output is kept
     * @param cgroups    where sandboxes' cgroups can be made, detected at start-up
     * @param clientOpenFiles the soft limit on open files a command gets without an openFiles limit ({@link dev.bwrapd.cgroup.Rlimits#clientOpenFiles}; -1: bwrapd's own)
     */
    public SandboxRunner(RootLeases leases, Spawner spawner, Reaper reaper, ExecutorService runThreads,
                         CompletableFuture<HostCapabilities> host, List<String> bwrapTried, Capture.Store captures, CgroupHost cgroups,
                         long clientOpenFiles) {
        this.clientOpenFiles = clientOpenFiles;
        this.captures = captures;
        this.leases = leases;
        this.spawner = spawner;
        this.reaper = reaper;
        this.runThreads = runThreads;
        this.host = host;
        this.bwrapTried = bwrapTried;
        this.cgroups = cgroups;
    }

    public CgroupHost cgroups() {
        return cgroups;
    }

    long clientOpenFiles() {
        return clientOpenFiles;
    }

    HostPaths.Devices devices() {
        return devices;
    }

    /**
     * Each limit this host can enforce, by the mechanism that does it. Everything needs bwrap's
     * status pipe: the init is held, confined and given its rlimits once bwrap reports it.
     */
    public Map<String, String> limitMechanisms(HostCapabilities h) {
        return h.jsonStatusFd() ? Mechanisms.of(cgroups) : Map.of();
    }

    /** How long an idle run thread waits for the next run before it ends. */
    static final long IDLE_THREAD_SECONDS = 1;

    /**
     * The threads runs live on: platform threads, one per run, reused while runs keep coming
     * (creating and ending a thread per run costs about 0.5 ms of CPU), ended after
     * {@link #IDLE_THREAD_SECONDS} idle, so a helper that ran 64 at once goes back to the threads it
     * had. bwrap's --die-with-parent fires when the thread that spawned it ends: a run keeps its
     * thread until its sandbox is reaped, and only an idle thread, which holds no sandbox, ends.
     */
    public static ExecutorService runThreads() {
        return retiringThreads("bwrapd-run-");
    }

    /** Platform daemon threads named {@code name}N, as many as tasks at once, each ending after {@link #IDLE_THREAD_SECONDS} idle. */
    public static ExecutorService retiringThreads(String name) {
        // each thread's native memory goes with it, not at the next full GC
        return new ThreadPoolExecutor(0, Integer.MAX_VALUE, IDLE_THREAD_SECONDS, TimeUnit.SECONDS, new SynchronousQueue<>(),
                dev.bwrapd.process.Libc.freeingAtEnd(Thread.ofPlatform().daemon().name(name, 0).factory()));
    }

    /** Starts {@code spec} in {@code sandbox} on a run thread; the listener hears the rest. */
    public void start(RunSpec spec, Sandbox sandbox, RunListener listener) throws SandboxException {
        start(spec, -1, sandbox, listener);
    }

    /**
     * The same, for a spec whose relative host paths (root, mount sources, output files) lie
     * beneath the directory {@code base} (a descriptor the caller keeps open): each is resolved
     * beneath it, through no symbolic link (see {@link HostPaths}).
     */
    public void start(RunSpec spec, int base, Sandbox sandbox, RunListener listener) throws SandboxException {
        if (spec.takesInput()) sandbox.takeInput(spec.terminal()); // now: input may follow the request at once
        try {
            runThreads.execute(new Run(this, leases, spawner, reaper, captures, spec, base, sandbox, listener)::run);
        } catch (OutOfMemoryError e) { // no thread to be had (a tasks limit): this run is refused, the helper goes on
            throw new SandboxException.Failed("cannot start a thread for the run (" + e.getMessage()
                    + "): too many runs at once for this host's limits");
        }
    }

    /**
     * What {@code spec} would execute: bwrap's argv and environment (descriptor 3 is its status
     * pipe). Its host paths are opened and checked, and its mount points placed in the root, as a
     * run's are (HostPaths, MountPoints: the same refusals; nothing is created); the root is shown
     * by its real path, "/" for the host's however reached.
     */
    public BwrapCommand.Invocation invocation(RunSpec spec) throws SandboxException {
        HostCapabilities h = host(spec);
        spec = asRunHere(spec);
        try (HostPaths paths = HostPaths.open(spec, -1, devices)) {
            spec = paths.spec();
            refuseOnTheHostRoot(spec, h, paths.hostRoot());
            BwrapCommand.Places places = MountPoints.plan(spec, RootPaths.Tree.of(paths.root()), paths.mountSources(), paths.hostRoot(), paths.hidden(),
                    paths.journalBelow(leases.journalPlace()));
            return BwrapCommand.of(spec, h, places, paths.realRoot());
        } catch (HostPaths.Refused e) {
            throw e.asSandboxException();
        }
    }

    /**
     * A descriptor of the unnamed file holding the BPF program of {@link SeccompPolicy#KEYRINGS_REFUSED},
     * the filter of every run that asks for none, once a run has compiled it (-1 before, and for any
     * other filter): each run opens it anew, at its start, instead of libseccomp compiling the same
     * program and the run writing it into a file of its own (tens of microseconds of CPU a run).
     */
    private volatile int sharedProgram = -1;

    int sharedFilter(RunSpec.Seccomp seccomp) {
        return seccomp.equals(SeccompPolicy.KEYRINGS_REFUSED) ? sharedProgram : -1;
    }

    /**
     * Keeps {@code file}, where a run compiled its filter, if that is the shared one (a descriptor of
     * it for the helper's lifetime). Should that fail (no descriptor left), the next run compiles again.
     */
    synchronized void keepCompiled(RunSpec.Seccomp seccomp, int file) {
        if (!seccomp.equals(SeccompPolicy.KEYRINGS_REFUSED) || sharedProgram >= 0) return;
        try {
            sharedProgram = dev.bwrapd.process.Libc.open("/proc/self/fd/" + file, dev.bwrapd.process.Libc.O_RDONLY, 0);
        } catch (dev.bwrapd.process.Libc.Error e) {
            LOG.debugf("the shared filter is not kept: %s", e.getMessage());
        }
    }

    /**
     * An unprivileged bwrapd's sandbox on the host's root may not hold CAP_SYS_ADMIN: bwrap makes
     * its mounts inside the sandbox's own user namespace then, where that capability undoes them
     * (a review remounted / read-write and wrote the user's files on the host, and unmounted the
     * empty /run). A root bwrapd's mounts are locked: its sandboxes cannot undo them.
     */
    static void refuseOnTheHostRoot(RunSpec spec, HostCapabilities h, boolean hostRoot) throws SandboxException.Invalid {
        String refusal = hostRoot ? onTheHostRoot(h, spec.capabilities()) : null;
        if (refusal != null) throw new SandboxException.Invalid(refusal);
    }

    /** What of {@code capabilities} a sandbox on the host's root may not hold ({@link #refuseOnTheHostRoot}), or null. */
    private static String onTheHostRoot(HostCapabilities h, List<String> capabilities) {
        int at = capabilities.indexOf("CAP_SYS_ADMIN");
        if (h.privileged() || at < 0) return null;
        return "capabilities[" + at + "]: CAP_SYS_ADMIN on the host's root would let the command undo"
                + " its read-only / and the /run and /dev hidden from it (bwrapd is unprivileged, so its mounts are the sandbox's own)";
    }

    /**
     * {@code spec} as this host runs it: the keyrings are refused whatever the filter asked for
     * (SeccompPolicy.KEYRING_CALLS), where libseccomp can build it. (A networked run on the host's
     * root also keeps its name resolution: HostPaths adds that mount, once it knows the root.)
     */
    static RunSpec asRunHere(RunSpec spec) {
        if (!dev.bwrapd.process.Libc.seccompAvailable()) return spec;
        return spec.withSeccomp(SeccompPolicy.withKeyringsRefused(spec.seccomp()));
    }

    /** This host's capabilities for {@code spec}: waits for the probe; fails if there is no bwrap, no linux32, or a capability it cannot grant. */
    HostCapabilities host(RunSpec spec) throws SandboxException {
        HostCapabilities h = host.join();
        if (h.bwrapPath() == null) {
            throw new SandboxException.BwrapUnusable("bwrap not found (install bubblewrap or pass --bwrap)", null, null, bwrapTried);
        }
        if (spec.linux32() && !h.linux32()) throw new SandboxException.Invalid("linux32: this host has no linux32 (setarch) to set the personality");
        String refusal = refusal(h, spec.capabilities(), spec.limits(), limitMechanisms(h), cgroups.note());
        if (refusal != null) throw new SandboxException.Invalid(refusal);
        if (spec.seccomp() != null) {
            if (!dev.bwrapd.process.Libc.seccompAvailable()) {
                throw new SandboxException.Invalid("seccomp: this host has no libseccomp (libseccomp.so.2) to build a filter with; capabilities.seccomp is false");
            }
            String unknown = SeccompPolicy.unknownName(spec.seccomp());
            if (unknown != null) throw new SandboxException.Invalid(unknown);
        }
        return h;
    }

    /**
     * What this host cannot give a sandbox of {@code capabilities} and {@code limits}, worded as
     * sandbox/run refuses it; null when it can give them all. The Buildbarn runner asks it of its
     * own --cap-add and --limits, which every action gets, once at its start ({@code onTheHostRoot}:
     * with --root host, also what a sandbox there may not hold). Null also when there is no bwrap:
     * every run fails then, and says so.
     */
    public String cannotGive(List<String> capabilities, dev.bwrapd.cgroup.Limits limits, boolean onTheHostRoot) {
        HostCapabilities h = host.join();
        if (h.bwrapPath() == null) return null;
        String refusal = refusal(h, capabilities, limits, limitMechanisms(h), cgroups.note());
        return refusal == null && onTheHostRoot ? onTheHostRoot(h, capabilities) : refusal;
    }

    /** The first capability {@code h} cannot grant or limit it cannot enforce ({@code mechanisms}: those it can), as -32602 words it; or null. */
    static String refusal(HostCapabilities h, List<String> capabilities, dev.bwrapd.cgroup.Limits limits,
                          Map<String, String> mechanisms, String cgroupNote) {
        for (int i = 0; i < capabilities.size(); i++) {
            String name = capabilities.get(i);
            if (!Capabilities.grantable(h, name)) {
                return "capabilities[" + i + "]: this host cannot grant " + name
                        + (h.privileged() ? " (bwrapd does not hold it)" : " (no user namespaces)");
            }
        }
        Optional<String> unenforceable = Mechanisms.unenforceable(limits, mechanisms);
        if (unenforceable.isEmpty()) return null;
        String why = !h.jsonStatusFd() ? "bwrap has no --json-status-fd"
                : cgroupNote != null ? cgroupNote : "no writable cgroup with that controller";
        return "limits." + unenforceable.get() + ": this host cannot enforce it (" + why + ")";
    }

    /**
     * SIGTERM to the command's group, then SIGKILL to the whole sandbox after {@code graceMs} (from
     * the run's thread); at once without a grace period. False if the sandbox had already ended.
     */
    public boolean terminate(Sandbox sandbox, Sandbox.Ending why, Long graceMs) {
        if (graceMs == null || graceMs <= 0) return sandbox.kill(why);
        return sandbox.terminate(why, Saturating.msAfter(System.nanoTime(), graceMs));
    }
}
