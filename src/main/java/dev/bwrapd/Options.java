package dev.bwrapd;

import dev.bwrapd.jsonrpc.Framing;

import java.util.Locale;

/** The command line. */
record Options(boolean help, boolean version, String bwrap, Framing framing, String logLevel, long maxMessageBytes, Long maxMemory,
               String cgroupParent, boolean seccompDefault) {

    static final long DEFAULT_MAX_MESSAGE_BYTES = 16L << 20;

    static final String USAGE = """
            Usage: bwrapd [OPTIONS]
                   bwrapd buildbarn-runner --listen PATH --build-directory DIR [OPTIONS]  (--help there)

            Runs commands in bubblewrap sandboxes for a client that speaks JSON-RPC 2.0 on this
            program's stdin and stdout (newline-delimited JSON or LSP Content-Length framing,
            detected from the first byte). Logs go to stderr. See README.md and rpc.discover.

            Options:
              --bwrap PATH               the bwrap to run (default: bwrap on PATH)
              --framing ndjson|lsp       force a framing instead of detecting it
              --max-message-bytes N      largest message accepted (default 16777216)
              --max-memory BYTES         memory for what clients send and get (requests, stdin,
                                         captured output, notifications; default: half the heap)
              --cgroup-parent PATH       a writable cgroup v2 directory to make the sandboxes'
                                         cgroups in (default: bwrapd's own cgroup)
              --seccomp default|none     the system-call filter of runs that name none (default none)
              --log-level LEVEL          error, warn, info or debug (default warn)
              --version                  print the version and exit
              --help                     print this help and exit
            """;

    static Options parse(String... args) {
        boolean help = false, version = false;
        String bwrap = null, logLevel = "warn", cgroupParent = null;
        Framing framing = null;
        long maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES;
        Long maxMemory = null;
        boolean seccompDefault = false;
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            String value = null;
            int equals = arg.indexOf('=');
            if (arg.startsWith("--") && equals > 0) {
                value = arg.substring(equals + 1);
                arg = arg.substring(0, equals);
            }
            switch (arg) {
                case "--help", "-h" -> help = true;
                case "--version" -> version = true;
                case "--bwrap" -> bwrap = value != null ? value : next(args, ++i, arg);
                case "--framing" -> framing = Framing.parse(value != null ? value : next(args, ++i, arg));
                case "--log-level" -> logLevel = level(value != null ? value : next(args, ++i, arg));
                case "--max-message-bytes" -> maxMessageBytes = size(value != null ? value : next(args, ++i, arg));
                case "--max-memory" -> maxMemory = memory(value != null ? value : next(args, ++i, arg));
                case "--cgroup-parent" -> cgroupParent = absolute(value != null ? value : next(args, ++i, arg), arg);
                case "--seccomp" -> seccompDefault = seccomp(value != null ? value : next(args, ++i, arg));
                default -> throw new IllegalArgumentException("unknown option: " + args[i]);
            }
        }
        return new Options(help, version, bwrap, framing, logLevel, maxMessageBytes, maxMemory, cgroupParent, seccompDefault);
    }

    private static boolean seccomp(String value) {
        return switch (value) {
            case "default" -> true;
            case "none" -> false;
            default -> throw new IllegalArgumentException("--seccomp takes default or none, not " + value);
        };
    }

    private static long memory(String value) {
        try {
            long n = Long.parseLong(value);
            if (n >= MIN_MEMORY) return n;
        } catch (NumberFormatException ignored) {
            // reported below
        }
        throw new IllegalArgumentException("--max-memory takes a number of bytes of at least " + MIN_MEMORY + ", not " + value);
    }

    /** Enough for one small request and its answer. */
    static final long MIN_MEMORY = 1L << 20;

    private static String next(String[] args, int i, String option) {
        if (i >= args.length) throw new IllegalArgumentException(option + " needs a value");
        return args[i];
    }

    private static String absolute(String path, String option) {
        if (!path.startsWith("/")) throw new IllegalArgumentException(option + " takes an absolute path, not " + path);
        return path;
    }

    private static String level(String level) {
        String lower = level.toLowerCase(Locale.ROOT);
        return switch (lower) {
            case "error", "warn", "info", "debug" -> lower;
            default -> throw new IllegalArgumentException("--log-level takes error, warn, info or debug, not " + level);
        };
    }

    private static long size(String value) {
        try {
            long n = Long.parseLong(value);
            if (n >= 1024 && n <= Integer.MAX_VALUE - 16) return n;
        } catch (NumberFormatException ignored) {
            // reported below
        }
        throw new IllegalArgumentException("--max-message-bytes takes a number from 1024 to " + (Integer.MAX_VALUE - 16) + ", not " + value);
    }
}
