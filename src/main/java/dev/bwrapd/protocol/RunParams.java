package dev.bwrapd.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import dev.bwrapd.cgroup.Limits;
import dev.bwrapd.jsonrpc.RpcException;
import dev.bwrapd.sandbox.Capabilities;
import dev.bwrapd.sandbox.RootPaths;
import dev.bwrapd.sandbox.RunSpec;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Parses and checks {@code sandbox/run} params into a {@link RunSpec}. Type and value errors are
 * -32602 naming the field; paths that are relative, climb out of the root with {@code ..}, or
 * mount the host root spelled out ({@code /}, {@code /.}) are -32005. Nothing is created or opened here.
 */
public final class RunParams {
    static final String[] FIELDS = {"command", "root", "sandboxId", "cwd", "env", "network", "readOnlyRoot", "hostname",
            "uid", "gid", "inheritUid", "mounts", "devices", "devShm", "linux32", "stdin", "stdout", "stderr",
            "captureLimitBytes", "timeoutMs", "killGraceMs", "interactive", "capabilities", "terminal", "seccomp", "limits"};
    static final String DEFAULT_TERM = "xterm-256color";
    /** The kernel's limit on a hostname, in bytes (sethostname). */
    static final int HOST_NAME_MAX = 64;
    /** bwrap (0.8) refuses ids above 2^31-1 ("Invalid uid"): refuse them here, with the field named. */
    private static final long MAX_ID = Integer.MAX_VALUE;

    private RunParams() {}

    public static RunSpec parse(JsonNode json) throws RpcException {
        return parse(json, null);
    }

    /** @param defaultSeccomp the filter of a run that does not name one (bwrapd --seccomp), or null */
    public static RunSpec parse(JsonNode json, RunSpec.Seccomp defaultSeccomp) throws RpcException {
        Params p = Params.of(json, FIELDS);
        List<String> command = command(p);
        Path root = root(p);
        String sandboxId = p.string("sandboxId", null);
        if (sandboxId != null && (sandboxId.isEmpty() || sandboxId.codePointCount(0, sandboxId.length()) > 256)) { // as JSON Schema's maxLength counts
            throw Params.invalid("sandboxId: must be 1 to 256 characters");
        }
        String cwd = absolutePath(p.name("cwd"), p.string("cwd", "/"));
        Map<String, String> env = env(p);
        String hostname = p.string("hostname", "sandbox");
        int hostnameBytes = hostname.getBytes(StandardCharsets.UTF_8).length;
        if (hostname.isEmpty() || hostnameBytes > HOST_NAME_MAX) {
            throw Params.invalid("hostname: must be 1 to " + HOST_NAME_MAX + " bytes in UTF-8 (the kernel's HOST_NAME_MAX), not " + hostnameBytes);
        }
        Long uid = p.integer("uid", 0, MAX_ID);
        Long gid = p.integer("gid", 0, MAX_ID);
        Long captureLimit = p.integer("captureLimitBytes", 0, 1L << 30);
        Long timeout = p.integer("timeoutMs", 1, Long.MAX_VALUE / 2);
        Long grace = p.integer("killGraceMs", 0, Long.MAX_VALUE / 2);
        RunSpec.Output stdout = output(p, "stdout", false);
        RunSpec.Output stderr = output(p, "stderr", true);
        RunSpec.Stdin stdin = stdin(p);
        RunSpec.Terminal terminal = terminal(p);
        if (terminal != null) {
            for (String stdio : List.of("stdin", "stdout", "stderr")) {
                if (p.has(stdio)) throw Params.invalid(stdio + ": must be left out with terminal (the terminal is stdin, stdout and stderr)");
            }
            // Everything the command writes comes out of the terminal: one stream, and bwrap's own message is in it.
            stdout = new RunSpec.Output.Stream();
            stderr = new RunSpec.Output.IntoStdout();
            if (!env.containsKey("TERM")) {
                env = new LinkedHashMap<>(env);
                env.put("TERM", terminal.term());
            }
        }
        return new RunSpec(command, root, sandboxId, cwd, env,
                p.bool("network", false), p.bool("readOnlyRoot", false), hostname,
                uid == null ? 0 : uid.intValue(), gid == null ? 0 : gid.intValue(), p.bool("inheritUid", false),
                mounts(p), devices(p), p.bool("devShm", false), p.bool("linux32", false), stdin, stdout, stderr,
                captureLimit == null ? 1 << 20 : captureLimit, timeout, grace == null ? 2000 : grace,
                p.bool("interactive", false), true, capabilities(p), terminal, seccomp(p, defaultSeccomp), limits(p), List.of(), true);
    }

