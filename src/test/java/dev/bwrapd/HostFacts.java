package dev.bwrapd;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * What this host has, asked of the host itself: a test decides from these whether the helper must
 * have a capability, so that a helper that lost one fails instead of skipping.
 */
public final class HostFacts {
    private HostFacts() {}

    /** Whether the dynamic linker knows libseccomp.so.2 (ldconfig's cache), which the helper loads at run time. */
    public static boolean hasLibseccomp() throws Exception {
        for (String ldconfig : List.of("/sbin/ldconfig", "/usr/sbin/ldconfig")) {
            if (!Files.isExecutable(Path.of(ldconfig))) continue;
            Process p = new ProcessBuilder(ldconfig, "-p").redirectErrorStream(true).start();
            String cache = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            p.waitFor();
            return cache.contains("libseccomp.so.2 ");
        }
        return false;
    }
}
