"""How the clients keep the pipe to the helper sound: requests over the
helper's size limit, a caller interrupted while its request is written, a
child made by fork(), lines longer than asyncio's buffer."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import unittest

from support import SharedRootfs, helper_description, processes_with_args, start_helper, unique_sleep_arg, wait_until

import bwrapd
from bwrapd import AsyncHelper, HelperForked, MessageTooLarge, aio

#: The helper's --max-message-bytes in these tests (its smallest is 1024).
LIMIT = 4096


async def _async_helper(**kwargs) -> AsyncHelper:
    try:
        return await AsyncHelper.create(**kwargs)
    except Exception as exc:
        raise AssertionError("cannot start the bwrapd helper %s: %s" % (helper_description(), exc)) from exc


class MessageSizeTest(SharedRootfs, unittest.TestCase):
    """A request over maxMessageBytes is skipped by the helper and answered
    with id null: the client refuses it before sending, or the call would
    wait for ever."""

    def test_sync_request_over_the_limit_fails_at_once(self):
        helper = start_helper(args=["--max-message-bytes", str(LIMIT)])
        try:
            self.assertEqual(helper.server_info.limits.max_message_bytes, LIMIT)
            start = time.monotonic()
            with self.assertRaises(MessageTooLarge) as caught:
                # wait(timeout): without the check the answer never comes (WaitTimeout, not MessageTooLarge)
                helper.start(["cat"], root=self.rootfs, stdin=b"x" * LIMIT).wait(timeout=10)
            self.assertLess(time.monotonic() - start, 5)
            self.assertGreater(caught.exception.size, LIMIT)
            self.assertEqual(caught.exception.limit, LIMIT)
            self.assertIn("StdinFile", str(caught.exception))
            self.assertIsInstance(caught.exception, ValueError)
            self.assertEqual(helper._pending, {})
            self.assertEqual(helper._sandboxes, {})
            # nothing was sent: the helper serves the next request normally
            result = helper.run(["cat"], root=self.rootfs, stdin=b"y" * 100, timeout=30)
            self.assertEqual(result.stdout, b"y" * 100)
        finally:
            helper.close()

    def test_async_request_over_the_limit_fails_at_once(self):
        async def main():
            helper = await _async_helper(args=["--max-message-bytes", str(LIMIT)])
            try:
                with self.assertRaises(MessageTooLarge):
                    await asyncio.wait_for(helper.run(["cat"], root=self.rootfs, stdin="x" * (LIMIT + 1)), 10)
                self.assertEqual(helper._pending, {})
                result = await helper.run(["cat"], root=self.rootfs, stdin="z", timeout=30)
                self.assertEqual(result.stdout, b"z")
            finally:
                await helper.close()

        asyncio.run(main())


class InterruptedWriteTest(SharedRootfs, unittest.TestCase):
    """KeyboardInterrupt (or any exception a signal handler raises) while
    run() is still writing its request must neither cut the message in two
    nor forget the run: it goes out whole and is cancelled."""

    def test_interrupt_while_the_request_is_written_cancels_the_run(self):
        helper = start_helper()
        marker = unique_sleep_arg()
        previous = signal.signal(signal.SIGUSR1, _raise_keyboard_interrupt)
        try:
            def interrupt_once_writing():
                wait_until(lambda: helper._write_lock.locked(), 30, interval=0.0005)
                os.kill(os.getpid(), signal.SIGUSR1)

            poker = threading.Thread(target=interrupt_once_writing, daemon=True)
            poker.start()
            with self.assertRaises(KeyboardInterrupt):
                helper.run(["sh", "-c", "cat >/dev/null; sleep %s" % marker], root=self.rootfs,
                           stdin="q" * (12 << 20), timeout=120)
            poker.join(30)
            # The pipe is still sound (a later request is answered) and the run was
            # cancelled, not left running unknown to the client.
            self.assertTrue(wait_until(lambda: helper.list() == [], 20), helper.list())
            self.assertFalse(processes_with_args("sleep", marker))
            self.assertTrue(wait_until(lambda: not helper._pending, 10), helper._pending)
            self.assertEqual(helper.run(["echo", "ok"], root=self.rootfs, timeout=30).stdout, b"ok\n")
        finally:
            signal.signal(signal.SIGUSR1, previous)
            helper.close()

    def test_async_task_cancelled_while_the_request_is_written_cancels_the_run(self):
        marker = unique_sleep_arg()

        async def main():
            helper = await _async_helper()
            try:
                task = asyncio.ensure_future(helper.run(["sh", "-c", "cat >/dev/null; sleep %s" % marker],
                                                        root=self.rootfs, stdin="z" * (12 << 20)))
                transport = helper._proc.stdin.transport
                deadline = time.monotonic() + 30
                while not transport.get_write_buffer_size():  # the request is in the pipe's buffer, draining
                    self.assertLess(time.monotonic(), deadline)
                    await asyncio.sleep(0)
                task.cancel()
                with self.assertRaises(asyncio.CancelledError):
                    await task
                deadline = time.monotonic() + 20
                while await helper.list() or processes_with_args("sleep", marker):
                    self.assertLess(time.monotonic(), deadline, "the cancelled run kept going")
                    await asyncio.sleep(0.1)
                # The server drops the sandbox from its list a moment before the run's answer is written
                # (another thread): the client forgets it once that answer comes.
                deadline = time.monotonic() + 20
                while helper._sandboxes:
                    self.assertLess(time.monotonic(), deadline, "the client still holds %r" % helper._sandboxes)
                    await asyncio.sleep(0.05)
                self.assertEqual(helper._sandboxes, {})
            finally:
                await helper.close()

        asyncio.run(main())


def _raise_keyboard_interrupt(*_):
    raise KeyboardInterrupt()


class ForkTest(SharedRootfs, unittest.TestCase):
    """A child made by fork() shares the helper's pipes and request ids with
    its parent: there every call fails (HelperForked), and the child lets go
    of the pipes."""

    def test_helper_in_a_forked_child(self):
        helper = start_helper()
        try:
            self.assertEqual(helper.run(["echo", "before"], root=self.rootfs).stdout, b"before\n")
            report_r, report_w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: report what a call does, then hold on to what it inherited
                code = 1
                try:
                    signal.alarm(10)
                    os.close(report_r)
                    try:
                        helper.run(["echo", "child"], root=self.rootfs, timeout=5)
                        os.write(report_w, b"ran")
                    except HelperForked as exc:
                        os.write(report_w, b"HelperForked: " + str(exc).encode())
                    except BaseException as exc:  # noqa: BLE001 - reported to the parent
                        os.write(report_w, repr(exc).encode())
                    os.close(report_w)
                    helper.close()  # nothing here: the helper is the parent's
                    time.sleep(8)  # keep the inherited descriptors (if any) while the parent checks
                    code = 0
                finally:
                    os._exit(code)
            os.close(report_w)
            try:
                with os.fdopen(report_r, "rb") as report:
                    what = report.read().decode()
                self.assertTrue(what.startswith("HelperForked: "), what)
                self.assertIn("fork()", what)
                # The parent goes on using the helper, with its own answers.
                for i in range(3):
                    result = helper.run(["sh", "-c", "echo parent-%d" % i], root=self.rootfs, timeout=30)
                    self.assertEqual(result.stdout, b"parent-%d\n" % i)
                self.assertTrue(helper.alive)
                # The child does not hold the helper's stdin open: when the parent's
                # end closes, the helper sees the end of its input and exits.
                helper._close_stdin()
                self.assertTrue(wait_until(lambda: helper.returncode is not None, 30),
                                "the helper did not see the end of its input while the child lived")
            finally:
                _, status = os.waitpid(pid, 0)
                self.assertEqual(status, 0, "the child hung or failed")
        finally:
            helper.close()


class LongLineTest(SharedRootfs, unittest.TestCase):
    """The asyncio client reads a line of any length (a captured output of up
    to 1 GiB is some 1.4 GiB of base64): STREAM_LIMIT only sizes the pieces."""

    def test_async_line_longer_than_the_stream_limit(self):
        async def main():
            saved = aio.STREAM_LIMIT
            aio.STREAM_LIMIT = 64 * 1024  # the buffer limit the helper's pipe is opened with
            try:
                helper = await _async_helper()
            finally:
                aio.STREAM_LIMIT = saved
            try:
                size = 3 * 1024 * 1024
                result = await asyncio.wait_for(
                    helper.run(["sh", "-c", "yes abcdefg | head -c %d" % size], root=self.rootfs,
                               capture_limit_bytes=size), 30)
                self.assertEqual(len(result.stdout), size)
                self.assertTrue(result.stdout.startswith(b"abcdefg\nabcdefg\n"))
                self.assertEqual((await helper.run(["echo", "next"], root=self.rootfs)).stdout, b"next\n")
            finally:
                await helper.close()

        asyncio.run(main())


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class UnclosedAsyncHelperTest(SharedRootfs, unittest.TestCase):
    """An AsyncHelper never closed, whose event loop ends (asyncio.run
    returns), ends its helper (and so its sandboxes) instead of leaving them
    running until this process exits."""

    def test_loop_ending_with_the_helper_open_ends_it(self):
        marker = unique_sleep_arg()
        pids = []

        async def main():
            helper = await _async_helper()
            pids.append(helper.pid)
            sandbox = await helper.start(["sleep", marker], root=self.rootfs)
            await sandbox.wait_started(30)

        asyncio.run(main())
        try:
            self.assertTrue(wait_until(lambda: not _running(pids[0]), 15), "the helper still runs")
            self.assertTrue(wait_until(lambda: not processes_with_args("sleep", marker), 10), "its sandbox still runs")
        finally:
            if _running(pids[0]):
                os.killpg(pids[0], signal.SIGKILL)


if __name__ == "__main__":
    unittest.main()