    /** "none", "default", or {deny: [names], errno?: name}; whether the names are system calls is the host's to say. */
    private static RunSpec.Seccomp seccomp(Params p, RunSpec.Seccomp fallback) throws RpcException {
        if (!p.has("seccomp")) return fallback;
        JsonNode value = p.raw("seccomp");
        if (value.isTextual()) {
            switch (value.textValue()) {
                case "none": return null;
                case "default": return RunSpec.Seccomp.DEFAULT;
                default: throw Params.invalid("seccomp: must be \"none\", \"default\" or {\"deny\", \"errno\"}, not " + value);
            }
        }
        Params s = p.object("seccomp", "deny", "errno");
        JsonNode deny = s.raw("deny");
        if (deny == null || !deny.isArray()) throw Params.invalid("seccomp.deny: required, an array of system call names");
        // Each name once, in order, in linear time: parsed on the reading thread, and a list's contains
        // made 100,000 names hold every other message up for 86 s.
        java.util.Set<String> names = new java.util.LinkedHashSet<>();
        for (int i = 0; i < deny.size(); i++) {
            if (!deny.get(i).isTextual() || deny.get(i).textValue().isEmpty()) throw Params.invalid("seccomp.deny[" + i + "]: must be a system call name");
            names.add(Params.wellFormed("seccomp.deny[" + i + "]", deny.get(i).textValue()));
        }
        String errno = s.string("errno", "EPERM");
        Integer number = dev.bwrapd.sandbox.SeccompPolicy.ERRNOS.get(errno);
        if (number == null) throw Params.invalid("seccomp.errno: must be one of " + new java.util.TreeSet<>(dev.bwrapd.sandbox.SeccompPolicy.ERRNOS.keySet()));
        return new RunSpec.Seccomp(List.copyOf(names), number);
    }

    /** {@code terminal}: {rows, cols, term?}; sizes as the kernel's struct winsize holds them. */
    private static RunSpec.Terminal terminal(Params p) throws RpcException {
        if (!p.has("terminal")) return null;
        Params t = p.object("terminal", "rows", "cols", "term");
        int[] size = size(t);
        String term = t.string("term", DEFAULT_TERM);
        if (term.isEmpty()) throw Params.invalid("terminal.term: must not be empty");
        return new RunSpec.Terminal(size[0], size[1], term);
    }

    /** Required {@code rows} and {@code cols}, 1 to 65535 each (sandbox/run's terminal, sandbox/resize). */
    static int[] size(Params p) throws RpcException {
        if (!p.has("rows")) throw Params.invalid(p.name("rows") + ": required");
        if (!p.has("cols")) throw Params.invalid(p.name("cols") + ": required");
        return new int[] {p.integer("rows", 1, 65535).intValue(), p.integer("cols", 1, 65535).intValue()};
    }

    private static List<String> command(Params p) throws RpcException {
        JsonNode value = p.raw("command");
        if (value == null || value.isNull()) throw Params.invalid("command: required");
        if (!value.isArray() || value.isEmpty()) throw Params.invalid("command: must be a non-empty array of strings");
        List<String> command = new ArrayList<>();
        for (int i = 0; i < value.size(); i++) {
            JsonNode word = value.get(i);
            if (!word.isTextual()) throw Params.invalid("command[" + i + "]: must be a string");
            // Its length, with the environment's and bwrap's whole argv, is the run's to check (BwrapCommand.Invocation.checkExecSize).
            command.add(Params.wellFormed("command[" + i + "]", word.textValue()));
        }
        if (command.getFirst().isEmpty()) throw Params.invalid("command[0]: must not be empty");
        return List.copyOf(command);
    }

