package dev.bwrapd.sandbox;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class HostProbeTest {
    /**
     * A relative or empty PATH entry names the working directory, where the helper must never pick up
     * bwrap (as root least of all): only absolute entries are looked in, then /usr/bin and /bin.
     */
    @Test
    void bwrapIsLookedUpInAbsolutePathEntriesOnly(@TempDir Path dir) throws Exception {
        Path bin = Files.createDirectories(dir.resolve("bin"));
        Path bwrap = Files.writeString(bin.resolve("bwrap-probe-test"), "#!/bin/sh\n");
        Files.setPosixFilePermissions(bwrap, PosixFilePermissions.fromString("rwxr-xr-x"));
        List<String> tried = new ArrayList<>();
        assertEquals(bwrap.toString(), HostProbe.findOnPath("bwrap-probe-test", tried, ".::bin:relative/dir:" + bin));
        assertEquals(List.of(bwrap.toString()), tried, "only the absolute entry was looked in");
        tried.clear();
        assertEquals(null, HostProbe.findOnPath("bwrap-probe-test", tried, "."));
        assertTrue(tried.stream().allMatch(p -> p.startsWith("/usr/bin/") || p.startsWith("/bin/")), tried.toString());
    }
}
