package dev.bwrapd.sandbox;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

/** The probe cache on real files: reused only for the same bwrap, kept only in a private directory, never through a link. */
class ProbeCacheTest {
    private static final ProbeCache.Probed WORKS = new ProbeCache.Probed("0.8.0", true, true, true);

    @TempDir
    Path home;

    private static int uid() throws Exception {
        return (int) Files.getAttribute(Path.of("/proc/self"), "unix:uid");
    }

    private Path fakeBwrap() throws Exception {
        Path bwrap = home.resolve("bwrap");
        Files.writeString(bwrap, "#!/bin/sh\n");
        return bwrap;
    }

    @Test
    void aResultIsReusedForTheSameBwrapOnly() throws Exception {
        ProbeCache cache = ProbeCache.open(home.resolve("cache").toString(), null, uid(), "1");
        assertNotNull(cache);
        Path bwrap = fakeBwrap();
        String key = cache.key(bwrap.toString());
        assertNull(cache.read(key));
        cache.write(key, WORKS);
        assertEquals(WORKS, cache.read(key));
        assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(home.resolve("cache/bwrapd"))));

        Files.setLastModifiedTime(bwrap, FileTime.fromMillis(Files.getLastModifiedTime(bwrap).toMillis() - 60_000));
        String changed = cache.key(bwrap.toString());
        assertNotEquals(key, changed, "another modification time is another bwrap");
        assertNull(cache.read(changed));
        assertNotEquals(key, ProbeCache.open(home.resolve("cache").toString(), null, uid(), "2").key(bwrap.toString()),
                "another bwrapd version probes again");
    }

    @Test
    void aLinkOrAForeignFileIsNotRead() throws Exception {
        ProbeCache cache = ProbeCache.open(home.resolve("cache").toString(), null, uid(), "1");
        String key = cache.key(fakeBwrap().toString());
        cache.write(key, WORKS);
        Path dir = home.resolve("cache/bwrapd");
        Path file;
        try (var files = Files.list(dir)) {
            file = files.findFirst().orElseThrow();
        }
        Path elsewhere = home.resolve("elsewhere");
        Files.move(file, elsewhere);
        Files.createSymbolicLink(file, elsewhere);
        assertNull(cache.read(key), "a link is not followed");
        Files.delete(file);
        Files.writeString(file, "another key\n0.8.0\ntrue\ntrue\ntrue\n");
        assertNull(cache.read(key), "a file of another key is not this result");
        Files.writeString(file, key + "\n0.8.0\nyes\ntrue\ntrue\n");
        assertNull(cache.read(key), "a malformed file is no result");
        // Review finding: a sandbox given the user's cache directory wrote "false" there, and every later helper's
        // sandboxes went without --die-with-parent and the held init. Only a result where everything worked is taken.
        for (String flags : new String[] {"false\ntrue\ntrue", "true\nfalse\ntrue", "true\ntrue\nfalse"}) {
            Files.writeString(file, key + "\n0.8.0\n" + flags + "\n");
            assertNull(cache.read(key), "a kept false is probed again: " + flags);
        }
    }

    @Test
    void aDirectoryOthersCanWriteIsRefused() throws Exception {
        Path dir = Files.createDirectories(home.resolve("open/bwrapd"));
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxrwxrwx"));
        assertNull(ProbeCache.open(home.resolve("open").toString(), null, uid(), "1"));
        Path target = Files.createDirectories(home.resolve("target"));
        Files.createDirectories(home.resolve("linked"));
        Files.createSymbolicLink(home.resolve("linked/bwrapd"), target);
        assertNull(ProbeCache.open(home.resolve("linked").toString(), null, uid(), "1"), "a link is not the cache");
        assertNull(ProbeCache.open(null, null, uid(), "1"), "no XDG_CACHE_HOME and no HOME: no cache");
    }
}
