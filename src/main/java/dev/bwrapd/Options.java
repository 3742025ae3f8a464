package dev.bwrapd;

import dev.bwrapd.cli.CommandLine;
import dev.bwrapd.jsonrpc.Framing;

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
        CommandLine line = new CommandLine(args);
        while (line.next()) {
            switch (line.option()) {
                case "--help", "-h" -> help = true;
                case "--version" -> version = true;
                case "--bwrap" -> bwrap = line.value();
                case "--framing" -> framing = Framing.parse(line.value());
                case "--log-level" -> logLevel = CommandLine.logLevel(line.value());
                case "--max-message-bytes" -> maxMessageBytes = size(line.value());
                case "--max-memory" -> maxMemory = memory(line.value());
                case "--cgroup-parent" -> cgroupParent = absolute(line.value(), line.option());
                case "--seccomp" -> seccompDefault = CommandLine.seccomp(line.value());
                default -> throw line.unknown();
            }
        }
        return new Options(help, version, bwrap, framing, logLevel, maxMessageBytes, maxMemory, cgroupParent, seccompDefault);
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

    private static String absolute(String path, String option) {
        if (!path.startsWith("/")) throw new IllegalArgumentException(option + " takes an absolute path, not " + path);
        return path;
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
