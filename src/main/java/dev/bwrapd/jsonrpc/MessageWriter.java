package dev.bwrapd.jsonrpc;

import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.function.Supplier;

/**
 * Writes whole frames to the protocol stream, one at a time, so concurrent responses never
 * interleave. The framing is the reader's (answers go out the way requests came in).
 *
 * <p>A message is written by a {@link Body}, which may be large (a capture of up to 1 GiB): one
 * that fits {@link #BUFFERED} bytes is serialized into memory and written at once; a larger one
 * is streamed straight to the output, after a first pass that only counts its bytes when the
 * framing needs its length up front (LSP's Content-Length). So no message is ever held whole.
 */
public final class MessageWriter {
    /** Messages up to this size are serialized in memory first (one buffer, reused). */
    static final int BUFFERED = 1 << 20;

    /** Writes one message body; called once, or twice (count, then write) for a large LSP message. */
    @FunctionalInterface
    public interface Body {
        void writeTo(OutputStream out) throws IOException;
    }

    /** The body itself failed (not the output): nothing, or a padded frame, was written. */
    public static final class BodyException extends IOException {
        BodyException(Throwable cause) {
            super(cause.getMessage(), cause);
        }
    }

    /** Up to this size an LSP frame's header and body are copied together and written at once. */
    private static final int ONE_WRITE = 64 * 1024;

    /** A frame of at least this many bytes is large: the first one runs {@code beforeLargeFrames}. */
    static final int LARGE_FRAME = 16 * 1024;

    private final OutputStream out;
    private final Supplier<Framing> framing;
    private final Buffer buffer = new Buffer();
    private boolean broken;
    private Runnable beforeLargeFrames; // null once it has run

    public MessageWriter(OutputStream out, Supplier<Framing> framing) {
        this(out, framing, null);
    }

    /** {@code beforeLargeFrames}: run once, before the first frame of {@link #LARGE_FRAME} bytes or more is written. */
    public MessageWriter(OutputStream out, Supplier<Framing> framing, Runnable beforeLargeFrames) {
        this.out = out;
        this.framing = framing;
        this.beforeLargeFrames = beforeLargeFrames;
    }

    private void aboutToWrite(long length) {
        Runnable first = beforeLargeFrames;
        if (first == null || length < LARGE_FRAME) return;
        beforeLargeFrames = null;
        try {
            first.run();
        } catch (RuntimeException e) {
            // it only tunes the output: the frame goes out all the same
        }
    }

    /** Writes one message; false once the client has gone away (the message is dropped). */
    public boolean write(byte[] body) {
        return write(body, body.length);
    }

    /**
     * Writes the message {@code body[0..length)} as it is, without a copy: with room after it, a
     * newline-framed message takes its newline there and goes out in one write.
     */
    public synchronized boolean write(byte[] body, int length) {
        if (broken) return false;
        aboutToWrite(length);
        try {
            if (framing.get() == Framing.LSP) {
                byte[] header = ("Content-Length: " + length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII);
                if (length <= ONE_WRITE) { // one write(2), and one wake-up of a client that reads what is there
                    byte[] frame = java.util.Arrays.copyOf(header, header.length + length);
                    System.arraycopy(body, 0, frame, header.length, length);
                    out.write(frame);
                } else {
                    out.write(header);
                    out.write(body, 0, length);
                }
            } else if (body.length > length) {
                body[length] = '\n';
                out.write(body, 0, length + 1);
            } else {
                byte[] line = java.util.Arrays.copyOf(body, length + 1);
                line[length] = '\n';
                out.write(line);
            }
            out.flush();
            return true;
        } catch (IOException e) {
            broken = true;
            return false;
        }
    }

    /**
     * The body serialized, with one spare byte after it (its length is the array's minus one), or
     * null when it is larger than {@link #BUFFERED} bytes: such a message is written with
     * {@link #write(Body)}, which streams it.
     */
    public static byte[] serialize(Body body) throws BodyException {
        Buffer buffer = SERIALIZING.get();
        try {
            body.writeTo(buffer);
            return buffer.full ? null : java.util.Arrays.copyOf(buffer.buf(), buffer.size() + 1);
        } catch (IOException | RuntimeException e) {
            if (!buffer.full) throw new BodyException(e);
            return null;
        } finally {
            buffer.shrink();
        }
    }

