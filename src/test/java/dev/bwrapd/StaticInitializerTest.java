package dev.bwrapd;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The native image runs every application class's static initializer while it is built (Quarkus
 * initializes them at build time): one that starts a thread or a process would do so inside the
 * builder, and the binary would start without it. So: initializing every class of the
 * application, freshly loaded, starts no thread and no child process. (Such things are made in
 * Main.)
 */
class StaticInitializerTest {
    private static final Path CLASSES = Path.of("target/classes");

    @Test
    void initializingEveryClassStartsNoThreadAndNoProcess() throws Exception {
        List<String> names;
        try (Stream<Path> files = Files.walk(CLASSES)) {
            names = files.map(CLASSES::relativize).map(Path::toString).filter(name -> name.endsWith(".class"))
                    .map(name -> name.substring(0, name.length() - ".class".length()).replace('/', '.'))
                    .filter(name -> name.startsWith("dev.bwrapd."))
                    .sorted().toList();
        }
        assertTrue(names.size() > 20, "found the application's classes: " + names);
        Set<Thread> threadsBefore = new HashSet<>(Thread.getAllStackTraces().keySet());
        long childrenBefore = ProcessHandle.current().children().count();
        ClassLoader fresh = new ApplicationFirst(getClass().getClassLoader());
        for (String name : names) Class.forName(name, true, fresh);

        List<String> started = new ArrayList<>();
        for (Thread thread : Thread.getAllStackTraces().keySet()) {
            if (!threadsBefore.contains(thread)) started.add(thread.getName());
        }
        assertEquals(List.of(), started, "threads started by static initializers");
        assertEquals(childrenBefore, ProcessHandle.current().children().count(), "processes started by static initializers");
    }

    /** Loads the application's own classes anew (so their static initializers run again), the rest from the parent. */
    private static final class ApplicationFirst extends ClassLoader {
        ApplicationFirst(ClassLoader parent) {
            super(parent);
        }

        @Override
        protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
            synchronized (getClassLoadingLock(name)) {
                Class<?> loaded = findLoadedClass(name);
                if (loaded == null && name.startsWith("dev.bwrapd.")) {
                    Path file = CLASSES.resolve(name.replace('.', '/') + ".class");
                    if (Files.exists(file)) {
                        try (InputStream in = Files.newInputStream(file)) {
                            byte[] bytes = in.readAllBytes();
                            loaded = defineClass(name, bytes, 0, bytes.length);
                        } catch (IOException e) {
                            throw new ClassNotFoundException(name, e);
                        }
                    }
                }
                if (loaded == null) return super.loadClass(name, resolve);
                if (resolve) resolveClass(loaded);
                return loaded;
            }
        }
    }
}