    /**
     * The root as given. Nothing here looks at the file system: this runs on the thread that reads
     * every request, which a root on a hung file system (a stalled FUSE or NFS mount) would stall for
     * all of them. The run's own thread opens and checks it (HostPaths), and knows the host's root
     * however spelled from what it opened.
     */
    private static Path root(Params p) throws RpcException {
        String root = p.string("root", "/");
        requireAbsolute("root", root);
        return Path.of(root);
    }

    /** The one absolute-path rule (host and sandbox paths alike): a relative path is -32005, naming the field. */
    static void requireAbsolute(String field, String path) throws RpcException {
        if (!path.startsWith("/")) throw Params.pathNotAllowed(field + ": must be an absolute path, not " + path);
    }

    /** An absolute path inside the sandbox, normalized; {@code ..} may not climb above "/". */
    static String absolutePath(String field, String path) throws RpcException {
        requireAbsolute(field, path);
        return RootPaths.normalize(path)
                .orElseThrow(() -> Params.pathNotAllowed(field + ": " + path + " climbs out of the root with .."));
    }

    private static Map<String, String> env(Params p) throws RpcException {
        if (!p.has("env")) return Map.of("PATH", RunSpec.DEFAULT_PATH);
        JsonNode value = p.raw("env");
        if (!value.isObject()) throw Params.invalid("env: must be an object of strings");
        Map<String, String> env = new LinkedHashMap<>();
        for (var entries = value.fields(); entries.hasNext(); ) {
            var entry = entries.next();
            String name = entry.getKey();
            String field = "env." + name;
            if (name.isEmpty() || name.contains("=")) throw Params.invalid(field + ": a variable name must be non-empty and without '='");
            Params.wellFormed(field, name);
            if (!entry.getValue().isTextual()) throw Params.invalid(field + ": must be a string");
            env.put(name, Params.wellFormed(field, entry.getValue().textValue()));
        }
        return env;
    }

    private static List<RunSpec.Mount> mounts(Params p) throws RpcException {
        if (!p.has("mounts")) return List.of();
        JsonNode value = p.raw("mounts");
        if (!value.isArray()) throw Params.invalid("mounts: must be an array");
        List<RunSpec.Mount> mounts = new ArrayList<>();
        for (int i = 0; i < value.size(); i++) {
            String name = "mounts[" + i + "]";
            Params m = Params.element(value.get(i), name, "source", "target", "readOnly");
            String source = m.requiredString("source");
            requireAbsolute(name + ".source", source);
            String target = absolutePath(name + ".target", m.requiredString("target"));
            boolean readOnly = m.bool("readOnly", false);
            if (isHostRoot(source)) {
                throw Params.pathNotAllowed(name + ".source: " + source + " is the host root /, which is never a mount source, read-only or not"
                        + " (it would bring the host's /run and /proc along): use root \"/\", which is mounted read-only");
            }
            if (target.equals("/")) throw Params.pathNotAllowed(name + ".target: / is the sandbox root; use root instead");
            mounts.add(new RunSpec.Mount(source, target, readOnly));
        }
        return List.copyOf(mounts);
    }

    /**
     * "/" spelled out (slashes and dots): refused at once. Any other way to it ("..", a link) only
     * the file system can tell, which the run asks of what it opened (HostPaths), -32005 as well.
     */
    private static boolean isHostRoot(String source) {
        for (String name : source.split("/")) if (!name.isEmpty() && !name.equals(".")) return false;
        return true;
    }

    private static List<String> devices(Params p) throws RpcException {
        if (!p.has("devices")) return RunSpec.DEFAULT_DEVICES;
        JsonNode value = p.raw("devices");
        if (!value.isArray()) throw Params.invalid("devices: must be an array of paths");
        List<String> devices = new ArrayList<>();
        for (int i = 0; i < value.size(); i++) {
            String field = "devices[" + i + "]";
            if (!value.get(i).isTextual()) throw Params.invalid(field + ": must be a string");
            String device = absolutePath(field, Params.wellFormed(field, value.get(i).textValue()));
            if (!device.startsWith("/dev/")) throw Params.pathNotAllowed(field + ": must be a path under /dev/, not " + device);
            devices.add(device);
        }
        return List.copyOf(devices);
    }

