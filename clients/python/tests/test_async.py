"""The asyncio client against the real helper."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import unittest

from support import SharedRootfs, helper_description

import bwrapd
from bwrapd import AsyncHelper, CommandNotFound, Mount, NoSuchSandbox, SandboxFailed, WaitTimeout


class AsyncTest(SharedRootfs, unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        try:
            self.helper = await AsyncHelper.create()
        except Exception as exc:
            raise AssertionError("cannot start the bwrapd helper %s: %s" % (helper_description(), exc)) from exc

    async def asyncTearDown(self):
        self.assertEqual(await self.helper.close(), 0)

    async def test_run(self):
        self.assertEqual(self.helper.server_info.server_name, "bwrapd")
        result = await self.helper.run(["sh", "-c", "cat; echo err >&2; exit 4"], root=self.rootfs,
                                       stdin="from stdin\n")
        self.assertEqual((result.status, result.exit_code), ("exited", 4))
        self.assertEqual(result.stdout, b"from stdin\n")
        self.assertEqual(result.stderr, b"err\n")
        with self.assertRaises(SandboxFailed):
            await self.helper.run(["false"], root=self.rootfs, check=True)
        result = await self.helper.run(["sleep", "30"], root=self.rootfs, timeout=0.3)
        self.assertEqual(result.status, "timed-out")

    async def test_errors(self):
        with self.assertRaises(CommandNotFound):
            await self.helper.run(["no-such-command-xyz"], root=self.rootfs)
        with self.assertRaises(NoSuchSandbox):
            await self.helper.terminate("py-no-such-sandbox")
        with self.assertRaises(TypeError):
            await self.helper.run(["true"], root=self.rootfs, bogus=1)

    async def test_stream_iterator_and_callback(self):
        sandbox = await self.helper.start(["sh", "-c", "echo a; sleep 0.1; echo b >&2; echo c"],
                                          root=self.rootfs, stdout="stream", stderr="stream")
        chunks = [item async for item in sandbox.output(timeout=30)]
        result = await sandbox.wait(timeout=30)
        self.assertEqual(result.status, "exited")
        self.assertEqual(b"".join(d for s, d in chunks if s == "stdout"), b"a\nc\n")
        self.assertEqual(b"".join(d for s, d in chunks if s == "stderr"), b"b\n")

        seen = []
        result = await self.helper.run(["sh", "-c", "printf '\\377x'"], root=self.rootfs,
                                       stdout="stream", on_output=lambda s, d: seen.append((s, d)))
        self.assertEqual(result.status, "exited")
        self.assertEqual(b"".join(d for _, d in seen), b"\xffx")

    async def test_suspend_resume_terminate(self):
        state = tempfile.mkdtemp(prefix="bwrapd-py-state-")
        self.addCleanup(shutil.rmtree, state, True)
        path = os.path.join(state, "count")

        def count():
            try:
                with open(path) as f:
                    return len(f.read().splitlines())
            except FileNotFoundError:
                return 0

        async def until(predicate, timeout):
            deadline = time.monotonic() + timeout
            while not predicate():
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.05)
            return True

        sandbox = await self.helper.start(
            ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i >> /state/count; sleep 0.05; done"],
            root=self.rootfs, mounts=[Mount(state, "/state")])
        self.assertIsInstance(await sandbox.wait_started(30), int)
        self.assertTrue(await until(lambda: count() >= 3, 30))
        await sandbox.suspend()

        async def stable(quiet, timeout):  # the suspend takes effect a moment after its answer, longer under load
            deadline = time.monotonic() + timeout
            value, since = count(), time.monotonic()
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                if count() != value:
                    value, since = count(), time.monotonic()
                elif time.monotonic() - since >= quiet:
                    return True
            return False

        self.assertTrue(await stable(1.0, 30), "the counter advanced while suspended")
        frozen = count()
        await sandbox.resume()
        self.assertTrue(await until(lambda: count() >= frozen + 3, 30))
        with self.assertRaises(WaitTimeout):
            await sandbox.wait(timeout=0.2)
        await sandbox.terminate()
        result = await sandbox.wait(timeout=30)
        self.assertEqual(result.status, "signaled")

    async def test_task_cancellation_cancels_the_run(self):
        task = asyncio.ensure_future(self.helper.run(["sleep", "30"], root=self.rootfs,
                                                     sandbox_id="py-async-cancel-%d" % os.getpid()))
        deadline = time.monotonic() + 30  # the run is under way (1 s was a guess; a loaded machine may take longer)
        while "py-async-cancel-%d" % os.getpid() not in {s.sandbox_id for s in await self.helper.list()}:
            self.assertLess(time.monotonic(), deadline, "the run never showed in the list")
            await asyncio.sleep(0.1)
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await task
        deadline = time.monotonic() + 30
        while "py-async-cancel-%d" % os.getpid() in {s.sandbox_id for s in await self.helper.list()}:
            self.assertLess(time.monotonic(), deadline, "the cancelled run kept going")
            await asyncio.sleep(0.1)


if __name__ == "__main__":
    unittest.main()
