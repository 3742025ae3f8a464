package dev.bwrapd.sandbox;

import dev.bwrapd.process.Libc;

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
    byte[] stdinData;
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

    /** Writes the request's stdin bytes on a thread of their own (a command may not read them all). */
    void startStdinWriter() {
        if (parentStdin < 0) return;
        int fd = parentStdin;
        parentStdin = -1;
        owned.remove(Integer.valueOf(fd));
        byte[] data = stdinData;
        stdinWriter = Thread.ofPlatform().daemon().name("bwrapd-stdin").start(() -> {
            try {
                Libc.writeFully(fd, data);
            } catch (Libc.Error e) {
                // the command closed its stdin early: not an error of the run
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
