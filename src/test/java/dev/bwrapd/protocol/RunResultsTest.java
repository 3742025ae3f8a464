package dev.bwrapd.protocol;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.bwrapd.Main;
import dev.bwrapd.cleanup.CleanupReport;
import dev.bwrapd.jsonrpc.RawJson;
import dev.bwrapd.sandbox.RunOutcome;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

/** The answer written field by field is the very text the server's mapper writes for it. */
class RunResultsTest {
    private static final ObjectMapper JSON = Main.jsonMapper(1 << 20);

    @Test
    void writtenAsTheMapperWritesIt() throws Exception {
        Random random = new Random(7);
        String[] texts = {null, "", "sb-1", "bwrap: Can't mount proc on /newroot/proc: Operation not permitted\n", "quote \" back \\",
                "tab\tcontrol\u0001del\u007f", "h\u00e9 \u20ac \uD83D\uDE00", "lone \uD800 high", "/tmp/root/dev/null", "memory"};
        List<CleanupReport> cleanups = List.of(CleanupReport.NOTHING, CleanupReport.DEFERRED,
                new CleanupReport(true, List.of("/r/dev/null", "/r/dev", "/r/t\u00e9mp \"x\""), List.of(), false),
                new CleanupReport(false, List.of("/r/proc"), List.of(new CleanupReport.Failure("/r/dev", "EBUSY: busy"),
                        new CleanupReport.Failure("/r/\uD800", "EACCES\n")), false));
        for (int round = 0; round < 500; round++) {
            RunOutcome.Status status = RunOutcome.Status.values()[random.nextInt(RunOutcome.Status.values().length)];
            Integer exitCode = random.nextBoolean() ? null : random.nextInt(256) - (random.nextInt(10) == 0 ? 1000 : 0);
            long nanos = random.nextInt(4) == 0 ? 0 : Math.abs(random.nextLong() % 100_000_000_000L);
            RunOutcome.Usage usage = new RunOutcome.Usage(Math.abs(random.nextLong() % 10_000_000_000L), random.nextInt(1_000_000),
                    random.nextInt(3) == 0 ? 0 : Math.abs(random.nextLong() % (1L << 40)));
            RunOutcome outcome = new RunOutcome(pick(random, texts, "sb-" + round), status, exitCode, pick(random, texts, null),
                    pick(random, texts, null), nanos, usage, null, null, random.nextInt(5) == 0 ? null : cleanups.get(random.nextInt(cleanups.size())),
                    pick(random, texts, null));
            RunResult result = RunResults.of(outcome);
            RawJson written = RunResults.written(result, JSON);
            assertNotNull(written);
            // Bytes, as the server writes them (a String writer would keep a lone surrogate as it is).
            byte[] mappers = JSON.writeValueAsBytes(result);
            assertEquals(new String(mappers, StandardCharsets.UTF_8), new String(written.bytes(), 0, written.length(), StandardCharsets.UTF_8));
            assertArrayEquals(mappers, Arrays.copyOf(written.bytes(), written.length()));
        }
    }

    private static String pick(Random random, String[] texts, String otherwise) {
        return random.nextBoolean() ? otherwise : texts[random.nextInt(texts.length)];
    }
}
