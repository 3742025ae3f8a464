package dev.bwrapd.buildbarn;

import dev.bwrapd.cgroup.Limits;
import dev.bwrapd.cli.CommandLine;
import dev.bwrapd.sandbox.Capabilities;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The command line of {@code bwrapd buildbarn-runner}. Each option is one case of {@link #parse}
 * and one component; the options that shape every sandbox are handed to {@link Actions}.
 */
record RunnerOptions(boolean help, Path listen, Path buildDirectory, Actions.Root root, boolean network, boolean seccompDefault,
                     int concurrency, String bwrap, String logLevel, List<String> capabilities, Limits limits) {

    static final String USAGE = """
            Usage: bwrapd buildbarn-runner --listen PATH --build-directory DIR [OPTIONS]

            Serves Buildbarn's runner service (gRPC, buildbarn.runner.Runner) on the unix socket
            PATH, so that bb_worker runs each action in a bubblewrap sandbox. See docs/buildbarn.md.

            Options:
              --listen PATH              the unix socket to serve on (a stale socket there is replaced)
              --build-directory DIR      bb_worker's build directory: every path of a request is
                                         relative to it and must stay inside it
              --root input|host          input: the action's input root is / (default); host: the
                                         host's / read-only, the input root read-write at its own path
              --network                  give actions the host's network (default: none)
              --seccomp default|none     the system-call filter of every action (default none)
              --concurrency N            actions run at once, more wait (default: the number of CPUs)
              --cap-add CAP_NAME         a capability every action gets (repeatable; default none,
                                         even when the runner runs as root)
              --limits NAME=N,...        resource limits of every action, as sandbox/run's limits:
                                         memoryBytes, pids, cpuMs, cpus, fileSizeBytes, openFiles
                                         (one the host cannot enforce stops the runner at start)
              --bwrap PATH               the bwrap to run (default: bwrap on PATH)
              --log-level LEVEL          error, warn, info or debug (default warn)
              --help                     print this help and exit
            """;

    static RunnerOptions parse(String... args) {
        boolean help = false, network = false, seccompDefault = false;
        Path listen = null, buildDirectory = null;
        Actions.Root root = Actions.Root.INPUT;
        int concurrency = Runtime.getRuntime().availableProcessors();
        String bwrap = null, logLevel = "warn";
        List<String> capabilities = new ArrayList<>();
        Limits limits = Limits.NONE;
        CommandLine line = new CommandLine(args);
        while (line.next()) {
            switch (line.option()) {
                case "--help", "-h" -> help = true;
                case "--network" -> network = true;
                case "--listen" -> listen = Path.of(line.value());
                case "--build-directory" -> buildDirectory = Path.of(line.value());
                case "--root" -> root = root(line.value());
                case "--seccomp" -> seccompDefault = CommandLine.seccomp(line.value());
                case "--concurrency" -> concurrency = concurrency(line.value());
                case "--bwrap" -> bwrap = line.value();
                case "--log-level" -> logLevel = CommandLine.logLevel(line.value());
                case "--cap-add" -> capabilities.add(capability(line.value()));
                case "--limits" -> limits = limits(line.value());
                default -> throw line.unknown();
            }
        }
        if (!help && listen == null) throw new IllegalArgumentException("--listen PATH is required");
        if (!help && buildDirectory == null) throw new IllegalArgumentException("--build-directory DIR is required");
        return new RunnerOptions(help, listen, buildDirectory, root, network, seccompDefault, concurrency, bwrap, logLevel,
                List.copyOf(capabilities), limits);
    }

    /** {@code memoryBytes=67108864,pids=256,cpus=1.5}: the names and meanings of sandbox/run's limits. */
    static Limits limits(String value) {
        java.util.Map<String, String> named = new java.util.HashMap<>();
        for (String pair : value.split(",", -1)) {
            int equals = pair.indexOf('=');
            String name = equals > 0 ? pair.substring(0, equals) : pair;
            if (equals <= 0 || !List.of("memoryBytes", "pids", "cpuMs", "cpus", "fileSizeBytes", "openFiles").contains(name)
                    || named.put(name, pair.substring(equals + 1)) != null) {
                throw new IllegalArgumentException("--limits takes NAME=N,... with each of memoryBytes, pids, cpuMs, cpus,"
                        + " fileSizeBytes, openFiles at most once, not " + value);
            }
        }
        Limits limits;
        try {
            String cpusText = named.get("cpus"); // a decimal, as JSON writes one (Double.valueOf also takes 2d, 0x1p3, NaN)
            if (cpusText != null && !cpusText.matches("[0-9]+(\\.[0-9]+)?")) throw new NumberFormatException(cpusText);
            Double cpus = cpusText != null ? Double.valueOf(cpusText) : null;
            limits = new Limits(whole(named, "memoryBytes"), whole(named, "pids"), whole(named, "cpuMs"), cpus,
                    whole(named, "fileSizeBytes"), whole(named, "openFiles"));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--limits: every value must be a number (cpus may have a fraction), not " + value);
        }
        String wrong = limits.outOfRange(); // sandbox/run's ranges: a limit it refuses is refused here, at the start
        if (wrong != null) throw new IllegalArgumentException("--limits: " + wrong);
        return limits;
    }

    private static Long whole(java.util.Map<String, String> named, String name) {
        return named.containsKey(name) ? Long.valueOf(named.get(name)) : null;
    }

    private static Actions.Root root(String value) {
        return switch (value) {
            case "input" -> Actions.Root.INPUT;
            case "host" -> Actions.Root.HOST;
            default -> throw new IllegalArgumentException("--root takes input or host, not " + value);
        };
    }

    private static int concurrency(String value) {
        try {
            int n = Integer.parseInt(value);
            if (n >= 1 && n <= 4096) return n;
        } catch (NumberFormatException ignored) {
            // reported below
        }
        throw new IllegalArgumentException("--concurrency takes a number from 1 to 4096, not " + value);
    }

    private static String capability(String name) {
        if (!Capabilities.isName(name)) throw new IllegalArgumentException("--cap-add takes a capability name such as CAP_CHOWN, not " + name);
        return name;
    }
}
