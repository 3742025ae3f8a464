package dev.bwrapd.sandbox;

import dev.bwrapd.process.Libc;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;

/**
 * The descriptors of one run: the ends the command gets (closed here once bwrap has them), the
 * ends the server reads or writes, and the thread feeding stdin. Whatever happens, closeAll()
 * leaves none open.
 */
final class Fds {
    int childStdin = -1, childStdout = -1, childStderr = -1;
    int parentStdin = -1, parentStdout = -1, parentStderr = -1;
    private java.io.InputStream stdinData;
    private Thread stdinWriter;
    private final List<Integer> owned = new ArrayList<>();

    int track(int fd) {
        owned.add(fd);
        return fd;
    }

    /** A close-on-exec pipe whose two ends are closed by closeAll unless handed over. */
    int[] pipe() throws Libc.Error {
        int[] pipe = Libc.pipe();
        track(pipe[0]);
        track(pipe[1]);
        return pipe;
    }

    void closeChildEnds() {
        for (int fd : new int[] {childStdin, childStdout, childStderr}) close(fd);
        childStdin = childStdout = childStderr = -1;
    }

    /** The command's stdin is a pipe that gets these bytes. */
    void stdinFrom(java.io.InputStream data) throws Libc.Error {
        int[] pipe = pipe();
        childStdin = pipe[0];
        parentStdin = pipe[1];
        stdinData = data;
    }

    /** Writes the request's stdin bytes on a thread of their own (a command may not read them all). */
    void startStdinWriter() {
        if (parentStdin < 0) return;
        int fd = parentStdin;
        parentStdin = -1;
        owned.remove(Integer.valueOf(fd));
        java.io.InputStream data = stdinData;
        stdinData = null;
        stdinWriter = Thread.ofPlatform().daemon().name("bwrapd-stdin").start(() -> {
            try (Arena arena = Arena.ofConfined(); data) {
                byte[] chunk = new byte[64 * 1024];
                java.lang.foreign.MemorySegment buffer = arena.allocate(chunk.length);
                int n;
                while ((n = data.read(chunk, 0, chunk.length)) > 0) {
                    java.lang.foreign.MemorySegment.copy(chunk, 0, buffer, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, n);
                    Libc.writeFully(fd, buffer.asSlice(0, n));
                }
            } catch (Libc.Error e) {
                // the command closed its stdin early: not an error of the run
            } catch (java.io.IOException e) {
                // checked before the run started; cannot happen
            } finally {
                Libc.close(fd);
            }
        });
    }

    void joinStdinWriter() throws InterruptedException {
        if (stdinWriter != null) stdinWriter.join();
    }

    /** Forgets an fd that another owner (an OutputReader) now closes. */
    void handOver(int fd) {
        owned.remove(Integer.valueOf(fd));
    }

    void close(int fd) {
        if (fd < 0) return;
        if (owned.remove(Integer.valueOf(fd))) Libc.close(fd);
    }

    void closeAll() {
        for (int fd : owned) Libc.close(fd);
        owned.clear();
    }
}
