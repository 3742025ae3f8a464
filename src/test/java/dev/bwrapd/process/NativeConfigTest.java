package dev.bwrapd.process;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.bwrapd.cleanup.CleanupReport;
import dev.bwrapd.sandbox.RunResult;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * native-config/reachability-metadata.json is what a native image needs that it cannot see:
 * this keeps it in step with the code (every downcall Libc links, every record Jackson writes
 * by reflection, the OpenRPC resource).
 */
class NativeConfigTest {
    private static final Path METADATA = Path.of("native-config/reachability-metadata.json");

    @Test
    void everyDowncallIsRegistered() throws Exception {
        JsonNode metadata = new ObjectMapper().readTree(METADATA.toFile());
        Set<String> registered = new HashSet<>();
        for (JsonNode call : metadata.path("foreign").path("downcalls")) registered.add(call.toString());
        Set<String> needed = new HashSet<>();
        Libc.errno(); // links every downcall
        for (Libc.Shape shape : Libc.SHAPES) needed.add(entry(shape, true));
        needed.add(entry(Subreaper.SHAPE, false)); // linked apart, without errno capture
        List<String> missing = new ArrayList<>(needed);
        missing.removeAll(registered);
        assertTrue(missing.isEmpty(), "add to " + METADATA + " foreign.downcalls: " + missing);
        List<String> unused = new ArrayList<>(registered);
        unused.removeAll(needed);
        assertTrue(unused.isEmpty(), "no longer linked, remove from " + METADATA + ": " + unused);
    }

    @Test
    void recordsWrittenByJacksonAreRegistered() throws Exception {
        JsonNode metadata = new ObjectMapper().readTree(METADATA.toFile());
        Set<String> types = new HashSet<>();
        for (JsonNode entry : metadata.path("reflection")) types.add(entry.path("type").asText());
        for (Class<?> type : List.of(RunResult.class, RunResult.Usage.class,
                CleanupReport.class, CleanupReport.Failure.class)) {
            assertTrue(types.contains(type.getName()), type.getName() + " is serialized by reflection; register it");
        }
        boolean openRpc = false;
        for (JsonNode resource : metadata.path("resources")) openRpc |= resource.path("glob").asText().equals("openrpc.json");
        assertTrue(openRpc, "openrpc.json must be a registered resource");
    }

    /** One downcall as reachability-metadata.json spells it. */
    private static String entry(Libc.Shape shape, boolean capturesErrno) {
        var node = new ObjectMapper().createObjectNode();
        node.put("returnType", shape.descriptor().returnLayout().map(NativeConfigTest::type).orElse("void"));
        var parameters = node.putArray("parameterTypes");
        for (MemoryLayout layout : shape.descriptor().argumentLayouts()) parameters.add(type(layout));
        var options = node.putObject("options");
        if (capturesErrno) options.put("captureCallState", true);
        if (shape.firstVariadicArg() >= 0) options.put("firstVariadicArg", shape.firstVariadicArg());
        return node.toString();
    }

    private static String type(MemoryLayout layout) {
        if (layout instanceof ValueLayout.OfInt) return "jint";
        if (layout instanceof ValueLayout.OfLong) return "jlong";
        if (layout instanceof ValueLayout.OfShort) return "jshort";
        if (layout instanceof java.lang.foreign.AddressLayout) return "void*";
        throw new AssertionError("unexpected layout " + layout);
    }

    @Test
    void shapesAreUnique() {
        Libc.errno();
        assertEquals(Libc.SHAPES.size(), new HashSet<>(Libc.SHAPES.stream().map(Libc.Shape::function).toList()).size());
    }
}
