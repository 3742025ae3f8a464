package dev.bwrapd.protocol;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.POJONode;
import com.fasterxml.jackson.databind.util.RawValue;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The sandbox id in notifications written as bytes reads back as the very id the client gave, whatever it holds. */
class RunReporterTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @ParameterizedTest
    @ValueSource(strings = {"build-1", "quote \" back \\ slash", "tab\tnewline\ncontrol\u0001", "h\u00e9 \u20ac \uD83D\uDE00",
            "lone \uD800 high", "lone \uDC00 low", "reversed \uDC00\uD800", "ends high \uD83D"})
    void theIdReadsBackExactly(String id) throws Exception {
        byte[] written = RunReporter.jsonText(JSON, id).getBytes(StandardCharsets.UTF_8); // as it goes out
        assertEquals(id, JSON.readValue(written, String.class), "a client reads back the very id (a lone surrogate too, not '?')");
    }

    @Test
    void plainValuesAreWrittenAsTheMapperWritesThem() throws Exception {
        JsonNodeFactory nodes = JsonNodeFactory.instance;
        Object[] values = {"sb-1", "", "build 7 / x~", "del\u007f", "quote\"", "back\\slash", "nl\n", "\u00e9",
                nodes.numberNode(0), nodes.numberNode(-42), nodes.numberNode(Long.MAX_VALUE), nodes.numberNode(1.5),
                nodes.textNode("sb-2"), nodes.textNode("t\"q"), nodes.nullNode(), new POJONode(new RawValue("1e400"))};
        for (Object value : values) {
            assertEquals(JSON.writeValueAsString(value), RunReporter.jsonText(JSON, value), String.valueOf(value));
        }
    }

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
}
