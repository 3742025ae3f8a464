package dev.bwrapd.jsonrpc;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.POJONode;
import com.fasterxml.jackson.databind.util.RawValue;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Values written as bytes read back as the very value, and as the mapper writes them. */
class JsonTextTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @ParameterizedTest
    @ValueSource(strings = {"build-1", "quote \" back \\ slash", "tab\tnewline\ncontrol\u0001", "h\u00e9 \u20ac \uD83D\uDE00",
            "lone \uD800 high", "lone \uDC00 low", "reversed \uDC00\uD800", "ends high \uD83D"})
    void theIdReadsBackExactly(String id) throws Exception {
        byte[] written = JsonText.of(JSON, id).getBytes(StandardCharsets.UTF_8); // as it goes out
        assertEquals(id, JSON.readValue(written, String.class), "a client reads back the very id (a lone surrogate too, not '?')");
    }

    @Test
    void plainValuesAreWrittenAsTheMapperWritesThem() throws Exception {
        JsonNodeFactory nodes = JsonNodeFactory.instance;
        Object[] values = {"sb-1", "", "build 7 / x~", "del\u007f", "quote\"", "back\\slash", "nl\n", "\u00e9",
                nodes.numberNode(0), nodes.numberNode(-42), nodes.numberNode(Long.MAX_VALUE), nodes.numberNode(1.5),
                nodes.textNode("sb-2"), nodes.textNode("t\"q"), nodes.nullNode(), new POJONode(new RawValue("1e400"))};
        for (Object value : values) {
            assertEquals(JSON.writeValueAsString(value), JsonText.of(JSON, value), String.valueOf(value));
        }
    }
}
