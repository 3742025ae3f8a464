package dev.bwrapd.sandbox;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Finds bwrap and learns what it can do on this host by running it, all probes at once, as
 * BuildStream's platform check did (user namespaces, --die-with-parent) plus --json-status-fd.
 */
public final class HostProbe {
    private HostProbe() {}

    /**
     * Links the libc downcalls and probes bwrap, each on a thread of its own (the slowest parts of
     * start-up, done alongside), then starts {@code reaper}: only after the probe, whose children it
     * would take from the JDK. The future completes with what the host can do. Made by each mode's
     * entry point, never in a static initializer. {@code cgroupV1}: whether the host has cgroup v1
     * hierarchies, as cgroup detection found (CgroupHost.v1Hierarchies).
     */
    public static CompletableFuture<HostCapabilities> start(Lookup bwrap, dev.bwrapd.process.Reaper reaper, String version, boolean cgroupV1) {
        CompletableFuture<HostCapabilities> host = new CompletableFuture<>();
        onNewThread("bwrapd-link", dev.bwrapd.process.Libc::link);
        onNewThread("bwrapd-probe", () -> {
            ProbeCache cache = ProbeCache.open(System.getenv("XDG_CACHE_HOME"), System.getenv("HOME"), dev.bwrapd.process.Libc.uid(), version);
            HostCapabilities probed = probe(bwrap.found(), false, cache, cgroupV1);
            boolean subreaper = reaper.start();
            host.complete(new HostCapabilities(probed.bwrapPath(), probed.bwrapVersion(), probed.userNamespaces(),
                    probed.dieWithParent(), probed.jsonStatusFd(), subreaper, probed.linux32Path(),
                    probed.privileged(), probed.permittedCapabilities(), probed.cgroupV1()));
        });
        return host;
    }

    /** Where bwrap was looked for, for error messages. */
    public record Lookup(String found, List<String> tried) {}

    public static Lookup findBwrap(String configured) {
        List<String> tried = new ArrayList<>();
        if (configured != null) {
            tried.add(configured);
            return new Lookup(Files.isExecutable(Path.of(configured)) ? configured : null, tried);
        }
        String found = findOnPath("bwrap", tried);
        return new Lookup(found, tried);
    }

    static String findOnPath(String name, List<String> tried) {
        return findOnPath(name, tried, System.getenv().getOrDefault("PATH", "/usr/bin:/bin"));
    }

    static String findOnPath(String name, List<String> tried, String path) {
        // Absolute entries only: an empty or relative one ("." or "bin") means the working directory,
        // where the helper must never pick up a program (as root least of all). /usr/bin and /bin last.
        for (String dir : (path + ":/usr/bin:/bin").split(":")) {
            if (!dir.startsWith("/")) continue;
            Path candidate = Path.of(dir, name);
            if (tried != null) tried.add(candidate.toString());
            if (Files.isRegularFile(candidate) && Files.isExecutable(candidate)) return candidate.toString();
        }
        return null;
    }

    /**
     * Probes with the JDK's ProcessBuilder, not the libc layer: linking the Foreign Function
     * downcalls costs about 200 ms, which would delay the answer to initialize; it happens
     * meanwhile on another thread. The probes must be over before the reaper starts (it reaps every
     * child), so the caller asks {@code Reaper} for the subreaper flag only afterwards.
     *
     * <p>bwrap's part comes from {@code cache} (may be null) when it holds a result for this very
     * bwrap on this host; a result where every option worked is kept there (a failure may be
     * passing: it is probed again next time).
     */
    public static HostCapabilities probe(String bwrap, boolean subreaper, ProbeCache cache, boolean cgroupV1) {
        String linux32 = findOnPath("linux32", null);
        boolean privileged = statusField("Uid:", 1).equals("0");
        long permitted = Capabilities.parseMask(statusField("CapPrm:", 0));
        if (bwrap == null) return new HostCapabilities(null, null, false, false, false, subreaper, linux32, privileged, permitted, cgroupV1);
        String key = cache == null ? null : cache.key(bwrap);
        ProbeCache.Probed p = key == null ? null : cache.read(key);
        if (p == null) {
            p = probeBwrap(bwrap);
            if (key != null && p.userNamespaces() && p.dieWithParent() && p.jsonStatusFd() && p.version() != null) cache.write(key, p);
        }
        return new HostCapabilities(bwrap, p.version(), p.userNamespaces(), p.dieWithParent(), p.jsonStatusFd(),
                subreaper, linux32, privileged, permitted, cgroupV1);
    }