    /** Capability names beyond the default (see Capabilities); whether the host can grant them is checked with the host. */
    /** Whether the host can enforce them is the sandbox layer's check (it knows the host); here only types and ranges. */
    private static Limits limits(Params p) throws RpcException {
        if (!p.has("limits")) return Limits.NONE;
        Params l = p.object("limits", "memoryBytes", "pids", "cpuMs", "cpus", "fileSizeBytes", "openFiles");
        return new Limits(l.integer("memoryBytes", Limits.MEMORY_BYTES_MIN, Limits.WHOLE_MAX), l.integer("pids", 1, Limits.PIDS_MAX),
                l.integer("cpuMs", 1, Limits.WHOLE_MAX), l.number("cpus", Limits.CPUS_MIN, Limits.CPUS_MAX),
                l.integer("fileSizeBytes", 0, Limits.WHOLE_MAX), l.integer("openFiles", 1, Limits.OPEN_FILES_MAX));
    }

    private static List<String> capabilities(Params p) throws RpcException {
        if (!p.has("capabilities")) return List.of();
        JsonNode value = p.raw("capabilities");
        if (!value.isArray()) throw Params.invalid("capabilities: must be an array of capability names");
        List<String> names = new ArrayList<>();
        for (int i = 0; i < value.size(); i++) {
            String field = "capabilities[" + i + "]";
            if (!value.get(i).isTextual()) throw Params.invalid(field + ": must be a string");
            String name = value.get(i).textValue();
            if (!Capabilities.isName(name)) throw Params.invalid(field + ": not a capability name like CAP_NET_RAW: " + name);
            names.add(name);
        }
        return List.copyOf(names);
    }

    private static RunSpec.Stdin stdin(Params p) throws RpcException {
        if (!p.has("stdin")) return new RunSpec.Stdin.Null();
        JsonNode value = p.raw("stdin");
        if (value.isTextual()) {
            if (value.textValue().equals("null")) return new RunSpec.Stdin.Null();
            if (value.textValue().equals("stream")) return new RunSpec.Stdin.Stream();
            throw Params.invalid("stdin: must be \"null\", \"stream\", {\"text\"}, {\"base64\"} or {\"file\"}");
        }
        Params s = p.object("stdin", "text", "base64", "file");
        // Kept as the request's own string (no second copy): encoded or decoded while it is written.
        if (s.has("text")) return new RunSpec.Stdin.Text(s.string("text", ""));
        if (s.has("base64")) {
            RunSpec.Stdin.Base64 base64 = new RunSpec.Stdin.Base64(s.string("base64", ""));
            try (InputStream bytes = base64.open()) {
                bytes.skip(Long.MAX_VALUE);
                while (bytes.read() >= 0) {
                    // skip may stop early; read decides
                }
            } catch (IOException e) {
                throw Params.invalid("stdin.base64: not valid base64");
            }
            return base64;
        }
        if (s.has("file")) return new RunSpec.Stdin.File(hostFile(s, "file"));
        throw Params.invalid("stdin: must have one of text, base64, file");
    }

    private static RunSpec.Output output(Params p, String field, boolean isStderr) throws RpcException {
        if (!p.has(field)) return new RunSpec.Output.Capture();
        JsonNode value = p.raw(field);
        if (value.isTextual()) {
            switch (value.textValue()) {
                case "capture": return new RunSpec.Output.Capture();
                case "discard": return new RunSpec.Output.Discard();
                case "stream": return new RunSpec.Output.Stream();
                case "stdout":
                    if (isStderr) return new RunSpec.Output.IntoStdout();
                    break;
                default:
                    break;
            }
            throw Params.invalid(field + ": must be \"capture\", \"discard\", \"stream\"" + (isStderr ? ", \"stdout\"" : "")
                    + " or {\"file\", \"append\"}, not " + value);
        }
        Params o = p.object(field, "file", "append");
        return new RunSpec.Output.File(hostFile(o, "file"), o.bool("append", false));
    }

    private static String hostFile(Params p, String field) throws RpcException {
        String path = p.requiredString(field);
        requireAbsolute(p.name(field), path);
        return path;
    }
}
