"""The client's types against the server's OpenRPC document, its version
against the project's, its documentation and its static typing (no server
needed)."""

from __future__ import annotations

import base64
import dataclasses
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import typing
import unittest

from support import CLIENT_DIR, REPO

import bwrapd
from bwrapd import _protocol, types

OPENRPC = REPO / "src" / "main" / "resources" / "openrpc.json"


def load_openrpc():
    with open(OPENRPC, encoding="utf-8") as f:
        return json.load(f)


def wire_names(cls):
    return {types.wire_name(f) for f in dataclasses.fields(cls) if not f.metadata.get("local")}


class OpenRpcParityTest(unittest.TestCase):
    """A field, status, state or signal the server gains without the client
    fails here. (The client may know fields a server of another version
    lacks: it sends them only when given.)"""

    @classmethod
    def setUpClass(cls):
        cls.doc = load_openrpc()
        cls.schemas = cls.doc["components"]["schemas"]

    def result_schema(self, method):
        for m in self.doc["methods"]:
            if m["name"] == method:
                schema = m["result"]["schema"]
                ref = schema.get("$ref", "")
                return self.schemas[ref.rsplit("/", 1)[1]] if ref else schema
        self.fail("no method %s in openrpc.json" % method)

    def test_result_types_have_every_field(self):
        initialize = self.result_schema("initialize")
        for cls, schema in [
            (bwrapd.RunResult, self.schemas["RunResult"]),
            (bwrapd.Usage, self.schemas["Usage"]),
            (bwrapd.Cleanup, self.schemas["Cleanup"]),
            (bwrapd.CleanupFailure, self.schemas["CleanupFailure"]),
            (bwrapd.SandboxInfo, self.schemas["SandboxInfo"]),
            (bwrapd.ServerInfo, initialize),
            (bwrapd.BwrapInfo, initialize["properties"]["bwrap"]),
            (bwrapd.Capabilities, self.schemas["Capabilities"]),
            (bwrapd.CgroupInfo, self.schemas["Capabilities"]["properties"]["cgroup"]),
            (bwrapd.ResourceLimits, self.schemas["ResourceLimits"]),
            (bwrapd.Limits, self.schemas["Limits"]),
            (bwrapd.ArgvResult, self.result_schema("sandbox/argv")),
        ]:
            with self.subTest(cls.__name__):
                self.assertLessEqual(set(schema["properties"]), wire_names(cls))
        self.assertLessEqual(set(self.schemas["Captured"]["properties"]), set(types.CAPTURED_FIELDS))
        self.assertEqual(set(self.schemas["Delivered"]["properties"]), {"delivered"})

    def test_results_are_read_whole(self):
        # Every field of a complete wire object lands in the result.
        run = {"sandboxId": "sb-1", "status": "cancelled", "exitCode": None, "signal": "SIGKILL",
               "setupError": None, "durationMs": 12.5,
               "usage": {"userCpuMs": 1.5, "systemCpuMs": 2.0, "maxRssKiB": 1024},
               "stdout": {"text": "h\u00e9\n", "base64": None, "truncated": True},
               "stderr": {"text": None, "base64": "/wA=", "truncated": True, "error": "EIO"},
               "cleanup": {"ok": False, "removed": ["/dev"], "failed": [{"path": "/proc", "error": "EBUSY"}],
                           "deferred": True},
               "limitExceeded": "pids"}
        self.assertLessEqual(set(self.schemas["RunResult"]["properties"]), set(run))
        result = bwrapd.RunResult.from_wire(["x"], run)
        self.assertEqual((result.sandbox_id, result.status, result.exit_code, result.signal, result.signal_number,
                          result.duration, result.stdout, result.stdout_truncated, result.stderr),
                         ("sb-1", "cancelled", None, "SIGKILL", 9, 0.0125, "h\u00e9\n".encode(), True, b"\xff\0"))
        self.assertEqual((result.stderr_truncated, result.stderr_error, result.stdout_error), (True, "EIO", None))
        self.assertEqual(result.usage, bwrapd.Usage(1.5, 2.0, 1024))
        self.assertEqual(result.cleanup, bwrapd.Cleanup(False, ["/dev"], [bwrapd.CleanupFailure("/proc", "EBUSY")], True))
        self.assertEqual(result.limit_exceeded, "pids")
        decoded = bwrapd.RunResult.from_wire(["x"], run, "utf-8")
        self.assertEqual((decoded.stdout, decoded.stderr), ("h\u00e9\n", "\ufffd\0"))

        init = {"serverName": "bwrapd", "serverVersion": "0.1.0", "protocolVersion": 1,
                "bwrap": {"path": None, "version": None},
                "capabilities": {"userNamespaces": True, "dieWithParent": False, "jsonStatusFd": True,
                                 "childSubreaper": False, "linux32": True, "framings": "ndjson,lsp"},
                "limits": {"maxMessageBytes": 2048, "maxNestingDepth": 64}}
        info = bwrapd.ServerInfo.from_wire(init)
        self.assertEqual(info.bwrap, bwrapd.BwrapInfo(None, None))
        self.assertEqual(info.capabilities, bwrapd.Capabilities(True, False, True, False, True, "ndjson,lsp"))
        self.assertEqual(info.limits, bwrapd.Limits(2048, 64))
        init["capabilities"].update({"seccomp": True, "cgroup": {"available": True, "path": "/sys/fs/cgroup/x",
                                                                 "controllers": ["pids"]},
                                     "limits": {"pids": "cgroup v2 pids.max"}})
        caps = bwrapd.ServerInfo.from_wire(init).capabilities
        self.assertEqual(caps.cgroup, bwrapd.CgroupInfo(True, "/sys/fs/cgroup/x", ["pids"]))
        self.assertEqual(caps.limits, {"pids": "cgroup v2 pids.max"})

        entry = bwrapd.SandboxInfo.from_wire({"sandboxId": "a", "pid": 7, "state": "suspended", "command": ["x"],
                                             "startedAt": "2026-11-29T07:43:49.174957768Z"})
        self.assertEqual(entry.started_at.isoformat(), "2026-11-29T07:43:49.174957+00:00")
        self.assertEqual(entry.state, "suspended")

    def test_run_options_are_the_run_params(self):
        params = set(self.schemas["RunParams"]["properties"])
        sent = {wire for wire, _ in _protocol._RUN_OPTIONS.values()} | {"command", "sandboxId"}
        self.assertLessEqual(params, sent)
        typed = set(types.RunOptions.__annotations__)
        explicit = {"root"}  # a keyword of its own in run()/start()
        self.assertEqual(typed | explicit, set(_protocol._RUN_OPTIONS) | _protocol._CLIENT_OPTIONS)
        for method in (bwrapd.Helper.run, bwrapd.Helper.start, bwrapd.AsyncHelper.run, bwrapd.AsyncHelper.start):
            keywords = set(inspect.signature(method).parameters) - {"self", "command", "options"}
            self.assertEqual(keywords, {"root", "check", "timeout", "sandbox_id", "on_output"}, method)

    def test_input_and_resize_send_the_methods_params(self):
        def params(method):
            return {p["name"] for m in self.doc["methods"] if m["name"] == method for p in m["params"]}

        sent = set()
        for data in ("text", b"bytes"):
            for piece, _ in _protocol.input_pieces("sb", data, True):
                sent |= set(piece)
        self.assertEqual(sent, params("sandbox/input"))
        self.assertEqual(set(self.result_schema("sandbox/input")["properties"]), {"written"})
        self.assertEqual(set(_protocol.resize_params("sb", 1, 2)), params("sandbox/resize"))

    def test_input_goes_in_pieces(self):
        data = bytes(range(256)) * 160
        pieces = _protocol.input_pieces("sb", data, True)
        self.assertEqual(b"".join(base64.b64decode(p["base64"]) for p, _ in pieces), data)
        self.assertEqual([n for _, n in pieces], [_protocol.INPUT_PIECE, _protocol.INPUT_PIECE, len(data) - 2 * _protocol.INPUT_PIECE])
        self.assertEqual([p.get("eof") for p, _ in pieces], [None, None, True])
        self.assertEqual(_protocol.input_pieces("sb", "", True), [({"sandboxId": "sb", "eof": True}, 0)])
        self.assertEqual(_protocol.input_pieces("sb", "é\x03", False), [({"sandboxId": "sb", "text": "é\x03"}, 3)])
        self.assertEqual(_protocol.input_pieces("sb", b"", False), [])

    def test_enums(self):
        self.assertEqual(set(typing.get_args(bwrapd.RunStatus)), set(self.schemas["RunStatus"]["enum"]))
        self.assertEqual(set(typing.get_args(bwrapd.SignalName)), set(self.schemas["SignalName"]["enum"]))
        self.assertEqual(set(typing.get_args(bwrapd.LimitName)) | {None},
                         set(self.schemas["RunResult"]["properties"]["limitExceeded"]["enum"]))
        self.assertEqual(set(typing.get_args(bwrapd.SandboxState)),
                         set(self.schemas["SandboxInfo"]["properties"]["state"]["enum"]))

    def test_notifications_are_understood(self):
        self.assertEqual({n["name"] for n in self.doc["x-notifications"]}, {"sandbox/started", "sandbox/output"})


