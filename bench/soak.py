#!/usr/bin/python3
"""bwrapd soak test: many mixed runs through one helper, watching its memory, threads and fds.

Usage (from the checkout, after the helper was built; CPU heavy, not part of CI):

    /usr/bin/python3 bench/soak.py                 # 20,000 runs, 64 in flight
    /usr/bin/python3 bench/soak.py --runs 2000     # a shorter one

One helper (the launcher ./bwrapd, or --helper PATH) gets RUNS sandbox/run requests with at most
--in-flight of them pending at any moment, a mix of:

  short     `true`
  capture   `yes | head -c N` captured (N up to 2 MB, some over the 1 MiB limit): exact or cut at the limit
  stream    the same streamed as sandbox/output notifications: every byte, in order
  stdin     a stdin text of up to 256 KiB counted by `wc -c`
  timeout   `sleep 10` with timeoutMs 30: timed-out
  cancel    `sleep 10`, cancelled with $/cancelRequest once started: -32800 with status cancelled
  signal    `sleep 10`, sent SIGTERM with sandbox/signal once started: signaled SIGTERM

and every answer is checked. Every 1,000 runs it samples the helper's RSS (VmRSS), threads and open
descriptors from /proc. The first --warm-up runs (2,000 by default: the JVM's heap and thread
pools grow until then) are the warm-up, ending with a sample taken once nothing is in flight and
after a short pause. At the end it samples again the same way and compares: threads and fds must
be back where they were, RSS within 10%. Exit status 0 when every request was answered correctly
and the helper stayed flat, 1 otherwise.

Standard library only. Writes a summary to stdout (and --json FILE with every sample).
"""
import argparse
import json
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PATTERN = b"0123456789abcdef\n"
LIMIT = 1 << 20
KINDS = [("short", 30), ("capture", 20), ("stream", 15), ("stdin", 10), ("timeout", 10), ("cancel", 8), ("signal", 7)]


def proc_sample(pid):
    status = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            status[key] = value.strip()
    return {
        "rssKiB": int(status["VmRSS"].split()[0]),
        # what moves: the heap (anonymous) or the binary's pages as more of its code runs (file)
        "anonKiB": int(status["RssAnon"].split()[0]),
        "fileKiB": int(status["RssFile"].split()[0]),
        "threads": int(status["Threads"]),
        "fds": len(os.listdir("/proc/%d/fd" % pid)),
    }


