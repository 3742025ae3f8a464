package dev.bwrapd.cgroup;

import dev.bwrapd.process.Libc;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/** Reading and writing cgroup interface files: small text, one write(2) per value. */
final class CgroupFiles {
    private CgroupFiles() {}

    /**
     * The file's text, or null if it cannot be read (absent on this kernel, cgroup gone). Read
     * with plain system calls: every run reads a few files that this host's cgroups do not have,
     * and the JDK's reader answers each of those with an exception.
     */
    static String read(Path file) {
        int fd = Libc.openat(Libc.AT_FDCWD, file.toString(), Libc.O_RDONLY);
        if (fd < 0) return null;
        try {
            byte[] buffer = new byte[512]; // cpu.stat, the largest read every run, is about 200 bytes
            int length = 0;
            while (true) {
                if (length == buffer.length) buffer = Arrays.copyOf(buffer, buffer.length * 2);
                int n = Libc.read(fd, buffer, length, buffer.length - length);
                if (n == 0) return new String(buffer, 0, length, StandardCharsets.US_ASCII);
                length += n;
            }
        } catch (Libc.Error e) {
            return null;
        } finally {
            Libc.close(fd);
        }
    }

    /**
     * Writes {@code value} in one write(2), as the kernel wants (each write to cgroup.procs moves
     * one process). Plain system calls: a run writes here two to four times, and the JDK's
     * channel costs an object graph and a check of the file each time.
     */
    static void write(Path file, String value) throws IOException {
        byte[] bytes = value.getBytes(StandardCharsets.US_ASCII);
        int fd = Libc.open(file.toString(), Libc.O_WRONLY, 0);
        try {
            int n = Libc.write(fd, bytes, 0, bytes.length);
            if (n != bytes.length) throw new IOException("write " + file + ": " + n + " of " + bytes.length + " bytes taken");
        } catch (Libc.Error e) {
            throw new Libc.Error("write " + file, e.errno); // the kernel's answer (EBUSY, EINVAL...), with the file
        } finally {
            Libc.close(fd);
        }
    }

    /** "key value" lines (cpu.stat, memory.events, pids.events, cgroup.events) as numbers; -1 for unparsable values. */
    static Map<String, Long> keyed(Path file) {
        Map<String, Long> out = new HashMap<>();
        String text = read(file);
        if (text == null) return out;
        for (int from = 0, to; from < text.length(); from = to + 1) {
            to = text.indexOf('\n', from);
            if (to < 0) to = text.length();
            String line = text.substring(from, to).strip();
            int space = line.indexOf(' '); // the kernel writes one space between key and value
            if (space < 0) continue;
            String value = line.substring(space + 1).strip();
            if (value.indexOf(' ') >= 0) continue; // not a "key value" line
            String key = line.substring(0, space);
            try {
                out.put(key, Long.parseLong(value));
            } catch (NumberFormatException e) {
                out.put(key, -1L);
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