class VersionTest(unittest.TestCase):
    def test_version_is_the_project_version(self):
        pom = (REPO / "pom.xml").read_text(encoding="utf-8")
        project = re.search(r"<artifactId>bwrapd</artifactId>\s*<version>([^<]+)</version>", pom)
        self.assertEqual(bwrapd.__version__, project.group(1))


class DocumentationTest(unittest.TestCase):
    def test_every_public_member_has_a_docstring(self):
        missing = []
        for name in bwrapd.__all__:
            obj = getattr(bwrapd, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                if not inspect.getdoc(obj):
                    missing.append(name)
                if inspect.isclass(obj) and obj.__module__.startswith("bwrapd"):
                    for attr, member in vars(obj).items():
                        if attr.startswith("_") or not (callable(member) or isinstance(member, (property, classmethod))):
                            continue
                        if not (getattr(member, "__doc__", None) or "").strip():
                            missing.append("%s.%s" % (name, attr))
        self.assertEqual(missing, [], "public members without a docstring")


def find_mypy():
    """A Python that has mypy: this one, else Debian's."""
    for python in (sys.executable, "/usr/bin/python3"):
        if shutil.which(python) and subprocess.run([python, "-m", "mypy", "--version"],
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            return python
    return None


class StaticTypingTest(unittest.TestCase):
    """The package type-checks, and a misspelled or mistyped option fails."""

    @classmethod
    def setUpClass(cls):
        cls.python = find_mypy()
        if cls.python is None:
            if os.environ.get("CI"):
                raise AssertionError("mypy is needed in CI (Debian: python3-mypy)")
            raise unittest.SkipTest("mypy is not installed (Debian: python3-mypy)")

    def mypy(self, *args):
        return subprocess.run([self.python, "-m", "mypy", "--no-incremental", "--cache-dir", os.devnull,
                               "--enable-incomplete-feature=Unpack", *args],
                              cwd=str(CLIENT_DIR), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def test_package_is_strictly_typed(self):
        done = self.mypy("--strict", "bwrapd")
        self.assertEqual(done.returncode, 0, done.stdout)

    def test_misspelled_options_fail_type_checking(self):
        with tempfile.TemporaryDirectory() as tmp:
            user = os.path.join(tmp, "user.py")
            with open(user, "w") as f:
                f.write("import bwrapd\n"
                        "with bwrapd.Helper() as h:\n"
                        "    h.run(['true'], cwd='/', text=True, stdout='capture', timeout=5)\n"
                        "    h.run(['true'], timeut=5)\n"
                        "    h.start(['true'], read_only_root='yes')\n"
                        "    h.run(['true'], stdout='captrue')\n")
            done = self.mypy(user)
        self.assertIn('Unexpected keyword argument "timeut"', done.stdout)
        self.assertIn('"read_only_root"', done.stdout)
        self.assertIn('"stdout"', done.stdout)
        self.assertEqual(done.stdout.count("error:"), 3, done.stdout)