    /** What only running bwrap tells: its version, and which of the options it needs work here. */
    private static ProbeCache.Probed probeBwrap(String bwrap) {
        String probeCommand = findOnPath("true", null);
        if (probeCommand == null) probeCommand = "/bin/true";
        List<String> base = List.of(bwrap, "--ro-bind", "/", "/");
        CompletableFuture<String> version = CompletableFuture.supplyAsync(() -> version(bwrap), HostProbe::onNewThread);
        List<String> userNs = List.of("--unshare-user", "--uid", "0", "--gid", "0");
        List<String> dieWithParent = List.of("--die-with-parent");
        List<String> jsonStatus = List.of("--json-status-fd", "1"); // stdout here; runs use descriptor 3
        // Usually everything works: one run that uses all three options settles it. Only if that
        // fails is each option tried alone, to learn which one this host lacks.
        boolean all = succeeds(base, List.of(userNs, dieWithParent, jsonStatus), probeCommand).join();
        if (all) return new ProbeCache.Probed(version.join(), true, true, true);
        CompletableFuture<Boolean> hasUserNs = succeeds(base, List.of(userNs), probeCommand);
        CompletableFuture<Boolean> hasDieWithParent = succeeds(base, List.of(dieWithParent), probeCommand);
        CompletableFuture<Boolean> hasJsonStatus = succeeds(base, List.of(jsonStatus), probeCommand);
        return new ProbeCache.Probed(version.join(), hasUserNs.join(), hasDieWithParent.join(), hasJsonStatus.join());
    }

    /** Word {@code index} after {@code name} in /proc/self/status ("Uid:" real, effective, ...); "" if absent. */
    private static String statusField(String name, int index) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (!line.startsWith(name)) continue;
                String[] words = line.substring(name.length()).trim().split("\\s+");
                return index < words.length ? words[index] : "";
            }
        } catch (java.io.IOException e) {
            // no /proc: treated as unprivileged, with nothing to hand on
        }
        return "";
    }

    private static void onNewThread(Runnable task) {
        onNewThread("bwrapd-probe", task);
    }

    /** A start-up thread, which ends soon: its native memory for C calls goes with it. */
    private static void onNewThread(String name, Runnable task) {
        dev.bwrapd.process.Libc.freeingAtEnd(Thread.ofPlatform().daemon().name(name).factory()).newThread(task).start();
    }

    private static CompletableFuture<Boolean> succeeds(List<String> base, List<List<String>> options, String command) {
        List<String> argv = new ArrayList<>(base);
        options.forEach(argv::addAll);
        argv.add("--");
        argv.add(command);
        return CompletableFuture.supplyAsync(() -> run(argv, null) == 0, HostProbe::onNewThread);
    }

    private static String version(String bwrap) {
        StringBuilder out = new StringBuilder();
        if (run(List.of(bwrap, "--version"), out) != 0) return null;
        String text = out.toString().trim();
        return text.startsWith("bubblewrap ") ? text.substring("bubblewrap ".length()) : text;
    }

    /** Runs a probe with an empty environment and no input; its exit code, or -1 if it could not run. */
    private static int run(List<String> argv, StringBuilder out) {
        try {
            ProcessBuilder builder = new ProcessBuilder(argv)
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                    .redirectError(ProcessBuilder.Redirect.DISCARD);
            builder.environment().clear();
            if (out == null) builder.redirectOutput(ProcessBuilder.Redirect.DISCARD);
            Process process = builder.start();
            if (out != null) out.append(new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
            return process.waitFor();
        } catch (java.io.IOException e) {
            return -1;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return -1;
        }
    }
}
