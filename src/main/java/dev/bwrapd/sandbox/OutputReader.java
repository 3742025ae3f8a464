package dev.bwrapd.sandbox;

import dev.bwrapd.process.Libc;

import java.io.ByteArrayOutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.function.BiConsumer;

/**
 * Drains one pipe from the sandbox on a thread of its own until every writer has closed it:
 * into a {@link Capture}, or handing each chunk to a listener as it comes. It always keeps the
 * first few KiB, where bwrap writes its own message when it cannot set up the sandbox. Whatever
 * fails (capture, listener), the pipe is drained to its end: the command never loses its output
 * pipe because of bwrapd.
 */
final class OutputReader {
    private static final int CHUNK = 64 * 1024;
    private static final int HEAD = 4096;

    private final int fd;
    private final Capture capture;
    private final BiConsumer<byte[], Boolean> listener;
    private final ByteArrayOutputStream head = new ByteArrayOutputStream();
    /** Reader threads are reused: a thread per pipe per run costs more CPU than the run's own work. */
    private static final java.util.concurrent.ExecutorService READERS = java.util.concurrent.Executors.newCachedThreadPool(
            Thread.ofPlatform().daemon().name("bwrapd-output-", 0).factory());
    private final java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(1);

    /**
     * @param capture  receives every byte, or null (only the head is kept)
     * @param listener receives each chunk and whether it is text, or null
     */
    OutputReader(String name, int fd, Capture capture, BiConsumer<byte[], Boolean> listener) {
        this.fd = fd;
        this.capture = capture;
        this.listener = listener;
        READERS.execute(() -> {
            Thread.currentThread().setName(name);
            try {
                drain();
            } finally {
                if (capture != null) capture.finish();
                done.countDown();
            }
        });
    }

    private void drain() {
        byte[] pending = new byte[0]; // an incomplete UTF-8 sequence held back for the next chunk
        boolean listening = listener != null;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(CHUNK);
            while (true) {
                int n;
                try {
                    n = Libc.read(fd, buffer);
                } catch (Libc.Error e) {
                    if (capture != null) capture.fail("cannot read the output: " + e.getMessage());
                    break; // the pipe itself is broken: nothing more can come from it
                }
                if (n == 0) break;
                byte[] chunk = buffer.asSlice(0, n).toArray(ValueLayout.JAVA_BYTE);
                if (head.size() < HEAD) head.write(chunk, 0, Math.min(n, HEAD - head.size()));
                if (capture != null) capture.append(chunk, 0, n);
                if (listening) {
                    try {
                        pending = emit(pending, chunk);
                    } catch (RuntimeException | OutOfMemoryError e) {
                        listening = false; // keep draining: the command must not lose its pipe
                    }
                }
            }
            if (listening && pending.length > 0) listener.accept(pending, false);
        } catch (RuntimeException | OutOfMemoryError e) {
            if (capture != null) capture.fail("cannot read the output: " + e);
            drainQuietly();
        } finally {
            Libc.close(fd);
        }
    }

    /** After a failure: reads to the end of the pipe, keeping nothing, with as little memory as there is. */
    private void drainQuietly() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(4096);
            while (Libc.read(fd, buffer) > 0) {
                // discarded
            }
        } catch (Libc.Error | RuntimeException | OutOfMemoryError e) {
            // nothing more can be done for this pipe
        }
    }

    /** Sends a chunk as text when it is valid UTF-8 (keeping a split character for later), else as bytes. */
    private byte[] emit(byte[] pending, byte[] chunk) {
        byte[] data = pending.length == 0 ? chunk : concat(pending, chunk);
        int complete = completeUtf8Length(data);
        byte[] body = Arrays.copyOf(data, complete);
        if (isUtf8(body)) {
            if (body.length > 0) listener.accept(body, true);
            return Arrays.copyOfRange(data, complete, data.length);
        }
        listener.accept(data, false);
        return new byte[0];
    }

    /** Length of {@code data} without a trailing, possibly incomplete, multi-byte sequence. */
    static int completeUtf8Length(byte[] data) {
        int end = data.length;
        for (int back = 1; back <= 3 && end - back >= 0; back++) {
            int b = data[end - back] & 0xff;
            if ((b & 0xc0) == 0x80) continue; // continuation byte: look further back
            int needed = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
            return needed > back ? end - back : end;
        }
        return end;
    }

    static boolean isUtf8(byte[] data) {
        int ascii = 0;
        while (ascii < data.length && data[ascii] >= 0) ascii++;
        if (ascii == data.length) return true; // the common case, without a decoder
        try {
            StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(data));
            return true;
        } catch (CharacterCodingException e) {
            return false;
        }
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] both = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, both, a.length, b.length);
        return both;
    }

    void join() throws InterruptedException {
        done.await();
    }

    /** What was captured, or null; its owner closes it. */
    Capture capture() {
        return capture;
    }

    /** Gives back the capture's memory and file when no answer will carry it (the pipe keeps draining). */
    void closeCapture() {
        if (capture != null) capture.close();
    }

    String head() {
        return head.toString(StandardCharsets.UTF_8);
    }
}
