package dev.bwrapd.sandbox;

import dev.bwrapd.process.Libc;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Base64;
import java.util.function.BiConsumer;

/**
 * Drains one pipe from the sandbox on a thread of its own until every writer has closed it:
 * capturing up to a limit, or handing each chunk to a listener as it comes. It always keeps the
 * first few KiB, where bwrap writes its own message when it cannot set up the sandbox.
 */
final class OutputReader {
    private static final int CHUNK = 64 * 1024;
    private static final int HEAD = 4096;

    private final int fd;
    private final long captureLimit;
    private final BiConsumer<byte[], Boolean> listener;
    private final ByteArrayOutputStream captured = new ByteArrayOutputStream();
    private final ByteArrayOutputStream head = new ByteArrayOutputStream();
    private boolean truncated;
    private final java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(1);

    /**
     * @param readers      reused threads (a thread per pipe per run costs more CPU than the run's own work)
     * @param captureLimit bytes to keep (0 keeps nothing but the head)
     * @param listener     receives each chunk and whether it is text, or null
     */
    OutputReader(java.util.concurrent.Executor readers, String name, int fd, long captureLimit, BiConsumer<byte[], Boolean> listener) {
        this.fd = fd;
        this.captureLimit = captureLimit;
        this.listener = listener;
        readers.execute(() -> {
            Thread.currentThread().setName(name);
            try {
                drain();
            } finally {
                done.countDown();
            }
        });
    }

    private void drain() {
        byte[] pending = new byte[0]; // an incomplete UTF-8 sequence held back for the next chunk
        try {
            byte[] buffer = new byte[CHUNK];
            while (true) {
                int n = Libc.read(fd, buffer);
                if (n == 0) break;
                byte[] chunk = Arrays.copyOf(buffer, n);
                if (head.size() < HEAD) head.write(chunk, 0, Math.min(n, HEAD - head.size()));
                long room = captureLimit - captured.size();
                if (room > 0) captured.write(chunk, 0, (int) Math.min(n, room));
                if (n > room) truncated = true;
                if (listener != null) pending = emit(pending, chunk);
            }
            if (listener != null && pending.length > 0) listener.accept(pending, false);
        } catch (Libc.Error e) {
            // the pipe broke: what was read so far stands
        } finally {
            Libc.close(fd);
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

    /** The captured bytes as the protocol reports them. */
    RunResult.Captured captured() {
        byte[] bytes = captured.toByteArray();
        if (isUtf8(bytes)) return new RunResult.Captured(new String(bytes, StandardCharsets.UTF_8), null, truncated);
        return new RunResult.Captured(null, Base64.getEncoder().encodeToString(bytes), truncated);
    }

    String head() {
        return head.toString(StandardCharsets.UTF_8);
    }
}
