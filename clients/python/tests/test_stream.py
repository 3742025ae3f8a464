"""Streamed output ("stream" mode): the callback and the iterator."""

from __future__ import annotations

import threading
import unittest

from support import HelperTestCase


class StreamTest(HelperTestCase):
    SCRIPT = "echo a; sleep 0.1; echo b >&2; sleep 0.1; echo c; printf '\\377'"

    def test_callback(self):
        chunks = []
        threads = set()

        def on_output(stream, data):
            chunks.append((stream, data))
            threads.add(threading.current_thread().name)

        result = self.sh(self.SCRIPT, stdout="stream", stderr="stream", on_output=on_output)
        self.assertExited(result)
        # Every chunk is delivered before run() returns.
        out = b"".join(d for s, d in chunks if s == "stdout")
        err = b"".join(d for s, d in chunks if s == "stderr")
        self.assertEqual(out, b"a\nc\n\xff")
        self.assertEqual(err, b"b\n")
        self.assertTrue(all(isinstance(d, bytes) for _, d in chunks))
        self.assertIsNone(result.stdout)
        self.assertIsNone(result.stderr)
        self.assertNotIn(threading.current_thread().name, threads)

    def test_order_across_streams(self):
        chunks = []
        result = self.sh("echo 1; sleep 0.2; echo 2 >&2; sleep 0.2; echo 3",
                         stdout="stream", stderr="stream",
                         on_output=lambda s, d: chunks.append((s, d)))
        self.assertExited(result)
        self.assertEqual(chunks, [("stdout", b"1\n"), ("stderr", b"2\n"), ("stdout", b"3\n")])

    def test_iterator(self):
        sandbox = self.helper.start(["sh", "-c", self.SCRIPT], root=self.rootfs,
                                    stdout="stream", stderr="capture")
        received = []
        for stream, chunk in sandbox.output(timeout=30):
            received.append((stream, chunk))
        result = sandbox.wait(timeout=30)
        self.assertExited(result)
        self.assertEqual({s for s, _ in received}, {"stdout"})
        self.assertEqual(b"".join(c for _, c in received), b"a\nc\n\xff")
        self.assertEqual(result.stderr, b"b\n")
        # A second iteration ends at once.
        self.assertEqual(list(sandbox.output(timeout=1)), [])

    def test_callback_may_control_its_sandbox(self):
        # A callback may call the helper (here: terminate on the first chunk).
        holder = {}
        seen = []

        def on_output(stream, data):
            seen.append(data)
            if len(seen) == 1:
                holder["sandbox"].terminate()

        sandbox = self.helper.start(["sh", "-c", "while :; do echo tick; sleep 0.05; done"],
                                    root=self.rootfs, stdout="stream", on_output=on_output)
        holder["sandbox"] = sandbox
        result = sandbox.wait(timeout=30)
        self.assertEqual(result.status, "signaled", result.describe())
        self.assertTrue(seen)

    def test_large_stream(self):
        total = []
        result = self.sh("head -c 3000000 /dev/zero", stdout="stream",
                         on_output=lambda s, d: total.append(len(d)))
        self.assertExited(result)
        self.assertEqual(sum(total), 3000000)


if __name__ == "__main__":
    unittest.main()
