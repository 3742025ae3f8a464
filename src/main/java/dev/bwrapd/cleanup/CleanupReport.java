package dev.bwrapd.cleanup;

import java.util.List;

/**
 * What cleanup removed from a root, and what it could not. {@code deferred} is true when other
 * runs still use the same root, or (nested roots) some of its mount points: the last of them
 * cleans up for all (a bwrapd extension).
 */
public record CleanupReport(boolean ok, List<String> removed, List<Failure> failed, boolean deferred) {

    public record Failure(String path, String error) {}

    public static final CleanupReport NOTHING = new CleanupReport(true, List.of(), List.of(), false);
    public static final CleanupReport DEFERRED = new CleanupReport(true, List.of(), List.of(), true);
}
