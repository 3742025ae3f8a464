"""sandbox/run through the synchronous client, against the real helper."""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
import unittest

from support import HelperTestCase, make_rootfs, remove_tree

from bwrapd import InvalidParams, Mount, OutputFile, ResourceLimits, SandboxFailed, StdinFile


class InitializeTest(HelperTestCase):
    def test_server_info(self):
        info = self.helper.server_info
        self.assertIsNotNone(info)
        self.assertEqual(info.server_name, "bwrapd")
        self.assertEqual(info.protocol_version, 1)
        self.assertTrue(info.server_version)
        self.assertIsInstance(info.capabilities.user_namespaces, bool)
        self.assertIsInstance(info.capabilities.die_with_parent, bool)
        self.assertIsInstance(info.capabilities.child_subreaper, bool)
        self.assertEqual(info.capabilities.framings, "ndjson,lsp")
        self.assertGreaterEqual(info.limits.max_message_bytes, 1024)
        self.assertTrue(info.bwrap_path)
        self.assertEqual(info.bwrap.path, info.bwrap_path)


class RunTest(HelperTestCase):
    def test_echo_is_captured(self):
        result = self.helper.run(["echo", "hello", "world"], root=self.rootfs)
        self.assertExited(result)
        self.assertEqual(result.stdout, b"hello world\n")
        self.assertEqual(result.stderr, b"")
        self.assertEqual(result.returncode, 0)
        self.assertTrue(result.ok)
        self.assertFalse(result.stdout_truncated)
        self.assertEqual(result.args, ["echo", "hello", "world"])
        self.assertGreaterEqual(result.duration_ms, 0)
        self.assertIsNotNone(result.usage)
        self.assertIsNotNone(result.cleanup)

    def test_host_root_by_default_is_read_only(self):
        marker = "/etc/bwrapd-python-client-test-%d" % os.getpid()
        try:
            result = self.helper.run(["sh", "-c", "echo x > %s" % marker], timeout=60)
            self.assertEqual(result.status, "exited", result.describe())
            self.assertNotEqual(result.exit_code, 0, "the host root must be mounted read-only")
            self.assertFalse(os.path.exists(marker))
        finally:
            if os.path.exists(marker):
                os.unlink(marker)
        result = self.helper.run(["echo", "from the host root"], root="/")
        self.assertExited(result)
        self.assertEqual(result.stdout, b"from the host root\n")

    def test_exit_code(self):
        result = self.sh("echo out; echo err >&2; exit 3")
        self.assertExited(result, 3)
        self.assertEqual(result.returncode, 3)
        self.assertEqual(result.stdout, b"out\n")
        self.assertEqual(result.stderr, b"err\n")
        self.assertFalse(result.ok)

    def test_signaled(self):
        result = self.sh("kill -KILL $$")
        self.assertEqual(result.status, "signaled", result.describe())
        self.assertEqual(result.signal, "SIGKILL")
        self.assertEqual(result.returncode, -9)

    def test_timed_out(self):
        start = time.monotonic()
        result = self.helper.run(["sleep", "30"], root=self.rootfs, timeout=0.5)
        elapsed = time.monotonic() - start
        self.assertEqual(result.status, "timed-out", result.describe())
        self.assertLess(elapsed, 20)  # sleep 30 would run on; bwrap's setup takes seconds on a loaded CI
        self.assertGreaterEqual(result.duration_ms, 400)

    def test_timeout_sigkill_after_kill_grace(self):
        # The command ignores SIGTERM: SIGKILL follows after killGraceMs.
        start = time.monotonic()
        result = self.sh("trap '' TERM; sleep 30", timeout=0.3, kill_grace_ms=300)
        self.assertEqual(result.status, "timed-out", result.describe())
        self.assertLess(time.monotonic() - start, 20)  # sleep 30 would run on; bwrap's setup takes seconds on a loaded CI

    def test_setup_failed_bad_mount_source(self):
        result = self.helper.run(
            ["echo", "never"], root=self.rootfs,
            # a mount point bwrap cannot make (below a file); a missing source is refused before bwrap runs
            mounts=[Mount("/tmp", "/etc/passwd/bwrapd-python-test", read_only=True)])
        self.assertEqual(result.status, "setup-failed", result.describe())
        self.assertTrue(result.setup_error)
        self.assertFalse(result.ok)

    def test_check_true_raises_sandbox_failed(self):
        with self.assertRaises(SandboxFailed) as caught:
            self.helper.run(["sh", "-c", "echo bad >&2; exit 1"], root=self.rootfs, check=True)
        failure = caught.exception
        self.assertEqual(failure.result.status, "exited")
        self.assertEqual(failure.result.exit_code, 1)
        self.assertEqual(failure.returncode, 1)
        self.assertEqual(failure.stderr, b"bad\n")
        self.assertIn("exited with status 1", str(failure))
        self.assertIn("bad", str(failure))
        # success does not raise
        self.assertExited(self.helper.run(["true"], root=self.rootfs, check=True))

    def test_check_true_raises_on_timeout(self):
        with self.assertRaises(SandboxFailed) as caught:
            self.helper.run(["sleep", "30"], root=self.rootfs, timeout=0.2, check=True)
        self.assertEqual(caught.exception.result.status, "timed-out")

    def test_explicit_sandbox_id(self):
        result = self.helper.run(["true"], root=self.rootfs, sandbox_id="py-explicit-%d" % os.getpid())
        self.assertEqual(result.sandbox_id, "py-explicit-%d" % os.getpid())

    def test_usage_counts_the_command(self):
        result = self.sh("i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
        self.assertExited(result)
        # The loop burns about a second of CPU; bwrap's own processes only milliseconds
        # (CPU time, unlike wall time, does not grow on a loaded machine).
        cpu = result.usage.user_cpu_ms + result.usage.system_cpu_ms
        self.assertGreater(cpu, 150,
                           "usage must cover the sandboxed processes: %r in %s ms" % (result.usage, result.duration_ms))
        self.assertGreater(result.usage.max_rss_kib, 0)


class StdioTest(HelperTestCase):
    def test_stdin_text(self):
        result = self.helper.run(["cat"], root=self.rootfs, stdin="line one\nline two\n")
        self.assertExited(result)
        self.assertEqual(result.stdout, b"line one\nline two\n")

    def test_stdin_bytes_and_binary_output(self):
        data = bytes(range(256)) * 4
        result = self.helper.run(["cat"], root=self.rootfs, stdin=data)
        self.assertExited(result)
        self.assertEqual(result.stdout, data)

    def test_stdin_file(self):
        with tempfile.NamedTemporaryFile("wb", delete=False) as f:
            f.write(b"from a host file\n")
        try:
            result = self.helper.run(["cat"], root=self.rootfs, stdin=StdinFile(f.name))
            self.assertExited(result)
            self.assertEqual(result.stdout, b"from a host file\n")
        finally:
            os.unlink(f.name)

    def test_stdin_null(self):
        result = self.helper.run(["cat"], root=self.rootfs, stdin=None)
        self.assertExited(result)
        self.assertEqual(result.stdout, b"")

    def test_non_utf8_output(self):
        result = self.sh(r"printf '\377\376ok'; printf '\300' >&2")
        self.assertExited(result)
        self.assertEqual(result.stdout, b"\xff\xfeok")
        self.assertEqual(result.stderr, b"\xc0")

    def test_unicode_roundtrip(self):
        result = self.helper.run(["echo", "h\u00e9llo \u2603"], root=self.rootfs)
        self.assertEqual(result.stdout.decode("utf-8"), "h\u00e9llo \u2603\n")

    def test_stderr_merged_into_stdout(self):
        result = self.sh("echo one; echo two >&2; echo three", stderr="stdout")
        self.assertExited(result)
        self.assertEqual(result.stdout, b"one\ntwo\nthree\n")
        self.assertFalse(result.stderr)

    def test_discard(self):
        result = self.sh("echo out; echo err >&2", stdout="discard", stderr="discard")
        self.assertExited(result)
        self.assertFalse(result.stdout)
        self.assertFalse(result.stderr)

    def test_output_files(self):
        directory = tempfile.mkdtemp(prefix="bwrapd-py-out-")
        try:
            out = os.path.join(directory, "out.log")
            err = os.path.join(directory, "err.log")
            with open(out, "w") as f:
                f.write("before\n")
            self.assertExited(self.sh("echo first; echo oops >&2",
                                      stdout=OutputFile(out, append=True), stderr=OutputFile(err)))
            with open(out) as f:
                self.assertEqual(f.read(), "before\nfirst\n")
            with open(err) as f:
                self.assertEqual(f.read(), "oops\n")
            self.assertExited(self.sh("echo replaced", stdout=OutputFile(out)))
            with open(out) as f:
                self.assertEqual(f.read(), "replaced\n")
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def test_capture_limit(self):
        result = self.sh("head -c 5000 /dev/zero; echo small >&2", capture_limit_bytes=1000)
        self.assertExited(result)
        self.assertEqual(result.stdout, b"\0" * 1000)
        self.assertTrue(result.stdout_truncated)
        self.assertEqual(result.stderr, b"small\n")
        self.assertFalse(result.stderr_truncated)

    def test_large_capture(self):
        result = self.sh("head -c 3000000 /dev/zero | tr '\\0' x")
        self.assertExited(result)
        self.assertEqual(len(result.stdout), 1048576)
        self.assertTrue(result.stdout_truncated)


class OptionsTest(HelperTestCase):
    def test_env_is_exact(self):
        result = self.helper.run(["env"], root=self.rootfs, env={"FOO": "bar baz", "PATH": "/bin"})
        self.assertExited(result)
        lines = sorted(result.stdout.decode().splitlines())
        self.assertIn("FOO=bar baz", lines)
        self.assertIn("PATH=/bin", lines)
        leftovers = [l for l in lines if not l.startswith(("FOO=", "PATH=", "PWD="))]
        self.assertEqual(leftovers, [], "nothing may leak into the environment")

    def test_default_env_path(self):
        result = self.sh('echo "$PATH"')
        self.assertEqual(result.stdout, b"/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin\n")

    def test_cwd_is_created(self):
        result = self.helper.run(["pwd"], root=self.rootfs, cwd="/work/sub/dir")
        self.assertExited(result)
        self.assertEqual(result.stdout, b"/work/sub/dir\n")

    def test_hostname(self):
        self.assertEqual(self.helper.run(["hostname"], root=self.rootfs).stdout, b"sandbox\n")
        result = self.helper.run(["hostname"], root=self.rootfs, hostname="builder")
        self.assertEqual(result.stdout, b"builder\n")

    def test_read_only_root(self):
        writable = self.sh("touch /writable-test && echo ok")
        self.assertExited(writable)
        result = self.sh("touch /readonly-test", read_only_root=True)
        self.assertEqual(result.status, "exited", result.describe())
        self.assertNotEqual(result.exit_code, 0)
        self.assertFalse(os.path.exists(os.path.join(self.rootfs, "readonly-test")))

    def test_mounts(self):
        rw = tempfile.mkdtemp(prefix="bwrapd-py-rw-")
        ro = tempfile.mkdtemp(prefix="bwrapd-py-ro-")
        try:
            with open(os.path.join(ro, "input"), "w") as f:
                f.write("data\n")
            result = self.sh(
                "cat /in/input > /out/copy && if touch /in/nope 2>/dev/null; then exit 9; fi",
                mounts=[Mount(rw, "/out"), Mount(ro, "/in", read_only=True)])
            self.assertExited(result)
            with open(os.path.join(rw, "copy")) as f:
                self.assertEqual(f.read(), "data\n")
            self.assertFalse(os.path.exists(os.path.join(ro, "nope")))
        finally:
            shutil.rmtree(rw, ignore_errors=True)
            shutil.rmtree(ro, ignore_errors=True)

    def test_devices(self):
        self.assertExited(self.sh("test -c /dev/null && test -c /dev/zero && test -c /dev/urandom"))
        result = self.sh("test -c /dev/null && ! test -e /dev/zero", devices=["/dev/null"])
        self.assertExited(result)

    def test_dev_shm(self):
        self.assertExited(self.sh("test -d /dev/shm && touch /dev/shm/x", dev_shm=True))

    def test_network_is_off_by_default(self):
        result = self.sh("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '")
        self.assertExited(result)
        self.assertEqual(result.stdout.split(), [b"lo"])

    def test_network_shared(self):
        with open("/proc/net/dev") as f:
            host = f.read().count("\n")
        result = self.sh("cat /proc/net/dev", network=True)
        self.assertExited(result)
        self.assertEqual(result.stdout.decode().count("\n"), host)

    def test_uid_gid(self):
        if not self.helper.server_info.capabilities.user_namespaces:
            self.skipTest("no user namespaces on this host: uid/gid cannot be mapped")
        result = self.sh("id -u; id -g", uid=1234, gid=4321)
        self.assertExited(result)
        self.assertEqual(result.stdout, b"1234\n4321\n")

    def test_default_uid_is_root_inside(self):
        if not self.helper.server_info.capabilities.user_namespaces and os.getuid() != 0:
            self.skipTest("no user namespaces and not root")
        self.assertEqual(self.sh("id -u").stdout, b"0\n")

    def test_inherit_uid(self):
        result = self.sh("id -u; id -g", inherit_uid=True)
        self.assertExited(result)
        self.assertEqual(result.stdout.decode().split(), [str(os.getuid()), str(os.getgid())])

    def test_linux32(self):
        if platform.machine() != "x86_64":
            self.skipTest("linux32 is checked on x86_64 hosts")
        self.assertEqual(self.helper.run(["uname", "-m"], root=self.rootfs).stdout, b"x86_64\n")
        result = self.helper.run(["uname", "-m"], root=self.rootfs, linux32=True)
        self.assertExited(result)
        self.assertEqual(result.stdout, b"i686\n")

    def test_interactive_is_accepted_as_false(self):
        self.assertExited(self.helper.run(["true"], root=self.rootfs, interactive=False))


class LimitsTest(HelperTestCase):
    """``limits`` round-trip: asked for by the client, enforced by the host,
    reported in ``limit_exceeded``; where the host cannot enforce one, the
    refusal names it."""

    def enforced(self):
        limits = self.helper.server_info.capabilities.limits
        self.assertIsNotNone(limits, "the server reports capabilities.limits")
        return limits

    def test_pids_limit_is_reported(self):
        if "pids" not in self.enforced():
            self.skipTest("this host cannot enforce pids for this user (capabilities.limits: %r)" % self.enforced())
        # A subshell forks sleeps until the limit refuses one (busybox's shell then gives up).
        result = self.sh("(i=0; while [ $i -lt 64 ]; do sleep 30 & i=$((i+1)); done) 2>/dev/null; echo forked",
                         limits=ResourceLimits(pids=8))
        self.assertEqual(result.limit_exceeded, "pids", result.describe())
        self.assertEqual(result.stdout, b"forked\n")

    def test_file_size_limit_is_reported(self):
        self.assertIn("fileSizeBytes", self.enforced(), "an rlimit: every host enforces it")
        result = self.sh("dd if=/dev/zero of=/tmp/big bs=1024 count=64", limits={"file_size_bytes": 10000})
        self.assertEqual((result.status, result.signal, result.limit_exceeded), ("signaled", "SIGXFSZ", "fileSize"),
                         result.describe())

    def test_no_limit_no_report(self):
        self.assertIsNone(self.sh("true").limit_exceeded)

    def test_a_limit_the_host_cannot_enforce_is_refused_by_name(self):
        missing = [name for name in ("memoryBytes", "pids", "cpus") if name not in self.enforced()]
        if not missing:
            self.skipTest("this host enforces every limit for this user")
        with self.assertRaises(InvalidParams) as caught:
            self.sh("true", limits={missing[0]: 1 << 26})
        self.assertIn("limits." + missing[0], str(caught.exception))


class CleanupTest(HelperTestCase):
    def test_root_is_left_as_it_was(self):
        root = make_rootfs()
        try:
            before = sorted(os.listdir(root))
            result = self.helper.run(["sh", "-c", "ls /dev /proc >/dev/null"], root=root,
                                     dev_shm=True, cwd="/", timeout=60)
            self.assertExited(result)
            self.assertTrue(result.cleanup.ok, result.cleanup)
            self.assertEqual(result.cleanup.failed, [])
            self.assertEqual(sorted(os.listdir(root)), before)
            self.assertTrue(any(p.endswith("dev") or p.startswith("/dev") for p in result.cleanup.removed),
                            result.cleanup.removed)
        finally:
            remove_tree(root)


if __name__ == "__main__":
    unittest.main()
