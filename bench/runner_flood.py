#!/usr/bin/python3
"""What a flood of calls costs the Buildbarn runner (docs/buildbarn.md, What the socket takes).

Usage: /usr/bin/python3 bench/runner_flood.py HELPER CONNECTIONS CALLS [RUNNER OPTIONS...]

Starts `HELPER buildbarn-runner` (JVM build: needs jcmd on PATH) and opens CONNECTIONS
connections with CALLS Run calls each; every call sends one request of about 2.18 MB (2150
variables of 1000 bytes; with ARGUMENTS=N, N one-byte arguments instead) and never ends its
side, so no handler runs. CHECKS=N adds N CheckReadiness calls of that size, a connection each.
CALLS=0 only connects. After SETTLE seconds (default 5: the runner ends a call whose request has
not arrived whole within 10 s) it prints how the calls ended (connections beyond the runner's 64
are closed at once: their calls end UNAVAILABLE), the runner's resident memory, live heap (after
a full GC) and open descriptors, whether CheckReadiness is answered, and the same once the calls
are cancelled.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import grpc_tools
from grpc_tools import protoc

HOME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUBS = tempfile.mkdtemp(prefix="bwrapd-flood-stubs-")
protoc.main(["protoc", "-I" + os.path.join(HOME, "src/main/proto"), "-I" + os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"),
             "--python_out=" + STUBS, "--grpc_python_out=" + STUBS, "runner.proto", "resourceusage.proto"])
sys.path.insert(0, STUBS)
import runner_pb2  # noqa: E402

helper, connections, calls_each = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = tempfile.mkdtemp(prefix="bwrapd-flood-")
os.makedirs(os.path.join(d, "build", "a"))
socket = os.path.join(d, "runner.sock")
log = open(os.path.join(d, "runner.log"), "wb")
runner = subprocess.Popen([helper, "buildbarn-runner", "--listen", socket, "--build-directory", os.path.join(d, "build"), *sys.argv[4:]],
                          env=dict(os.environ, BWRAPD_JVM="1"), stdin=subprocess.DEVNULL, stderr=log)


def measure(label):
    if runner.poll() is not None:
        print(label, "the runner is gone, exit status", runner.returncode, flush=True)
        return
    subprocess.run(["jcmd", str(runner.pid), "GC.run"], capture_output=True)  # the launcher execs java: the same pid
    heap = subprocess.run(["jcmd", str(runner.pid), "GC.heap_info"], capture_output=True, text=True).stdout
    used = [" ".join(line.split()[:5]) for line in heap.splitlines() if "total" in line and "used" in line]
    with open("/proc/%d/status" % runner.pid) as f:
        rss = [" ".join(line.split()) for line in f if line.startswith(("VmRSS", "VmHWM"))]
    fds = len(os.listdir("/proc/%d/fd" % runner.pid))
    print(label, "|", ", ".join(rss), "|", "; ".join(used), "|", fds, "descriptors", flush=True)


try:
    base = grpc.insecure_channel("unix:" + socket)
    grpc.channel_ready_future(base).result(timeout=60)
    measure("at rest")
    if "ARGUMENTS" in os.environ:
        request = runner_pb2.RunRequest(arguments=["true"] + ["a"] * int(os.environ["ARGUMENTS"]))
    else:
        request = runner_pb2.RunRequest(arguments=["true"], environment_variables={"E%04d" % i: "x" * 1000 for i in range(2150)})
    request.input_root_directory, request.temporary_directory = "a/root", "a/tmp"
    request.stdout_path, request.stderr_path, request.server_logs_directory = "a/stdout", "a/stderr", "a/logs"
    body = request.SerializeToString()
    check = runner_pb2.CheckReadinessRequest(path="x" * len(body)).SerializeToString()
    print("a request:", len(body), "bytes", flush=True)
    hold = threading.Event()

    def unfinished(message):
        yield message
        hold.wait()

    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_send_message_length", 8 << 20)]
    channels, calls = [], []
    for _ in range(connections):
        channel = grpc.insecure_channel("unix:" + socket, options=options)
        channels.append(channel)
        if calls_each == 0:
            grpc.channel_ready_future(channel).result(timeout=60)
        run = channel.stream_unary("/buildbarn.runner.Runner/Run", request_serializer=lambda b: b, response_deserializer=lambda b: b)
        calls += [run.future(unfinished(body), timeout=300) for _ in range(calls_each)]
    for _ in range(int(os.environ.get("CHECKS", "0"))):
        channel = grpc.insecure_channel("unix:" + socket, options=options)
        channels.append(channel)
        readiness = channel.stream_unary("/buildbarn.runner.Runner/CheckReadiness", request_serializer=lambda b: b,
                                         response_deserializer=lambda b: b)
        calls.append(readiness.future(unfinished(check), timeout=300))
    time.sleep(float(os.environ.get("SETTLE", "5")))
    ended = {}
    for call in calls:
        if call.done():
            ended[call.code()] = ended.get(call.code(), 0) + 1
    print("%d calls, ended: %s" % (len(calls), ended), flush=True)
    measure("flooded")
    try:
        base.unary_unary("/buildbarn.runner.Runner/CheckReadiness", request_serializer=lambda b: b, response_deserializer=lambda b: b)(
            runner_pb2.CheckReadinessRequest(path="a").SerializeToString(), timeout=10)
        print("CheckReadiness: answered OK")
    except grpc.RpcError as e:
        print("CheckReadiness:", e.code(), e.details())
    hold.set()
    for call in calls:
        call.cancel()
    time.sleep(3)
    measure("cancelled")
finally:
    runner.terminate()
    runner.wait(30)
    log.close()
    with open(os.path.join(d, "runner.log"), "rb") as f:
        said = f.read().decode(errors="replace")
    if "Exception" in said or "Error" in said:
        print("the runner's log:\n" + said[-3000:])
    shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(STUBS, ignore_errors=True)