    /** Each sending thread's buffer for {@link #serialize}, reused: an answer would otherwise make 8 KiB to copy 300 bytes out. */
    private static final ThreadLocal<Buffer> SERIALIZING = ThreadLocal.withInitial(Buffer::new);

    /** Writes one message; false once the client has gone away. */
    public synchronized boolean write(Body body) throws BodyException {
        if (broken) return false;
        buffer.reset();
        try {
            body.writeTo(buffer);
        } catch (IOException | RuntimeException e) {
            if (!buffer.full) throw new BodyException(e);
        }
        aboutToWrite(buffer.full ? Long.MAX_VALUE : buffer.size());
        try {
            if (!buffer.full) {
                frame(buffer);
            } else {
                streamed(body);
            }
            out.flush();
            return true;
        } catch (BodyException e) {
            throw e;
        } catch (IOException e) {
            broken = true;
            return false;
        } finally {
            buffer.shrink();
        }
    }

    private void frame(Buffer body) throws OutputFailure {
        try {
            if (framing.get() == Framing.LSP) {
                out.write(("Content-Length: " + body.size() + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                body.writeTo(out);
            } else {
                body.newline();
                body.writeTo(out);
            }
        } catch (IOException e) {
            throw new OutputFailure(e);
        }
    }

    private void streamed(Body body) throws OutputFailure, BodyException {
        boolean lsp = framing.get() == Framing.LSP;
        long length = -1;
        if (lsp) {
            Counter counter = new Counter();
            try {
                body.writeTo(counter);
            } catch (IOException | RuntimeException e) {
                throw new BodyException(e);
            }
            length = counter.count;
        }
        Sink sink = new Sink(new BufferedOutputStream(out, 64 * 1024));
        try {
            if (lsp) sink.out.write(("Content-Length: " + length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            body.writeTo(sink);
        } catch (OutputFailure e) {
            throw e;
        } catch (IOException | RuntimeException e) {
            // Half a message is out: end the frame so the client can read on (it sees one unparsable message).
            try {
                if (lsp) for (long n = sink.count; n < length; n++) sink.out.write(' ');
                if (!lsp) sink.out.write('\n');
                sink.out.flush();
            } catch (IOException ignored) {
                broken = true;
            }
            throw new BodyException(e);
        }
        try {
            if (lsp && sink.count != length) throw new IllegalStateException("a message changed between counting and writing");
            if (!lsp) sink.out.write('\n');
            sink.out.flush();
        } catch (IOException e) {
            throw new OutputFailure(e);
        }
    }

    /** The output failed: the client is gone. */
    private static final class OutputFailure extends IOException {
        OutputFailure(IOException cause) {
            super(cause);
        }
    }

    /** The real output, counting, and telling its own failures apart from the body's. */
    private static final class Sink extends OutputStream {
        final OutputStream out;
        long count;

        Sink(OutputStream out) {
            this.out = out;
        }

        @Override
        public void write(int b) throws IOException {
            try {
                out.write(b);
            } catch (IOException e) {
                throw new OutputFailure(e);
            }
            count++;
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            try {
                out.write(b, off, len);
            } catch (IOException e) {
                throw new OutputFailure(e);
            }
            count += len;
        }

        @Override
        public void close() {
            // the protocol stream stays open
        }
    }

    private static final class Counter extends OutputStream {
        long count;

        @Override
        public void write(int b) {
            count++;
        }

        @Override
        public void write(byte[] b, int off, int len) {
            count += len;
        }
    }

    /** Collects a small message; a write past {@link #BUFFERED} bytes marks it full and fails. */
    private static final class Buffer extends ByteArrayOutputStream {
        boolean full;

        Buffer() {
            super(8192);
        }

        @Override
        public void write(int b) {
            if (count + 1 > BUFFERED) overflow();
            super.write(b);
        }

        @Override
        public void write(byte[] b, int off, int len) {
            if (count + len > BUFFERED) overflow();
            super.write(b, off, len);
        }

        private void overflow() {
            full = true;
            throw new IllegalStateException("message larger than " + BUFFERED + " bytes: streamed instead");
        }

        @Override
        public void reset() {
            super.reset();
            full = false;
        }

        byte[] buf() {
            return buf;
        }

        /** NDJSON's line end, past the cap if need be. */
        void newline() {
            super.write('\n');
        }

        /** Keeps the buffer small between messages. */
        void shrink() {
            if (buf.length > 64 * 1024) buf = new byte[8192];
            reset();
        }

        @Override
        public void close() {
            // reused
        }
    }
}
