package dev.bwrapd.sandbox;

/**
 * What the caller of {@link SandboxRunner#start} hears, all on the run's own thread, in order:
 * started (at most once), output, then exactly one of finished or failed.
 */
public interface RunListener {
    /** Where streamed output came from: the command's stdout or stderr pipe, or its terminal. */
    enum Stream { STDOUT, STDERR, TERMINAL }

    /** The command runs (its init is {@link Sandbox#pid()}). */
    void started(Sandbox sandbox);

    /**
     * A chunk of streamed output, {@code data[offset..offset+length)}; the array is reused after the
     * call. A listener may wait here for its reader (and the command then waits on its pipe); while
     * it waits it runs {@code whileWaiting} every few milliseconds: the run's timers go on in it.
     */
    void output(Sandbox sandbox, Stream stream, byte[] data, int offset, int length, Runnable whileWaiting);

    /** The end of a streamed output (e.g. to flush what was held back); may wait as {@link #output} does. */
    default void outputEnded(Sandbox sandbox, Stream stream, Runnable whileWaiting) {}

    void finished(RunOutcome outcome);

    void failed(SandboxException failure);
}
