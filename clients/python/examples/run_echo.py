#!/usr/bin/env python3
"""Run one command in a bwrapd sandbox and print the result.

    python3 examples/run_echo.py                       # echo hello from a sandbox, host root read-only
    python3 examples/run_echo.py --root /tmp/rootfs -- sh -c 'id; hostname'

The helper is --helper, else $BWRAPD, else bwrapd on PATH. Run it with the
client installed (pip install clients/python), or from the checkout, where it
falls back to the client next to it.
"""

from __future__ import annotations

import argparse
import os
import sys

try:
    import bwrapd
except ImportError:  # not installed: the client of the checkout this example is in
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import bwrapd


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/", help="host directory mounted at / (default: the host root, read-only)")
    parser.add_argument("--helper", default=None, help="path of bwrapd (default: $BWRAPD, else bwrapd on PATH)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before the sandbox is killed")
    parser.add_argument("command", nargs="*", help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command or ["echo", "hello from a sandbox"]

    with bwrapd.Helper(args.helper) as helper:
        info = helper.server_info
        print("helper: %s %s, bwrap %s at %s" % (info.server_name, info.server_version,
                                                 info.bwrap_version, info.bwrap_path))
        result = helper.run(command, root=args.root, timeout=args.timeout)

    print("sandbox:  %s" % result.sandbox_id)
    print("status:   %s" % result.status)
    print("exit:     %s%s" % (result.exit_code, " (signal %s)" % result.signal if result.signal else ""))
    if result.setup_error:
        print("setup:    %s" % result.setup_error)
    print("duration: %.1f ms" % result.duration_ms)
    if result.usage:
        print("usage:    %.1f ms user, %.1f ms system, %d KiB max RSS"
              % (result.usage.user_cpu_ms, result.usage.system_cpu_ms, result.usage.max_rss_kib))
    print("stdout:   %r%s" % (result.stdout, " (truncated)" if result.stdout_truncated else ""))
    print("stderr:   %r%s" % (result.stderr, " (truncated)" if result.stderr_truncated else ""))
    return 0 if result.ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except bwrapd.Error as exc:
        print("run_echo: %s" % exc, file=sys.stderr)
        sys.exit(2)
