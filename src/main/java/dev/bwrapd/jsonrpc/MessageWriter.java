package dev.bwrapd.jsonrpc;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.function.Supplier;

/**
 * Writes whole frames to the protocol stream, one at a time, so concurrent responses never
 * interleave. The framing is the reader's (answers go out the way requests came in).
 */
public final class MessageWriter {
    private final OutputStream out;
    private final Supplier<Framing> framing;
    private boolean broken;

    public MessageWriter(OutputStream out, Supplier<Framing> framing) {
        this.out = out;
        this.framing = framing;
    }

    /** Writes one message; false once the client has gone away (the message is dropped). */
    public boolean write(byte[] body) {
        return write(body, body.length);
    }

    /**
     * Writes the message {@code body[0..length)}. With room after it, a newline-framed message
     * takes its newline there and goes out in one write, without a copy.
     */
    public synchronized boolean write(byte[] body, int length) {
        if (broken) return false;
        try {
            if (framing.get() == Framing.LSP) {
                out.write(("Content-Length: " + length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                out.write(body, 0, length);
            } else if (body.length > length) {
                body[length] = '\n';
                out.write(body, 0, length + 1);
            } else {
                byte[] line = new byte[length + 1];
                System.arraycopy(body, 0, line, 0, length);
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
}
