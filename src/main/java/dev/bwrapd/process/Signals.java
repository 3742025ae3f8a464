package dev.bwrapd.process;

import java.util.Map;
import java.util.Optional;

/** Linux signal numbers by name, for the protocol's signal names and bwrap's 128+N exit codes. */
public final class Signals {
    private Signals() {}

    public static final int SIGHUP = 1, SIGINT = 2, SIGQUIT = 3, SIGKILL = 9, SIGUSR1 = 10, SIGUSR2 = 12,
            SIGTERM = 15, SIGCONT = 18, SIGSTOP = 19;

    /** The signals a client may send (docs/protocol.md, Controlling a running sandbox). */
    public static final Map<String, Integer> SENDABLE = Map.of(
            "SIGSTOP", SIGSTOP, "SIGCONT", SIGCONT, "SIGTERM", SIGTERM, "SIGKILL", SIGKILL, "SIGINT", SIGINT,
            "SIGHUP", SIGHUP, "SIGUSR1", SIGUSR1, "SIGUSR2", SIGUSR2, "SIGQUIT", SIGQUIT);

    private static final String[] NAMES = {null, "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT",
            "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM",
            "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU",
            "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS"};

    /** The name of signal {@code number}: SIGKILL, or SIGRTMIN+3 style for real-time signals. */
    public static String name(int number) {
        if (number > 0 && number < NAMES.length) return NAMES[number];
        if (number >= 34 && number <= 64) return "SIGRTMIN+" + (number - 34);
        return "SIG" + number;
    }

    /** bwrap reports a command killed by signal N as exit code 128+N. */
    public static Optional<String> fromExitCode(int exitCode) {
        int signal = exitCode - 128;
        return signal >= 1 && signal <= 64 ? Optional.of(name(signal)) : Optional.empty();
    }
}
