package dev.bwrapd.jsonrpc;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MessageWriterTest {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    private static byte[] body(int size) {
        byte[] body = new byte[size];
        Arrays.fill(body, (byte) 'a');
        return body;
    }

    /** Writes {@code body} in pieces, as a serializer does. */
    private static MessageWriter.Body pieces(byte[] body) {
        return sink -> {
            for (int i = 0; i < body.length; i += 1000) sink.write(body, i, Math.min(1000, body.length - i));
        };
    }

    @Test
    void smallAndLargeMessagesAreFramedWhole() throws IOException {
        for (int size : new int[] {10, MessageWriter.BUFFERED, MessageWriter.BUFFERED + 1, 3 * MessageWriter.BUFFERED}) {
            byte[] body = body(size);
            out.reset();
            assertTrue(new MessageWriter(out, () -> Framing.LSP).write(pieces(body)));
            byte[] header = ("Content-Length: " + size + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII);
            assertArrayEquals(header, Arrays.copyOf(out.toByteArray(), header.length), "LSP header for " + size);
            assertEquals(header.length + size, out.size());
            out.reset();
            assertTrue(new MessageWriter(out, () -> Framing.NDJSON).write(pieces(body)));
            assertEquals(size + 1, out.size());
            assertEquals('\n', out.toByteArray()[size]);
        }
    }

    /** The helper grows its pipe to the client there: only one that sends large frames spends the user's pipe pages. */
    @Test
    void theFirstLargeFrameRunsTheHookOnceBeforeItIsWritten() throws IOException {
        int[] runs = {0};
        int[] writtenBefore = {-1};
        MessageWriter writer = new MessageWriter(out, () -> Framing.NDJSON, () -> {
            runs[0]++;
            writtenBefore[0] = out.size();
            throw new IllegalStateException("a hook that fails loses no frame");
        });
        byte[] small = body(MessageWriter.LARGE_FRAME - 1);
        assertTrue(writer.write(small, small.length));
        assertTrue(writer.write(pieces(body(100))));
        assertEquals(0, runs[0], "small frames only");
        byte[] large = body(MessageWriter.LARGE_FRAME);
        assertTrue(writer.write(large, large.length));
        assertEquals(1, runs[0]);
        assertEquals(small.length + 1 + 101, writtenBefore[0], "run before the large frame was written");
        assertTrue(writer.write(pieces(body(3 * MessageWriter.BUFFERED))));
        assertEquals(1, runs[0], "once");
        assertEquals(small.length + 1 + 101 + large.length + 1 + 3 * MessageWriter.BUFFERED + 1, out.size());
        MessageWriter streaming = new MessageWriter(out, () -> Framing.LSP, () -> runs[0]++);
        assertTrue(streaming.write(pieces(body(2 * MessageWriter.BUFFERED))));
        assertEquals(2, runs[0], "a streamed body is large too");
    }

    @Test
    void aBodyThatFailsEarlyWritesNothing() {
        MessageWriter writer = new MessageWriter(out, () -> Framing.LSP);
        assertThrows(MessageWriter.BodyException.class, () -> writer.write(sink -> {
            sink.write(body(100));
            throw new IOException("spool unreadable");
        }));
        assertEquals(0, out.size());
    }

    @Test
    void aLargeBodyThatFailsMidwayStillEndsItsFrame() {
        byte[] big = body(2 * MessageWriter.BUFFERED);
        int[] pass = {0}; // 1: into the buffer (too large), 2: counting, 3: to the output
        MessageWriter writer = new MessageWriter(out, () -> Framing.LSP);
        assertThrows(MessageWriter.BodyException.class, () -> writer.write(sink -> {
            pass[0]++;
            sink.write(big, 0, MessageWriter.BUFFERED + 10);
            if (pass[0] == 3) throw new IOException("spool unreadable");
            sink.write(big, 0, MessageWriter.BUFFERED - 10);
        }));
        assertEquals(3, pass[0]);
        String header = "Content-Length: " + big.length + "\r\n\r\n";
        assertEquals(header.length() + big.length, out.size(), "padded to the length it announced");
    }
}
