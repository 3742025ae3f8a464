package dev.bwrapd.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.networknt.schema.Schema;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SpecificationVersion;
import dev.bwrapd.jsonrpc.RpcException;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.InputStream;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The OpenRPC document and the server judge sandbox/run params alike: every edge case below goes
 * to a real JSON Schema validator (draft 7, the schemas OpenRPC uses) holding the document's
 * RunParams, and to {@link RunParams#parse}; both must accept it, or both refuse it. Cases are
 * what a schema can say (types, nulls, lengths, patterns, enums, ranges); what only the host can
 * tell (whether a root exists, '..' climbing out) is the server's alone and not listed.
 */
class RunParamsSchemaTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Schema RUN_PARAMS = runParamsSchema();

    private static Schema runParamsSchema() {
        try (InputStream in = RunParamsSchemaTest.class.getResourceAsStream("/openrpc.json")) {
            JsonNode doc = JSON.readTree(in);
            ObjectNode schema = JSON.createObjectNode().put("$ref", "#/components/schemas/RunParams");
            schema.set("components", doc.get("components"));
            return SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_7).getSchema(schema.toString());
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    record Case(String params, boolean valid) {
        @Override
        public String toString() {
            return (valid ? "accepted: " : "refused: ") + params;
        }
    }

    static Stream<Case> cases() {
        String many = "x".repeat(257);
        return Stream.of(
                new Case("{'command':['true']}", true),
                new Case("{}", false),
                new Case("{'command':null}", false),
                new Case("{'command':[]}", false),
                new Case("{'command':['']}", false),
                new Case("{'command':['true','']}", true),
                new Case("{'command':[1]}", false),
                new Case("{'command':'true'}", false),
                new Case("{'command':['true'],'unknown':1}", false),
                // null counts as absent: the default applies
                new Case("{'command':['true'],'cwd':null,'env':null,'hostname':null,'uid':null,'mounts':null,'stdin':null,"
                        + "'stdout':null,'stderr':null,'timeoutMs':null,'network':null,'sandboxId':null,'root':null,'devices':null,"
                        + "'capabilities':null,'captureLimitBytes':null,'killGraceMs':null}", true),
                new Case("{'command':['true'],'root':'relative'}", false),
                new Case("{'command':['true'],'root':'/'}", true),
                new Case("{'command':['true'],'cwd':'relative'}", false),
                new Case("{'command':['true'],'cwd':'/work'}", true),
                new Case("{'command':['true'],'cwd':''}", false),
                new Case("{'command':['true'],'sandboxId':''}", false),
                new Case("{'command':['true'],'sandboxId':'" + many + "'}", false),
                new Case("{'command':['true'],'sandboxId':'a'}", true),
                new Case("{'command':['true'],'hostname':''}", false),
                new Case("{'command':['true'],'hostname':'" + "h".repeat(65) + "'}", false),
                new Case("{'command':['true'],'hostname':'" + "h".repeat(64) + "'}", true),
                new Case("{'command':['true'],'env':{'':'x'}}", false),
                new Case("{'command':['true'],'env':{'A=B':'x'}}", false),
                new Case("{'command':['true'],'env':{'A':1}}", false),
                new Case("{'command':['true'],'env':{'A':'1'}}", true),
                new Case("{'command':['true'],'network':'yes'}", false),
                new Case("{'command':['true'],'uid':-1}", false),
                new Case("{'command':['true'],'uid':2147483648}", false),
                new Case("{'command':['true'],'uid':2147483647}", true),
                new Case("{'command':['true'],'uid':1.5}", false),
                new Case("{'command':['true'],'timeoutMs':0}", false),
                new Case("{'command':['true'],'timeoutMs':1}", true),
                new Case("{'command':['true'],'captureLimitBytes':1073741825}", false),
                new Case("{'command':['true'],'killGraceMs':-1}", false),
                new Case("{'command':['true'],'mounts':[{'source':'/tmp','target':'/'}]}", false),
                new Case("{'command':['true'],'mounts':[{'source':'/tmp','target':'/mnt'}]}", true),
                new Case("{'command':['true'],'mounts':[{'source':'tmp','target':'/mnt'}]}", false),
                new Case("{'command':['true'],'mounts':[{'source':'/tmp','target':'mnt'}]}", false),
                // the host's / spelled with slashes and dots, read-only or not; any other spelling is the run's to refuse
                new Case("{'command':['true'],'mounts':[{'source':'/','target':'/mnt','readOnly':true}]}", false),
                new Case("{'command':['true'],'mounts':[{'source':'//./','target':'/mnt'}]}", false),
                new Case("{'command':['true'],'mounts':[{'source':'/..','target':'/mnt','readOnly':true}]}", true),
                new Case("{'command':['true'],'mounts':[{'source':'/.x','target':'/mnt','readOnly':true}]}", true),
                new Case("{'command':['true'],'mounts':[{'source':'/tmp'}]}", false),
                new Case("{'command':['true'],'mounts':[{'source':'/tmp','target':'/mnt','readOnly':null}]}", true),
                new Case("{'command':['true'],'mounts':[{'source':'/tmp','target':'/mnt','other':1}]}", false),
                new Case("{'command':['true'],'devices':['/dev/null']}", true),
                new Case("{'command':['true'],'devices':['/tmp/null']}", false),
                new Case("{'command':['true'],'devices':['/dev/']}", false),
                new Case("{'command':['true'],'stdin':'null'}", true),
                new Case("{'command':['true'],'stdin':'none'}", false),
                new Case("{'command':['true'],'stdin':{'text':'hi'}}", true),
                new Case("{'command':['true'],'stdin':{'base64':'aGk='}}", true),
                new Case("{'command':['true'],'stdin':{'file':'/etc/hostname'}}", true),
                new Case("{'command':['true'],'stdin':{'file':'relative'}}", false),
                new Case("{'command':['true'],'stdin':{}}", false),
                new Case("{'command':['true'],'stdin':{'other':'x'}}", false),
                new Case("{'command':['true'],'stdout':'stream'}", true),
                new Case("{'command':['true'],'stdout':'stdout'}", false),
                new Case("{'command':['true'],'stderr':'stdout'}", true),
                new Case("{'command':['true'],'stdout':'bogus'}", false),
                new Case("{'command':['true'],'stdout':{'file':'/tmp/out'}}", true),
                new Case("{'command':['true'],'stdout':{'file':'out'}}", false),
                new Case("{'command':['true'],'stderr':{'file':'err','append':true}}", false),
                new Case("{'command':['true'],'stdout':{'file':'/tmp/out','append':null}}", true),
                new Case("{'command':['true'],'stdout':{'append':true}}", false),
                new Case("{'command':['true'],'capabilities':['CAP_CHOWN']}", true),
                new Case("{'command':['true'],'capabilities':['chown']}", false));
    }

    @ParameterizedTest
    @MethodSource("cases")
    void schemaAndServerAgree(Case c) throws Exception {
        JsonNode params = JSON.readTree(c.params().replace('\'', '"'));
        List<?> schemaErrors = RUN_PARAMS.validate(params);
        String serverError = null;
        try {
            RunParams.parse(params);
        } catch (RpcException e) {
            serverError = e.getMessage();
        }
        assertEquals(c.valid(), schemaErrors.isEmpty(), "the schema: " + schemaErrors);
        assertEquals(c.valid(), serverError == null, "the server: " + serverError);
    }
}
