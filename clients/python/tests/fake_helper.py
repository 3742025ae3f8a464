"""A broken bwrapd stand-in for the tests of how the client copes with a
helper that misbehaves (``FAKE_MODE`` says how); not a test module. It answers
initialize, shutdown and sandbox/list, and sandbox/run as FAKE_MODE says."""

import base64
import json
import os
import subprocess
import sys
import time

MODE = os.environ.get("FAKE_MODE", "")
INFO = {"serverName": "bwrapd", "serverVersion": "0.1.0", "protocolVersion": 1,
        "bwrap": {"path": "/usr/bin/bwrap", "version": "0.8.0"},
        "capabilities": {"userNamespaces": True, "dieWithParent": True, "jsonStatusFd": True,
                         "childSubreaper": True, "linux32": True, "seccomp": True, "framings": "ndjson",
                         "cgroup": None, "limits": {}},
        "limits": {"maxMessageBytes": int(os.environ.get("FAKE_MAX_MESSAGE", "16777216")), "maxNestingDepth": 64}}


def send(message):
    sys.stdout.buffer.write(json.dumps(message).encode() + b"\n")
    sys.stdout.buffer.flush()


def result_for(params):
    return {"sandboxId": params.get("sandboxId"), "status": "exited", "exitCode": 0, "signal": None,
            "setupError": None, "durationMs": 1.0, "usage": {"userCpuMs": 0, "systemCpuMs": 0, "maxRssKiB": 0},
            "stdout": {"text": "ok\n", "base64": None, "truncated": False, "error": None},
            "stderr": {"text": "", "base64": None, "truncated": False, "error": None},
            "cleanup": {"ok": True, "removed": [], "failed": [], "deferred": False}, "limitExceeded": None}


def main():
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        message = json.loads(line)
        method, params = message.get("method"), message.get("params") or {}
        if "id" not in message:
            if method == "exit":
                return
            continue
        answer = {"jsonrpc": "2.0", "id": message["id"]}
        if method == "initialize":
            send(dict(answer, result=INFO))
            if MODE == "noread":  # a wedged helper: it never reads its input again
                while True:
                    time.sleep(1)
            if MODE == "stderrflood":  # megabytes of stderr without a newline, then stdout closed
                chunk = b"e" * (1 << 20)
                for _ in range(int(os.environ.get("FAKE_MB", "64"))):
                    sys.stderr.buffer.write(chunk)
                    sys.stderr.buffer.flush()
                sys.stderr.buffer.write(b"\nlast words\n")
                sys.stderr.buffer.flush()
                os.close(1)
                while True:
                    time.sleep(1)
        elif method == "sandbox/run":
            send({"jsonrpc": "2.0", "method": "sandbox/started",
                  "params": {"sandboxId": params.get("sandboxId"), "pid": 4242, "requestId": message["id"]}})
            result = result_for(params)
            if MODE == "badbase64":  # a malformed answer: stdout's base64 does not decode
                result["stdout"] = {"text": None, "base64": "abc", "truncated": False, "error": None}
            elif MODE == "badremoved":  # a malformed answer: cleanup.removed is not a list
                result["cleanup"]["removed"] = 5
            elif MODE == "latin1":  # stdout is Latin-1, not UTF-8: captured, or streamed when asked
                latin1 = {"text": None, "base64": "Y2Fm6Qo=", "truncated": False, "error": None}  # b"caf\xe9\n"
                result["exitCode"] = 3
                if params.get("stdout") == "stream":
                    send({"jsonrpc": "2.0", "method": "sandbox/output",
                          "params": {"sandboxId": params.get("sandboxId"), "stream": "stdout", "base64": latin1["base64"]}})
                    result["stdout"] = None
                else:
                    result["stdout"] = latin1
            elif MODE == "endless":  # one line without an end (FAKE_MB MiB of it), then silence
                chunk = b"x" * (1 << 20)
                for _ in range(int(os.environ.get("FAKE_MB", "128"))):
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.buffer.flush()
                while True:
                    time.sleep(1)
            elif MODE == "bigresult":  # stdout as large as the run's captureLimitBytes, in base64
                size = params.get("captureLimitBytes", 1 << 20)
                result["stdout"] = {"text": None, "base64": base64.b64encode(b"\xff" * size).decode(),
                                    "truncated": False, "error": None}
            elif MODE == "orphan":  # exit, leaving a process that holds stdout and stderr open
                subprocess.Popen(["sleep", os.environ.get("FAKE_ORPHAN_S", "60")], start_new_session=True)
                os._exit(3)
            elif MODE == "closeout":  # close stdout and stay alive
                os.close(1)
                while True:
                    time.sleep(1)
            send(dict(answer, result=result))
        elif method == "sandbox/list":
            send(dict(answer, result=[]))
        elif method == "shutdown":
            send(dict(answer, result={"terminated": 0}))
        else:
            send(dict(answer, error={"code": -32601, "message": "Method not found: %s" % method}))


if __name__ == "__main__":
    main()
