package dev.bwrapd.jsonrpc;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Framing detection and message splitting. Every case is also read through streams that hand out
 * the input a few bytes at a time ({@code chunk}), so that buffer boundaries fall everywhere.
 */
class MessageReaderTest {
    private static final long LIMIT = 1024;
    private static final String A = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"}";
    private static final String B = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"b\"}";

    // ----- framing detection -----

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 3})
    void detectsNdjsonFromBraceAndBracketAfterBlankSpace(int chunk) throws IOException {
        MessageReader reader = reader(" \t\r\n\n" + A + "\n[" + B + "]\n", null, chunk);
        assertNull(reader.framing(), "nothing is known before the first read");
        assertMessage(A, reader.next());
        assertEquals(Framing.NDJSON, reader.framing());
        assertMessage("[" + B + "]", reader.next());
        assertInstanceOf(Frame.End.class, reader.next());
    }

    @Test
    void detectsNdjsonFromBracket() throws IOException {
        MessageReader reader = reader("[" + A + "]\n", null, 0);
        assertMessage("[" + A + "]", reader.next());
        assertEquals(Framing.NDJSON, reader.framing());
    }

    @ParameterizedTest
    @ValueSource(strings = {"Content-Length", "content-length", "CONTENT-LENGTH", "Content-length"})
    void detectsLspWhateverTheCaseOfContentLength(String name) throws IOException {
        MessageReader reader = reader("\r\n" + name + ": " + bytes(A) + "\r\n\r\n" + A, null, 0);
        assertMessage(A, reader.next());
        assertEquals(Framing.LSP, reader.framing());
        assertInstanceOf(Frame.End.class, reader.next());
    }

    @Test
    void emptyOrBlankInputIsEndInEitherFraming() throws IOException {
        assertInstanceOf(Frame.End.class, reader("", null, 0).next());
        assertInstanceOf(Frame.End.class, reader(" \r\n\n\t ", null, 0).next());
        assertInstanceOf(Frame.End.class, reader("\r\n\r\n", Framing.LSP, 0).next());
        assertInstanceOf(Frame.End.class, reader("\n\n", Framing.NDJSON, 0).next());
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 2})
    void garbledFirstByteIsReportedAndTheNextLineIsRead(int chunk) throws IOException {
        MessageReader reader = reader("hello there\n" + A + "\n", null, chunk);
        Frame first = reader.next();
        assertInstanceOf(Frame.Garbled.class, first);
        assertEquals(Framing.NDJSON, reader.framing(), "a stream of unknown framing is answered in NDJSON");
        assertMessage(A, reader.next());
        assertInstanceOf(Frame.End.class, reader.next());
    }

    @Test
    void garbledFirstByteWithoutNewlineIsReportedThenEnd() throws IOException {
        MessageReader reader = reader("\u0001\u0002garbage", null, 0);
        assertInstanceOf(Frame.Garbled.class, reader.next());
        assertInstanceOf(Frame.End.class, reader.next());
    }

    @Test
    void forcedLspReadsAnNdjsonLineAsABrokenHeaderBlock() throws IOException {
        // With --framing=lsp, '{' does not switch to NDJSON: the line is a header line, and the block has no length.
        MessageReader reader = reader(A + "\r\n\r\n" + lsp(B, "\r\n"), Framing.LSP, 0);
        assertInstanceOf(Frame.Garbled.class, reader.next());
        assertEquals(Framing.LSP, reader.framing());
        assertMessage(B, reader.next());
    }

    @Test
    void forcedNdjsonReadsAContentLengthHeaderAsALine() throws IOException {
        MessageReader reader = reader("Content-Length: 3\n" + A + "\n", Framing.NDJSON, 0);
        assertMessage("Content-Length: 3", reader.next()); // not JSON: the server answers -32700 for it
        assertMessage(A, reader.next());
    }

    // ----- NDJSON -----

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 5})
    void ndjsonSkipsBlankLinesAndStripsCarriageReturns(int chunk) throws IOException {
        MessageReader reader = reader(A + "\r\n\r\n   \n\t\r\n" + B + "\r\n\n", null, chunk);
        assertMessage(A, reader.next());
        assertMessage(B, reader.next());
        assertInstanceOf(Frame.End.class, reader.next());
    }

    @Test
    void ndjsonLastLineWithoutNewlineIsAMessage() throws IOException {
        MessageReader reader = reader(A + "\n" + B, null, 0);
        assertMessage(A, reader.next());
        assertMessage(B, reader.next());
        assertInstanceOf(Frame.End.class, reader.next());
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 7})
    void ndjsonOversizeLineIsSkippedAndTheNextIsRead(int chunk) throws IOException {
        String big = "{\"pad\":\"" + "x".repeat((int) LIMIT) + "\"}";
        MessageReader reader = reader(A + "\n" + big + "\n" + B + "\n", null, chunk);
        assertMessage(A, reader.next());
        Frame tooLarge = reader.next();
        assertEquals(new Frame.TooLarge(bytes(big)), tooLarge);
        assertMessage(B, reader.next());
        assertInstanceOf(Frame.End.class, reader.next());
    }

    @Test
    void ndjsonLineOfExactlyTheLimitIsAMessage() throws IOException {
        String exact = "{\"pad\":\"" + "x".repeat((int) LIMIT - 10) + "\"}";
        assertEquals(LIMIT, bytes(exact));
        MessageReader reader = reader(exact + "\n" + exact + "x\n", null, 0);
        assertMessage(exact, reader.next());
        assertEquals(new Frame.TooLarge(LIMIT + 1), reader.next());
        // The CR of a CRLF line end is no part of the message (review finding: it counted)
        for (int chunk : new int[] {0, 1}) {
            MessageReader crlf = reader(exact + "\r\n" + exact + "x\r\n", null, chunk);
            assertMessage(exact, crlf.next());
            assertEquals(new Frame.TooLarge(LIMIT + 1), crlf.next());
        }
    }

    @Test
    void ndjsonMessageLargerThanTheReadBufferIsWhole() throws IOException {
        String big = "{\"pad\":\"" + "y".repeat(200_000) + "\"}";
        MessageReader reader = new MessageReader(new ByteArrayInputStream((big + "\n" + A + "\n").getBytes(StandardCharsets.UTF_8)), null, 1 << 20);
        assertMessage(big, reader.next());
        assertMessage(A, reader.next());
    }

    // ----- LSP -----

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 4})
    void lspHeadersWithCrlfOrLfAndBlankLinesBetweenMessages(int chunk) throws IOException {
        String input = lsp(A, "\r\n") + "\r\n\r\n" + lsp(B, "\n") + "\n\n" + lsp(A, "\r\n");
        MessageReader reader = reader(input, null, chunk);
        assertMessage(A, reader.next());
        assertMessage(B, reader.next());
        assertMessage(A, reader.next());
        assertInstanceOf(Frame.End.class, reader.next());
    }

    @Test
    void lspOtherHeadersAreIgnoredAndSpacesAroundTheValueAllowed() throws IOException {
        String input = "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\ncontent-length:   " + bytes(A)
                + "  \r\nX-Whatever: 1\r\n\r\n" + A;
        MessageReader reader = reader(input, null, 0);
        assertMessage(A, reader.next());
        assertEquals(Framing.LSP, reader.framing());
    }

    @Test
    void lspBodyMayHoldNewlinesAndNeedNoTrailingNewline() throws IOException {
        String pretty = "{\n  \"jsonrpc\": \"2.0\",\r\n  \"method\": \"a\"\n}\n";
        MessageReader reader = reader(lsp(pretty, "\r\n") + lsp(B, "\r\n"), null, 1);
        assertMessage(pretty, reader.next());
        assertMessage(B, reader.next());
    }

    @Test
    void lspBodyLengthCountsBytesNotCharacters() throws IOException {
        String text = "{\"method\":\"é✓𝄞\"}";
        MessageReader reader = reader(lsp(text, "\r\n") + lsp(A, "\r\n"), null, 0);
        assertMessage(text, reader.next());
        assertMessage(A, reader.next());
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 3})
    void lspOversizeBodyIsSkippedAndTheNextIsRead(int chunk) throws IOException {
        String big = "{\"pad\":\"" + "x".repeat((int) LIMIT) + "\"}";
        MessageReader reader = reader(lsp(A, "\r\n") + lsp(big, "\r\n") + lsp(B, "\r\n"), null, chunk);
        assertMessage(A, reader.next());
        assertEquals(new Frame.TooLarge(bytes(big)), reader.next());
        assertMessage(B, reader.next());
        assertInstanceOf(Frame.End.class, reader.next());
    }

    @Test
    void lspBodyOfExactlyTheLimitIsAMessage() throws IOException {
        String exact = "{\"pad\":\"" + "x".repeat((int) LIMIT - 10) + "\"}";
        MessageReader reader = reader(lsp(exact, "\r\n") + lsp(exact + " ", "\r\n"), null, 0);
        assertMessage(exact, reader.next());
        assertEquals(new Frame.TooLarge(LIMIT + 1), reader.next());
    }

    @ParameterizedTest
    @ValueSource(strings = {
            "Content-Length: abc\r\n\r\n",
            "Content-Length: -5\r\n\r\n",
            "Content-Length: 99999999999999999999999\r\n\r\n",
            "Content-Length:\r\n\r\n",
            "Content-Type: text/plain\r\n\r\n",
            "Content-Length 12\r\n\r\n",
    })
    void lspBrokenHeaderBlockIsGarbledAndTheNextMessageIsRead(String broken) throws IOException {
        MessageReader reader = reader(lsp(A, "\r\n") + broken + lsp(B, "\r\n"), null, 0);
        assertMessage(A, reader.next());
        Frame frame = reader.next();
        assertInstanceOf(Frame.Garbled.class, frame, "for " + broken.strip());
        assertMessage(B, reader.next());
        assertInstanceOf(Frame.End.class, reader.next());
    }

    /**
     * Review finding: a broken block followed by its body (which has no line end) made the body
     * and the next block's Content-Length one header line, and every later message was lost.
     * The next block is found where its Content-Length starts, after a short body or a long one.
     */
    @ParameterizedTest
    @ValueSource(ints = {10, 20_000})
    void lspBrokenHeaderBlockWithABodyIsGarbledAndTheStreamGetsBackInStep(int padding) throws IOException {
        String body = "{\"jsonrpc\":\"2.0\",\"id\":99,\"pad\":\"" + "x".repeat(padding) + "\"}";
        MessageReader reader = reader(lsp(A, "\r\n") + "Content-Length: -5\r\n\r\n" + body + lsp(B, "\r\n") + lsp(A, "\r\n"), null, 0);
        assertMessage(A, reader.next());
        assertInstanceOf(Frame.Garbled.class, reader.next());
        assertMessage(B, reader.next());
        assertMessage(A, reader.next());
        assertInstanceOf(Frame.End.class, reader.next());
    }

    @Test
    void lspZeroLengthBodyIsAnEmptyMessage() throws IOException {
        MessageReader reader = reader("Content-Length: 0\r\n\r\n" + lsp(A, "\r\n"), null, 0);
        assertMessage("", reader.next());
        assertMessage(A, reader.next());
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1})
    void lspEndOfInputInsideABodyIsGarbledThenEnd(int chunk) throws IOException {
        MessageReader reader = reader("Content-Length: 100\r\n\r\n" + A, null, chunk);
        Frame frame = reader.next();
        assertInstanceOf(Frame.Garbled.class, frame);
        assertTrue(((Frame.Garbled) frame).reason().contains("body"), frame.toString());
        assertInstanceOf(Frame.End.class, reader.next());
    }

    @Test
    void lspEndOfInputInsideAHeaderBlockIsGarbledThenEnd() throws IOException {
        MessageReader reader = reader(lsp(A, "\r\n") + "Content-Length: 10\r\n", null, 0);
        assertMessage(A, reader.next());
        assertInstanceOf(Frame.Garbled.class, reader.next());
        assertInstanceOf(Frame.End.class, reader.next());
    }

    @Test
    void lspEndOfInputInsideAnOversizeBodyIsTooLargeThenEnd() throws IOException {
        MessageReader reader = reader("Content-Length: 5000\r\n\r\n" + "x".repeat(10), null, 0);
        assertEquals(new Frame.TooLarge(5000), reader.next());
        assertInstanceOf(Frame.End.class, reader.next());
    }

    @Test
    void lspVeryLongHeaderLineIsBoundedAndGarbled() throws IOException {
        String longHeader = "X-Long: " + "z".repeat(1 << 20) + "\r\n";
        MessageReader reader = reader(longHeader + "\r\n" + lsp(A, "\r\n"), Framing.LSP, 0);
        assertInstanceOf(Frame.Garbled.class, reader.next()); // a block without Content-Length
        assertMessage(A, reader.next());
    }

    // ----- helpers -----

    private static String lsp(String body, String eol) {
        return "Content-Length: " + bytes(body) + eol + eol + body;
    }

    private static int bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8).length;
    }

    private static void assertMessage(String expected, Frame frame) {
        assertInstanceOf(Frame.Message.class, frame, () -> "expected a message, got " + frame);
        byte[] body = ((Frame.Message) frame).body();
        assertArrayEquals(expected.getBytes(StandardCharsets.UTF_8), body,
                () -> "got " + new String(body, StandardCharsets.UTF_8));
    }

    /** A reader over the text; chunk > 0 hands it out at most that many bytes per read(). */
    private static MessageReader reader(String input, Framing forced, int chunk) {
        byte[] bytes = input.getBytes(StandardCharsets.UTF_8);
        InputStream in = chunk <= 0 ? new ByteArrayInputStream(bytes) : new Trickle(bytes, chunk);
        return new MessageReader(in, forced, LIMIT);
    }

    /** An input stream that returns few bytes per read, like a pipe written in small pieces. */
    private static final class Trickle extends InputStream {
        private final byte[] bytes;
        private final int chunk;
        private int position;

        Trickle(byte[] bytes, int chunk) {
            this.bytes = bytes;
            this.chunk = chunk;
        }

        @Override
        public int read() {
            return position < bytes.length ? bytes[position++] & 0xff : -1;
        }

        @Override
        public int read(byte[] b, int off, int len) {
            if (position >= bytes.length) return -1;
            int n = Math.min(Math.min(len, chunk), bytes.length - position);
            System.arraycopy(bytes, position, b, off, n);
            position += n;
            return n;
        }
    }
}
