package dev.bwrapd.sandbox;

import dev.bwrapd.cleanup.PrivateDirectory;
import org.jboss.logging.Logger;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.List;

/**
 * What probing bwrap found (three bwrap runs, most of a native helper's start-up), kept between
 * helpers so that {@code initialize} need not wait for them again. A result is reused only for
 * the same key: the very bwrap file (device, inode, size, modification and change times), the
 * same user and user namespace, the same boot, and the same kernel settings for user namespaces —
 * any of them different, and bwrap is probed again (and the result kept under the new key).
 *
 * <p>Kept in {@code $XDG_CACHE_HOME/bwrapd} (else {@code $HOME/.cache/bwrapd}), a directory of
 * this user only (see {@link PrivateDirectory}); a file there is read only if it is a regular
 * file, not a link, and its first line is the key, exactly. Written to a file of its own, then
 * renamed into place, so a reader never sees half of it.
 */
public final class ProbeCache {
    private static final Logger LOG = Logger.getLogger(ProbeCache.class);
    /** Kernel settings that decide whether bwrap can make a user namespace. */
    private static final List<String> USERNS_SETTINGS = List.of("/proc/sys/user/max_user_namespaces",
            "/proc/sys/kernel/unprivileged_userns_clone", "/proc/sys/kernel/apparmor_restrict_unprivileged_userns");

    /** The probed facts: what only running bwrap tells. */
    public record Probed(String version, boolean userNamespaces, boolean dieWithParent, boolean jsonStatusFd) {}

    private final Path dir;
    private final int uid;
    private final String bwrapdVersion;

    private ProbeCache(Path dir, int uid, String bwrapdVersion) {
        this.dir = dir;
        this.uid = uid;
        this.bwrapdVersion = bwrapdVersion;
    }

    /** This user's cache, or null when there is no private directory for it. Reads the environment: call from Main. */
    public static ProbeCache open(String xdgCacheHome, String home, int uid, String bwrapdVersion) {
        Path base = xdgCacheHome != null && xdgCacheHome.startsWith("/") ? Path.of(xdgCacheHome)
                : home != null && home.startsWith("/") ? Path.of(home, ".cache") : null;
        if (base == null || uid < 0) return null;
        try {
            return new ProbeCache(PrivateDirectory.open(base.resolve("bwrapd"), uid), uid, bwrapdVersion);
        } catch (IOException | RuntimeException e) {
            LOG.debugf("no probe cache: %s", e.getMessage());
            return null;
        }
    }

    /** Everything the probe's result depends on, for {@code bwrap}; null if it cannot be known (then do not cache). */
    String key(String bwrap) {
        try {
            Path file = Path.of(bwrap);
            StringBuilder key = new StringBuilder("bwrapd ").append(bwrapdVersion).append(" probe 1");
            key.append("|bwrap ").append(file.toRealPath());
            for (String attribute : new String[] {"dev", "ino", "size", "lastModifiedTime", "ctime"}) {
                key.append(' ').append(Files.getAttribute(file, "unix:" + attribute));
            }
            key.append("|uid ").append(uid);
            key.append("|userns ").append(Files.readSymbolicLink(Path.of("/proc/self/ns/user")));
            key.append("|boot ").append(Files.readString(Path.of("/proc/sys/kernel/random/boot_id")).strip());
            for (String setting : USERNS_SETTINGS) {
                Path p = Path.of(setting);
                if (Files.exists(p)) key.append('|').append(p.getFileName()).append(' ').append(Files.readString(p).strip());
            }
            return key.toString().replace('\n', ' ');
        } catch (IOException | RuntimeException e) {
            LOG.debugf("bwrap's probe is not cached: %s", e.getMessage());
            return null;
        }
    }

    /**
     * The result kept under {@code key}, or null. Only a result where every option worked is ever
     * kept, and only such a one is taken: the directory is the user's, so a sandbox given it can
     * write anything there, and a kept "false" would take --die-with-parent and the held init away
     * from every later sandbox (a review did so, and its sandbox outlived a killed helper). A kept
     * "true" that is false makes runs fail, never unsafe.
     */
    Probed read(String key) {
        Path file = file(key);
        try {
            if (!Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)) return null;
            List<String> lines = List.of(new String(Files.readAllBytes(file), StandardCharsets.UTF_8).split("\n", -1));
            if (lines.size() != 6 || !lines.get(0).equals(key) || !lines.get(5).isEmpty()) return null;
            Probed kept = new Probed(lines.get(1).isEmpty() ? null : lines.get(1), flag(lines.get(2)), flag(lines.get(3)), flag(lines.get(4)));
            return kept.userNamespaces() && kept.dieWithParent() && kept.jsonStatusFd() ? kept : null;
        } catch (IOException | IllegalArgumentException e) {
            return null;
        }
    }

    /** Keeps {@code probed} under {@code key}, replacing what was there. */
    void write(String key, Probed probed) {
        String text = key + "\n" + (probed.version() == null ? "" : probed.version().replace('\n', ' ')) + "\n"
                + probed.userNamespaces() + "\n" + probed.dieWithParent() + "\n" + probed.jsonStatusFd() + "\n";
        Path file = file(key);
        Path temporary = dir.resolve(file.getFileName() + "." + ProcessHandle.current().pid() + ".new");
        try {
            Files.write(temporary, text.getBytes(StandardCharsets.UTF_8), StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
            Files.move(temporary, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            LOG.debugf("bwrap's probe not kept: %s", e.getMessage());
            try {
                Files.deleteIfExists(temporary);
            } catch (IOException ignored) {
                // nothing more to do
            }
        }
    }

    /** The key's slot (a 64-bit FNV-1a hash of it: a collision only costs a probe, the key itself is compared). */
    private Path file(String key) {
        long hash = 0xcbf29ce484222325L;
        for (byte b : key.getBytes(StandardCharsets.UTF_8)) hash = (hash ^ (b & 0xff)) * 0x100000001b3L;
        return dir.resolve("probe-" + Long.toHexString(hash));
    }

    private static boolean flag(String text) {
        return switch (text) {
            case "true" -> true;
            case "false" -> false;
            default -> throw new IllegalArgumentException("not a flag: " + text);
        };
    }
}
