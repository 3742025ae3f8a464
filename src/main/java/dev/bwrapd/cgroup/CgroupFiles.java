package dev.bwrapd.cgroup;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Map;

/** Reading and writing cgroup interface files: small text, one write(2) per value. */
final class CgroupFiles {
    private CgroupFiles() {}

    /** The file's text, or null if it cannot be read (absent on this kernel, cgroup gone). */
    static String read(Path file) {
        try {
            return Files.readString(file);
        } catch (IOException e) {
            return null;
        }
    }

    /** Writes {@code value} in one write(2), as the kernel wants (each write to cgroup.procs moves one process). */
    static void write(Path file, String value) throws IOException {
        Files.write(file, value.getBytes(StandardCharsets.US_ASCII), StandardOpenOption.WRITE);
    }

    /** "key value" lines (cpu.stat, memory.events, pids.events, cgroup.events) as numbers; -1 for unparsable values. */
    static Map<String, Long> keyed(Path file) {
        Map<String, Long> out = new HashMap<>();
        String text = read(file);
        if (text == null) return out;
        for (String line : text.split("\n")) {
            String[] parts = line.trim().split("\\s+");
            if (parts.length != 2) continue;
            try {
                out.put(parts[0], Long.parseLong(parts[1]));
            } catch (NumberFormatException e) {
                out.put(parts[0], -1L);
            }
        }
        return out;
    }

    /** A single number (memory.peak, memory.max_usage_in_bytes, cpuacct.usage_user), or -1. */
    static long number(Path file) {
        String text = read(file);
        if (text == null) return -1;
        try {
            return Long.parseLong(text.trim());
        } catch (NumberFormatException e) {
            return -1;
        }
    }
}
