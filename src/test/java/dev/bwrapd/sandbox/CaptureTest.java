package dev.bwrapd.sandbox;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.bwrapd.Main;
import dev.bwrapd.memory.MemoryBudget;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CaptureTest {
    @TempDir
    Path spool;

    private Capture capture(long limit, MemoryBudget budget, int memoryBytes) {
        return new Capture(limit, new Capture.Store(budget, spool, memoryBytes));
    }

    private static byte[] read(Capture capture) throws IOException {
        try (InputStream in = capture.open()) {
            return in.readAllBytes();
        }
    }

    private static byte[] random(int n, long seed) {
        byte[] data = new byte[n];
        new Random(seed).nextBytes(data);
        return data;
    }

    /** Feeds the data in pieces of varying size, as a pipe would. */
    private static void feed(Capture capture, byte[] data) {
        int offset = 0;
        for (int step = 1; offset < data.length; step = step * 3 % 70_001 + 1) {
            int n = Math.min(step, data.length - offset);
            capture.append(data, offset, n);
            offset += n;
        }
    }

    @Test
    void keepsEveryByteBelowTheLimitInMemoryAndInTheSpoolFile() throws IOException {
        MemoryBudget budget = new MemoryBudget(1 << 20);
        byte[] data = random(3_000_000, 1);
        try (Capture capture = capture(4_000_000, budget, 64 * 1024)) {
            feed(capture, data);
            capture.finish();
            assertEquals(data.length, capture.size());
            assertEquals(data.length, capture.kept());
            assertFalse(capture.truncated());
            assertNull(capture.error());
            assertArrayEquals(data, read(capture));
            assertArrayEquals(data, read(capture), "can be read again");
            assertTrue(budget.used() <= 64 * 1024, "at most the memory part is held: " + budget.used());
            try (var files = Files.list(spool)) {
                assertEquals(0, files.count(), "the spool file has no name");
            }
        }
        assertEquals(0, budget.used(), "closing gives the memory back");
    }

    @Test
    void truncatesExactlyAtTheLimitAndCountsTheRest() throws IOException {
        byte[] data = "0123456789".repeat(100).getBytes(StandardCharsets.US_ASCII);
        try (Capture capture = capture(333, new MemoryBudget(1 << 20), 100)) {
            feed(capture, data);
            capture.finish();
            assertEquals(1000, capture.size());
            assertEquals(333, capture.kept());
            assertTrue(capture.truncated());
            assertArrayEquals(java.util.Arrays.copyOf(data, 333), read(capture));
        }
    }

    @Test
    void aFullBudgetSendsTheBytesToTheFileInstead() throws IOException {
        MemoryBudget budget = new MemoryBudget(1000);
        assertTrue(budget.tryReserve(1000));
        byte[] data = random(200_000, 2);
        try (Capture capture = capture(1 << 20, budget, 64 * 1024)) {
            feed(capture, data);
            capture.finish();
            assertFalse(capture.truncated());
            assertArrayEquals(data, read(capture));
        }
        assertEquals(1000, budget.used());
    }

    /**
     * Captures keep bytes in memory only while the budget is at most half used: the other half stays
     * for requests and streamed output, which cannot go to a file (before, four captures of 256 KiB
     * held a 1 MiB budget whole, refusing every larger request until their runs ended).
     */
    @Test
    void capturesLeaveHalfTheBudgetToOthers() throws IOException {
        MemoryBudget budget = new MemoryBudget(1 << 20);
        byte[] data = random(300_000, 3);
        Capture[] captures = new Capture[6];
        try {
            for (int i = 0; i < captures.length; i++) {
                captures[i] = capture(1 << 20, budget, 256 * 1024);
                feed(captures[i], data);
                captures[i].finish();
            }
            assertTrue(budget.used() <= (1 << 19), "captures hold at most half the budget: " + budget.used());
            assertTrue(budget.used() >= 256 * 1024, "and they do use it: " + budget.used());
            for (Capture capture : captures) {
                assertFalse(capture.truncated());
                assertArrayEquals(data, read(capture), "what did not fit is in the file, in order");
            }
        } finally {
            for (Capture capture : captures) if (capture != null) capture.close();
        }
        assertEquals(0, budget.used());
    }

    @Test
    void aLimitOfZeroKeepsNothingAndSaysSo() throws IOException {
        try (Capture capture = capture(0, new MemoryBudget(1 << 20), 1024)) {
            capture.append(new byte[10], 0, 10);
            capture.finish();
            assertTrue(capture.truncated());
            assertEquals(0, read(capture).length);
        }
    }

    @Test
    void aFailureKeepsWhatWasReadAndIsNeverExact() {
        try (Capture capture = capture(100, new MemoryBudget(1 << 20), 1024)) {
            capture.append(new byte[] {'a'}, 0, 1);
            capture.fail("cannot read the output: EIO");
            capture.append(new byte[] {'b'}, 0, 1);
            capture.finish();
            assertTrue(capture.truncated());
            assertEquals("cannot read the output: EIO", capture.error());
            assertEquals(1, capture.kept());
            assertEquals(2, capture.size());
        }
    }

    @Test
    void anUnusableSpoolDirectoryIsAnErrorNotALoss() {
        Capture capture = new Capture(1 << 20, new Capture.Store(new MemoryBudget(1 << 20), spool.resolve("missing"), 16));
        capture.append(new byte[100], 0, 100);
        capture.finish();
        assertTrue(capture.truncated());
        assertTrue(capture.error().startsWith("cannot keep the output beyond 16 bytes in a file"), capture.error());
        capture.close();
    }

    @Test
    void textOnlyWhenTheKeptBytesAreWholeUtf8() {
        byte[] accent = "aé".getBytes(StandardCharsets.UTF_8); // 3 bytes
        try (Capture whole = capture(3, new MemoryBudget(1 << 20), 1024); Capture cut = capture(2, new MemoryBudget(1 << 20), 1024)) {
            whole.append(accent, 0, 3);
            cut.append(accent, 0, 3);
            assertTrue(whole.isText());
            assertFalse(cut.isText(), "a character cut by the limit");
        }
        for (String bad : new String[] {"c0af", "eda080", "f4908080", "ff", "e282"}) {
            Capture.Utf8Check check = new Capture.Utf8Check();
            byte[] bytes = java.util.HexFormat.of().parseHex(bad);
            check.scan(bytes, 0, bytes.length);
            assertFalse(check.complete(), bad);
        }
        Capture.Utf8Check check = new Capture.Utf8Check();
        byte[] all = "x€𝄞é\u0000".getBytes(StandardCharsets.UTF_8);
        for (byte b : all) check.scan(new byte[] {b}, 0, 1); // one byte at a time, across every boundary
        assertTrue(check.complete());
    }

    @Test
    void writtenAsTheProtocolsObjectStreamedFromTheSpool() throws IOException {
        ObjectMapper json = Main.jsonMapper(1 << 20);
        byte[] text = "line\n".repeat(50_000).getBytes(StandardCharsets.UTF_8);
        byte[] binary = random(70_000, 3);
        try (Capture t = capture(1 << 20, new MemoryBudget(1 << 20), 1000); Capture b = capture(1 << 20, new MemoryBudget(1 << 20), 1000)) {
            feed(t, text);
            feed(b, binary);
            JsonNode asText = json.readTree(json.writeValueAsBytes(t));
            assertEquals(new String(text, StandardCharsets.UTF_8), asText.get("text").textValue());
            assertTrue(asText.get("base64").isNull());
            assertFalse(asText.get("truncated").booleanValue());
            assertTrue(asText.get("error").isNull());
            JsonNode asBase64 = json.readTree(json.writeValueAsBytes(b));
            assertTrue(asBase64.get("text").isNull());
            assertArrayEquals(binary, Base64.getDecoder().decode(asBase64.get("base64").textValue()));
        }
    }

    /**
     * A spool file never has a name (O_TMPFILE): the directory, which sandboxes may see (a run on
     * the host's root sees the host's /var/tmp, as bwrapd's user), never shows an entry to open,
     * not even for a moment: its watcher (inotify) hears of no file created. The file holds and
     * gives back what is written.
     */
    @Test
    void aSpoolFileNeverAppearsInItsDirectory(@TempDir java.nio.file.Path directory) throws Exception {
        try (java.nio.file.WatchService watcher = directory.getFileSystem().newWatchService()) {
            directory.register(watcher, java.nio.file.StandardWatchEventKinds.ENTRY_CREATE);
            try (java.nio.channels.FileChannel spool = Capture.openSpool(directory)) {
                spool.write(java.nio.ByteBuffer.wrap(new byte[] {1, 2, 3}), 0);
                java.nio.ByteBuffer back = java.nio.ByteBuffer.allocate(3);
                spool.read(back, 0);
                assertArrayEquals(new byte[] {1, 2, 3}, back.array());
            }
            java.nio.file.WatchKey created = watcher.poll(500, java.util.concurrent.TimeUnit.MILLISECONDS);
            org.junit.jupiter.api.Assertions.assertNull(created, () -> "the directory showed " + created.pollEvents().getFirst().context());
        }
        try (var left = Files.list(directory)) {
            org.junit.jupiter.api.Assertions.assertEquals(0, left.count());
        }
    }

    /**
     * Where the file system has no unnamed files, a spool file is created and opened in one step and never through a link: a link planted
     * where the file goes (a sandbox sharing the temporary directory) is refused, and the file it
     * points to is left as it was; a spool that opens leaves no name behind.
     */
    @Test
    void aSpoolFileIsNeverOpenedThroughALinkAndLeavesNoName(@TempDir java.nio.file.Path directory) throws Exception {
        java.nio.file.Path victim = Files.writeString(directory.resolve("victim"), "the user's file\n");
        Files.createSymbolicLink(directory.resolve("bwrapd-capture-planted.spool"), victim);
        org.junit.jupiter.api.Assertions.assertThrows(java.nio.file.FileAlreadyExistsException.class,
                () -> Capture.openNamedSpool(directory, "bwrapd-capture-planted.spool"));
        org.junit.jupiter.api.Assertions.assertEquals("the user's file\n", Files.readString(victim));
        try (java.nio.channels.FileChannel spool = Capture.openNamedSpool(directory, "bwrapd-capture-fresh.spool")) {
            org.junit.jupiter.api.Assertions.assertFalse(Files.exists(directory.resolve("bwrapd-capture-fresh.spool"), java.nio.file.LinkOption.NOFOLLOW_LINKS));
            spool.write(java.nio.ByteBuffer.wrap(new byte[] {1, 2, 3}), 0);
            org.junit.jupiter.api.Assertions.assertEquals(3, spool.size());
        }
    }

    @Test
    void spoolFilesGoToAnAbsoluteTmpdirElseJavasOwn() {
        java.util.function.Predicate<java.nio.file.Path> allOnDisk = dir -> true;
        org.junit.jupiter.api.Assertions.assertEquals(java.nio.file.Path.of("/var/tmp/x"), Capture.spoolDirectory("/var/tmp/x", "/tmp", allOnDisk));
        org.junit.jupiter.api.Assertions.assertEquals(java.nio.file.Path.of("/tmp"), Capture.spoolDirectory("relative", "/tmp", allOnDisk));
        org.junit.jupiter.api.Assertions.assertEquals(java.nio.file.Path.of("/tmp"), Capture.spoolDirectory("", "/tmp", allOnDisk));
        org.junit.jupiter.api.Assertions.assertEquals(java.nio.file.Path.of("/tmp"), Capture.spoolDirectory(null, "/tmp", allOnDisk));
    }

    /** A spool file on a tmpfs is memory outside the budget: /var/tmp instead, when it is a disk; an explicit $TMPDIR is kept. */
    @Test
    void spoolFilesLeaveATmpfsTmpForADiskVarTmp() {
        java.nio.file.Path tmp = java.nio.file.Path.of("/tmp");
        org.junit.jupiter.api.Assertions.assertEquals(Capture.VAR_TMP, Capture.spoolDirectory(null, "/tmp", dir -> !dir.equals(tmp)));
        org.junit.jupiter.api.Assertions.assertEquals(tmp, Capture.spoolDirectory(null, "/tmp", dir -> false)); // both memory: no better place
        org.junit.jupiter.api.Assertions.assertEquals(java.nio.file.Path.of("/dev/shm"), Capture.spoolDirectory("/dev/shm", "/tmp", dir -> !dir.equals(tmp)));
    }

    /** What is memory, on this machine: /dev/shm is a tmpfs everywhere; a missing directory is no place either. */
    @Test
    void onDiskTellsMemoryAndMissingDirectories(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) {
        org.junit.jupiter.api.Assertions.assertFalse(Capture.onDisk(java.nio.file.Path.of("/dev/shm")));
        org.junit.jupiter.api.Assertions.assertFalse(Capture.onDisk(dir.resolve("missing")));
    }
}
