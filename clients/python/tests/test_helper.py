"""The helper process: start, clean close, and what happens when it dies."""

from __future__ import annotations

import os
import signal
import stat
import tempfile
import threading
import time
import unittest

from support import SharedRootfs, processes_with_args, start_helper, unique_sleep_arg, wait_until

import bwrapd
from bwrapd import HelperDied


class LifecycleTest(SharedRootfs, unittest.TestCase):
    def test_context_manager_closes_cleanly(self):
        with start_helper() as helper:
            self.assertExited(helper.run(["true"], root=self.rootfs))
            pid = helper.pid
        self.assertEqual(helper.returncode, 0, "exit after shutdown must be status 0")
        self.assertFalse(os.path.exists("/proc/%d/status" % pid) and _state(pid) != "Z")
        with self.assertRaises(HelperDied):
            helper.run(["true"], root=self.rootfs)
        helper.close()  # idempotent

    def test_close_ends_running_sandboxes(self):
        marker = unique_sleep_arg()
        helper = start_helper()
        sandbox = helper.start(["sleep", marker], root=self.rootfs)
        sandbox.wait_started(30)
        start = time.monotonic()
        self.assertEqual(helper.close(), 0)
        self.assertLess(time.monotonic() - start, 10)
        try:
            result = sandbox.wait(timeout=5)
            self.assertEqual(result.status, "signaled", result.describe())
        except HelperDied:
            pass  # also acceptable: the helper was closed under it
        self.assertTrue(wait_until(lambda: not processes_with_args("sleep", marker), 10))

    def test_shutdown_refuses_new_sandboxes(self):
        helper = start_helper()
        try:
            sandbox = helper.start(["sleep", "30"], root=self.rootfs)
            sandbox.wait_started(30)
            self.assertEqual(helper.shutdown(timeout=30), 1)
            self.assertEqual(sandbox.wait(timeout=5).status, "signaled")
            with self.assertRaises(bwrapd.ShuttingDown) as caught:
                helper.run(["true"], root=self.rootfs)
            self.assertEqual(caught.exception.code, -32006)
        finally:
            helper.close()

    def assertExited(self, result, code=0):
        self.assertEqual((result.status, result.exit_code), ("exited", code), result.describe())


class CrashTest(SharedRootfs, unittest.TestCase):
    def test_kill_9_fails_pending_calls_and_ends_sandboxes(self):
        helper = start_helper()
        self.addCleanup(helper.close)
        marker = unique_sleep_arg()
        outcome = {}

        def blocking_run():
            try:
                outcome["result"] = helper.run(["sleep", marker], root=self.rootfs)
            except BaseException as exc:  # noqa: BLE001
                outcome["error"] = exc
            outcome["at"] = time.monotonic()

        thread = threading.Thread(target=blocking_run)
        thread.start()
        handle = helper.start(["sleep", marker], root=self.rootfs)
        handle.wait_started(30)
        self.assertTrue(wait_until(lambda: len(processes_with_args("sleep", marker)) == 2, 30),
                        "both sandboxes should be running")

        killed_at = time.monotonic()
        os.kill(helper.pid, signal.SIGKILL)

        thread.join(20)
        self.assertFalse(thread.is_alive(), "the pending run() must not hang")
        self.assertIsInstance(outcome.get("error"), HelperDied, outcome)
        # promptly: well before the ~30 s sleep would end, with slack for a loaded machine
        self.assertLess(outcome["at"] - killed_at, 15, "HelperDied must come promptly")
        with self.assertRaises(HelperDied) as caught:
            handle.wait(timeout=15)
        message = str(caught.exception)
        self.assertIn("died", message)
        self.assertEqual(caught.exception.returncode, -signal.SIGKILL)
        self.assertIn("signal 9", message)

        # Every later call fails at once, too.
        start = time.monotonic()
        with self.assertRaises(HelperDied):
            helper.run(["true"], root=self.rootfs)
        with self.assertRaises(HelperDied):
            helper.list()
        self.assertLess(time.monotonic() - start, 5)  # at once: no wait on the dead helper (slack for a loaded machine)
        self.assertFalse(helper.alive)

        # the watchdog's look through /proc takes seconds on a loaded machine
        self.assertTrue(wait_until(lambda: not processes_with_args("sleep", marker), 30),
                        "the sandboxes must die with the helper: %s" % processes_with_args("sleep", marker))

    def test_async_kill_9(self):
        import asyncio

        marker = unique_sleep_arg()

        async def main():
            helper = await bwrapd.AsyncHelper.create()
            try:
                sandbox = await helper.start(["sleep", marker], root=self.rootfs)
                await sandbox.wait_started(30)
                os.kill(helper.pid, signal.SIGKILL)
                with self.assertRaises(HelperDied):
                    await sandbox.wait(timeout=15)
                with self.assertRaises(HelperDied):
                    await helper.run(["true"], root=self.rootfs)
            finally:
                await helper.close()

        asyncio.run(main())
        self.assertTrue(wait_until(lambda: not processes_with_args("sleep", marker), 10))

    def test_stdin_closed_by_client_ends_everything(self):
        # Closing the helper's stdin (what the client's death does) ends the sandboxes.
        helper = start_helper()
        marker = unique_sleep_arg()
        sandbox = helper.start(["sleep", marker], root=self.rootfs)
        sandbox.wait_started(30)
        helper._close_stdin()
        try:
            result = sandbox.wait(timeout=15)
            self.assertEqual(result.status, "signaled", result.describe())
        except HelperDied:
            pass
        self.assertTrue(wait_until(lambda: helper.returncode is not None, 15))
        self.assertEqual(helper.returncode, 0, helper.stderr_tail())
        self.assertTrue(wait_until(lambda: not processes_with_args("sleep", marker), 10))
        helper.close()


