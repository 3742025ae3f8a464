"""Error responses of the real helper become the right exception classes."""

from __future__ import annotations

import unittest

from support import HelperTestCase

from bwrapd import (
    BwrapdError,
    CommandNotFound,
    InvalidParams,
    MethodNotFound,
    Mount,
    NoSuchSandbox,
    PathNotAllowed,
    RpcError,
    SandboxIdInUse,
)


class ErrorsTest(HelperTestCase):
    def test_no_such_sandbox(self):
        for call in (lambda: self.helper.signal("py-no-such-sandbox", "SIGTERM"),
                     lambda: self.helper.suspend("py-no-such-sandbox"),
                     lambda: self.helper.resume("py-no-such-sandbox"),
                     lambda: self.helper.terminate("py-no-such-sandbox")):
            with self.assertRaises(NoSuchSandbox) as caught:
                call()
            error = caught.exception
            self.assertEqual(error.code, -32001)
            self.assertIsInstance(error, BwrapdError)
            self.assertIsInstance(error, RpcError)
            self.assertTrue(error.message)

    def test_finished_sandbox_is_no_such_sandbox(self):
        sandbox = self.helper.start(["true"], root=self.rootfs)
        sandbox.wait(timeout=30)
        with self.assertRaises(NoSuchSandbox):
            sandbox.signal("SIGTERM")

    def test_command_not_found(self):
        with self.assertRaises(CommandNotFound) as caught:
            self.helper.run(["no-such-command-xyz"], root=self.rootfs)
        self.assertEqual(caught.exception.code, -32003)
        with self.assertRaises(CommandNotFound):
            self.helper.run(["/bin/no-such-command-xyz"], root=self.rootfs)

    def test_relative_root_is_not_allowed(self):
        with self.assertRaises(PathNotAllowed) as caught:
            self.helper.run(["echo"], root="relative/dir")
        self.assertEqual(caught.exception.code, -32005)

    def test_other_paths_not_allowed(self):
        with self.assertRaises(PathNotAllowed):
            self.helper.run(["echo"], root=self.rootfs, mounts=[Mount("/", "/host")])
        with self.assertRaises(PathNotAllowed):
            self.helper.run(["echo"], root=self.rootfs, mounts=[Mount("/tmp", "../escape")])
        with self.assertRaises(PathNotAllowed):
            self.helper.run(["echo"], root=self.rootfs, mounts=[Mount("relative", "/x")])

    def test_sandbox_id_in_use(self):
        sandbox = self.helper.start(["sleep", "30"], root=self.rootfs)
        try:
            sandbox.wait_started(30)
            # Straight to the server (the client itself refuses a duplicate too).
            with self.assertRaises(SandboxIdInUse) as caught:
                self.helper.call("sandbox/run", {"command": ["true"], "root": self.rootfs,
                                                 "sandboxId": sandbox.sandbox_id})
            self.assertEqual(caught.exception.code, -32002)
            with self.assertRaises(SandboxIdInUse):
                self.helper.start(["true"], root=self.rootfs, sandbox_id=sandbox.sandbox_id)
        finally:
            sandbox.terminate()
        sandbox.wait(timeout=30)

    def test_invalid_params(self):
        with self.assertRaises(InvalidParams) as caught:
            self.helper.run(["true"], root=self.rootfs, extra_params={"noSuchField": 1})
        self.assertEqual(caught.exception.code, -32602)
        self.assertIn("noSuchField", caught.exception.message)
        with self.assertRaises(InvalidParams):
            self.helper.call("sandbox/run", {"command": []})
        with self.assertRaises(InvalidParams):
            self.helper.call("sandbox/run", {"command": ["true"], "timeoutMs": "soon"})

    def test_method_not_found(self):
        with self.assertRaises(MethodNotFound) as caught:
            self.helper.call("no/such/method")
        self.assertEqual(caught.exception.code, -32601)

    def test_unknown_keyword_is_a_local_type_error(self):
        with self.assertRaises(TypeError) as caught:
            self.helper.run(["true"], root=self.rootfs, readOnlyRoot=True)
        self.assertIn("readOnlyRoot", str(caught.exception))

    def test_helper_survives_bad_requests(self):
        for _ in range(3):
            with self.assertRaises(BwrapdError):
                self.helper.run(["no-such-command-xyz"], root=self.rootfs)
        self.assertExited(self.helper.run(["true"], root=self.rootfs))

    def test_discover(self):
        document = self.helper.discover()
        self.assertIsInstance(document, dict)
        self.assertIn("methods", document)
        names = {m.get("name") for m in document["methods"]}
        self.assertIn("sandbox/run", names)


if __name__ == "__main__":
    unittest.main()
