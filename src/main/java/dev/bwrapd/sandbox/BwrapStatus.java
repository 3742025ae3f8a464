package dev.bwrapd.sandbox;

/** Reads bwrap's --json-status-fd lines, flat objects of numbers such as {@code { "child-pid": 123 }}. */
final class BwrapStatus {
    private BwrapStatus() {}

    /** The non-negative whole number under {@code "key"} in {@code line}, or -1 if it has none. */
    static long number(String line, String key) {
        int at = line.indexOf('"' + key + '"');
        if (at < 0) return -1;
        int i = at + key.length() + 2;
        while (i < line.length() && (line.charAt(i) == ' ' || line.charAt(i) == '\t')) i++;
        if (i >= line.length() || line.charAt(i) != ':') return -1;
        i++;
        while (i < line.length() && (line.charAt(i) == ' ' || line.charAt(i) == '\t')) i++;
        long value = 0;
        int digits = 0;
        while (i < line.length() && Character.isDigit(line.charAt(i)) && digits < 18) {
            value = value * 10 + (line.charAt(i++) - '0');
            digits++;
        }
        return digits == 0 ? -1 : value;
    }
}
