"""Finding the helper, and what the client offers in the manner of subprocess:
text mode, output into file objects, typed results of control and cancel."""

from __future__ import annotations

import asyncio
import io
import os
import stat
import subprocess
import tempfile
import unittest
from unittest import mock

from support import HelperTestCase, processes_with_args, unique_sleep_arg, wait_until

import bwrapd


class DiscoveryTest(unittest.TestCase):
    """The helper is the given path, else $BWRAPD, else bwrapd in an absolute
    PATH directory: never a file the user did not choose, such as a bwrapd in
    the working directory (a repository can ship one)."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.marker = os.path.join(self.dir, "ran")
        script = os.path.join(self.dir, "bwrapd")
        with open(script, "w") as f:
            f.write("#!/bin/sh\ntouch '%s'\necho 'bwrapd-py-test: found on PATH' >&2\nexit 3\n" % self.marker)
        os.chmod(script, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        sub = os.path.join(self.dir, "sub")
        os.mkdir(sub)
        cwd = os.getcwd()
        os.chdir(sub)
        self.addCleanup(os.chdir, cwd)

    def test_never_runs_a_file_from_the_working_directory(self):
        for path in ("/usr/bin:/bin", ".:..:/usr/bin", ""):
            with self.subTest(PATH=path), mock.patch.dict(os.environ, {"PATH": path}):
                os.environ.pop("BWRAPD", None)
                for make in (bwrapd.Helper, lambda: asyncio.run(bwrapd.AsyncHelper.create())):
                    with self.assertRaises(FileNotFoundError) as caught:
                        make()
                    self.assertIsInstance(caught.exception, bwrapd.HelperNotFound)
                    self.assertIn("BWRAPD", str(caught.exception))
                self.assertFalse(os.path.exists(self.marker), "the bwrapd in the working directory's parent ran")

    def test_path_then_bwrapd_variable(self):
        with mock.patch.dict(os.environ, {"PATH": self.dir + ":/usr/bin:/bin"}):
            os.environ.pop("BWRAPD", None)
            self.assertEqual(bwrapd.default_helper_path(), os.path.join(self.dir, "bwrapd"))
            with self.assertRaises(bwrapd.HelperDied) as caught:
                bwrapd.Helper()
            self.assertIn("found on PATH", str(caught.exception))
            os.unlink(self.marker)
            os.environ["BWRAPD"] = "/bin/false"
            with self.assertRaises(bwrapd.HelperDied) as caught:
                bwrapd.Helper()
            self.assertEqual(caught.exception.returncode, 1)
            self.assertFalse(os.path.exists(self.marker), "BWRAPD was set, yet PATH's bwrapd ran")


class TextModeTest(HelperTestCase):
    def test_text_and_encoding(self):
        script = "printf 'caf\\303\\251\\n'; printf 'bad \\377\\n' >&2"
        result = self.sh(script, text=True)
        self.assertEqual((result.stdout, result.stderr), ("caf\u00e9\n", "bad \ufffd\n"))
        result = self.sh(script, encoding="latin-1")
        self.assertEqual(result.stdout, "caf\u00c3\u00a9\n")
        result = self.sh(script)
        self.assertEqual(result.stdout, b"caf\xc3\xa9\n")

    def test_output_into_file_objects(self):
        binary, text = io.BytesIO(), io.StringIO()
        result = self.sh("echo out; printf 'caf\\303'; sleep 0.1; printf '\\251\\n'; echo err >&2",
                         stdout=binary, stderr=text)
        self.assertExited(result)
        self.assertEqual(binary.getvalue(), b"out\ncaf\xc3\xa9\n")
        self.assertEqual(text.getvalue(), "err\n")
        self.assertEqual((result.stdout, result.stderr), (None, None))
        with tempfile.TemporaryFile("w+", encoding="utf-8") as log:
            self.assertExited(self.sh("echo one; echo two >&2", stdout=log, stderr=subprocess.STDOUT))
            log.seek(0)
            self.assertEqual(log.read(), "one\ntwo\n")

    def test_async_output_into_a_file_object(self):
        async def main():
            async with bwrapd.AsyncHelper() as helper:
                out = io.BytesIO()
                result = await helper.run(["sh", "-c", "echo async"], root=self.rootfs, stdout=out)
                return result, out.getvalue()

        result, data = asyncio.run(main())
        self.assertExited(result)
        self.assertEqual(data, b"async\n")


class ControlResultsTest(HelperTestCase):
    def test_control_methods_say_whether_they_were_delivered(self):
        sandbox = self.helper.start(["sleep", "30"], root=self.rootfs)
        sandbox.wait_started(30)
        self.assertIs(sandbox.suspend(), True)
        self.assertIs(sandbox.resume(), True)
        self.assertIs(sandbox.signal("SIGCONT"), True)
        self.assertIs(sandbox.terminate(), True)
        self.assertEqual(sandbox.wait(timeout=30).status, "signaled")
        self.assertEqual(sandbox.wait().signal_number, 9)

    def test_cancelled_run_carries_its_result(self):
        arg = unique_sleep_arg()
        sandbox = self.helper.start(["sh", "-c", "echo before; exec sleep " + arg], root=self.rootfs, text=True)
        sandbox.wait_started(30)
        # the echo has run once the sleep does (a fixed 0.5 s could end first on a loaded machine)
        self.assertTrue(wait_until(lambda: processes_with_args("sleep", arg), 30), "the sleep never ran")
        sandbox.cancel()
        with self.assertRaises(bwrapd.RequestCancelled) as caught:
            sandbox.wait(timeout=30)
        result = caught.exception.result
        self.assertIsNotNone(result)
        self.assertEqual((result.status, result.signal, result.stdout), ("cancelled", "SIGKILL", "before\n"))
        self.assertTrue(result.cleanup.ok)
        self.assertLess(len(str(caught.exception)), 200, "the message must not hold the whole result")

    def test_argv(self):
        argv = self.helper.argv(["true"], root=self.rootfs, network=True)
        self.assertTrue(argv.executable.endswith("bwrap") or argv.executable.endswith("linux32"), argv)
        self.assertIn("true", argv.argv)
        self.assertNotIn("--unshare-net", argv.argv)
        self.assertIn("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", argv.env)

    def test_list_times_and_states(self):
        sandbox = self.helper.start(["sleep", "30"], root=self.rootfs)
        sandbox.wait_started(30)
        try:
            entry = {s.sandbox_id: s for s in self.helper.list()}[sandbox.sandbox_id]
            self.assertEqual(entry.state, "running")
            self.assertIsNotNone(entry.started_at.tzinfo)
            import datetime
            age = datetime.datetime.now(datetime.timezone.utc) - entry.started_at
            self.assertLess(abs(age.total_seconds()), 60)
        finally:
            sandbox.terminate()
            sandbox.wait(timeout=30)


if __name__ == "__main__":
    unittest.main()
