"""What the client does when a run's answer cannot be decoded, or the helper
misbehaves (tests/fake_helper.py stands in for a broken one): every wait
ends, with an error that says why, and close() keeps to its timeout."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
import tempfile
import threading
import time
import tracemalloc
import unittest

from support import SharedRootfs, processes_with_args, start_helper, unique_sleep_arg, wait_until

import bwrapd
from bwrapd import BwrapdError

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_helper.py")

#: A command whose output is Latin-1, not UTF-8.
LATIN1 = ["sh", "-c", "printf 'caf\\351\\n'"]


def fake_env(mode, **extra):
    env = dict(os.environ, FAKE_MODE=mode)
    env.update(extra)
    return env


def fake_helper(mode, **extra):
    return bwrapd.Helper(sys.executable, args=[FAKE], env=fake_env(mode, **extra))


async def fake_async_helper(mode, **extra):
    return await bwrapd.AsyncHelper.create(sys.executable, args=[FAKE], env=fake_env(mode, **extra))


class UndecodableResultTest(SharedRootfs, unittest.TestCase):
    """The run ends and its output does not decode as asked: wait() raises
    the decoding error rather than wait for ever."""

    def test_strict_errors_and_bytes_that_do_not_decode(self):
        with start_helper() as helper:
            sandbox = helper.start(LATIN1, root=self.rootfs, text=True, errors="strict")
            with self.assertRaises(UnicodeDecodeError):
                sandbox.wait(timeout=60)
            self.assertTrue(sandbox.done())
            # the same output with the default errors decodes, replaced
            self.assertEqual(helper.run(LATIN1, root=self.rootfs, text=True).stdout, "caf\ufffd\n")

    def test_async_strict_errors_and_bytes_that_do_not_decode(self):
        async def main():
            async with bwrapd.AsyncHelper() as helper:
                with self.assertRaises(UnicodeDecodeError):
                    await asyncio.wait_for(helper.run(LATIN1, root=self.rootfs, encoding="ascii", errors="strict"), 60)
                self.assertEqual(await helper.list(), [])

        asyncio.run(main())

    def test_unknown_encoding_or_errors_is_refused_before_sending(self):
        with start_helper() as helper:
            with self.assertRaises(LookupError):
                helper.start(["true"], root=self.rootfs, encoding="no-such-codec")
            with self.assertRaises(LookupError):
                helper.start(["true"], root=self.rootfs, text=True, errors="no-such-handler")
            self.assertEqual(helper.list(), [])

    def test_text_file_object_and_output_that_does_not_decode(self):
        with start_helper() as helper:
            out = io.StringIO()
            sandbox = helper.start(LATIN1, root=self.rootfs, stdout=out, errors="strict")
            with self.assertRaises(UnicodeDecodeError):
                sandbox.wait(timeout=60)
            # with the default errors it goes in, replaced
            out = io.StringIO()
            helper.run(LATIN1, root=self.rootfs, stdout=out, timeout=60)
            self.assertEqual(out.getvalue(), "caf\ufffd\n")


class UndecodableResultCarriesTheResultTest(unittest.TestCase):
    """Output that does not decode with errors="strict" raises a
    UnicodeDecodeError that is an OutputDecodeError too, with the run's
    result (exit status, cleanup; the output as bytes)."""

    def check(self, caught, stream="stdout"):
        self.assertIsInstance(caught, UnicodeDecodeError)
        self.assertIsInstance(caught, bwrapd.OutputDecodeError)
        self.assertEqual(caught.stream, stream)
        self.assertIsNotNone(caught.result)
        self.assertEqual(caught.result.exit_code, 3)
        self.assertTrue(caught.result.cleanup.ok)

    def test_captured(self):
        with fake_helper("latin1") as helper:
            with self.assertRaises(UnicodeDecodeError) as caught:
                helper.run(["x"], text=True, errors="strict")
            self.check(caught.exception)
            self.assertEqual(caught.exception.result.stdout, b"caf\xe9\n")
            self.assertIn("stdout", str(caught.exception))

    def test_streamed_into_a_text_file(self):
        with fake_helper("latin1") as helper:
            sandbox = helper.start(["x"], stdout=io.StringIO(), errors="strict")
            with self.assertRaises(UnicodeDecodeError) as caught:
                sandbox.wait(timeout=30)
            self.check(caught.exception)

    def test_async_captured(self):
        async def main():
            helper = await fake_async_helper("latin1")
            try:
                with self.assertRaises(UnicodeDecodeError) as caught:
                    await helper.run(["x"], encoding="ascii", errors="strict")
                self.check(caught.exception)
            finally:
                await helper.close()

        asyncio.run(main())


class EndlessLineTest(unittest.TestCase):
    """A helper that writes one line without an end: the client stops at a
    bound (from maxMessageBytes, here 1 MiB, and the runs' captureLimitBytes),
    fails every pending call with HelperDied saying so, and kills it. An
    answer as large as a run's captures may make is still read."""

    ENV = {"FAKE_MAX_MESSAGE": str(1 << 20), "FAKE_MB": "128"}

    def check(self, exc, peak):
        self.assertIn("line of more than", str(exc))
        self.assertLess(peak, 48 << 20, "memory grew by %d MiB for an endless line" % (peak >> 20))

    def test_sync(self):
        def run():
            helper = fake_helper("endless", **self.ENV)
            self.addCleanup(helper.kill)
            sandbox = helper.start(["x"], capture_limit_bytes=1024)
            with self.assertRaises(bwrapd.HelperDied) as caught:
                sandbox.wait(timeout=30)
            return helper, caught.exception

        (helper, exc), peak = _with_peak_memory(self, run)
        self.check(exc, peak)
        self.assertTrue(wait_until(lambda: helper.returncode is not None, 30))
        with self.assertRaises(bwrapd.HelperDied):
            helper.list()

    def test_async(self):
        async def main():
            helper = await fake_async_helper("endless", **self.ENV)
            try:
                sandbox = await helper.start(["x"], capture_limit_bytes=1024)
                with self.assertRaises(bwrapd.HelperDied) as caught:
                    await sandbox.wait(timeout=30)
                return caught.exception
            finally:
                await helper.close(timeout=2)

        exc, peak = _with_peak_memory(self, lambda: asyncio.run(main()))
        self.check(exc, peak)

    def test_large_captures_are_still_read(self):
        # 8 MiB of stdout is 11 MiB of base64: over four times maxMessageBytes, within the captures' room
        env = dict(self.ENV)
        with fake_helper("bigresult", **env) as helper:
            self.assertEqual(len(helper.run(["x"], capture_limit_bytes=8 << 20).stdout), 8 << 20)

        async def main():
            async with bwrapd.AsyncHelper(sys.executable, args=[FAKE], env=fake_env("bigresult", **env)) as helper:
                return len((await helper.run(["x"], capture_limit_bytes=8 << 20)).stdout)

        self.assertEqual(asyncio.run(main()), 8 << 20)


class MalformedRunAnswerTest(unittest.TestCase):
    """A run answer the client cannot read ends the run with BwrapdError."""

    def test_malformed_answers(self):
        for mode in ("badbase64", "badremoved"):
            with self.subTest(mode=mode), fake_helper(mode) as helper:
                sandbox = helper.start(["x"])
                with self.assertRaises(BwrapdError) as caught:
                    sandbox.wait(timeout=30)
                self.assertIn("malformed", str(caught.exception))

    def test_async_malformed_answers(self):
        async def main(mode):
            helper = await fake_async_helper(mode)
            try:
                sandbox = await helper.start(["x"])
                with self.assertRaises(BwrapdError) as caught:
                    await sandbox.wait(timeout=30)
                self.assertIn("malformed", str(caught.exception))
            finally:
                await helper.close()

        for mode in ("badbase64", "badremoved"):
            with self.subTest(mode=mode):
                asyncio.run(main(mode))


class StuckWriteCloseTest(unittest.TestCase):
    """A helper that stops reading its input, with a write stuck in its pipe
    (a run with 4 MiB of stdin): close(timeout) still returns about then,
    having killed the helper."""

    BIG = b"a" * (4 << 20)

    def test_close_timeout_with_a_write_stuck(self):
        helper = fake_helper("noread")
        self.addCleanup(helper.kill)
        threading.Thread(target=lambda: _quietly(helper.start, ["cat"], stdin=self.BIG), daemon=True).start()
        self.assertTrue(wait_until(helper._write_lock.locked, 30), "the big write should be stuck")
        closer = threading.Thread(target=helper.close, kwargs={"timeout": 2}, daemon=True)
        start = time.monotonic()
        closer.start()
        closer.join(60)
        self.assertFalse(closer.is_alive(), "close(timeout=2) must not hang on a stuck write")
        self.assertLess(time.monotonic() - start, 30)
        self.assertTrue(wait_until(lambda: helper.returncode is not None, 30))
        self.assertEqual(helper.returncode, -signal.SIGKILL)

    def test_close_timeout_with_the_real_helper_stopped(self):
        with tempfile.TemporaryDirectory() as root:
            helper = start_helper()
            self.addCleanup(helper.kill)
            os.kill(helper.pid, signal.SIGSTOP)
            threading.Thread(target=lambda: _quietly(helper.start, ["cat"], root=root, stdin=self.BIG),
                             daemon=True).start()
            self.assertTrue(wait_until(helper._write_lock.locked, 30), "the big write should be stuck")
            closer = threading.Thread(target=helper.close, kwargs={"timeout": 2}, daemon=True)
            closer.start()
            closer.join(60)
            self.assertFalse(closer.is_alive(), "close(timeout=2) must not hang on a stuck write")
            self.assertTrue(wait_until(lambda: helper.returncode is not None, 30))

    def test_async_close_timeout_with_a_write_stuck(self):
        async def main():
            helper = await fake_async_helper("noread")
            try:
                writer = await _stuck_write(self, helper, self.BIG)
                # a write stuck in drain(): the transport has taken what the pipe would
                while not helper._proc.stdin.transport.get_write_buffer_size() and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                start = time.monotonic()
                await asyncio.wait_for(helper.close(timeout=2), 60)
                self.assertLess(time.monotonic() - start, 30)
                self.assertEqual(helper.returncode, -signal.SIGKILL)
                with self.assertRaises(bwrapd.HelperDied):
                    await asyncio.wait_for(writer, 30)
            finally:
                helper.kill()

        asyncio.run(main())


class StuckWriteCallsTest(unittest.TestCase):
    """A helper that stops reading its input, with a write stuck in its pipe:
    other calls keep to their own timeouts, waiting for their turn to write,
    from the main thread and from others."""

    BIG = b"a" * (4 << 20)

    def test_sync(self):
        helper = fake_helper("noread")
        self.addCleanup(helper.kill)
        threading.Thread(target=lambda: _quietly(helper.start, ["cat"], stdin=self.BIG), daemon=True).start()
        self.assertTrue(wait_until(helper._write_lock.locked, 30), "the big write should be stuck")
        calls = {
            "call": lambda: helper.call("sandbox/list", timeout=1),
            "shutdown": lambda: helper.shutdown(timeout=1),
            "notify": lambda: helper.notify("$/cancelRequest", {"id": 99}, timeout=1),
            "signal": lambda: helper.signal("sb", "SIGTERM", timeout=1),
            "terminate": lambda: helper.terminate("sb", timeout=1),
        }
        for name, call in calls.items():
            for where in ("main", "thread"):
                with self.subTest(call=name, thread=where):
                    outcome = []

                    def attempt():
                        try:
                            call()
                        except BaseException as exc:
                            outcome.append(exc)

                    start = time.monotonic()
                    if where == "main":
                        attempt()
                    else:
                        worker = threading.Thread(target=attempt, daemon=True)
                        worker.start()
                        worker.join(20)
                        self.assertFalse(worker.is_alive(), "%s(timeout=1) blocked by another write" % name)
                    self.assertLess(time.monotonic() - start, 10)
                    self.assertEqual(len(outcome), 1)
                    self.assertIsInstance(outcome[0], bwrapd.WaitTimeout)
        helper.close(timeout=2)

    def test_async(self):
        async def main():
            helper = await fake_async_helper("noread")
            try:
                writer = await _stuck_write(self, helper, self.BIG)
                for name, call in (("call", lambda: helper.call("sandbox/list", timeout=1)),
                                   ("shutdown", lambda: helper.shutdown(timeout=1)),
                                   ("notify", lambda: helper.notify("$/cancelRequest", {"id": 99}, timeout=1)),
                                   ("signal", lambda: helper.signal("sb", "SIGTERM", timeout=1)),
                                   ("terminate", lambda: helper.terminate("sb", timeout=1))):
                    with self.subTest(call=name):
                        start = time.monotonic()
                        with self.assertRaises(bwrapd.WaitTimeout):
                            await asyncio.wait_for(call(), 20)
                        self.assertLess(time.monotonic() - start, 10)
                await helper.close(timeout=2)
                with self.assertRaises(bwrapd.HelperDied):
                    await asyncio.wait_for(writer, 30)
            finally:
                helper.kill()

        asyncio.run(main())


class OrphanTest(unittest.TestCase):
    """The helper exits while a process it left behind holds its stdout:
    the pending run fails with HelperDied at once, not when that process
    ends."""

    def test_async_run_fails_when_the_helper_exits(self):
        marker = unique_sleep_arg(120)
        self.addCleanup(_kill_all, "sleep", marker)

        async def main():
            helper = await fake_async_helper("orphan", FAKE_ORPHAN_S=marker)
            try:
                sandbox = await helper.start(["x"])
                start = time.monotonic()
                with self.assertRaises(bwrapd.HelperDied) as caught:
                    await sandbox.wait(timeout=60)
                self.assertLess(time.monotonic() - start, 30)
                self.assertEqual(caught.exception.returncode, 3)
                self.assertTrue(processes_with_args("sleep", marker), "the orphan should still hold the pipe")
            finally:
                await asyncio.wait_for(helper.close(timeout=2), 60)

        asyncio.run(main())

    def test_sync_run_fails_when_the_helper_exits(self):
        marker = unique_sleep_arg(120)
        self.addCleanup(_kill_all, "sleep", marker)
        with fake_helper("orphan", FAKE_ORPHAN_S=marker) as helper:
            sandbox = helper.start(["x"])
            with self.assertRaises(bwrapd.HelperDied) as caught:
                sandbox.wait(timeout=60)
            self.assertEqual(caught.exception.returncode, 3)


class StderrFloodTest(unittest.TestCase):
    """A helper that writes 64 MiB to stderr without a newline: the client
    keeps a bounded tail, not the whole line."""

    def test_sync_stderr_without_newlines(self):
        def run():
            helper = fake_helper("stderrflood", FAKE_MB="64")
            self.addCleanup(helper.kill)
            self.assertTrue(wait_until(lambda: "last words" in helper.stderr_tail(), 120),
                            "the last stderr line never arrived: %r" % [line[:40] for line in helper.stderr_tail()])
            return helper

        helper, peak = _with_peak_memory(self, run)
        self.assertLess(peak, 16 << 20, "memory grew by %d MiB for a 64 MiB stderr line" % (peak >> 20))
        tail = helper.stderr_tail()
        self.assertEqual(tail[-1], "last words")
        self.assertLessEqual(max(len(line) for line in tail), 4096)

    def test_async_stderr_without_newlines(self):
        async def main():
            helper = await fake_async_helper("stderrflood", FAKE_MB="64")
            try:
                deadline = time.monotonic() + 120
                while "last words" not in helper.stderr_tail() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                return helper.stderr_tail()
            finally:
                helper.kill()
                await helper.close(timeout=2)

        tail, peak = _with_peak_memory(self, lambda: asyncio.run(main()))
        self.assertIn("last words", tail, "the last stderr line never arrived: %r" % [line[:40] for line in tail])
        self.assertLess(peak, 16 << 20, "memory grew by %d MiB for a 64 MiB stderr line" % (peak >> 20))
        self.assertEqual(tail[-1], "last words")
        self.assertLessEqual(max(len(line) for line in tail), 4096)


def _with_peak_memory(test, run):
    """Calls ``run``: its result and the peak of the memory Python allocated
    meanwhile (tracemalloc)."""
    tracemalloc.start()
    test.addCleanup(tracemalloc.stop)
    tracemalloc.reset_peak()
    result = run()
    return result, tracemalloc.get_traced_memory()[1]


async def _stuck_write(test, helper, data):
    """Starts a run whose stdin is ``data`` on an async ``helper`` that stops
    reading, and waits until that write holds the write lock: the run's future."""
    writer = asyncio.ensure_future(helper.start(["cat"], stdin=data))
    deadline = time.monotonic() + 30
    while not helper._write_lock.locked() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    test.assertTrue(helper._write_lock.locked(), "the big write should be stuck")
    return writer


def _kill_all(*argv):
    for pid in processes_with_args(*argv):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _quietly(func, *args, **kwargs):
    try:
        func(*args, **kwargs)
    except Exception:
        pass  # the helper is killed under it


if __name__ == "__main__":
    unittest.main()
