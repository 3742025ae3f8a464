package dev.bwrapd.protocol;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.SerializerProvider;
import com.fasterxml.jackson.databind.ser.std.StdSerializer;
import dev.bwrapd.sandbox.Capture;

import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.Reader;
import java.nio.charset.StandardCharsets;

/**
 * Writes a capture as the protocol's {@code {"text", "base64", "truncated", "error"}}, streaming
 * its bytes (from memory and the spool file) into the response instead of building a string.
 */
public final class CaptureSerializer extends StdSerializer<Capture> {
    /** The fields written, in order (the OpenRPC schema "Captured" lists the same). */
    public static final java.util.List<String> FIELDS = java.util.List.of("text", "base64", "truncated", "error");

    public CaptureSerializer() {
        super(Capture.class);
    }

    @Override
    public void serialize(Capture capture, JsonGenerator gen, SerializerProvider provider) throws IOException {
        gen.writeStartObject();
        if (capture.isText()) {
            gen.writeFieldName("text");
            try (Reader text = new InputStreamReader(capture.open(), StandardCharsets.UTF_8)) {
                gen.writeString(text, -1);
            }
            gen.writeNullField("base64");
        } else {
            gen.writeNullField("text");
            gen.writeFieldName("base64");
            try (InputStream bytes = capture.open()) {
                gen.writeBinary(bytes, (int) capture.kept());
            }
        }
        gen.writeBooleanField("truncated", capture.truncated());
        gen.writeStringField("error", capture.error());
        gen.writeEndObject();
    }
}