def expected_text(size):
    return (PATTERN * (size // len(PATTERN) + 1))[:size].decode()


class Soak:
    def __init__(self, args, root):
        self.args = args
        self.root = root
        command = [args.helper] + (["--max-memory", str(args.max_memory)] if args.max_memory else [])
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     bufsize=0, start_new_session=True)
        self.out = open(self.proc.stdout.fileno(), "rb", buffering=1 << 20, closefd=False)
        self.lock = threading.Condition()
        self.pending = {}        # id -> (kind, expectation)
        self.streamed = {}       # sandboxId -> bytearray
        self.started = {}        # sandboxId -> id (for cancel/signal once started)
        self.failures = []
        self.answered = 0
        self.kinds = {}
        # One thread writes, another reads: the reader never blocks on a write (the helper may be
        # blocked writing to us at that moment, waiting for us to read).
        self.outbox = queue.Queue()
        self.writer = threading.Thread(target=self.write, daemon=True)
        self.writer.start()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def send(self, message):
        self.outbox.put((json.dumps(message) + "\n").encode())

    def write(self):
        while True:
            data = self.outbox.get()
            if data is None:
                self.proc.stdin.close()
                return
            self.proc.stdin.write(data)

    def fail(self, what):
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append(what)
            else:
                self.failures[-1] = "... and more"

    def read(self):
        for line in self.out:
            message = json.loads(line)
            if "id" not in message:
                self.notification(message)
                continue
            with self.lock:
                kind, expect = self.pending.pop(message["id"])
            try:
                self.check(kind, expect, message)
            except Exception as e:  # a wrong answer is reported, not fatal to the soak
                self.fail("%s run %s: %s: %s" % (kind, message["id"], e, str(message)[:300]))
            with self.lock:
                self.answered += 1
                self.lock.notify_all()
        with self.lock:
            self.lock.notify_all()

    def notification(self, message):
        params = message["params"]
        if message["method"] == "sandbox/output":
            with self.lock:
                self.streamed.setdefault(params["sandboxId"], bytearray()).extend(params["text"].encode())
        elif message["method"] == "sandbox/started":
            with self.lock:
                entry = self.started.pop(params["sandboxId"], None)
            if entry is not None:
                kind, request_id, sandbox_id = entry
                if kind == "cancel":
                    self.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": request_id}})
                else:
                    self.send({"jsonrpc": "2.0", "id": "s%s" % request_id, "method": "sandbox/signal",
                               "params": {"sandboxId": sandbox_id, "signal": "SIGTERM"}})
                    with self.lock:
                        self.pending["s%s" % request_id] = ("signal-ack", None)

    def check(self, kind, expect, message):
        if kind == "signal-ack":
            assert message.get("result", {}).get("delivered") in (True, False), "signal not answered"
            return
        if kind == "cancel":
            error = message.get("error")
            assert error and error["code"] == -32800, "not cancelled"
            assert error["data"]["status"] == "cancelled", error["data"]["status"]
            return
        result = message.get("result")
        assert result is not None, "error answer"
        status = result["status"]
        if kind == "timeout":
            assert status == "timed-out", status
        elif kind == "signal":
            assert status == "signaled" and result["signal"] == "SIGTERM", "%s %s" % (status, result["signal"])
        else:
            assert status == "exited" and result["exitCode"] == 0, "%s %s" % (status, result["exitCode"])
        if kind == "capture":
            size = expect
            kept = min(size, LIMIT)
            out = result["stdout"]
            assert out["error"] is None, out["error"]
            assert out["truncated"] == (size > LIMIT), "truncated %s for %d bytes" % (out["truncated"], size)
            assert out["text"] == expected_text(kept), "captured text differs (%d chars for %d)" % (len(out["text"] or ""), kept)
        elif kind == "stream":
            size, sandbox_id = expect
            with self.lock:
                got = bytes(self.streamed.pop(sandbox_id, b""))
            assert got == expected_text(size).encode(), "streamed %d bytes of %d" % (len(got), size)
        elif kind == "stdin":
            assert result["stdout"]["text"].strip() == str(expect), result["stdout"]["text"]

    def request(self, n):
        kind = random.choices([k for k, _ in KINDS], weights=[w for _, w in KINDS])[0]
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        params = {"root": self.root, "command": ["true"]}
        expect = None
        sandbox_id = "soak-%d" % n
        params["sandboxId"] = sandbox_id
        if kind == "capture":
            size = random.choice([0, 1, 100, 4096, 65536, 300_000, LIMIT, 2_000_000])
            params["command"] = ["sh", "-c", "yes %s | head -c %d" % (PATTERN.decode().strip(), size)]
            expect = size
        elif kind == "stream":
            size = random.choice([1, 5000, 200_000])
            params["command"] = ["sh", "-c", "yes %s | head -c %d" % (PATTERN.decode().strip(), size)]
            params["stdout"] = "stream"
            expect = (size, sandbox_id)
        elif kind == "stdin":
            size = random.choice([0, 10, 65536, 256 * 1024])
            params["command"] = ["wc", "-c"]
            params["stdin"] = {"text": "s" * size}
            expect = size
        elif kind == "timeout":
            params["command"] = ["sleep", "10"]
            params["timeoutMs"] = 30
            params["killGraceMs"] = 0
        elif kind in ("cancel", "signal"):
            params["command"] = ["sleep", "10"]
            with self.lock:
                self.started[sandbox_id] = (kind, n, sandbox_id)
        with self.lock:
            self.pending[n] = (kind, expect)
        self.send({"jsonrpc": "2.0", "id": n, "method": "sandbox/run", "params": params})

    def wait_in_flight(self, at_most):
        with self.lock:
            while sum(1 for k, _ in self.pending.values() if k != "signal-ack") > at_most:
                if not self.reader.is_alive():
                    raise SystemExit("bwrapd's stdout closed")
                self.lock.wait(1)

    def quiet_sample(self):
        """A sample once nothing is in flight and the helper had a moment to settle."""
        self.wait_in_flight(0)
        with self.lock:
            while self.pending:
                self.lock.wait(1)
        time.sleep(2)
        return proc_sample(self.proc.pid)


def make_root():
    root = tempfile.mkdtemp(prefix="bwrapd-soak-root-", dir="/tmp")
    os.chmod(root, 0o755)
    subprocess.run(["sh", os.path.join(REPO, "tools/make-rootfs.sh"), root], check=True, stdout=subprocess.DEVNULL)
    return root


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--warm-up", type=int, default=2000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--helper", default=os.path.join(REPO, "bwrapd"))
    parser.add_argument("--max-memory", type=int, default=None)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    random.seed(args.seed)
    root = make_root()
    soak = Soak(args, root)
    samples = []
    began = time.monotonic()
    try:
        baseline = None
        for n in range(1, args.runs + 1):
            soak.wait_in_flight(args.in_flight - 1)
            soak.request(n)
            if n % args.every == 0 or n == args.warm_up:
                quiet = n == args.warm_up
                sample = soak.quiet_sample() if quiet else proc_sample(soak.proc.pid)
                sample.update(runs=n, seconds=round(time.monotonic() - began, 1), quiet=quiet)
                samples.append(sample)
                if quiet:
                    baseline = sample
                print("%6d runs  %7.1f s  RSS %7d KiB (anon %6d, file %6d)  threads %4d  fds %4d%s" % (
                    n, sample["seconds"], sample["rssKiB"], sample["anonKiB"], sample["fileKiB"], sample["threads"], sample["fds"],
                    "  (post-warm-up, quiet)" if quiet else ""), flush=True)
        final = soak.quiet_sample()
        final.update(runs=args.runs, seconds=round(time.monotonic() - began, 1), quiet=True)
        samples.append(final)
        print("%6d runs  %7.1f s  RSS %7d KiB (anon %6d, file %6d)  threads %4d  fds %4d  (end, quiet)" % (
            args.runs, final["seconds"], final["rssKiB"], final["anonKiB"], final["fileKiB"], final["threads"], final["fds"]), flush=True)
    finally:
        soak.outbox.put(None)
        code = soak.proc.wait(60)
        shutil.rmtree(root, ignore_errors=True)
    peak = max(s["rssKiB"] for s in samples)
    flat = (baseline is not None and final["threads"] == baseline["threads"] and final["fds"] == baseline["fds"]
            and abs(final["rssKiB"] - baseline["rssKiB"]) <= baseline["rssKiB"] / 10)
    print("kinds: %s" % ", ".join("%s %d" % kv for kv in sorted(soak.kinds.items())))
    print("answered %d of %d runs (+ signal acks), %d wrong; peak RSS %d KiB; helper exit status %d" % (
        soak.answered - soak.kinds.get("signal", 0), args.runs, len(soak.failures), peak, code))
    if baseline:
        print("post-warm-up → end: RSS %d → %d KiB (%+.1f%%), threads %d → %d, fds %d → %d: %s" % (
            baseline["rssKiB"], final["rssKiB"], 100.0 * (final["rssKiB"] - baseline["rssKiB"]) / baseline["rssKiB"],
            baseline["threads"], final["threads"], baseline["fds"], final["fds"], "flat" if flat else "NOT flat"))
    for failure in soak.failures:
        print("FAIL", failure)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "samples": samples, "failures": soak.failures, "kinds": soak.kinds}, f, indent=1)
    ok = not soak.failures and flat and not soak.pending and code == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
