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


if __name__ == "__main__":
    unittest.main()
