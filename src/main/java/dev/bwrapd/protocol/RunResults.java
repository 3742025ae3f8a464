package dev.bwrapd.protocol;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.bwrapd.cleanup.CleanupReport;
import dev.bwrapd.jsonrpc.JsonText;
import dev.bwrapd.jsonrpc.RawJson;
import dev.bwrapd.sandbox.RunOutcome;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Locale;

/** A run's outcome as the answer to sandbox/run words it. */
final class RunResults {
    private RunResults() {}

    static RunResult of(RunOutcome o) {
        RunOutcome.Usage u = o.usage();
        return new RunResult(o.sandboxId(), status(o.status()), o.exitCode(), o.signal(), o.setupError(),
                Math.round(o.durationNanos() / 1000.0) / 1000.0,
                new RunResult.Usage(u.userCpuMicros() / 1000.0, u.systemCpuMicros() / 1000.0, u.maxRssKiB()),
                o.stdout(), o.stderr(), o.cleanup(), o.limitExceeded());
    }

    /** EXITED is "exited", SETUP_FAILED is "setup-failed". */
    static String status(RunOutcome.Status status) {
        return status.name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    /**
     * {@code r} as the mapper writes it (RunResultsTest holds them equal), but written field by
     * field: Jackson's bean serializer was a few per cent of the helper's CPU a run. Null when
     * {@code r} holds captured output, which the mapper streams from memory and spool file.
     */
    static RawJson written(RunResult r, ObjectMapper json) {
        if (r.stdout() != null || r.stderr() != null) return null;
        StringBuilder b = new StringBuilder(320);
        b.append("{\"sandboxId\":").append(text(json, r.sandboxId()))
                .append(",\"status\":").append(text(json, r.status()))
                .append(",\"exitCode\":").append(r.exitCode())
                .append(",\"signal\":").append(text(json, r.signal()))
                .append(",\"setupError\":").append(text(json, r.setupError()))
                .append(",\"durationMs\":").append(r.durationMs());
        RunResult.Usage u = r.usage();
        if (u == null) {
            b.append(",\"usage\":null");
        } else {
            b.append(",\"usage\":{\"userCpuMs\":").append(u.userCpuMs()).append(",\"systemCpuMs\":").append(u.systemCpuMs())
                    .append(",\"maxRssKiB\":").append(u.maxRssKiB()).append('}');
        }
        b.append(",\"stdout\":null,\"stderr\":null,\"cleanup\":");
        CleanupReport c = r.cleanup();
        if (c == null) {
            b.append("null");
        } else {
            b.append("{\"ok\":").append(c.ok()).append(",\"removed\":");
            strings(b, json, c.removed());
            b.append(",\"failed\":");
            if (c.failed() == null) {
                b.append("null");
            } else {
                b.append('[');
                for (int i = 0; i < c.failed().size(); i++) {
                    CleanupReport.Failure f = c.failed().get(i);
                    if (i > 0) b.append(',');
                    b.append("{\"path\":").append(text(json, f.path())).append(",\"error\":").append(text(json, f.error())).append('}');
                }
                b.append(']');
            }
            b.append(",\"deferred\":").append(c.deferred()).append('}');
        }
        b.append(",\"limitExceeded\":").append(text(json, r.limitExceeded())).append('}');
        byte[] bytes = b.toString().getBytes(StandardCharsets.UTF_8); // JsonText's is ASCII or valid UTF-8: never a lone surrogate
        return new RawJson(bytes, bytes.length);
    }

    private static String text(ObjectMapper json, String value) {
        return value == null ? "null" : JsonText.of(json, value);
    }

    private static void strings(StringBuilder b, ObjectMapper json, List<String> values) {
        if (values == null) {
            b.append("null");
            return;
        }
        b.append('[');
        for (int i = 0; i < values.size(); i++) {
            if (i > 0) b.append(',');
            b.append(text(json, values.get(i)));
        }
        b.append(']');
    }
}
