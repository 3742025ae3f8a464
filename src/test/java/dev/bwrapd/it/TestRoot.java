package dev.bwrapd.it;

import java.io.IOException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A real root filesystem for sandbox tests: Debian's static busybox with its applet links,
 * built by tools/make-rootfs.sh into a fresh temporary directory, removed on close.
 */
public final class TestRoot implements AutoCloseable {
    private final Path dir;

    private TestRoot(Path dir) {
        this.dir = dir;
    }

    public static TestRoot create() throws IOException, InterruptedException {
        Path dir = Files.createTempDirectory(Path.of("/tmp"), "bwrapd-root-",
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwxr-xr-x")));
        Process p = new ProcessBuilder("sh", BwrapdProcess.home().resolve("tools/make-rootfs.sh").toString(), dir.toString())
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IOException("make-rootfs.sh failed: " + out);
        }
        return new TestRoot(dir);
    }

    public Path path() {
        return dir;
    }

    @Override
    public String toString() {
        return dir.toString();
    }

    /** Every path in the root with its type and size (links with their target), for before/after comparison. */
    public TreeMap<String, String> snapshot() throws IOException {
        return snapshot(dir);
    }

    /** The same for any host directory: every path under it, as "/relative/path" -> type, never following links. */
    public static TreeMap<String, String> snapshot(Path dir) throws IOException {
        TreeMap<String, String> tree = new TreeMap<>();
        try (Stream<Path> paths = Files.walk(dir)) {
            for (Path p : (Iterable<Path>) paths::iterator) {
                String rel = "/" + dir.relativize(p);
                BasicFileAttributes a = Files.readAttributes(p, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
                String kind = a.isSymbolicLink() ? "link->" + Files.readSymbolicLink(p)
                        : a.isDirectory() ? "dir" : a.isRegularFile() ? "file:" + a.size() : "other";
                tree.put(rel, kind);
            }
        }
        return tree;
    }

    @Override
    public void close() throws IOException {
        deleteTree(dir);
    }

    /** Deletes a tree without following links. */
    public static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) return;
        Files.walkFileTree(dir, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                Files.delete(file);
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
                Files.delete(d);
                return FileVisitResult.CONTINUE;
            }
        });
    }
}
