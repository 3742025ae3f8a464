package dev.bwrapd.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.bwrapd.jsonrpc.ErrorCodes;
import dev.bwrapd.jsonrpc.RpcException;
import dev.bwrapd.sandbox.RunSpec;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Validation of sandbox/run params: defaults, types (-32602 naming the field), paths (-32005). */
class RunParamsTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path dir;
    static Path root;
    static Path linkToHostRoot;

    @BeforeAll
    static void setUp() throws IOException {
        root = Files.createDirectory(dir.resolve("root")).toRealPath();
        Files.writeString(dir.resolve("a-file"), "x");
        linkToHostRoot = Files.createSymbolicLink(dir.resolve("slash"), Path.of("/"));
    }

    /** Params with a valid command and root, plus {@code extra} (a JSON object's inside, single quotes allowed). */
    static ObjectNode params(String extra) {
        String body = "{\"command\":[\"sh\"],\"root\":" + quote(root.toString()) + (extra.isEmpty() ? "" : "," + extra.replace('\'', '"')) + "}";
        try {
            return (ObjectNode) JSON.readTree(body);
        } catch (IOException e) {
            throw new AssertionError("bad test JSON: " + body, e);
        }
    }

    static String quote(String s) {
        try {
            return JSON.writeValueAsString(s);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    static RunSpec parse(String extra) throws RpcException {
        return RunParams.parse(params(extra));
    }

    static RpcException error(JsonNode params) {
        return assertThrows(RpcException.class, () -> RunParams.parse(params), () -> "accepted: " + params);
    }

    @Test
    void defaults() throws RpcException {
        RunSpec spec = RunParams.parse(JSON.createObjectNode().set("command", JSON.createArrayNode().add("true")));
        assertEquals(List.of("true"), spec.command());
        assertEquals(Path.of("/"), spec.root());
        assertNull(spec.sandboxId());
        assertEquals("/", spec.cwd());
        assertEquals(Map.of("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"), spec.env());
        assertFalse(spec.network());
        assertFalse(spec.readOnlyRoot());
        assertEquals("sandbox", spec.hostname());
        assertEquals(0, spec.uid());
        assertEquals(0, spec.gid());
        assertFalse(spec.inheritUid());
        assertEquals(List.of(), spec.mounts());
        assertEquals(List.of("/dev/full", "/dev/null", "/dev/urandom", "/dev/random", "/dev/zero"), spec.devices());
        assertFalse(spec.devShm());
        assertFalse(spec.linux32());
        assertInstanceOf(RunSpec.Stdin.Null.class, spec.stdin());
        assertInstanceOf(RunSpec.Output.Capture.class, spec.stdout());
        assertInstanceOf(RunSpec.Output.Capture.class, spec.stderr());
        assertEquals(1048576, spec.captureLimitBytes());
        assertNull(spec.timeoutMs());
        assertEquals(2000, spec.killGraceMs());
        assertFalse(spec.interactive());
    }

    @Test
    void nullMeansDefault() throws RpcException {
        RunSpec spec = parse("'cwd':null,'env':null,'mounts':null,'devices':null,'timeoutMs':null,'stdin':null,'network':null");
        assertEquals("/", spec.cwd());
        assertEquals(Map.of("PATH", RunSpec.DEFAULT_PATH), spec.env());
        assertEquals(RunSpec.DEFAULT_DEVICES, spec.devices());
        assertNull(spec.timeoutMs());
        assertFalse(spec.network());
    }

    @Test
    void everyFieldSet() throws Exception {
        Path in = Files.writeString(dir.resolve("in.txt"), "input");
        RunSpec spec = parse("'sandboxId':'job-1','cwd':'/build/./x/../src','env':{'A':'1','B':''},'network':true,"
                + "'readOnlyRoot':true,'hostname':'h1','uid':1000,'gid':100,'inheritUid':true,"
                + "'mounts':[{'source':'/srv/a','target':'/a'},{'source':'/srv/b','target':'/b/c/','readOnly':true}],"
                + "'devices':['/dev/null','/dev/fuse'],'devShm':true,'linux32':true,'stdin':{'file':" + quote(in.toString()) + "},"
                + "'stdout':{'file':'/tmp/out.log','append':true},'stderr':'stdout','captureLimitBytes':10,"
                + "'timeoutMs':500,'killGraceMs':0,'interactive':true,'capabilities':['CAP_NET_RAW','CAP_SYS_PTRACE']");
        assertEquals("job-1", spec.sandboxId());
        assertEquals("/build/src", spec.cwd());
        assertEquals(Map.of("A", "1", "B", ""), spec.env());
        assertTrue(spec.network() && spec.readOnlyRoot() && spec.inheritUid() && spec.devShm() && spec.linux32() && spec.interactive());
        assertEquals("h1", spec.hostname());
        assertEquals(1000, spec.uid());
        assertEquals(100, spec.gid());
        assertEquals(List.of(new RunSpec.Mount("/srv/a", "/a", false), new RunSpec.Mount("/srv/b", "/b/c", true)), spec.mounts());
        assertEquals(List.of("/dev/null", "/dev/fuse"), spec.devices());
        assertEquals(new RunSpec.Stdin.File(in.toString()), spec.stdin());
        assertEquals(new RunSpec.Output.File("/tmp/out.log", true), spec.stdout());
        assertInstanceOf(RunSpec.Output.IntoStdout.class, spec.stderr());
        assertEquals(10, spec.captureLimitBytes());
        assertEquals(List.of("CAP_NET_RAW", "CAP_SYS_PTRACE"), spec.capabilities());
        assertEquals(500L, spec.timeoutMs());
        assertEquals(0, spec.killGraceMs());
    }

    /** Review finding: 1.0 and 1e3 are integers to JSON Schema (and the OpenRPC document) but were refused; a huge one is out of range, quickly. */
    @Test
    void wholeNumbersMayBeWrittenAsDecimalsOrWithExponents() throws RpcException {
        RunSpec spec = parse("'uid':1.0,'timeoutMs':1e3,'gid':2.50e1");
        assertEquals(1, spec.uid());
        assertEquals(1000L, spec.timeoutMs());
        assertEquals(25, spec.gid());
        for (String big : new String[] {"1e999999999", "1e23", "-1e19"}) {
            RpcException e = org.junit.jupiter.api.Assertions.assertThrows(RpcException.class, () -> parse("'timeoutMs':" + big));
            assertTrue(e.getMessage().contains("must be between"), big + ": " + e.getMessage());
        }
    }

    /** Review finding: as the server parses them (exact decimals), 100e2147483647 overflowed int arithmetic on its scale: -32603. */
    @Test
    void exactDecimalsOfAnyScaleAreJudgedWithoutOverflow() throws RpcException {
        for (String big : new String[] {"100e2147483647", "1e2147483647", "-10e2147483647", "1e20"}) {
            ObjectNode params = params("");
            params.put("timeoutMs", new java.math.BigDecimal(big));
            RpcException e = org.junit.jupiter.api.Assertions.assertThrows(RpcException.class, () -> RunParams.parse(params));
            assertTrue(e.getMessage().contains("must be between"), big + ": " + e.getMessage());
        }
        for (String fraction : new String[] {"1e-2147483647", "0.1e-2147483646", "1.5"}) {
            ObjectNode params = params("");
            params.put("timeoutMs", new java.math.BigDecimal(fraction));
            RpcException e = org.junit.jupiter.api.Assertions.assertThrows(RpcException.class, () -> RunParams.parse(params));
            assertTrue(e.getMessage().contains("must be a whole number"), fraction + ": " + e.getMessage());
        }
        ObjectNode params = params("");
        params.put("timeoutMs", new java.math.BigDecimal("200.000e-2"));
        assertEquals(2L, RunParams.parse(params).timeoutMs());
    }

    /** Review finding: the names were kept unique with a list's contains, on the reading thread: 100,000 names held it up 86 s. */
    @Test
    void manySeccompNamesAreParsedInLinearTime() throws RpcException {
        StringBuilder names = new StringBuilder();
        for (int i = 0; i < 60_000; i++) names.append(i == 0 ? "" : ",").append("'x").append(i % 50_000).append("'");
        long start = System.nanoTime();
        RunSpec.Seccomp seccomp = parse("'seccomp':{'deny':[" + names + "]}").seccomp();
        assertEquals(50_000, seccomp.deny().size());
        assertEquals("x0", seccomp.deny().getFirst());
        assertTrue(System.nanoTime() - start < 5_000_000_000L, "took " + (System.nanoTime() - start) / 1_000_000 + " ms");
    }

    @Test
    void envKeepsOrderAndExactValues() throws RpcException {
        RunSpec spec = parse("'env':{'Z':'last?','A':'a=b','EMPTY':'','U':'grüße'}");
        Map<String, String> expected = new LinkedHashMap<>();
        expected.put("Z", "last?");
        expected.put("A", "a=b");
        expected.put("EMPTY", "");
        expected.put("U", "grüße");
        assertEquals(List.copyOf(expected.entrySet()), List.copyOf(spec.env().entrySet()));
    }

    @Test
    void emptyEnvIsAllowed() throws RpcException {
        assertEquals(Map.of(), parse("'env':{}").env());
    }

    // ----- -32602: wrong types and values, with the field named -----

    static Stream<Arguments> invalid() {
        return Stream.of(
                // field named in the message, params (inside of the object after command and root)
                Arguments.of("command", "{}"),
                Arguments.of("command", "{'command':'sh'}"),
                Arguments.of("command", "{'command':[]}"),
                Arguments.of("command", "{'command':null}"),
                Arguments.of("command[1]", "{'command':['sh',3]}"),
                Arguments.of("command[0]", "{'command':['']}"),
                Arguments.of("command[1]", "{'command':['sh','a\\u0000b']}"),
                // JSON's escapes can spell a lone surrogate, which no UTF-8 carries (it would become '?')
                Arguments.of("command[1]", "{'command':['sh','a\\ud800b']}"),
                Arguments.of("env.A", "+'env':{'A':'x\\udc00'}"),
                Arguments.of("stdout.file", "+'stdout':{'file':'/tmp/out\\ud800'}"),
                Arguments.of("cwd", "+'cwd':'/w\\udbff'"),
                Arguments.of("root", "{'command':['sh'],'root':7}"),
                Arguments.of("sandboxId", "+'sandboxId':5"),
                Arguments.of("sandboxId", "+'sandboxId':''"),
                Arguments.of("sandboxId", "+'sandboxId':'" + "x".repeat(257) + "'"),
                Arguments.of("cwd", "+'cwd':['/']"),
                Arguments.of("env", "+'env':['PATH=/bin']"),
                Arguments.of("env", "+'env':'PATH=/bin'"),
                Arguments.of("env.A", "+'env':{'A':1}"),
                Arguments.of("env.A", "+'env':{'A':null}"),
                Arguments.of("env.A=B", "+'env':{'A=B':'c'}"),
                Arguments.of("env.", "+'env':{'':'c'}"),
                Arguments.of("env.A", "+'env':{'A':'x\\u0000y'}"),
                Arguments.of("env.A\u0000B", "+'env':{'A\\u0000B':'y'}"),
                Arguments.of("network", "+'network':'yes'"),
                Arguments.of("network", "+'network':1"),
                Arguments.of("readOnlyRoot", "+'readOnlyRoot':'true'"),
                Arguments.of("hostname", "+'hostname':1"),
                Arguments.of("hostname", "+'hostname':''"),
                Arguments.of("hostname", "+'hostname':'" + "é".repeat(33) + "'"), // 33 characters, 66 bytes
                Arguments.of("uid", "+'uid':'1000'"),
                Arguments.of("uid", "+'uid':1.5"),
                Arguments.of("uid", "+'uid':-1"),
                Arguments.of("uid", "+'uid':99999999999"),
                Arguments.of("uid", "+'uid':2147483648"),
                Arguments.of("gid", "+'gid':2147483648"),
                Arguments.of("gid", "+'gid':true"),
                Arguments.of("inheritUid", "+'inheritUid':0"),
                Arguments.of("mounts", "+'mounts':{}"),
                Arguments.of("mounts[0]", "+'mounts':['/a']"),
                Arguments.of("mounts[0].source", "+'mounts':[{'target':'/a'}]"),
                Arguments.of("mounts[0].target", "+'mounts':[{'source':'/a'}]"),
                Arguments.of("mounts[1].source", "+'mounts':[{'source':'/a','target':'/a'},{'source':2,'target':'/b'}]"),
                Arguments.of("mounts[0].readOnly", "+'mounts':[{'source':'/a','target':'/a','readOnly':'yes'}]"),
                Arguments.of("mounts[0].rw", "+'mounts':[{'source':'/a','target':'/a','rw':true}]"),
                Arguments.of("devices", "+'devices':'/dev/null'"),
                Arguments.of("devices[1]", "+'devices':['/dev/null',1]"),
                Arguments.of("devShm", "+'devShm':'no'"),
                Arguments.of("linux32", "+'linux32':[]"),
                Arguments.of("stdin", "+'stdin':'text'"),
                Arguments.of("stdin", "+'stdin':5"),
                Arguments.of("stdin", "+'stdin':{}"),
                Arguments.of("stdin.text", "+'stdin':{'text':5}"),
                Arguments.of("stdin.base64", "+'stdin':{'base64':'not base64!'}"),
                Arguments.of("stdin.bytes", "+'stdin':{'bytes':'x'}"),
                Arguments.of("stdout", "+'stdout':'stdout'"),
                Arguments.of("stdout", "+'stdout':'pipe'"),
                Arguments.of("stdout", "+'stdout':3"),
                Arguments.of("stdout.file", "+'stdout':{'append':true}"),
                Arguments.of("stdout.append", "+'stdout':{'file':'/tmp/x','append':'yes'}"),
                Arguments.of("stdout.mode", "+'stdout':{'file':'/tmp/x','mode':'a'}"),
                Arguments.of("stderr", "+'stderr':'stderr'"),
                Arguments.of("captureLimitBytes", "+'captureLimitBytes':-1"),
                Arguments.of("captureLimitBytes", "+'captureLimitBytes':'1'"),
                Arguments.of("timeoutMs", "+'timeoutMs':0"),
                Arguments.of("timeoutMs", "+'timeoutMs':1.5"),
                Arguments.of("killGraceMs", "+'killGraceMs':-5"),
                Arguments.of("interactive", "+'interactive':'false'"),
                Arguments.of("capabilities", "+'capabilities':'CAP_CHOWN'"),
                Arguments.of("capabilities[0]", "+'capabilities':[5]"),
                Arguments.of("capabilities[1]", "+'capabilities':['CAP_CHOWN','ALL']"),
                Arguments.of("capabilities[0]", "+'capabilities':['net_raw']"),
                Arguments.of("bogus", "+'bogus':1"),
                Arguments.of("Command", "+'Command':['sh']"));
    }

    @ParameterizedTest(name = "{0} in {1}")
    @MethodSource("invalid")
    void invalidParamsNameTheField(String field, String json) throws IOException {
        JsonNode params = json.startsWith("+") ? params(json.substring(1)) : JSON.readTree(json.replace('\'', '"'));
        RpcException e = error(params);
        assertEquals(ErrorCodes.INVALID_PARAMS, e.code(), e::getMessage);
        assertTrue(e.getMessage().startsWith(field + ":") || e.getMessage().contains(field + ":"),
                () -> "message does not name " + field + ": " + e.getMessage());
    }

    @Test
    void paramsMustBeAnObject() {
        RpcException e = error(JSON.createArrayNode().add("sh"));
        assertEquals(ErrorCodes.INVALID_PARAMS, e.code());
    }

    // ----- -32005: paths not allowed -----

    static Stream<Arguments> notAllowed() {
        return Stream.of(
                Arguments.of("root", "{'command':['sh'],'root':'relative/dir'}"),
                Arguments.of("cwd", "+'cwd':'build'"),
                Arguments.of("cwd", "+'cwd':'/..'"),
                Arguments.of("cwd", "+'cwd':'/a/../../etc'"),
                Arguments.of("mounts[0].source", "+'mounts':[{'source':'srv/a','target':'/a'}]"),
                Arguments.of("mounts[0].target", "+'mounts':[{'source':'/srv/a','target':'a'}]"),
                Arguments.of("mounts[0].target", "+'mounts':[{'source':'/srv/a','target':'/a/../../b'}]"),
                Arguments.of("mounts[0].target", "+'mounts':[{'source':'/srv/a','target':'/'}]"),
                Arguments.of("mounts[0].target", "+'mounts':[{'source':'/srv/a','target':'/a/..'}]"),
                Arguments.of("mounts[1].source", "+'mounts':[{'source':'/usr/..','target':'/host','readOnly':true},{'source':'/','target':'/h2'}]"),
                Arguments.of("mounts[0].source", "+'mounts':[{'source':'/','target':'/host','readOnly':false}]"),
                Arguments.of("mounts[0].source", "+'mounts':[{'source':'/.','target':'/host'}]"),
                Arguments.of("mounts[0].source", "+'mounts':[{'source':'//','target':'/host'}]"),
                Arguments.of("devices[0]", "+'devices':['dev/null']"),
                Arguments.of("devices[0]", "+'devices':['/etc/passwd']"),
                Arguments.of("devices[0]", "+'devices':['/dev/../etc/shadow']"),
                Arguments.of("devices[0]", "+'devices':['/dev']"),
                Arguments.of("stdin.file", "+'stdin':{'file':'in.txt'}"),
                Arguments.of("stdout.file", "+'stdout':{'file':'out.txt'}"),
                Arguments.of("stderr.file", "+'stderr':{'file':'err.txt','append':true}"));
    }

    @ParameterizedTest(name = "{0} in {1}")
    @MethodSource("notAllowed")
    void pathsNotAllowed(String field, String json) throws IOException {
        JsonNode params = json.startsWith("+") ? params(json.substring(1)) : JSON.readTree(json.replace('\'', '"'));
        RpcException e = error(params);
        assertEquals(ProtocolErrors.PATH_NOT_ALLOWED, e.code(), e::getMessage);
        assertTrue(e.getMessage().contains(field + ":"), () -> "message does not name " + field + ": " + e.getMessage());
    }

    /** Read-only too: bound recursively, it would bring the host's /run and /proc along (the run refuses every other spelling). */
    @ParameterizedTest
    @ValueSource(strings = {"'/','readOnly':true", "'//.','readOnly':true", "'/./','readOnly':false", "'/'"})
    void theHostRootSpelledOutIsNeverAMountSource(String source) {
        RpcException e = error(params("'mounts':[{'target':'/host','source':" + source + "}]"));
        assertEquals(ProtocolErrors.PATH_NOT_ALLOWED, e.code(), e::getMessage);
        assertTrue(e.getMessage().startsWith("mounts[0].source: "), e::getMessage);
    }

    @Test
    void otherSpellingsOfTheHostRootAreTheRunsToRefuse() throws RpcException {
        assertEquals(List.of(new RunSpec.Mount("/usr/..", "/host", true)), parse("'mounts':[{'source':'/usr/..','target':'/host','readOnly':true}]").mounts());
    }

    /**
     * The root is taken as spelled, never looked at: parsing runs on the thread that reads every
     * request, which a root on a hung file system would stall. The run opens and checks it, and
     * knows the host's root however spelled (HostPathsTest); a link to / mounted read-write is
     * likewise the run's to refuse (HostPathsTest), "/" spelled out is refused here.
     */
    @ParameterizedTest
    @MethodSource("rootSpellings")
    void theRootIsTakenAsSpelledWithoutLookingAtIt(String spelling) throws RpcException {
        ObjectNode p = params("");
        p.put("root", spelling);
        assertEquals(Path.of(spelling), RunParams.parse(p).root());
    }

    static Stream<String> rootSpellings() {
        return Stream.of("/", "/.", "//", "/usr/..", linkToHostRoot.toString(), linkToHostRoot + "/.", "/no-such-dir-for-bwrapd/root");
    }

    @Test
    void pathsAreNormalized() throws RpcException {
        RunSpec spec = parse("'cwd':'//a/./b/../c/','mounts':[{'source':'/s','target':'/x//y/./z/..'}],'devices':['/dev/./null']");
        assertEquals("/a/c", spec.cwd());
        assertEquals("/x/y", spec.mounts().getFirst().target());
        assertEquals(List.of("/dev/null"), spec.devices());
    }

    @Test
    void kernelLimitsAreCountedInBytes() throws RpcException {
        assertEquals("é".repeat(32), parse("'hostname':'" + "é".repeat(32) + "'").hostname(), "64 bytes: the limit");
        // A string's length is the run's to check, with bwrap's whole argv (BwrapCommand.Invocation.checkExecSize): not parsed twice.
        String over = "x".repeat(dev.bwrapd.sandbox.BwrapCommand.MAX_ARG_STRLEN);
        assertEquals(over, parse("'command':['sh','" + over + "']").command().get(1));
    }

    // ----- stdin and output forms -----

    @Test
    void stdinForms() throws RpcException {
        assertInstanceOf(RunSpec.Stdin.Null.class, parse("'stdin':'null'").stdin());
        RunSpec.Stdin text = parse("'stdin':{'text':'héllo\\n'}").stdin();
        assertArrayEquals("héllo\n".getBytes(StandardCharsets.UTF_8), bytes(((RunSpec.Stdin.Text) text).open()));
        RunSpec.Stdin empty = parse("'stdin':{'text':''}").stdin();
        assertArrayEquals(new byte[0], bytes(((RunSpec.Stdin.Text) empty).open()));
        String long_ = "aé€𝄞".repeat(100_000); // characters of every length across the encoder's chunks
        assertArrayEquals(long_.getBytes(StandardCharsets.UTF_8), bytes(new RunSpec.Stdin.Text(long_).open()));
        byte[] all = new byte[256];
        for (int i = 0; i < all.length; i++) all[i] = (byte) i;
        RunSpec.Stdin binary = parse("'stdin':{'base64':'" + java.util.Base64.getEncoder().encodeToString(all) + "'}").stdin();
        assertArrayEquals(all, bytes(((RunSpec.Stdin.Base64) binary).open()));
        assertEquals(new RunSpec.Stdin.File("/etc/hostname"), parse("'stdin':{'file':'/etc/hostname'}").stdin());
    }

    private static byte[] bytes(java.io.InputStream in) {
        try (in) {
            return in.readAllBytes();
        } catch (java.io.IOException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void outputForms() throws RpcException {
        for (String stream : List.of("stdout", "stderr")) {
            assertInstanceOf(RunSpec.Output.Capture.class, output(stream, "'capture'"));
            assertInstanceOf(RunSpec.Output.Discard.class, output(stream, "'discard'"));
            assertInstanceOf(RunSpec.Output.Stream.class, output(stream, "'stream'"));
            assertEquals(new RunSpec.Output.File("/tmp/o", false), output(stream, "{'file':'/tmp/o'}"));
            assertEquals(new RunSpec.Output.File("/tmp/o", false), output(stream, "{'file':'/tmp/o','append':false}"));
            assertEquals(new RunSpec.Output.File("/tmp/o", true), output(stream, "{'file':'/tmp/o','append':true}"));
        }
        assertInstanceOf(RunSpec.Output.IntoStdout.class, output("stderr", "'stdout'"));
    }

    private static RunSpec.Output output(String stream, String value) throws RpcException {
        RunSpec spec = parse("'" + stream + "':" + value);
        return stream.equals("stdout") ? spec.stdout() : spec.stderr();
    }

    @Test
    void limitsAtTheirBounds() throws RpcException {
        assertEquals(0, parse("'captureLimitBytes':0").captureLimitBytes());
        assertEquals(1L << 30, parse("'captureLimitBytes':1073741824").captureLimitBytes());
        assertEquals(Integer.MAX_VALUE, parse("'uid':2147483647").uid());
        assertEquals(Integer.MAX_VALUE, parse("'gid':2147483647").gid());
        assertEquals(1L, parse("'timeoutMs':1").timeoutMs());
        assertEquals(Arrays.asList("a", "b"), parse("'command':['a','b']").command());
    }

    @Test
    void terminalAndStreamedStdin() throws RpcException {
        RunSpec t = parse("\"terminal\": {\"rows\": 24, \"cols\": 80}");
        assertEquals(new RunSpec.Terminal(24, 80, "xterm-256color"), t.terminal());
        assertEquals("xterm-256color", t.env().get("TERM"));
        assertTrue(t.takesInput());
        assertEquals("vt100", parse("\"terminal\": {\"rows\": 1, \"cols\": 65535, \"term\": \"vt100\"}").env().get("TERM"));
        assertEquals("dumb", parse("\"terminal\": {\"rows\": 1, \"cols\": 1}, \"env\": {\"TERM\": \"dumb\"}").env().get("TERM"));
        assertInstanceOf(RunSpec.Stdin.Stream.class, parse("\"stdin\": \"stream\"").stdin());
        assertTrue(parse("\"stdin\": \"stream\"").takesInput());
        assertFalse(parse("").takesInput());
        for (String bad : List.of("\"terminal\": {\"rows\": 0, \"cols\": 80}", "\"terminal\": {\"rows\": 24}",
                "\"terminal\": {\"rows\": 24, \"cols\": 65536}", "\"terminal\": {\"rows\": 24, \"cols\": 80, \"x\": 1}",
                "\"terminal\": {\"rows\": 24, \"cols\": 80}, \"stdin\": \"stream\"",
                "\"terminal\": {\"rows\": 24, \"cols\": 80}, \"stderr\": \"discard\"", "\"terminal\": true")) {
            assertEquals(-32602, error(params(bad)).code(), bad);
        }
    }

    @Test
    void seccomp() throws RpcException {
        assertNull(parse("").seccomp());
        assertNull(parse("\"seccomp\": \"none\"").seccomp());
        assertEquals(RunSpec.Seccomp.DEFAULT, parse("\"seccomp\": \"default\"").seccomp());
        assertEquals(new RunSpec.Seccomp(List.of("getpid", "mount"), 38),
                parse("\"seccomp\": {\"deny\": [\"getpid\", \"mount\", \"getpid\"], \"errno\": \"ENOSYS\"}").seccomp());
        assertEquals(1, parse("\"seccomp\": {\"deny\": []}").seccomp().errno());
        assertEquals(RunSpec.Seccomp.DEFAULT, RunParams.parse(params(""), RunSpec.Seccomp.DEFAULT).seccomp(), "bwrapd --seccomp default");
        assertNull(RunParams.parse(params("\"seccomp\": \"none\""), RunSpec.Seccomp.DEFAULT).seccomp());
        for (String bad : List.of("\"seccomp\": \"strict\"", "\"seccomp\": {}", "\"seccomp\": {\"deny\": [1]}",
                "\"seccomp\": {\"deny\": [\"getpid\"], \"errno\": \"EFOO\"}", "\"seccomp\": {\"deny\": [], \"x\": 1}")) {
            assertEquals(-32602, error(params(bad)).code(), bad);
        }
    }
}
