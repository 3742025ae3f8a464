package dev.bwrapd.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.bwrapd.cleanup.CleanupReport;
import dev.bwrapd.jsonrpc.ErrorCodes;
import dev.bwrapd.jsonrpc.Server;
import dev.bwrapd.process.Signals;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.lang.reflect.RecordComponent;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Keeps src/main/resources/openrpc.json (what rpc.discover serves) true to the code: the methods the
 * server handles, the sandbox/run fields it accepts, the result fields it writes, the signals and
 * error codes it knows. Adding a method, a field or a code without documenting it fails here.
 */
class OpenRpcDocumentTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static JsonNode doc;

    @BeforeAll
    static void load() throws IOException {
        try (InputStream in = OpenRpcDocumentTest.class.getResourceAsStream("/openrpc.json")) {
            assertNotNull(in, "openrpc.json is not on the classpath");
            doc = JSON.readTree(in);
        }
    }

    private static BwrapdMethods methods() {
        // handlers() only binds method references: none of these collaborators is touched.
        return new BwrapdMethods(JSON, null, null, new CompletableFuture<>(), "9.8.7-test", Map.of(), null, null, code -> { });
    }

    @Test
    void isAnOpenRpcDocument() {
        assertEquals("1.3.2", doc.path("openrpc").asText());
        assertTrue(doc.path("info").isObject(), "info");
        assertEquals("bwrapd", doc.path("info").path("title").asText());
        assertTrue(doc.path("info").has("version"), "info.version");
        assertTrue(doc.path("methods").isArray() && !doc.path("methods").isEmpty(), "methods");
    }

    @Test
    void documentsExactlyTheMethodsTheServerHandles() {
        Set<String> handled = new TreeSet<>(methods().handlers().keySet());
        handled.add(Server.CANCEL_METHOD);
        assertEquals(handled, new TreeSet<>(names(doc.path("methods"))));
        assertEquals(doc.path("methods").size(), names(doc.path("methods")).size(), "a method is documented twice");
    }

    @Test
    void everyMethodTakesNamedParamsAndNotificationsHaveNoResult() {
        List<JsonNode> all = new ArrayList<>();
        doc.path("methods").forEach(all::add);
        doc.path("x-notifications").forEach(all::add);
        for (JsonNode method : all) {
            String name = method.path("name").asText();
            assertEquals("by-name", method.path("paramStructure").asText(), name);
            assertTrue(method.path("params").isArray(), name + ": params");
            for (JsonNode param : method.path("params")) {
                assertFalse(param.path("name").asText().isEmpty(), name + ": a param without a name");
                assertTrue(param.path("schema").isObject(), name + "." + param.path("name").asText() + ": schema");
            }
            boolean notification = method.path("x-notification").asBoolean(false);
            assertEquals(!notification, method.has("result"), name + ": a result exactly when it is not a notification");
        }
        assertEquals(Set.of("exit", Server.CANCEL_METHOD), notifications(doc.path("methods")));
        assertEquals(Set.of("sandbox/started", "sandbox/output"), new TreeSet<>(names(doc.path("x-notifications"))));
        assertEquals(Set.of("sandbox/started", "sandbox/output"), notifications(doc.path("x-notifications")));
    }

    @Test
    void sandboxRunParamsAreExactlyRunParamsFields() {
        JsonNode run = method("sandbox/run");
        List<String> expected = Arrays.asList(RunParams.FIELDS);
        assertEquals(expected, names(run.path("params")), "sandbox/run params, in RunParams.FIELDS order");
        JsonNode schema = doc.path("components").path("schemas").path("RunParams");
        assertEquals(expected, fieldNames(schema.path("properties")), "components.schemas.RunParams.properties");
        assertFalse(schema.path("additionalProperties").asBoolean(true), "unknown sandbox/run fields are refused");

        List<String> required = new ArrayList<>();
        for (JsonNode param : run.path("params")) if (param.path("required").asBoolean(false)) required.add(param.path("name").asText());
        assertEquals(List.of("command"), required);
        assertEquals(List.of("command"), texts(schema.path("required")));
    }

    @Test
    void resultSchemasHaveExactlyTheRecordsFields() {
        assertRecordSchema(RunResult.class, "RunResult");
        assertRecordSchema(RunResult.Usage.class, "Usage");
        JsonNode captured = doc.path("components").path("schemas").path("Captured");
        assertEquals(CaptureSerializer.FIELDS, fieldNames(captured.path("properties")), "Captured.properties vs CaptureSerializer");
        assertEquals(new TreeSet<>(CaptureSerializer.FIELDS), new TreeSet<>(texts(captured.path("required"))));
        assertRecordSchema(CleanupReport.class, "Cleanup");
        assertRecordSchema(CleanupReport.Failure.class, "CleanupFailure");
        assertEquals("#/components/schemas/RunResult", method("sandbox/run").path("result").path("schema").path("$ref").asText());
    }

    @Test
    void signalNamesAreTheSendableSignals() {
        assertEquals(new TreeSet<>(Signals.SENDABLE.keySet()),
                new TreeSet<>(texts(doc.path("components").path("schemas").path("SignalName").path("enum"))));
    }

    @Test
    void errorCodesAreTheServersCodes() throws IllegalAccessException {
        Set<Integer> codes = new TreeSet<>();
        for (Class<?> holder : List.of(ErrorCodes.class, ProtocolErrors.class)) {
            for (Field field : holder.getFields()) {
                if (Modifier.isStatic(field.getModifiers()) && field.getType() == int.class) codes.add(field.getInt(null));
            }
        }
        Set<Integer> documented = new TreeSet<>();
        for (JsonNode error : doc.path("components").path("errors")) {
            assertTrue(error.path("code").isInt() && error.path("message").isTextual(), error.toString());
            assertTrue(documented.add(error.path("code").asInt()), "code documented twice: " + error);
        }
        assertEquals(codes, documented);
    }

    @Test
    void everyReferenceResolves() {
        List<String> refs = new ArrayList<>();
        collectRefs(doc, refs);
        assertFalse(refs.isEmpty());
        for (String ref : refs) {
            assertTrue(ref.startsWith("#/"), "only local references: " + ref);
            assertFalse(doc.at(ref.substring(1)).isMissingNode(), "unresolved $ref " + ref);
        }
    }

    @Test
    void rpcDiscoverServesThisDocumentWithTheServerVersion() throws Exception {
        // rpc.discover ignores its call, so none is needed.
        JsonNode served = JSON.valueToTree(methods().handlers().get("rpc.discover").handle(null));
        assertEquals("9.8.7-test", served.path("info").path("version").asText());
        assertEquals(names(doc.path("methods")), names(served.path("methods")));
    }

    private static void assertRecordSchema(Class<? extends Record> type, String schemaName) {
        JsonNode schema = doc.path("components").path("schemas").path(schemaName);
        assertTrue(schema.isObject(), "components.schemas." + schemaName);
        List<String> components = new ArrayList<>();
        for (RecordComponent c : type.getRecordComponents()) components.add(c.getName());
        assertEquals(components, fieldNames(schema.path("properties")), schemaName + ".properties vs " + type.getSimpleName());
        assertEquals(new TreeSet<>(components), new TreeSet<>(texts(schema.path("required"))),
                schemaName + ".required: every field is always written");
    }

    private static JsonNode method(String name) {
        for (JsonNode m : doc.path("methods")) if (m.path("name").asText().equals(name)) return m;
        throw new AssertionError("no method " + name);
    }

    private static List<String> names(JsonNode array) {
        List<String> names = new ArrayList<>();
        for (JsonNode element : array) names.add(element.path("name").asText());
        return names;
    }

    private static Set<String> notifications(JsonNode methods) {
        Set<String> names = new LinkedHashSet<>();
        for (JsonNode m : methods) if (m.path("x-notification").asBoolean(false)) names.add(m.path("name").asText());
        return names;
    }

    private static List<String> fieldNames(JsonNode object) {
        List<String> names = new ArrayList<>();
        object.fieldNames().forEachRemaining(names::add);
        return names;
    }

    private static List<String> texts(JsonNode array) {
        List<String> texts = new ArrayList<>();
        for (JsonNode element : array) texts.add(element.asText());
        return texts;
    }

    private static void collectRefs(JsonNode node, List<String> refs) {
        if (node.isObject()) {
            for (Iterator<Map.Entry<String, JsonNode>> fields = node.fields(); fields.hasNext(); ) {
                Map.Entry<String, JsonNode> field = fields.next();
                if (field.getKey().equals("$ref") && field.getValue().isTextual()) refs.add(field.getValue().asText());
                else collectRefs(field.getValue(), refs);
            }
        } else if (node.isArray()) {
            for (JsonNode element : node) collectRefs(element, refs);
        }
    }
}
