package dev.bwrapd.protocol;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The sandbox id in notifications written as bytes reads back as the very id the client gave, whatever it holds. */
class RunReporterTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** The word-at-a-time scan ends where the byte-by-byte one does, for every start, every kind of byte, every place. */
    @Test
    void plainRunsEndWhereTheByteLoopEnds() {
        java.util.Random random = new java.util.Random(13);
        byte[] special = {0, 1, 0x0a, 0x1f, '"', '\\', (byte) 0x80, (byte) 0xc3, (byte) 0xff, 0x7f, 0x20, 0x21, 0x5b, 0x5d, 0x23};
        for (int round = 0; round < 2000; round++) {
            byte[] data = new byte[1 + random.nextInt(40)];
            for (int i = 0; i < data.length; i++) {
                data[i] = random.nextInt(4) == 0 ? special[random.nextInt(special.length)] : (byte) (0x20 + random.nextInt(0x5f));
            }
            for (int from = 0; from <= data.length; from++) {
                int expected = from;
                while (expected < data.length && data[expected] >= 0x20 && data[expected] != '"' && data[expected] != '\\') expected++;
                assertEquals(expected, RunReporter.plainEnd(data, from, data.length), () -> java.util.Arrays.toString(data));
            }
        }
    }

    /**
     * A frame built in a reused buffer is the JSON of its data: every kind of byte, chunks from
     * empty to 64 KiB, escapes that make the text up to six times longer than the room it started
     * with; false exactly where the data stops being UTF-8.
     */
    @Test
    void framesReadBackAsTheirTextInWhateverBufferTheyAreBuiltIn() throws Exception {
        java.util.Random random = new java.util.Random(29);
        byte[] prefix = "{\"params\":{\"stream\":\"stdout\",".getBytes(StandardCharsets.US_ASCII);
        byte[][] kinds = {"plain text, a build log line".getBytes(StandardCharsets.US_ASCII), {'\n'}, {0}, {1}, {0x1f}, {'"'}, {'\\'},
                {(byte) 0xc3, (byte) 0xa9}, {(byte) 0xe2, (byte) 0x82, (byte) 0xac}, {(byte) 0xf0, (byte) 0x9f, (byte) 0x98, (byte) 0x80},
                {(byte) 0x80}, {(byte) 0xc3}, {(byte) 0xed, (byte) 0xa0, (byte) 0x80}, {0x7f}};
        RunReporter.FrameBuilder builder = new RunReporter.FrameBuilder();
        for (int round = 0; round < 600; round++) {
            java.io.ByteArrayOutputStream chunk = new java.io.ByteArrayOutputStream();
            int size = random.nextInt(5) == 0 ? 65536 : random.nextInt(300);
            boolean someMalformed = random.nextInt(3) == 0; // most chunks are valid
            int escapesEvery = 1 + random.nextInt(round % 7 == 0 ? 1 : 40); // some chunks are all escapes
            while (chunk.size() < size) {
                byte[] piece = someMalformed && random.nextInt(50) == 0 ? kinds[10 + random.nextInt(4)]
                        : random.nextInt(escapesEvery) == 0 ? kinds[1 + random.nextInt(9)] : kinds[0];
                chunk.write(piece);
            }
            byte[] data = chunk.toByteArray();
            if (random.nextBoolean()) builder.bytes = new byte[random.nextInt(100)]; // a buffer given back, of any size
            builder.start(prefix, "\"text\":\"", data.length + data.length / 8);
            boolean valid = dev.bwrapd.jsonrpc.Utf8.validUpTo(data, 0, data.length) == data.length;
            assertEquals(valid, builder.text(data, 0, data.length), "round " + round);
            if (!valid) continue;
            int length = builder.end();
            assertTrue(builder.bytes.length > length, "a spare byte for the newline");
            com.fasterxml.jackson.databind.JsonNode frame = JSON.readTree(java.util.Arrays.copyOf(builder.bytes, length));
            assertEquals(new String(data, StandardCharsets.UTF_8), frame.get("params").get("text").textValue(), "round " + round);
            assertEquals("stdout", frame.get("params").get("stream").textValue());
        }
    }

    /**
     * Escapes that use up the room a frame started with to within a byte or two, whatever the last
     * character is, leave room for the frame's end and the spare byte: the bounds are exact, not
     * covered by slack.
     */
    @Test
    void escapesThatEatTheStartingRoomToTheLastByteLeaveTheEndAndTheSpareByte() throws Exception {
        byte[] prefix = "{\"params\":{\"stream\":\"stdout\",".getBytes(StandardCharsets.US_ASCII);
        byte[][] lasts = {{'\n'}, {'"'}, {1}, {0x1f}, {(byte) 0xe2, (byte) 0x82, (byte) 0xac}, {'x'}};
        RunReporter.FrameBuilder builder = new RunReporter.FrameBuilder();
        for (int n : new int[] {8200, 65536, 65539}) {
            for (int spare = -6; spare <= 6; spare++) {
                for (byte[] last : lasts) {
                    for (int tail = 0; tail <= 2; tail++) {
                        for (int fresh = 0; fresh < 2; fresh++) {
                            byte[] data = new byte[n];
                            java.util.Arrays.fill(data, (byte) 'a');
                            int end = n - tail - last.length;
                            for (int i = end - (n / 8 - spare); i < end; i++) data[i] = '\n';
                            System.arraycopy(last, 0, data, end, last.length);
                            builder.bytes = new byte[fresh == 0 ? 0 : prefix.length + 8 + n + n / 8 + 4]; // grown, or exactly the start
                            builder.start(prefix, "\"text\":\"", n + n / 8);
                            assertTrue(builder.text(data, 0, n));
                            int length = builder.end();
                            String where = "n=" + n + " spare=" + spare + " tail=" + tail + " fresh=" + fresh;
                            assertTrue(builder.bytes.length > length, "a spare byte: " + where);
                            assertEquals(new String(data, StandardCharsets.UTF_8),
                                    JSON.readTree(java.util.Arrays.copyOf(builder.bytes, length)).get("params").get("text").textValue(), where);
                        }
                    }
                }
            }
        }
    }
}
