#!/usr/bin/env python3
"""Training run for the JDK AOT cache (JEP 483/515): drives the JVM build of bwrapd through a
realistic session (initialize, discovery, sandbox runs in every output mode, signals, errors,
shutdown) while the JVM records what it loads and compiles into target/bwrapd.aot.

The training JVM prints to stdout too, so its stdout is read here as protocol and never reaches
anything else. Usage: tools/train-aot.py (from the checkout; needs a built jar).
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
HOME = os.path.dirname(HERE)


def main() -> int:
    env = dict(os.environ, BWRAPD_AOT_TRAINING="1", BWRAPD_JVM="1")  # the JVM build even where a native one exists
    proc = subprocess.Popen([os.path.join(HOME, "bwrapd")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    next_id = [0]

    def call(method, params=None):
        next_id[0] += 1
        message = {"jsonrpc": "2.0", "id": next_id[0], "method": method}
        if params is not None:
            message["params"] = params
        proc.stdin.write((json.dumps(message) + "\n").encode())
        proc.stdin.flush()
        while True:
            line = proc.stdout.readline()
            if not line:
                raise SystemExit("bwrapd ended during training: " + proc.stderr.read().decode(errors="replace"))
            answer = json.loads(line)
            if answer.get("id") == next_id[0]:
                return answer

    info = call("initialize", {"clientName": "aot-training"})
    call("rpc.discover")
    call("sandbox/list")
    call("no/such/method")
    call("sandbox/run", {"command": []})
    if info.get("result", {}).get("bwrap", {}).get("path"):
        for _ in range(3):
            call("sandbox/run", {"command": ["/bin/true"], "stdout": "discard", "stderr": "discard"})
        call("sandbox/run", {"command": ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]})
        call("sandbox/run", {"command": ["/bin/sh", "-c", "cat"], "stdin": {"text": "hello"}, "stdout": "stream"})
        call("sandbox/run", {"command": ["/bin/true"], "mounts": [{"source": "/nonexistent", "target": "/x"}]})
        call("sandbox/run", {"command": ["/bin/sh", "-c", "sleep 5"], "timeoutMs": 50, "killGraceMs": 50})
        call("sandbox/signal", {"sandboxId": "none", "signal": "SIGTERM"})
    call("shutdown")
    proc.stdin.write(b'{"jsonrpc":"2.0","method":"exit"}\n')
    proc.stdin.close()
    proc.stdout.read()
    err = proc.stderr.read().decode(errors="replace")
    code = proc.wait()
    cache = os.path.join(HOME, "target", "bwrapd.aot")
    if code != 0 or not os.path.exists(cache):
        sys.stderr.write("AOT training failed (exit %d):\n%s\n" % (code, err))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
