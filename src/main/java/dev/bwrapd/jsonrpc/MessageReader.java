package dev.bwrapd.jsonrpc;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Locale;

/**
 * Splits the input stream into message bodies, in whichever framing the stream starts with
 * (or the forced one). Over-long messages are skipped, not buffered, and reported as such.
 */
public final class MessageReader {
    private final InputStream in;
    private final long maxMessageBytes;
    private final byte[] buffer = new byte[64 * 1024];
    private int position, limit;
    private Framing framing;

    public MessageReader(InputStream in, Framing forced, long maxMessageBytes) {
        this.in = in;
        this.framing = forced;
        this.maxMessageBytes = maxMessageBytes;
    }

    /** The framing in use, once known (for answering in the same one). */
    public Framing framing() {
        return framing;
    }

    public Frame next() throws IOException {
        if (framing == null) {
            int first = peekNonBlank();
            if (first < 0) return new Frame.End();
            framing = Framing.detect(first);
            if (framing == null) {
                framing = Framing.NDJSON; // answer in the simplest framing and resynchronise at the next line
                return skipLine("the stream starts with neither '{', '[' nor 'Content-Length:'");
            }
        }
        return framing == Framing.NDJSON ? nextLine() : nextLspMessage();
    }

    private Frame nextLine() throws IOException {
        while (true) {
            int first = peekNonBlank();
            if (first < 0) return new Frame.End();
            Frame frame = readLine();
            if (frame != null) return frame;
        }
    }

    /** Reads up to the next newline; null for a line that was only blank space. */
    private Frame readLine() throws IOException {
        byte[] line = new byte[256];
        int length = 0;
        long size = 0;
        byte last = 0;
        while (true) {
            if (position == limit && !fill()) break;
            int newline = indexOf((byte) '\n', position, limit);
            int end = newline < 0 ? limit : newline;
            int chunk = end - position;
            size += chunk;
            if (chunk > 0) last = buffer[end - 1];
            if (size <= maxMessageBytes + 1) { // + a CR before the newline, which is no part of the message
                if (length + chunk > line.length) line = Arrays.copyOf(line, Math.max(line.length * 2, length + chunk));
                System.arraycopy(buffer, position, line, length, chunk);
                length += chunk;
            }
            position = end;
            if (newline >= 0) {
                position++;
                break;
            }
        }
        if (last == '\r') size--;
        if (size > maxMessageBytes) return new Frame.TooLarge(size);
        while (length > 0 && (line[length - 1] == '\r' || line[length - 1] == ' ' || line[length - 1] == '\t')) length--;
        if (length == 0) return null;
        return new Frame.Message(Arrays.copyOf(line, length));
    }

    private Frame skipLine(String reason) throws IOException {
        while (true) {
            if (position == limit && !fill()) return new Frame.Garbled(reason);
            int newline = indexOf((byte) '\n', position, limit);
            if (newline >= 0) {
                position = newline + 1;
                return new Frame.Garbled(reason);
            }
            position = limit;
        }
    }

    private Frame nextLspMessage() throws IOException {
        long contentLength = -1;
        boolean sawHeader = false;
        String problem = null;
        while (true) {
            String header = readHeaderLine();
            if (header == null) return sawHeader ? new Frame.Garbled("input ended inside a header block") : new Frame.End();
            if (header.isEmpty()) {
                if (!sawHeader) continue; // blank lines between messages
                break;
            }
            int at = header.toLowerCase(Locale.ROOT).indexOf("content-length:");
            if (at > 0) {
                // The body of a block that was garbled (its length unknown) runs up to this header,
                // having no line end of its own: a new block starts here, and the stream is in step again.
                header = header.substring(at);
                problem = null;
            }
            sawHeader = true;
            int colon = header.indexOf(':');
            if (colon < 0) {
                problem = "malformed header line: " + abbreviate(header);
                continue;
            }
            String name = header.substring(0, colon).trim().toLowerCase(Locale.ROOT);
            if (name.equals("content-length")) {
                try {
                    contentLength = Long.parseLong(header.substring(colon + 1).trim());
                    if (contentLength < 0) problem = "Content-Length is negative: " + abbreviate(header);
                } catch (NumberFormatException e) {
                    problem = "Content-Length is not a number: " + abbreviate(header);
                }
            }
        }
        if (problem == null && contentLength < 0) problem = "header block without Content-Length";
        if (problem != null) return new Frame.Garbled(problem);
        if (contentLength > maxMessageBytes) {
            skip(contentLength);
            return new Frame.TooLarge(contentLength);
        }
        byte[] body = new byte[(int) contentLength];
        int filled = 0;
        while (filled < body.length) {
            if (position == limit && !fill()) return new Frame.Garbled("input ended inside a message body");
            int chunk = Math.min(limit - position, body.length - filled);
            System.arraycopy(buffer, position, body, filled, chunk);
            position += chunk;
            filled += chunk;
        }
        return new Frame.Message(body);
    }

    /**
     * A header line without its line ending, or null at end of input. Of a long line its end is
     * kept (up to 8 KiB): it may hold the header that follows a garbled block's body.
     */
    private String readHeaderLine() throws IOException {
        StringBuilder line = new StringBuilder();
        while (true) {
            if (position == limit && !fill()) return line.isEmpty() ? null : line.toString();
            int newline = indexOf((byte) '\n', position, limit);
            int end = newline < 0 ? limit : newline;
            int from = Math.max(position, end - 8192);
            line.append(new String(buffer, from, end - from, StandardCharsets.US_ASCII));
            if (line.length() > 8192) line.delete(0, line.length() - 8192);
            position = end;
            if (newline >= 0) {
                position++;
                int length = line.length();
                if (length > 0 && line.charAt(length - 1) == '\r') line.setLength(length - 1);
                return line.toString();
            }
        }
    }

    private void skip(long count) throws IOException {
        while (count > 0) {
            if (position == limit && !fill()) return;
            int chunk = (int) Math.min(limit - position, count);
            position += chunk;
            count -= chunk;
        }
    }

    private int peekNonBlank() throws IOException {
        while (true) {
            if (position == limit && !fill()) return -1;
            byte b = buffer[position];
            if (b == ' ' || b == '\t' || b == '\r' || b == '\n') {
                position++;
            } else {
                return b & 0xff;
            }
        }
    }

    private boolean fill() throws IOException {
        int n = in.read(buffer, 0, buffer.length);
        if (n <= 0) return false;
        position = 0;
        limit = n;
        return true;
    }

    private int indexOf(byte b, int from, int to) {
        for (int i = from; i < to; i++) if (buffer[i] == b) return i;
        return -1;
    }

    private static String abbreviate(String s) {
        return s.length() > 80 ? s.substring(0, 80) + "..." : s;
    }
}
