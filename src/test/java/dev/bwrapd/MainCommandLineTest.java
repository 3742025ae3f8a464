package dev.bwrapd;

import io.quarkus.test.junit.main.Launch;
import io.quarkus.test.junit.main.LaunchResult;
import io.quarkus.test.junit.main.QuarkusMainTest;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The command line in-JVM: {@code --version} and {@code --help} print to stdout and exit 0; a bad option
 * exits 2 with the reason on stderr and nothing on stdout. {@link MainCommandLineIT} runs the same
 * against the built artifact.
 */
@QuarkusMainTest
class MainCommandLineTest {

    @Test
    @Launch("--version")
    void versionPrintsTheVersion(LaunchResult result) {
        assertEquals(0, result.exitCode());
        assertEquals("bwrapd " + Version.VERSION, result.getOutput().strip());
    }

    @Test
    @Launch("--help")
    void helpPrintsTheUsage(LaunchResult result) {
        assertEquals(0, result.exitCode());
        String out = result.getOutput();
        assertTrue(out.startsWith("Usage: bwrapd"), out);
        for (String option : new String[] {"--bwrap", "--framing", "--max-message-bytes", "--cgroup-parent", "--log-level", "--version", "--help"}) {
            assertTrue(out.contains(option), "usage lists " + option + ": " + out);
        }
    }

    @Test
    @Launch(value = "--no-such-option", exitCode = 2)
    void unknownOptionExits2WithAMessageOnStderr(LaunchResult result) {
        assertEquals("", result.getOutput(), "nothing on stdout");
        assertTrue(result.getErrorOutput().contains("--no-such-option"), result.getErrorOutput());
    }

    @Test
    @Launch(value = {"--cgroup-parent", "relative/path"}, exitCode = 2)
    void cgroupParentMustBeAbsolute(LaunchResult result) {
        assertTrue(result.getErrorOutput().contains("--cgroup-parent takes an absolute path"), result.getErrorOutput());
    }

    /** Review finding: a 150 MB message under --max-message-bytes 300000000 died allocating it ("Array allocation too large"). */
    @Test
    @Launch(value = {"--max-message-bytes", "2147483631"}, exitCode = 2)
    void aMessageLimitTheHeapCannotHoldIsRefused(LaunchResult result) {
        assertEquals("", result.getOutput(), "nothing on stdout");
        assertTrue(result.getErrorOutput().contains("does not fit the heap"), result.getErrorOutput());
    }
}
