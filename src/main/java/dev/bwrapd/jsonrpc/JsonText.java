package dev.bwrapd.jsonrpc;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.nio.charset.StandardCharsets;

/** A value's JSON text, for messages written as bytes without a tree or a serializer. */
public final class JsonText {
    private JsonText() {}

    /**
     * {@code value} as JSON text, as the answer writes it: through the server's mapper into bytes,
     * which escapes an unpaired surrogate (a JSON string may hold one, from a {@code \\uD800}
     * escape) rather than making it the '?' of a String's UTF-8 encoding.
     */
    public static String of(ObjectMapper json, Object value) {
        String plain = plain(value);
        if (plain != null) return plain;
        try {
            return new String(json.writeValueAsBytes(value), StandardCharsets.UTF_8);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a value that was read cannot be written", e);
        }
    }

    /**
     * {@code value} as JSON text without the mapper when that is plain: a whole number (the usual
     * request id, kept as the exact text it came in) or a string of printable ASCII with no quote
     * or backslash (the usual sandbox id). Null for anything else. A generator made to write a
     * few bytes costs more than the rest of the notification.
     */
    private static String plain(Object value) {
        if (value instanceof com.fasterxml.jackson.databind.node.IntNode
                || value instanceof com.fasterxml.jackson.databind.node.LongNode) {
            return ((com.fasterxml.jackson.databind.JsonNode) value).asText();
        }
        if (value instanceof com.fasterxml.jackson.databind.node.POJONode pojo
                && pojo.getPojo() instanceof com.fasterxml.jackson.databind.util.RawValue raw
                && raw.rawValue() instanceof String text) {
            return text; // a number exactly as the client wrote it (Server's exact numbers)
        }
        String text = value instanceof String s ? s
                : value instanceof com.fasterxml.jackson.databind.node.TextNode node ? node.textValue() : null;
        if (text == null) return null;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return null;
        }
        return '"' + text + '"';
    }
}
