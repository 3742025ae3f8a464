package dev.bwrapd.process;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.bwrapd.cleanup.CleanupReport;
import dev.bwrapd.protocol.RunResult;
import org.junit.jupiter.api.Test;

import org.graalvm.nativeimage.c.function.CFunction;
import org.graalvm.word.PointerBase;

import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The libc downcalls are described once ({@link Downcall}); this keeps everything else in step
 * with that list: GraalVM's C interface declarations ({@link CBinding}), the FFM links, and
 * native-config/reachability-metadata.json, which is what a GraalVM native image would need to
 * make the same calls through FFM. It also checks the records Jackson writes by reflection and
 * the OpenRPC resource.
 */
class NativeConfigTest {
    private static final Path METADATA = Path.of("native-config/reachability-metadata.json");

    @Test
    void everyDowncallIsRegistered() throws Exception {
        JsonNode metadata = new ObjectMapper().readTree(METADATA.toFile());
        Set<String> registered = new HashSet<>();
        for (JsonNode call : metadata.path("foreign").path("downcalls")) registered.add(call.toString());
        Set<String> needed = new HashSet<>();
        for (Downcall call : Downcall.values()) needed.add(entry(call));
        List<String> missing = new ArrayList<>(needed);
        missing.removeAll(registered);
        assertTrue(missing.isEmpty(), "add to " + METADATA + " foreign.downcalls: " + missing);
        List<String> unused = new ArrayList<>(registered);
        unused.removeAll(needed);
        assertTrue(unused.isEmpty(), "no longer linked, remove from " + METADATA + ": " + unused);
    }

    @Test
    void everyDowncallLinksThroughFfm() {
        for (Downcall call : Downcall.values()) assertNotNull(FfmBinding.link(call), call.function);
    }

    /** The C interface declares exactly the described functions, each with the described C types. */
    @Test
    void theCInterfaceDeclaresEveryDowncall() {
        Map<String, Method> declared = new HashMap<>();
        for (Method method : CBinding.Functions.class.getDeclaredMethods()) {
            CFunction annotation = method.getAnnotation(CFunction.class);
            if (annotation == null) continue;
            assertTrue(Modifier.isStatic(method.getModifiers()) && Modifier.isNative(method.getModifiers()), method.toString());
            declared.put(annotation.value().isEmpty() ? method.getName() : annotation.value(), method);
        }
        declared.remove("__errno_location"); // how the C interface reads errno; FFM captures it
        for (Downcall call : Downcall.values()) {
            Method method = declared.remove(call.function);
            assertNotNull(method, "CBinding.Functions lacks @CFunction " + call.function);
            assertEquals(call.returns, cType(method.getReturnType()), call.function + " returns");
            assertEquals(call.parameters, Arrays.stream(method.getParameterTypes()).map(NativeConfigTest::cType).toList(),
                    call.function + " parameters");
        }
        assertTrue(declared.isEmpty(), "declared in CBinding.Functions but not in Downcall: " + declared.keySet());
    }

    private static Downcall.CType cType(Class<?> type) {
        if (type == int.class) return Downcall.CType.INT;
        if (type == long.class) return Downcall.CType.LONG;
        if (type == short.class) return Downcall.CType.SHORT;
        if (PointerBase.class.isAssignableFrom(type)) return Downcall.CType.POINTER;
        throw new AssertionError("no C type for " + type);
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

    /** One downcall as reachability-metadata.json spells it (FfmBinding captures errno on every call). */
    private static String entry(Downcall call) {
        var node = new ObjectMapper().createObjectNode();
        node.put("returnType", type(call.returns));
        var parameters = node.putArray("parameterTypes");
        for (Downcall.CType parameter : call.parameters) parameters.add(type(parameter));
        var options = node.putObject("options");
        options.put("captureCallState", true);
        if (call.firstVariadicArg >= 0) options.put("firstVariadicArg", call.firstVariadicArg);
        return node.toString();
    }

    private static String type(Downcall.CType type) {
        return switch (type) {
            case INT -> "jint";
            case LONG -> "jlong";
            case SHORT -> "jshort";
            case POINTER -> "void*";
        };
    }

    @Test
    void functionsAreUnique() {
        assertEquals(Downcall.values().length, Arrays.stream(Downcall.values()).map(call -> call.function).distinct().count());
    }
}
