package dev.bwrapd;

import io.quarkus.test.junit.main.QuarkusMainIntegrationTest;

/** {@link MainCommandLineTest} against the built artifact (the jar, or the native binary when built so). */
@QuarkusMainIntegrationTest
class MainCommandLineIT extends MainCommandLineTest {
}
