package dev.bwrapd.process;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A waiter that knows its child ended (a run, from the child's pidfd) takes the exit on its own
 * thread. The reaper's loop is never started here (it would reap every child of the test JVM):
 * whatever is reaped, the caller or a {@link Reaper#sweep} the test made reaped. A wait that no
 * longer ends fails, not hangs.
 */
@Timeout(value = 20, threadMode = Timeout.ThreadMode.SEPARATE_THREAD) // a wait blocked in C ignores interrupts
class ReaperTest {
    private final Reaper reaper = new Reaper();
    private final Spawner spawner = new Spawner(reaper);
    private int devNull = -1;

    @BeforeEach
    void openDevNull() throws Libc.Error {
        devNull = Libc.open("/dev/null", Libc.O_RDWR, 0);
    }

    @AfterEach
    void closeDevNull() {
        Libc.close(devNull);
    }

    private Reaper.Child spawn(String script) throws Libc.Error {
        return spawner.spawn(new Spawner.Spec("/bin/sh", List.of("sh", "-c", script), List.of(), new int[] {devNull, devNull, devNull}));
    }

    /** Waits, on the child's pidfd, until it has exited (not reaped: nobody reaps here but the test's calls). */
    private void awaitExit(Reaper.Child child) throws Libc.Error {
        int pidfd = reaper.pidfdOfChild(child);
        try {
            short[] revents = new short[1];
            assertEquals(1, Libc.poll(new int[] {pidfd}, new short[] {Libc.POLLIN}, revents, 1, 10_000), "the child did not end");
        } finally {
            Libc.close(pidfd);
        }
    }

    @Test
    void anExitedChildIsReapedOnTheCallersThread() throws Libc.Error {
        Reaper.Child child = spawn("exit 7");
        awaitExit(child);
        assertFalse(child.exit().isDone(), "nothing reaps without the loop");
        reaper.reapIfExited(child);
        assertTrue(child.exit().isDone());
        assertEquals(7, child.exit().join().exitCode());
        reaper.reapIfExited(child); // reaped already: nothing more
        assertEquals(7, child.exit().join().exitCode());
    }

    @Test
    void aRunningChildIsLeftAlone() throws Libc.Error {
        Reaper.Child child = spawn("sleep 5");
        try {
            reaper.reapIfExited(child);
            assertFalse(child.exit().isDone(), "a child that runs is not reaped");
        } finally {
            Libc.kill(child.pid(), 9);
            awaitExit(child);
            reaper.reapIfExited(child);
        }
        assertTrue(child.exit().join().signaled());
    }

    @Test
    void aWatchedProcessWhoseParentIsGoneIsReapedWhenItHasExited() throws Libc.Error {
        Reaper.Child child = spawn("exit 3");
        CompletableFuture<ExitStatus> watch = reaper.watchDescendant(child.pid());
        awaitExit(child);
        reaper.parentGone(child.pid(), watch);
        assertTrue(watch.isDone(), "an exited process of ours is reaped at once");
        assertEquals(3, watch.join().exitCode());
    }

    /** Without a pidfd that said it ended, the caller waits for the child itself (the loop only sweeps, once a second). */
    @Test
    void aCallerWithoutAPidfdWaitsForItsChildAndReapsIt() throws Libc.Error {
        Reaper.Child child = spawn("sleep 0.2; exit 5");
        long start = System.nanoTime();
        assertEquals(5, reaper.awaitExit(child).exitCode());
        assertTrue(System.nanoTime() - start >= 150_000_000L, "returned before the child ended");
        assertEquals(-1, Libc.waitid(Libc.P_PID, child.pid(), Libc.WEXITED | Libc.WNOHANG | Libc.WNOWAIT), "left a zombie");
    }

    @Test
    void aDescendantStillRunningWhenItsParentIsGoneIsWaitedFor() throws Libc.Error {
        Reaper.Child child = spawn("sleep 0.2; exit 4");
        CompletableFuture<ExitStatus> watch = reaper.watchDescendant(child.pid());
        assertEquals(4, reaper.awaitDescendant(child.pid(), watch).exitCode());
        assertEquals(-1, Libc.waitid(Libc.P_PID, child.pid(), Libc.WEXITED | Libc.WNOHANG | Libc.WNOWAIT), "left a zombie");
    }

    @Test
    void aDescendantThatIsNotOursIsNull() {
        int notOurs = (int) ProcessHandle.current().parent().orElseThrow().pid();
        CompletableFuture<ExitStatus> watch = reaper.watchDescendant(notOurs);
        assertEquals(null, reaper.awaitDescendant(notOurs, watch));
    }

    @Test
    void aSweepReapsWhatNobodyReapedAndLooksLessOftenWhileItFindsNothing() throws Libc.Error {
        Reaper.Child running = spawn("sleep 5");
        try {
            // The sweep reaps any child of this JVM: another test's may end in between, and that sweep
            // then rightly stays at a second. Swept until two in a row find nothing.
            int empty = 0;
            for (int i = 0; i < 50 && empty < 2; i++) {
                long before = reaper.sweepMillis();
                boolean reaped = reaper.sweep();
                assertEquals(reaped ? Reaper.SWEEP_MILLIS : 2 * before, reaper.sweepMillis(), "a sweep that found nothing waits longer");
                empty = reaped ? 0 : empty + 1;
            }
            assertEquals(4 * Reaper.SWEEP_MILLIS, reaper.sweepMillis());
            assertFalse(running.exit().isDone());
            Reaper.Child done = spawn("exit 9");
            assertEquals(Reaper.SWEEP_MILLIS, reaper.sweepMillis(), "a spawn brings the sweeps back to every second");
            awaitExit(done);
            reaper.sweep();
            assertEquals(9, done.exit().join().exitCode(), "the sweep reaped it and delivered its exit");
            assertEquals(Reaper.SWEEP_MILLIS, reaper.sweepMillis());
        } finally {
            Libc.kill(running.pid(), 9);
            awaitExit(running);
            reaper.reapIfExited(running);
        }
        long wait = Reaper.SWEEP_MILLIS;
        for (int i = 0; i < 20; i++) wait = Reaper.nextSweepMillis(wait, false);
        assertEquals(Reaper.IDLE_SWEEP_MILLIS, wait, "an idle helper still sweeps, about once a minute");
    }

    /** A run's watch of an init that is gone is never handed to a later process given the same pid. */
    @Test
    void aWatchLeftForAnEarlierProcessIsNotALaterOnes() throws Libc.Error {
        Reaper.Child child = spawn("exit 0");
        awaitExit(child);
        reaper.reapIfExited(child);
        int freed = child.pid(); // no process has it now, as when a run's init was reaped by its bwrap
        CompletableFuture<ExitStatus> earlier = reaper.watchDescendant(freed);
        CompletableFuture<ExitStatus> later = reaper.watchDescendant(freed);
        assertTrue(earlier.isDone(), "the earlier watch ends");
        assertNull(earlier.join(), "as not ours");
        assertFalse(later.isDone(), "the later process's watch is its own");
        reaper.parentGone(freed, earlier); // the earlier run going on: it does not end the later watch
        assertFalse(later.isDone());
    }

    @Test
    void aChildReapedBehindTheReapersBackFailsItsWaitInsteadOfHangingIt() throws Libc.Error {
        Reaper.Child child = spawn("exit 1");
        assertEquals(child.pid(), Libc.wait4(child.pid(), 0).pid()); // as a ProcessBuilder of the JDK would
        assertThrows(CompletionException.class, () -> reaper.awaitExit(child));
    }
}
