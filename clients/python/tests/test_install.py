"""The client as its users get it: pip-installed into a fresh virtual
environment, offline, and used from outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from support import CLIENT_DIR, helper_description

import bwrapd

# Offline, pip cannot fetch the build backend: Debian's Python lends its own
# setuptools and wheel (python3-venv, python3-setuptools, python3-wheel) to a venv
# made with --system-site-packages. The Python running the tests may be another.
PYTHONS = ("/usr/bin/python3", sys.executable)


def python_with_venv():
    for python in PYTHONS:
        if shutil.which(python) and subprocess.run([python, "-c", "import venv, ensurepip, setuptools, wheel"],
                                                   stderr=subprocess.DEVNULL).returncode == 0:
            return python
    raise AssertionError("no Python with venv, setuptools and wheel (Debian: python3-venv python3-wheel)")


class InstallTest(unittest.TestCase):
    def test_pip_install_into_a_fresh_venv_then_run_the_example_elsewhere(self):
        tmp = tempfile.mkdtemp(prefix="bwrapd-py-install-")
        self.addCleanup(shutil.rmtree, tmp, True)
        # A copy, so the build leaves nothing in the checkout.
        source = os.path.join(tmp, "source")
        shutil.copytree(CLIENT_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        venv = os.path.join(tmp, "venv")
        run = lambda *args, **kw: subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                 text=True, **kw)
        done = run(python_with_venv(), "-m", "venv", "--system-site-packages", venv)
        self.assertEqual(done.returncode, 0, done.stdout)
        python = os.path.join(venv, "bin", "python")
        # Offline: no index, and the venv's own setuptools as the build backend.
        done = run(python, "-m", "pip", "install", "--no-index", "--no-build-isolation", "--no-deps",
                   "--disable-pip-version-check", source)
        self.assertEqual(done.returncode, 0, done.stdout)

        elsewhere = os.path.join(tmp, "elsewhere")
        os.mkdir(elsewhere)
        example = shutil.copy(os.path.join(CLIENT_DIR, "examples", "run_echo.py"), elsewhere)
        env = dict(os.environ, BWRAPD=helper_description())
        env.pop("PYTHONPATH", None)
        done = run(python, example, "--", "echo", "from the venv", cwd=elsewhere, env=env)
        self.assertEqual(done.returncode, 0, done.stdout)
        self.assertIn("status:   exited", done.stdout)
        self.assertIn("b'from the venv\\n'", done.stdout)

        probe = ("import bwrapd, importlib.metadata as m; "
                 "print(bwrapd.__file__); print(bwrapd.__version__, m.version('bwrapd'))")
        done = run(python, "-c", probe, cwd=elsewhere, env=env)
        installed, versions = done.stdout.splitlines()[:2]
        self.assertTrue(installed.startswith(venv), installed)
        self.assertEqual(versions, "%s %s" % (bwrapd.__version__, bwrapd.__version__))

        # Installed, with nothing to point at the helper: a FileNotFoundError that says what to do.
        env = dict(env, PATH="/usr/bin:/bin")
        del env["BWRAPD"]
        done = run(python, "-c", "import bwrapd; bwrapd.Helper()", cwd=elsewhere, env=env)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("HelperNotFound", done.stdout)
        self.assertIn("BWRAPD", done.stdout)


if __name__ == "__main__":
    unittest.main()
