"""Many runs through one helper at once: from threads and from asyncio."""

from __future__ import annotations

import asyncio
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

from support import HelperTestCase, make_rootfs, remove_tree

import bwrapd

N = 16


class ThreadsTest(HelperTestCase):
    def test_sixteen_threads(self):
        def one(i):
            return self.helper.run(["sh", "-c", "sleep 1; echo run $0; echo err $0 >&2; exit $(($0 % 7))", str(i)],
                                   root=self.rootfs, timeout=120)

        start = time.monotonic()
        with ThreadPoolExecutor(N) as pool:
            results = list(pool.map(one, range(N)))
        elapsed = time.monotonic() - start
        for i, result in enumerate(results):
            self.assertExited(result, i % 7)
            self.assertEqual(result.stdout, b"run %d\n" % i)
            self.assertEqual(result.stderr, b"err %d\n" % i)
        self.assertEqual(len({r.sandbox_id for r in results}), N)
        # one after another they take N s and more; a loaded 2-core CI starts 16 sandboxes slowly
        self.assertLess(elapsed, N * 1.0 * 0.9, "runs must overlap (%.1f s for %d runs of 1 s)" % (elapsed, N))

    def test_threads_streaming_and_signalling(self):
        # Streams of concurrent runs never get mixed up.
        def one(i):
            chunks = []
            result = self.helper.run(["sh", "-c", "for j in 1 2 3 4 5; do echo $0-$j; sleep 0.02; done", str(i)],
                                     root=self.rootfs, stdout="stream", timeout=120,
                                     on_output=lambda s, d: chunks.append(d))
            return result, b"".join(chunks)

        with ThreadPoolExecutor(N) as pool:
            outcomes = list(pool.map(one, range(N)))
        for i, (result, out) in enumerate(outcomes):
            self.assertExited(result)
            self.assertEqual(out, b"".join(b"%d-%d\n" % (i, j) for j in range(1, 6)))


class AsyncGatherTest(unittest.TestCase):
    def setUp(self):
        self.rootfs = make_rootfs()
        self.addCleanup(remove_tree, self.rootfs)

    def test_gather_sixteen(self):
        async def main():
            try:
                helper = await bwrapd.AsyncHelper.create()
            except Exception as exc:
                raise AssertionError("cannot start the bwrapd helper: %s" % exc) from exc
            async with helper:
                start = time.monotonic()
                results = await asyncio.gather(*(
                    helper.run(["sh", "-c", "sleep 1; echo async $0; exit $(($0 % 5))", str(i)],
                               root=self.rootfs, timeout=120)
                    for i in range(N)))
                return results, time.monotonic() - start

        results, elapsed = asyncio.run(main())
        for i, result in enumerate(results):
            self.assertEqual((result.status, result.exit_code), ("exited", i % 5), result.describe())
            self.assertEqual(result.stdout, b"async %d\n" % i)
        self.assertLess(elapsed, N * 0.9)  # one after another they take N s and more


if __name__ == "__main__":
    unittest.main()
