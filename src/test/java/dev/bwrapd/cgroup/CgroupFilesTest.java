package dev.bwrapd.cgroup;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/** Interface files read with plain system calls: whole, however long; null when absent. */
class CgroupFilesTest {
    @TempDir
    Path dir;

    @Test
    void aMissingFileOrDirectoryIsNull() {
        assertNull(CgroupFiles.read(dir.resolve("memory.peak")));
        assertNull(CgroupFiles.read(dir.resolve("gone/memory.events")));
        assertEquals(-1, CgroupFiles.number(dir.resolve("memory.peak")));
        assertEquals(Map.of(), CgroupFiles.keyed(dir.resolve("pids.events")));
    }

    @Test
    void aFileLongerThanOneReadComesBackWhole() throws Exception {
        StringBuilder text = new StringBuilder();
        for (int i = 0; text.length() < 20_000; i++) text.append("key").append(i).append(' ').append(i).append('\n');
        Files.writeString(dir.resolve("memory.stat"), text);
        assertEquals(text.toString(), CgroupFiles.read(dir.resolve("memory.stat")));
        assertEquals(Long.valueOf(1234), CgroupFiles.keyed(dir.resolve("memory.stat")).get("key1234"));
    }

    @Test
    void aNumberAndAnEmptyFile() throws Exception {
        Files.writeString(dir.resolve("memory.peak"), "4096\n");
        Files.writeString(dir.resolve("empty"), "");
        assertEquals(4096, CgroupFiles.number(dir.resolve("memory.peak")));
        assertEquals("", CgroupFiles.read(dir.resolve("empty")));
    }

    @Test
    void aDirectoryIsNotAFile() {
        assertNull(CgroupFiles.read(dir));
    }
}
