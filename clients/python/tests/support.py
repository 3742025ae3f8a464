"""Shared test fixtures: the real bwrapd helper and a busybox root filesystem.

The tests run against the REAL helper (``$BWRAPD``, else ``bwrapd`` on
``PATH``; from a checkout: ``BWRAPD=$PWD/../../bwrapd``). If it cannot be started, every test that needs it FAILS with a
message saying why: a skipped suite would hide a broken build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path
from typing import Callable, List, Optional

HERE = Path(__file__).resolve().parent
CLIENT_DIR = HERE.parent
REPO = CLIENT_DIR.parent.parent
MAKE_ROOTFS = REPO / "tools" / "make-rootfs.sh"

if str(CLIENT_DIR) not in sys.path:
    sys.path.insert(0, str(CLIENT_DIR))

import bwrapd  # noqa: E402

_counter = 0


def unique_sleep_arg(seconds: int = 30) -> str:
    """A ``sleep`` duration (about ``seconds``) that marks this test's processes, so
    that they can be found in /proc afterwards."""
    global _counter
    _counter += 1
    return "%d.%d%03d" % (seconds, os.getpid() % 100000, _counter)


def processes_with_args(*argv: str) -> List[int]:
    """Pids of live (non-zombie) processes whose argv is ``argv`` (argv[0]
    compared by its last path component: ``/bin/sleep`` is ``sleep``)."""
    wanted = [a.encode() for a in argv]
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        args = cmdline.split(b"\0")[:-1]
        if args and args[1:] == wanted[1:] and os.path.basename(args[0]) == wanted[0]:
            found.append(int(entry))
    return found


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_stable(read: Callable[[], int], quiet: float, timeout: float) -> bool:
    """Whether ``read()`` stays the same for ``quiet`` seconds on end, within
    ``timeout``: a suspend (a cgroup freeze, SIGSTOP) takes effect a moment
    after it is answered, longer on a loaded machine."""
    deadline = time.monotonic() + timeout
    value, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return True
    return False


def make_rootfs() -> str:
    """A fresh busybox root (tools/make-rootfs.sh) in a new temp dir."""
    directory = tempfile.mkdtemp(prefix="bwrapd-py-root-")
    try:
        subprocess.run(["sh", str(MAKE_ROOTFS), directory], check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise AssertionError("tools/make-rootfs.sh failed: %s" % exc.stderr.decode(errors="replace"))
    return directory


def remove_tree(path: Optional[str]) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


def helper_description() -> str:
    try:
        return bwrapd.default_helper_path()
    except bwrapd.HelperNotFound as exc:
        return "(none: %s)" % exc


def start_helper(**kwargs) -> bwrapd.Helper:
    """Start the real helper, or fail with a clear message."""
    try:
        return bwrapd.Helper(**kwargs)
    except Exception as exc:  # noqa: BLE001 - turned into a test failure
        raise AssertionError(
            "cannot start the bwrapd helper %s (build it with './mvnw package -DskipTests' "
            "or set BWRAPD to its path): %s" % (helper_description(), exc)) from exc


class SharedRootfs:
    """Mixin for test classes: one busybox root (``cls.rootfs``) per class."""

    rootfs: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.rootfs = make_rootfs()

    @classmethod
    def tearDownClass(cls) -> None:
        remove_tree(cls.rootfs)


class HelperTestCase(unittest.TestCase):
    """One helper and one busybox root per test class."""

    helper: bwrapd.Helper
    rootfs: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.rootfs = make_rootfs()
        try:
            cls.helper = start_helper()
        except AssertionError:
            remove_tree(cls.rootfs)
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            cls.helper.close()
        finally:
            remove_tree(cls.rootfs)

    def sh(self, script: str, **options) -> bwrapd.RunResult:
        """Run a busybox shell script in the test root."""
        options.setdefault("root", self.rootfs)
        options.setdefault("timeout", 60)
        return self.helper.run(["sh", "-c", script], **options)

    def assertExited(self, result: bwrapd.RunResult, code: int = 0) -> None:
        self.assertEqual((result.status, result.exit_code), ("exited", code), result.describe())
