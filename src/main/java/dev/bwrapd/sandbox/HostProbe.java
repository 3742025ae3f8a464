package dev.bwrapd.sandbox;

import dev.bwrapd.process.ExitStatus;
import dev.bwrapd.process.Libc;
import dev.bwrapd.process.Reaper;
import dev.bwrapd.process.Spawner;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
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
        String path = System.getenv().getOrDefault("PATH", "/usr/bin:/bin");
        for (String dir : (path + ":/usr/bin:/bin").split(":")) {
            if (dir.isEmpty()) continue;
            Path candidate = Path.of(dir, name);
            if (tried != null) tried.add(candidate.toString());
            if (Files.isRegularFile(candidate) && Files.isExecutable(candidate)) return candidate.toString();
        }
        return null;
    }

    public static HostCapabilities probe(String bwrap) {
        String linux32 = findOnPath("linux32", null);
        if (bwrap == null) return new HostCapabilities(null, null, false, false, false, Reaper.instance().isSubreaper(), linux32);
        String probeCommand = findOnPath("true", null);
        if (probeCommand == null) probeCommand = "/bin/true";
        List<String> base = List.of(bwrap, "--ro-bind", "/", "/");
        CompletableFuture<String> version = CompletableFuture.supplyAsync(() -> version(bwrap), HostProbe::onNewThread);
        List<String> userNs = List.of("--unshare-user", "--uid", "0", "--gid", "0");
        List<String> dieWithParent = List.of("--die-with-parent");
        List<String> jsonStatus = List.of("--json-status-fd", "3");
        // Usually everything works: one run that uses all three options settles it. Only if that
        // fails is each option tried alone, to learn which one this host lacks.
        boolean all = succeeds(base, List.of(userNs, dieWithParent, jsonStatus), probeCommand).join();
        if (all) {
            return new HostCapabilities(bwrap, version.join(), true, true, true, Reaper.instance().isSubreaper(), linux32);
        }
        CompletableFuture<Boolean> hasUserNs = succeeds(base, List.of(userNs), probeCommand);
        CompletableFuture<Boolean> hasDieWithParent = succeeds(base, List.of(dieWithParent), probeCommand);
        CompletableFuture<Boolean> hasJsonStatus = succeeds(base, List.of(jsonStatus), probeCommand);
        return new HostCapabilities(bwrap, version.join(), hasUserNs.join(), hasDieWithParent.join(), hasJsonStatus.join(),
                Reaper.instance().isSubreaper(), linux32);
    }

    private static void onNewThread(Runnable task) {
        Thread.ofPlatform().daemon().name("bwrapd-probe").start(task);
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

    /** Runs a probe with nothing attached but /dev/null (and stdout into {@code out} if given); its exit code or -1. */
    private static int run(List<String> argv, StringBuilder out) {
        int devNull = -1;
        int[] pipe = null;
        try {
            devNull = Libc.open("/dev/null", Libc.O_RDWR, 0);
            if (out != null) pipe = Libc.pipe();
            int stdout = pipe == null ? devNull : pipe[1];
            Reaper.Child child = Spawner.spawn(new Spawner.Spec(argv.get(0), argv, List.of(), new int[] {devNull, stdout, devNull, devNull}));
            if (pipe != null) {
                Libc.close(pipe[1]);
                pipe[1] = -1;
                out.append(readAll(pipe[0]));
            }
            ExitStatus exit = child.exit().join();
            return exit.exited() ? exit.exitCode() : -1;
        } catch (Libc.Error e) {
            return -1;
        } finally {
            Libc.close(devNull);
            if (pipe != null) {
                Libc.close(pipe[0]);
                Libc.close(pipe[1]);
            }
        }
    }

    static String readAll(int fd) throws Libc.Error {
        StringBuilder text = new StringBuilder();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(4096);
            int n;
            while ((n = Libc.read(fd, buffer)) > 0) {
                text.append(new String(buffer.asSlice(0, n).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8));
            }
        }
        return text.toString();
    }
}
