"""The mapping of pythonic keyword arguments to sandbox/run params.

Pure client-side checks (no helper needed): every sandbox/run field of docs/protocol.md
must be reachable, with the exact wire shape.
"""

from __future__ import annotations

import asyncio
import io
import pathlib
import signal
import subprocess
import unittest

import support  # noqa: F401 - puts the package on sys.path

import bwrapd
from bwrapd import Mount, OutputFile, StdinFile
from bwrapd._protocol import build_run_params, signal_name
from bwrapd.errors import error_from_response

SECTION_4_FIELDS = {
    "command", "root", "sandboxId", "cwd", "env", "network", "readOnlyRoot", "hostname", "uid", "gid",
    "inheritUid", "mounts", "devices", "devShm", "linux32", "stdin", "stdout", "stderr",
    "captureLimitBytes", "timeoutMs", "killGraceMs", "interactive",
}


class ParamsTest(unittest.TestCase):
    def test_every_field_is_reachable(self):
        argv, params = build_run_params(
            ["echo", pathlib.PurePosixPath("/x")], "py-1", 1.5,
            dict(root=pathlib.Path("/srv/root"), cwd="/w", env={"A": "b"}, network=True, read_only_root=True,
                 hostname="h", uid=1, gid=2, inherit_uid=False,
                 mounts=[Mount("/src", "/dst"), Mount(pathlib.Path("/ro"), "/ro", read_only=True), ("/a", "/b", True),
                         {"source": "/c", "target": "/d"}],
                 devices=["/dev/null"], dev_shm=True, linux32=True, stdin="text",
                 stdout=OutputFile("/tmp/out", append=True), stderr="stdout",
                 capture_limit_bytes=10, kill_grace_ms=20, interactive=False))
        self.assertEqual(argv, ["echo", "/x"])
        self.assertEqual(params, {
            "command": ["echo", "/x"], "sandboxId": "py-1", "timeoutMs": 1500, "root": "/srv/root", "cwd": "/w",
            "env": {"A": "b"}, "network": True, "readOnlyRoot": True, "hostname": "h", "uid": 1, "gid": 2,
            "inheritUid": False,
            "mounts": [{"source": "/src", "target": "/dst", "readOnly": False},
                       {"source": "/ro", "target": "/ro", "readOnly": True},
                       {"source": "/a", "target": "/b", "readOnly": True},
                       {"source": "/c", "target": "/d", "readOnly": False}],
            "devices": ["/dev/null"], "devShm": True, "linux32": True, "stdin": {"text": "text"},
            "stdout": {"file": "/tmp/out", "append": True}, "stderr": "stdout",
            "captureLimitBytes": 10, "killGraceMs": 20, "interactive": False,
        })
        self.assertEqual(set(params), SECTION_4_FIELDS)

    def test_stdin_forms(self):
        def stdin(value):
            return build_run_params(["cat"], None, None, {"stdin": value})[1]["stdin"]

        self.assertEqual(stdin(None), "null")
        self.assertEqual(stdin(subprocess.DEVNULL), "null")
        self.assertEqual(stdin("hé"), {"text": "hé"})
        self.assertEqual(stdin(b"\xff\x00"), {"base64": "/wA="})
        self.assertEqual(stdin(StdinFile("/etc/hosts")), {"file": "/etc/hosts"})
        with self.assertRaises(TypeError):
            stdin(42)

    def test_output_forms(self):
        def out(name, value):
            return build_run_params(["x"], None, None, {name: value})[1][name]

        for mode in ("capture", "discard", "stream"):
            self.assertEqual(out("stdout", mode), mode)
            self.assertEqual(out("stderr", mode), mode)
        self.assertEqual(out("stderr", "stdout"), "stdout")
        self.assertEqual(out("stdout", subprocess.PIPE), "capture")
        self.assertEqual(out("stdout", subprocess.DEVNULL), "discard")
        self.assertEqual(out("stderr", subprocess.STDOUT), "stdout")
        self.assertEqual(out("stdout", OutputFile("/o")), {"file": "/o", "append": False})
        with self.assertRaises(ValueError):
            out("stdout", "stdout")
        with self.assertRaises(ValueError):
            out("stdout", "pipe")

    def test_limits_forms(self):
        def limits(value):
            return build_run_params(["x"], None, None, {"limits": value})[1]["limits"]

        self.assertEqual(limits(bwrapd.ResourceLimits(pids=32, cpus=1.5, file_size_bytes=0)),
                         {"pids": 32, "cpus": 1.5, "fileSizeBytes": 0})
        self.assertEqual(limits({"memory_bytes": 1 << 26, "cpuMs": 500, "open_files": None}),
                         {"memoryBytes": 1 << 26, "cpuMs": 500})
        with self.assertRaises(ValueError):
            limits({"memory": 1})
        with self.assertRaises(TypeError):
            limits({"pids": 1.5})
        with self.assertRaises(TypeError):
            limits(32)

    def test_defaults_are_left_to_the_server(self):
        _, params = build_run_params(["true"], None, None, {"cwd": None, "env": None})
        self.assertEqual(params, {"command": ["true"]})

    def test_bad_arguments(self):
        with self.assertRaises(TypeError) as caught:
            build_run_params(["true"], None, None, {"read_only": True})
        self.assertIn("read_only", str(caught.exception))
        with self.assertRaises(TypeError):
            build_run_params("echo hi", None, None, {})
        with self.assertRaises(ValueError):
            build_run_params([], None, None, {})
        with self.assertRaises(TypeError):
            build_run_params(["true"], None, None, {"network": 1})
        with self.assertRaises(TypeError):
            build_run_params(["true"], None, None, {"uid": True})
        with self.assertRaises(TypeError):
            build_run_params(["true"], None, None, {"env": {"A": 1}})
        with self.assertRaises(TypeError):
            build_run_params(["true"], None, 1, {"timeout_ms": 5})
        with self.assertRaises(TypeError):
            build_run_params(["true"], None, None, {"mounts": "/a:/b"})

    def test_misspelt_seccomp_and_terminal_keys_are_refused(self):
        with self.assertRaises(TypeError) as caught:
            build_run_params(["true"], None, None, {"seccomp": {"deny": ["ptrace"], "erno": "EACCES"}})
        self.assertIn("erno", str(caught.exception))
        with self.assertRaises(TypeError) as caught:
            build_run_params(["true"], None, None, {"terminal": {"rows": 24, "cols": 80, "TERM": "dumb"}})
        self.assertIn("TERM", str(caught.exception))
        _, params = build_run_params(["true"], None, None, {"seccomp": {"deny": ["ptrace"], "errno": "EACCES"},
                                                             "terminal": {"rows": 24, "cols": 80, "term": "dumb"}})
        self.assertEqual(params["seccomp"], {"deny": ["ptrace"], "errno": "EACCES"})
        self.assertEqual(params["terminal"], {"rows": 24, "cols": 80, "term": "dumb"})

    def test_on_output_without_a_stream_is_refused_before_sending(self):
        # No helper is needed: the check is local, before anything is sent.
        helper = bwrapd.Helper.__new__(bwrapd.Helper)
        callback = lambda stream, data: None  # noqa: E731
        for options in ({}, {"stdout": "capture", "stderr": subprocess.DEVNULL},
                        {"stdout": io.BytesIO(), "stderr": "stdout"}):
            for method in (bwrapd.Helper.start, bwrapd.Helper.run):
                with self.subTest(options=options, method=method.__name__):
                    with self.assertRaises(ValueError) as caught:
                        method(helper, ["true"], on_output=callback, **options)
                    self.assertIn("on_output", str(caught.exception))
        async_helper = bwrapd.AsyncHelper.__new__(bwrapd.AsyncHelper)
        with self.assertRaises(ValueError):
            asyncio.run(bwrapd.AsyncHelper.run(async_helper, ["true"], on_output=callback))

    def test_unknown_keyword_raises_before_sending(self):
        # No helper is needed: the check is local, in the signature's spirit.
        helper = bwrapd.Helper.__new__(bwrapd.Helper)
        with self.assertRaises(TypeError):
            bwrapd.Helper.start(helper, ["true"], no_such_option=True)

    def test_signal_names(self):
        self.assertEqual(signal_name("TERM"), "SIGTERM")
        self.assertEqual(signal_name("sigkill"), "SIGKILL")
        self.assertEqual(signal_name(signal.SIGSTOP), "SIGSTOP")
        self.assertEqual(signal_name(10), "SIGUSR1")
        with self.assertRaises(TypeError):
            signal_name(None)

    def test_error_classes(self):
        expected = {
            -32001: bwrapd.NoSuchSandbox, -32002: bwrapd.SandboxIdInUse, -32003: bwrapd.CommandNotFound,
            -32004: bwrapd.BwrapUnavailable, -32005: bwrapd.PathNotAllowed, -32006: bwrapd.ShuttingDown,
            -32700: bwrapd.ParseError, -32600: bwrapd.InvalidRequest, -32601: bwrapd.MethodNotFound,
            -32602: bwrapd.InvalidParams, -32603: bwrapd.InternalError, -32800: bwrapd.RequestCancelled,
        }
        for code, cls in expected.items():
            error = error_from_response({"code": code, "message": "m", "data": {"x": 1}})
            self.assertIs(type(error), cls)
            self.assertEqual((error.code, error.message, error.data), (code, "m", {"x": 1}))
            self.assertIsInstance(error, bwrapd.BwrapdError)
            self.assertIsInstance(error, bwrapd.RpcError)
        unknown = error_from_response({"code": -1, "message": "odd"})
        self.assertIs(type(unknown), bwrapd.BwrapdError)
        self.assertEqual(unknown.code, -1)

    def test_result_decoding(self):
        result = bwrapd.RunResult.from_wire(["x"], {
            "sandboxId": "sb-1", "status": "signaled", "exitCode": None, "signal": "SIGTERM",
            "setupError": None, "durationMs": 12.5,
            "usage": {"userCpuMs": 1, "systemCpuMs": 2, "maxRssKiB": 3},
            "stdout": {"text": "hé", "base64": None, "truncated": False},
            "stderr": {"text": None, "base64": "/w==", "truncated": True},
            "cleanup": {"ok": False, "removed": ["/dev"], "failed": [{"path": "/proc", "error": "EBUSY"}]}})
        self.assertEqual(result.stdout, "hé".encode())
        self.assertEqual(result.stderr, b"\xff")
        self.assertTrue(result.stderr_truncated)
        self.assertEqual(result.returncode, -15)
        self.assertEqual(result.usage, bwrapd.Usage(1, 2, 3))
        self.assertEqual(result.cleanup.failed, [bwrapd.CleanupFailure("/proc", "EBUSY")])
        with self.assertRaises(bwrapd.SandboxFailed):
            result.check_returncode()


if __name__ == "__main__":
    unittest.main()
