package dev.bwrapd;

/** The release, kept in step with pom.xml's version by a unit test. */
public final class Version {
    private Version() {}

    public static final String VERSION = "0.1.0";
}