class StartFailureTest(unittest.TestCase):
    """How the client reports a helper that cannot start (no server needed)."""

    def write_script(self, body):
        fd, path = tempfile.mkstemp(prefix="fake-bwrapd-", suffix=".sh")
        with os.fdopen(fd, "w") as f:
            f.write("#!/bin/sh\n" + body)
        os.chmod(path, stat.S_IRWXU)
        self.addCleanup(os.unlink, path)
        return path

    def test_helper_exiting_at_once(self):
        path = self.write_script("echo 'line one' >&2; echo 'bwrapd: not built yet' >&2; exit 127\n")
        start = time.monotonic()
        with self.assertRaises(HelperDied) as caught:
            bwrapd.Helper(path)
        self.assertLess(time.monotonic() - start, 5)
        self.assertEqual(caught.exception.returncode, 127)
        self.assertIn("bwrapd: not built yet", str(caught.exception))
        self.assertEqual(caught.exception.stderr_tail, ["line one", "bwrapd: not built yet"])

    def test_missing_executable(self):
        with self.assertRaises(FileNotFoundError) as caught:
            bwrapd.Helper("/nonexistent/bwrapd")
        self.assertIsInstance(caught.exception, bwrapd.HelperNotFound)
        self.assertIn("/nonexistent/bwrapd", str(caught.exception))
        self.assertIn("BWRAPD", str(caught.exception))

    def test_stderr_tail_keeps_last_50_lines(self):
        path = self.write_script("i=0; while [ $i -lt 80 ]; do echo \"err $i\" >&2; i=$((i+1)); done; exit 3\n")
        with self.assertRaises(HelperDied) as caught:
            bwrapd.Helper(path)
        self.assertEqual(caught.exception.stderr_tail, ["err %d" % i for i in range(30, 80)])

    def test_async_helper_exiting_at_once(self):
        import asyncio

        path = self.write_script("echo 'async boom' >&2; exit 2\n")

        async def main():
            with self.assertRaises(HelperDied) as caught:
                await bwrapd.AsyncHelper.create(path)
            return caught.exception

        error = asyncio.run(main())
        self.assertIn("async boom", str(error))
        self.assertEqual(error.returncode, 2)


def _state(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("State:"):
                    return line.split()[1]
    except OSError:
        return None
    return None


if __name__ == "__main__":
    unittest.main()
