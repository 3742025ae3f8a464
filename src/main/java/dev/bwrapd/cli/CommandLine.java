package dev.bwrapd.cli;

import java.util.Locale;

/**
 * Reads a command line option by option, {@code --name value} or {@code --name=value}: the one
 * reading shared by {@code bwrapd} and {@code bwrapd buildbarn-runner}, with the values both take.
 */
public final class CommandLine {
    private final String[] args;
    private int index = -1;
    private String option;
    private String inlineValue;

    public CommandLine(String[] args) {
        this.args = args.clone();
    }

    /** Moves to the next option; false at the end. */
    public boolean next() {
        if (++index >= args.length) return false;
        String arg = args[index];
        int equals = arg.indexOf('=');
        boolean inline = arg.startsWith("--") && equals > 0;
        option = inline ? arg.substring(0, equals) : arg;
        inlineValue = inline ? arg.substring(equals + 1) : null;
        return true;
    }

    /** The current option's name, without an {@code =value}. */
    public String option() {
        return option;
    }

    /** The current option's value: after its '=', else the next argument. */
    public String value() {
        if (inlineValue != null) return inlineValue;
        if (++index >= args.length) throw new IllegalArgumentException(option + " needs a value");
        return args[index];
    }

    public IllegalArgumentException unknown() {
        return new IllegalArgumentException("unknown option: " + args[index]);
    }

    /** {@code --seccomp default|none}: whether runs get the default filter. */
    public static boolean seccomp(String value) {
        return switch (value) {
            case "default" -> true;
            case "none" -> false;
            default -> throw new IllegalArgumentException("--seccomp takes default or none, not " + value);
        };
    }

    /** {@code --log-level}: error, warn, info or debug, in any case. */
    public static String logLevel(String level) {
        String lower = level.toLowerCase(Locale.ROOT);
        return switch (lower) {
            case "error", "warn", "info", "debug" -> lower;
            default -> throw new IllegalArgumentException("--log-level takes error, warn, info or debug, not " + level);
        };
    }
}
