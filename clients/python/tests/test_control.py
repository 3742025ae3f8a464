"""Controlling running sandboxes: suspend/resume, signals, terminate, cancel."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import unittest

from support import HelperTestCase, processes_with_args, unique_sleep_arg, wait_stable, wait_until

from bwrapd import Mount, RequestCancelled, WaitTimeout

COUNTER = "i=0; while :; do i=$((i+1)); echo $i >> /state/count; sleep 0.05; done"


class ControlTest(HelperTestCase):
    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="bwrapd-py-state-")
        self.addCleanup(shutil.rmtree, self.state, True)

    def count(self):
        try:
            with open(os.path.join(self.state, "count")) as f:
                return len(f.read().splitlines())
        except FileNotFoundError:
            return 0

    def test_suspend_and_resume(self):
        sandbox = self.helper.start(["sh", "-c", COUNTER], root=self.rootfs,
                                    mounts=[Mount(self.state, "/state")], timeout=120)
        try:
            self.assertTrue(wait_until(lambda: self.count() >= 3, 30), "the counter never ran")
            sandbox.suspend()
            # The suspend takes effect a moment after its answer (longer on a loaded machine): the
            # counter (a write every 50 ms while it runs) must stand still for a second within 30 s.
            self.assertTrue(wait_stable(self.count, 1.0, 30), "the counter advanced while suspended")
            frozen = self.count()
            states = {s.sandbox_id: s.state for s in self.helper.list()}
            self.assertEqual(states.get(sandbox.sandbox_id), "suspended", states)
            sandbox.resume()
            self.assertTrue(wait_until(lambda: self.count() >= frozen + 3, 30),
                            "the counter did not advance after resume")
            states = {s.sandbox_id: s.state for s in self.helper.list()}
            self.assertEqual(states.get(sandbox.sandbox_id), "running", states)
        finally:
            sandbox.terminate()
        result = sandbox.wait(timeout=30)
        self.assertEqual(result.status, "signaled", result.describe())

    def test_terminate_while_suspended(self):
        sandbox = self.helper.start(["sleep", "30"], root=self.rootfs)
        sandbox.wait_started(30)
        sandbox.suspend()
        start = time.monotonic()
        sandbox.terminate()
        result = sandbox.wait(timeout=30)
        self.assertEqual(result.status, "signaled", result.describe())
        self.assertLess(time.monotonic() - start, 20)  # a stuck stopped sleep would end only at 30 s, as "exited"

    def test_terminate(self):
        marker = unique_sleep_arg()
        sandbox = self.helper.start(["sh", "-c", "sleep %s & sleep %s; wait" % (marker, marker)], root=self.rootfs)
        pid = sandbox.wait_started(30)
        self.assertIsInstance(pid, int)
        self.assertGreater(pid, 0)
        self.assertTrue(wait_until(lambda: len(processes_with_args("sleep", marker)) == 2, 10))
        start = time.monotonic()
        sandbox.terminate()
        result = sandbox.wait(timeout=30)
        self.assertEqual(result.status, "signaled", result.describe())
        self.assertLess(time.monotonic() - start, 10)
        self.assertEqual(processes_with_args("sleep", marker), [], "every process of the sandbox must end")

    def test_terminate_with_grace(self):
        sandbox = self.helper.start(["sleep", "60"], root=self.rootfs)
        sandbox.wait_started(30)
        start = time.monotonic()
        # A grace far beyond what a loaded machine needs to end sleep on SIGTERM (it was 5 s, bounded by 4)
        sandbox.terminate(grace_ms=50000)
        result = sandbox.wait(timeout=60)
        self.assertEqual((result.status, result.signal), ("signaled", "SIGTERM"), result.describe())
        self.assertLess(time.monotonic() - start, 30, "sleep dies of SIGTERM, before the grace ends")

    def test_terminate_right_after_start(self):
        # The client picks the id, so it can signal a run that is still starting.
        sandbox = self.helper.start(["sleep", "30"], root=self.rootfs)
        sandbox.terminate()
        result = sandbox.wait(timeout=30)
        self.assertEqual(result.status, "signaled", result.describe())

    def test_signal_names_and_numbers(self):
        script = "trap 'echo usr1; exit 7' USR1; echo ready; while :; do sleep 0.05; done"
        chunks = []
        sandbox = self.helper.start(["sh", "-c", script], root=self.rootfs, stdout="stream",
                                    on_output=lambda s, d: chunks.append(d), timeout=60)
        self.assertTrue(wait_until(lambda: b"ready" in b"".join(chunks), 30))
        self.assertTrue(sandbox.signal("USR1"))
        result = sandbox.wait(timeout=30)
        self.assertExited(result, 7)
        self.assertIn(b"usr1", b"".join(chunks))

        sandbox = self.helper.start(["sleep", "30"], root=self.rootfs)
        sandbox.wait_started(30)
        self.assertTrue(sandbox.signal(9))
        result = sandbox.wait(timeout=30)
        self.assertEqual(result.status, "signaled", result.describe())
        self.assertEqual(result.signal, "SIGKILL")

    def test_signal_right_after_started_reaches_the_command(self):
        # Once sandbox/started has come, a signal must reach the command (not be
        # lost, and a SIGKILL must not be mistaken for a setup failure).
        for sig in ("SIGTERM", "SIGKILL", "SIGTERM", "SIGKILL", "SIGTERM", "SIGKILL"):
            sandbox = self.helper.start(["sleep", "30"], root=self.rootfs, timeout=20)
            sandbox.wait_started(30)
            self.assertTrue(sandbox.signal(sig))
            result = sandbox.wait(timeout=30)
            self.assertEqual((result.status, result.signal), ("signaled", sig), result.describe())

    def test_list(self):
        sandbox = self.helper.start(["sleep", "30"], root=self.rootfs, sandbox_id="py-list-%d" % os.getpid())
        try:
            sandbox.wait_started(30)
            entries = {s.sandbox_id: s for s in self.helper.list()}
            self.assertIn(sandbox.sandbox_id, entries)
            entry = entries[sandbox.sandbox_id]
            self.assertEqual(entry.state, "running")
            self.assertEqual(entry.command, ["sleep", "30"])
            self.assertIsInstance(entry.pid, int)
        finally:
            sandbox.terminate()
        sandbox.wait(timeout=30)
        self.assertNotIn(sandbox.sandbox_id, {s.sandbox_id for s in self.helper.list()})

    def test_wait_timeout_leaves_it_running(self):
        sandbox = self.helper.start(["sleep", "30"], root=self.rootfs)
        with self.assertRaises(WaitTimeout):
            sandbox.wait(timeout=0.3)
        self.assertIsInstance(WaitTimeout("x"), TimeoutError)
        self.assertFalse(sandbox.done())
        self.assertIsNone(sandbox.poll())
        sandbox.terminate()
        self.assertEqual(sandbox.wait(timeout=30).status, "signaled")
        self.assertTrue(sandbox.done())

    def test_cancel(self):
        sandbox = self.helper.start(["sleep", "30"], root=self.rootfs)
        sandbox.wait_started(30)
        sandbox.cancel()
        with self.assertRaises(RequestCancelled) as caught:
            sandbox.wait(timeout=30)
        self.assertEqual(caught.exception.code, -32800)

    def test_context_manager_terminates(self):
        marker = unique_sleep_arg()
        with self.helper.start(["sleep", marker], root=self.rootfs) as sandbox:
            sandbox.wait_started(30)
        self.assertTrue(sandbox.done())
        self.assertEqual(sandbox.wait().status, "signaled")
        self.assertEqual(processes_with_args("sleep", marker), [])

    def test_pid_is_a_live_process(self):
        sandbox = self.helper.start(["sleep", "30"], root=self.rootfs)
        try:
            pid = sandbox.wait_started(30)
            self.assertTrue(os.path.exists("/proc/%d" % pid))
            self.assertEqual(sandbox.pid, pid)
        finally:
            sandbox.terminate()
        sandbox.wait(timeout=30)

    def test_wait_started_on_setup_failure(self):
        sandbox = self.helper.start(["true"], root=self.rootfs, mounts=[Mount("/tmp", "/etc/passwd/x", read_only=True)])
        sandbox.wait_started(30)  # returns (pid or None), never hangs
        self.assertEqual(sandbox.wait(timeout=30).status, "setup-failed")


if __name__ == "__main__":
    unittest.main()
