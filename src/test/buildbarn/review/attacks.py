#!/usr/bin/python3
"""Security review reproducers for `bwrapd buildbarn-runner` (not run by CI: each FAILS while its
finding stands; run by hand, as root, with a built helper):

    TMPDIR=/var/tmp BWRAPD_JVM=1 BWRAPD=$PWD/bwrapd BWRAPD_HOME=$PWD \
        /usr/bin/python3 src/test/buildbarn/review/attacks.py -v

TMPDIR must not be below /tmp: with --root host the action's /tmp hides the host's /tmp, and a
real farm keeps its socket and build directory elsewhere (/worker/...). Victims are directories
made here.
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bb_worker_test as T  # noqa: E402  (generates the stubs, gives Runner)
import grpc  # noqa: E402
from bb_worker_test import Runner, read  # noqa: E402


def request(r, name, arguments, **change):
    q = r.request(name, arguments)
    for field, value in change.items():
        setattr(q, field, value)
    return q


class RootActionWritesThroughReadOnlyHardLinks(unittest.TestCase):
    """Runner and bb_worker as the same user (docs/buildbarn.md says so): an action writes through
    a read-only input file hard-linked from the worker's cache, poisoning every later action."""

    def test(self):
        r = Runner()
        try:
            a = r.action("A")
            cache = os.path.join(r.dir, "cache")
            os.mkdir(cache)
            blob = os.path.join(cache, "blob")
            with open(blob, "w") as f:
                f.write("clean\n")
            os.chmod(blob, 0o444)
            os.link(blob, os.path.join(a, "root/input.h"))  # bb_worker's hard-linking native build directory
            r.stub.Run(request(r, "A", ["sh", "-c", "chmod u+w /input.h; echo POISONED >> /input.h"]), timeout=60)
            self.assertEqual("clean\n", read(blob), "the action changed the worker's cache file")
        finally:
            r.close()


if __name__ == "__main__":
    unittest.main()
