#!/usr/bin/python3
"""Plays Buildbarn's bb_worker against a real `bwrapd buildbarn-runner`.

The gRPC client is generated at test time, with grpc_tools' protoc, from the project's own
src/main/proto (Buildbarn's names, numbers and types). Each action follows bb_worker's
sequence: a directory in the build directory with root/ (the inputs: a busybox tree), tmp/ and
server_logs/, CheckReadiness, then Run with paths relative to the build directory.

Environment: BWRAPD (the helper to run), BWRAPD_HOME (the repository). Run by BuildbarnRunnerIT.
"""
import atexit
import os
import re
import resource
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

import grpc
import grpc_tools
from grpc_tools import protoc

HOME = os.environ["BWRAPD_HOME"]
BWRAPD = os.environ["BWRAPD"]
STUBS = tempfile.mkdtemp(prefix="bwrapd-bb-stubs-")
atexit.register(shutil.rmtree, STUBS, ignore_errors=True)  # generated anew by every run of the suite
if protoc.main(["protoc", "-I" + os.path.join(HOME, "src/main/proto"),
                "-I" + os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"),
                "--python_out=" + STUBS, "--grpc_python_out=" + STUBS, "runner.proto", "resourceusage.proto"]) != 0:
    raise SystemExit("protoc failed")
sys.path.insert(0, STUBS)
import resourceusage_pb2  # noqa: E402
import runner_pb2  # noqa: E402
import runner_pb2_grpc  # noqa: E402

PATH = {"PATH": "/bin:/usr/bin"}


class Runner:
    """`bwrapd buildbarn-runner` on a socket of its own, with a build directory of its own."""

    def __init__(self, *options, parent=None, umask=None, env=None, open_files=None):
        self.dir = tempfile.mkdtemp(prefix="bwrapd-bb-", dir=parent)
        os.chmod(self.dir, 0o755)
        self.build = os.path.join(self.dir, "build")
        os.mkdir(self.build)
        self.socket = os.path.join(self.dir, "runner.sock")
        self.log = open(os.path.join(self.dir, "runner.log"), "wb")
        self.process = subprocess.Popen(
            [BWRAPD, "buildbarn-runner", "--listen", self.socket, "--build-directory", self.build, *options],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log, start_new_session=True, env=env,
            preexec_fn=lambda: limited(umask, open_files))
        self.channel = grpc.insecure_channel("unix:" + self.socket)
        grpc.channel_ready_future(self.channel).result(timeout=60)
        self.stub = runner_pb2_grpc.RunnerStub(self.channel)

    def action(self, name, with_root=True):
        """bb_worker's preparation: <bd>/NAME/{root,tmp,server_logs}, the root holding the inputs."""
        d = os.path.join(self.build, name)
        os.makedirs(os.path.join(d, "tmp"))
        os.makedirs(os.path.join(d, "server_logs"))
        if with_root:
            subprocess.run(["sh", os.path.join(HOME, "tools/make-rootfs.sh"), os.path.join(d, "root")], check=True,
                           stdout=subprocess.DEVNULL)
        return d

    def request(self, name, arguments, env=None, working_directory=""):
        return runner_pb2.RunRequest(
            arguments=arguments, environment_variables=PATH if env is None else env,
            working_directory=working_directory,
            stdout_path=name + "/stdout", stderr_path=name + "/stderr",
            input_root_directory=name + "/root", temporary_directory=name + "/tmp",
            server_logs_directory=name + "/server_logs")

    def run(self, name, arguments, env=None, working_directory="", timeout=60):
        """Prepares an action, runs it; its response, stdout and stderr."""
        d = self.action(name)
        response = self.stub.Run(self.request(name, arguments, env, working_directory), timeout=timeout)
        return response, read(os.path.join(d, "stdout")), read(os.path.join(d, "stderr"))

    def close(self):
        self.channel.close()
        self.process.terminate()
        self.process.wait(30)
        self.log.close()
        output = self.process.stdout.read()
        self.process.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return output


def limited(umask, open_files):
    """In the runner's process before exec: its umask, and a hard limit on open files (the JVM
    raises its soft limit to the hard one)."""
    if umask is not None:
        os.umask(umask)
    if open_files is not None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))


def read(path):
    with open(path, "rb") as f:
        return f.read().decode()


def usage_of(response):
    assert len(response.resource_usage) == 1, response
    any_usage = response.resource_usage[0]
    assert any_usage.type_url == "type.googleapis.com/buildbarn.resourceusage.POSIXResourceUsage", any_usage.type_url
    usage = resourceusage_pb2.POSIXResourceUsage()
    assert any_usage.Unpack(usage)
    return usage


def marked_processes(mark):
    """Host pids whose environment holds MARK: the processes of one action, wherever they are."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % pid, "rb") as f:
                if mark.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def unfinished_calls(runner, method, request, count, hold, channels, send=True):
    """COUNT calls of METHOD, each on a connection of its own, that send REQUEST (unless not SEND:
    nothing beyond the call's headers) but do not end their side until HOLD is set: a unary call's
    handler does not run until then."""
    def messages():
        if send:
            yield request.SerializeToString()
        hold.wait(60)

    calls = []
    for _ in range(count):
        channel = grpc.insecure_channel("unix:" + runner.socket, options=[("grpc.use_local_subchannel_pool", 1)])
        channels.append(channel)
        call = channel.stream_unary("/buildbarn.runner.Runner/" + method, request_serializer=lambda b: b,
                                    response_deserializer=lambda b: b)
        calls.append(call.future(messages(), timeout=60))
    return calls


def refused_now(call):
    """Whether CALL() is refused RESOURCE_EXHAUSTED."""
    try:
        call()
        return False
    except grpc.RpcError as e:
        return e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def refused(calls):
    return [c for c in calls if c.done() and c.code() == grpc.StatusCode.RESOURCE_EXHAUSTED]


def wait_until(condition, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class InputRootTest(unittest.TestCase):
    """--root input (the default): the input root is the action's /."""

    @classmethod
    def setUpClass(cls):
        cls.runner = Runner("--concurrency", "8")

    @classmethod
    def tearDownClass(cls):
        stdout = cls.runner.close()
        assert stdout == b"", "the runner wrote to its stdout: %r" % stdout

    def test_check_readiness_on_an_existing_and_a_missing_path(self):
        self.runner.action("ready", with_root=False)
        self.runner.stub.CheckReadiness(runner_pb2.CheckReadinessRequest(path="ready/tmp"), timeout=30)
        with self.assertRaises(grpc.RpcError) as missing:
            self.runner.stub.CheckReadiness(runner_pb2.CheckReadinessRequest(path="ready/no-such-file"), timeout=30)
        self.assertEqual(grpc.StatusCode.NOT_FOUND, missing.exception.code())
        for escape in ["../", "/etc", "ready/../../x"]:
            with self.assertRaises(grpc.RpcError) as e:
                self.runner.stub.CheckReadiness(runner_pb2.CheckReadinessRequest(path=escape), timeout=30)
            self.assertEqual(grpc.StatusCode.INVALID_ARGUMENT, e.exception.code(), escape)

    def test_exit_codes_and_output_files(self):
        response, out, err = self.runner.run("exit3", ["sh", "-c", "echo to stdout; echo to stderr >&2; exit 3"])
        self.assertEqual(3, response.exit_code)
        self.assertEqual("to stdout\n", out)
        self.assertEqual("to stderr\n", err)
        self.assertEqual("", usage_of(response).termination_signal)
        self.assertEqual(0, self.runner.run("true", ["true"])[0].exit_code)
        self.assertNotIn("Unknown channel option", read(os.path.join(self.runner.dir, "runner.log")),
                         "Netty warned once a connection about an option a unix socket has not")

    def test_signal_deaths(self):
        for name, number in [("KILL", 9), ("TERM", 15), ("SEGV", 11)]:
            response, _, _ = self.runner.run("signal-" + name, ["sh", "-c", "kill -%s $$" % name])
            self.assertEqual(128 + number, response.exit_code, name)
            self.assertEqual(name, usage_of(response).termination_signal, name)

    def test_environment_and_working_directory_are_exactly_the_requests(self):
        env = {"PATH": "/bin", "GREETING": "hello world", "EMPTY": ""}
        d = self.runner.action("env")
        os.makedirs(os.path.join(d, "root/src/pkg"))
        response = self.runner.stub.Run(self.runner.request("env", ["/bin/cat", "/proc/self/environ"], env, "src/pkg"),
                                        timeout=60)
        self.assertEqual(0, response.exit_code, read(os.path.join(d, "stderr")))
        seen = dict(entry.split("=", 1) for entry in read(os.path.join(d, "stdout")).split("\0") if entry)
        self.assertEqual(dict(env, PWD="/src/pkg"), seen)  # bwrap sets PWD to the working directory
        d = self.runner.action("pwd")
        os.makedirs(os.path.join(d, "root/work/dir"))
        self.assertEqual(0, self.runner.stub.Run(self.runner.request("pwd", ["sh", "-c", "pwd; mkdir -p here; cd here && pwd -P"],
                                                                     working_directory="work/dir"), timeout=60).exit_code)
        self.assertEqual("/work/dir\n/work/dir/here\n", read(os.path.join(d, "stdout")))

    def test_the_loaders_variables_reach_the_command_and_not_bwrap(self):
        """Review finding: bwrap ran with the action's environment, so its dynamic loader, on the
        host and with the runner's rights, obeyed the action's LD_PRELOAD: a library at a host path
        the action chose (bb_worker's cache names files by digest) ran outside the sandbox, as root
        with a root runner. Here the loader would say so on stderr (LD_DEBUG, a preload it cannot find);
        the command, a static busybox, has no loader, and sees the variables as the request set them."""
        env = dict(PATH, LD_PRELOAD="/no/such/library.so", LD_DEBUG="libs", GLIBC_TUNABLES="glibc.malloc.check=3")
        response, out, err = self.runner.run("loader", ["sh", "-c", 'echo "$LD_PRELOAD|$LD_DEBUG|$GLIBC_TUNABLES"'], env)
        self.assertEqual(0, response.exit_code, err)
        self.assertEqual("", err, "bwrap's loader acted on the action's variables")
        self.assertEqual("/no/such/library.so|libs|glibc.malloc.check=3\n", out)

    def test_a_working_directory_missing_from_the_input_root_is_invalid_argument_and_not_made(self):
        """Review finding: a missing working_directory was made in the input root and left there
        (counted as there before, so never removed), where bb_runner's chdir fails the action. Refused
        now, before anything is made; so is one that is a file. bb_runner answers the failed chdir
        with its own status ("Failed to start process"); this is the request's fault, as for paths."""
        r = self.runner
        d = r.action("no-wd")
        with open(os.path.join(d, "root/afile"), "w") as f:
            f.write("x")
        before = sorted(os.listdir(os.path.join(d, "root")))
        for wd, said in [("missing/deeper", "does not exist"), ("afile", "not a directory"), ("afile/x", "")]:
            with self.assertRaises(grpc.RpcError, msg=wd) as e:
                r.stub.Run(r.request("no-wd", ["true"], working_directory=wd), timeout=60)
            self.assertEqual(grpc.StatusCode.INVALID_ARGUMENT, e.exception.code(), wd + ": " + e.exception.details())
            self.assertIn(said, e.exception.details())
        self.assertEqual(before, sorted(os.listdir(os.path.join(d, "root"))), "the working directory was made")
        self.assertFalse(os.path.exists(os.path.join(d, "stdout")), "stdout was made for a refused action")

    def test_a_temporary_directory_that_is_a_file_or_a_fifo_is_invalid_argument(self):
        """Review finding: it was FAILED_PRECONDITION (bwrap could not bind it over /tmp), where the
        documentation's table says a path that cannot be opened is the request's fault."""
        r = self.runner
        d = r.action("tmp-kinds")
        with open(os.path.join(d, "file"), "w") as f:
            f.write("x")
        os.mkfifo(os.path.join(d, "fifo"))
        for kind in ["file", "fifo"]:
            request = r.request("tmp-kinds", ["true"])
            request.temporary_directory = "tmp-kinds/" + kind
            with self.assertRaises(grpc.RpcError, msg=kind) as e:
                r.stub.Run(request, timeout=10)
            self.assertEqual(grpc.StatusCode.INVALID_ARGUMENT, e.exception.code(), kind + ": " + e.exception.details())
            self.assertIn("temporary_directory", e.exception.details())

    def test_paths_that_escape_the_build_directory_are_invalid_argument(self):
        r = self.runner
        d = r.action("escape")
        victim_dir = os.path.join(r.dir, "victim")
        os.mkdir(victim_dir)
        victim = os.path.join(victim_dir, "file")
        with open(victim, "w") as f:
            f.write("untouched")
        os.symlink(victim_dir, os.path.join(r.build, "link-out"))
        os.symlink(victim, os.path.join(d, "stdout-link"))
        os.symlink(os.path.join(d, "root"), os.path.join(r.build, "link-in"))
        base = r.request("escape", ["sh", "-c", "echo escaped > /escaped; echo escaped"])
        cases = {
            "stdout ../": dict(stdout_path="../escaped"),
            "stdout absolute": dict(stdout_path=os.path.join(victim_dir, "escaped")),
            "stdout through a link": dict(stdout_path="link-out/escaped"),
            "stdout is a link": dict(stdout_path="escape/stdout-link"),
            "stderr climbing": dict(stderr_path="escape/../../escaped"),
            "input root ../": dict(input_root_directory="escape/../.."),
            "input root absolute": dict(input_root_directory=victim_dir),
            "input root a link out": dict(input_root_directory="link-out"),
            "input root a link in": dict(input_root_directory="link-in"),
            "temporary directory a link out": dict(temporary_directory="link-out"),
            "temporary directory absolute": dict(temporary_directory="/tmp"),
            "server logs ../": dict(server_logs_directory="../x"),
            "working directory climbing": dict(working_directory="../../.."),
        }
        for what, change in cases.items():
            request = runner_pb2.RunRequest()
            request.CopyFrom(base)
            for field, value in change.items():
                setattr(request, field, value)
            with self.assertRaises(grpc.RpcError, msg=what) as e:
                r.stub.Run(request, timeout=60)
            self.assertEqual(grpc.StatusCode.INVALID_ARGUMENT, e.exception.code(), what + ": " + e.exception.details())
        self.assertEqual(["file"], os.listdir(victim_dir))
        self.assertEqual("untouched", read(victim))
        self.assertFalse(os.path.exists(os.path.join(r.dir, "escaped")))

    def test_an_output_path_that_is_not_a_regular_file_is_invalid_argument_at_once(self):
        """Review finding: a FIFO (planted by an earlier action) named as stdout_path blocked a run
        thread for ever in open(2); after --concurrency of them no Run ever ran. Refused at once
        now, with or without a reader at its other end, and the runner goes on serving."""
        r = self.runner
        d = r.action("fifo")
        fifo = os.path.join(d, "root/fifo")
        os.mkfifo(fifo)
        reader = None
        for field in ["stdout_path", "stderr_path"] * 2:
            request = r.request("fifo", ["sh", "-c", "echo out; echo err >&2"])
            setattr(request, field, "fifo/root/fifo")
            start = time.monotonic()
            with self.assertRaises(grpc.RpcError, msg=field) as e:
                r.stub.Run(request, timeout=10)
            self.assertEqual(grpc.StatusCode.INVALID_ARGUMENT, e.exception.code(), field + ": " + e.exception.details())
            self.assertIn(field.replace("_path", ""), e.exception.details())
            self.assertLess(time.monotonic() - start, 5)
            if reader is None:  # the second round: a reader holds the other end open, so open(2) alone would succeed
                reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        os.close(reader)
        self.assertEqual(0, r.stub.Run(r.request("fifo", ["true"]), timeout=30).exit_code)

    def test_arguments_over_bwraps_or_the_kernels_limits_are_invalid_argument_before_anything_is_made(self):
        """Review finding: over 9000 arguments (bwrap's own cap) was FAILED_PRECONDITION from a failed
        setup, and one argument over the kernel's MAX_ARG_STRLEN FAILED_PRECONDITION from a failed
        spawn ("Argument list too long"), both the host's fault by their status. Refused now as the
        request's, naming the limit, before stdout is made."""
        r = self.runner
        d = r.action("limits")
        cases = {
            "9000 arguments in all": (["true"] + ["a"] * 9000, PATH, "over bwrap's limit of 9000 arguments in all"),
            "one argument of 131072 bytes": (["true", "x" * 131072], PATH, "command[1]: 131073 bytes with its NUL"),
            "one variable of 131072 bytes": (["true"], dict(PATH, BIG="y" * 131068), "env.BIG: 131073 bytes with its NUL and NAME="),
        }
        for what, (arguments, env, said) in cases.items():
            with self.assertRaises(grpc.RpcError, msg=what) as e:
                r.stub.Run(r.request("limits", arguments, env), timeout=60)
            self.assertEqual(grpc.StatusCode.INVALID_ARGUMENT, e.exception.code(), what + ": " + e.exception.details())
            self.assertIn(said, e.exception.details(), what)
            self.assertFalse(os.path.exists(os.path.join(d, "stdout")), what + ": stdout was made")
        # Just under both: runs.
        self.assertEqual(0, r.stub.Run(r.request("limits", ["true"] + ["a"] * 8900 + ["x" * 131071]), timeout=60).exit_code)

    def test_a_request_too_large_to_ever_run_is_resource_exhausted_unread(self):
        """Review finding: 400 concurrent ~3.9 MB Runs (gRPC's default limit is 4 MiB) made Netty close
        whole connections (UNAVAILABLE) with the runner at ~510 MiB. A request larger than any that
        could run (argv and environment must fit ARG_MAX, 2 MiB) is now RESOURCE_EXHAUSTED from gRPC."""
        r = self.runner
        r.action("too-large")
        env = dict(PATH, **{"E%04d" % i: "x" * 1000 for i in range(2500)})  # 2.5 MB
        with self.assertRaises(grpc.RpcError) as e:
            r.stub.Run(r.request("too-large", ["true"], env), timeout=60)
        self.assertEqual(grpc.StatusCode.RESOURCE_EXHAUSTED, e.exception.code(), e.exception.details())
        self.assertIn("exceeds maximum size", e.exception.details())
        self.assertNotIn("exceeds maximum size", read(os.path.join(r.dir, "runner.log")),
                         "a too-large request is logged with a stack trace (a client could fill the log)")
        self.assertEqual(0, r.run("after-too-large", ["true"])[0].exit_code)

    def test_one_connection_has_at_most_twice_concurrency_and_four_calls_open(self):
        """Each open call may buffer a whole request before its handler refuses it: the runner says
        how many one connection may open (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS), 2 x 8 + 4 here."""
        import socket
        import struct
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(self.runner.socket)
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + struct.pack(">I", 4)[1:] + b"\x04\x00" + struct.pack(">I", 0))
            data = b""
            settings = None
            while settings is None:
                chunk = s.recv(65536)
                self.assertTrue(chunk, "the runner closed the connection before its SETTINGS")
                data += chunk
                while len(data) >= 9 and settings is None:
                    length = struct.unpack(">I", b"\x00" + data[:3])[0]
                    if len(data) < 9 + length:
                        break
                    kind, flags, payload = data[3], data[4], data[9:9 + length]
                    data = data[9 + length:]
                    if kind == 4 and not flags & 1:
                        settings = {struct.unpack(">H", payload[i:i + 2])[0]: struct.unpack(">I", payload[i + 2:i + 6])[0]
                                    for i in range(0, len(payload), 6)}
        self.assertEqual(2 * 8 + 4, settings.get(3), settings)  # SETTINGS_MAX_CONCURRENT_STREAMS

    def test_an_action_has_no_capability_and_set_id_bits_have_no_effect(self):
        """Review finding: as root an action kept CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID...
        Now it has none (unless --cap-add), runs with no_new_privs, and its / is mounted nosuid."""
        response, out, err = self.runner.run("caps", ["sh", "-c", "grep -E '^(CapEff|CapPrm|NoNewPrivs):' /proc/self/status; "
                                                      "awk '$5 == \"/\" {print $6}' /proc/self/mountinfo"])
        self.assertEqual(0, response.exit_code, err)
        lines = out.split("\n")
        self.assertIn("CapPrm:\t0000000000000000", lines)
        self.assertIn("CapEff:\t0000000000000000", lines)
        self.assertIn("NoNewPrivs:\t1", lines)
        self.assertIn("nosuid", lines[3].split(","), out)
        if os.geteuid() == 0:
            self.assertIn("running as root", read(os.path.join(self.runner.dir, "runner.log")))

    def test_an_action_cannot_write_through_a_read_only_cache_file_of_another_user(self):
        """Review finding: with the runner and bb_worker as one user, an action chmod'ed a 0444 file
        hard-linked from bb_worker's cache and wrote through it, poisoning later actions. With no
        capability it cannot touch a file it does not own: run the runner as a user of its own
        (docs/buildbarn.md). Needs root to give the cache file another owner."""
        if os.geteuid() != 0:
            self.skipTest("giving the cache file another owner needs root")
        r = self.runner
        d = r.action("cache")
        cache = os.path.join(r.dir, "cache")
        os.mkdir(cache)
        blob = os.path.join(cache, "blob")
        with open(blob, "w") as f:
            f.write("clean\n")
        os.chown(blob, 65534, 65534)  # bb_worker's user, not the runner's
        os.chmod(blob, 0o444)
        os.link(blob, os.path.join(d, "root/input.h"))  # bb_worker's hard-linking native build directory
        response = r.stub.Run(r.request("cache", ["sh", "-c", "chmod u+w,u+s /input.h; echo POISONED >> /input.h; chown 0 /input.h"]),
                              timeout=60)
        self.assertNotEqual(0, response.exit_code)
        self.assertEqual("clean\n", read(blob), "the action changed the worker's cache file")
        st = os.stat(blob)
        self.assertEqual((0o100444, 65534), (st.st_mode, st.st_uid))

    def test_one_file_for_stdout_and_stderr_gets_both_streams(self):
        d = self.runner.action("same")
        request = self.runner.request("same", ["sh", "-c", "echo one; echo two >&2; echo three"])
        request.stderr_path = request.stdout_path
        self.assertEqual(0, self.runner.stub.Run(request, timeout=60).exit_code)
        self.assertEqual("one\ntwo\nthree\n", read(os.path.join(d, "stdout")))

    def test_two_links_to_one_file_for_stdout_and_stderr_get_both_streams(self):
        """Review finding: the one-file rule compared spellings; two hard links to one file were
        opened twice, each with its own offset, and stderr's bytes overwrote stdout's."""
        d = self.runner.action("links")
        open(os.path.join(d, "out"), "w").close()
        os.link(os.path.join(d, "out"), os.path.join(d, "err"))
        request = self.runner.request("links", ["sh", "-c", "echo one-one-one; echo two >&2; echo three"])
        request.stdout_path, request.stderr_path = "links/out", "links/err"
        self.assertEqual(0, self.runner.stub.Run(request, timeout=60).exit_code)
        self.assertEqual("one-one-one\ntwo\nthree\n", read(os.path.join(d, "out")))

    def test_actions_at_once_on_overlapping_directories_are_refused(self):
        """Review finding: two Runs on one input root at once let one action's command swap a
        directory of the root for a link while bwrap set the other's sandbox up, and bwrap then
        created files outside the build directory. bb_worker never shares an action's
        directories, so a Run whose input root or temporary directory is, contains or lies in one
        of a Run still held is refused; once that one ended, the same directories serve again."""
        self.runner.action("held")
        holder = self.runner.stub.Run.future(self.runner.request("held", ["sh", "-c", "sleep 30"]), timeout=60)
        self.addCleanup(holder.cancel)
        self.assertTrue(wait_until(lambda: os.path.exists(os.path.join(self.runner.build, "held", "root", "proc")), 30),
                        "the held action's sandbox did not come up")
        for field, value in [("input_root_directory", "held/root"), ("input_root_directory", "held"),
                             ("input_root_directory", "held/root/usr"), ("temporary_directory", "held/./root"),
                             ("temporary_directory", "held/tmp")]:
            request = self.runner.request("held", ["true"])
            request.input_root_directory, request.temporary_directory = "held/root", "held/tmp"
            setattr(request, field, value)
            with self.assertRaises(grpc.RpcError, msg=field + "=" + value) as e:
                self.runner.stub.Run(request, timeout=60)
            self.assertEqual(grpc.StatusCode.FAILED_PRECONDITION, e.exception.code(), e.exception.details())
            self.assertIn("overlaps", e.exception.details())
        self.runner.action("beside")
        self.assertEqual(0, self.runner.stub.Run(self.runner.request("beside", ["true"]), timeout=60).exit_code,
                         "an action with directories of its own runs beside it")
        holder.cancel()
        self.assertTrue(wait_until(lambda: not os.path.exists(os.path.join(self.runner.build, "held", "root", "proc")), 30),
                        "the cancelled action's root was not cleaned")
        again = None
        for _ in range(100):  # the held Run lets go of its directories once its sandbox is gone and cleaned
            try:
                again = self.runner.stub.Run(self.runner.request("held", ["true"]), timeout=60)
                break
            except grpc.RpcError as e:
                self.assertEqual(grpc.StatusCode.FAILED_PRECONDITION, e.code(), e.details())
                time.sleep(0.05)
        self.assertEqual(0, again.exit_code if again else None, "the directories serve again once the held Run ended")

    def test_a_long_path_in_an_error_is_cut_so_the_client_still_reads_why(self):
        """Review finding: a 100 KB working directory was quoted whole in the status, and the
        client's metadata limit (8 KiB) turned INVALID_ARGUMENT into RESOURCE_EXHAUSTED."""
        self.runner.action("long")
        request = self.runner.request("long", ["true"], working_directory="a/" * 50000)
        with self.assertRaises(grpc.RpcError) as e:
            self.runner.stub.Run(request, timeout=60)
        self.assertEqual(grpc.StatusCode.INVALID_ARGUMENT, e.exception.code(), e.exception.details())
        self.assertIn("characters in all", e.exception.details())

    def test_deadline_kills_the_whole_sandbox(self):
        mark = "BWRAPD_BB_MARK=" + uuid.uuid4().hex
        name, value = mark.split("=")
        d = self.runner.action("deadline")
        request = self.runner.request("deadline", ["sh", "-c", "sleep 100 & sleep 100"], dict(PATH, **{name: value}))
        start = time.monotonic()
        with self.assertRaises(grpc.RpcError) as e:
            self.runner.stub.Run(request, timeout=1)
        elapsed = time.monotonic() - start
        self.assertEqual(grpc.StatusCode.DEADLINE_EXCEEDED, e.exception.code())
        self.assertLess(elapsed, 1.5)
        self.assertTrue(wait_until(lambda: not marked_processes(mark), 1.0),
                        "processes of the action survived its deadline: %s" % marked_processes(mark))
        # The server ended the run too: the root is cleaned (bwrap's mount points removed).
        self.assertTrue(wait_until(lambda: not os.path.exists(os.path.join(d, "root/proc")), 5), "root not cleaned")
        self.assertEqual(0, self.runner.run("after-deadline", ["true"])[0].exit_code)

    def test_cancellation_kills_the_whole_sandbox(self):
        mark = "BWRAPD_BB_MARK=" + uuid.uuid4().hex
        name, value = mark.split("=")
        self.runner.action("cancel")
        future = self.runner.stub.Run.future(
            self.runner.request("cancel", ["sh", "-c", "sleep 100 & sleep 100"], dict(PATH, **{name: value})), timeout=60)
        self.assertTrue(wait_until(lambda: len(marked_processes(mark)) >= 3, 30), "the action never started")
        future.cancel()
        self.assertTrue(wait_until(lambda: not marked_processes(mark), 1.0),
                        "processes of the action survived its cancellation: %s" % marked_processes(mark))

    def test_eight_runs_at_once(self):
        for i in range(8):
            self.runner.action("parallel-%d" % i)
        start = time.monotonic()
        futures = [self.runner.stub.Run.future(self.runner.request(
            "parallel-%d" % i, ["sh", "-c", "sleep 2; echo $N"], dict(PATH, N=str(i))), timeout=120) for i in range(8)]
        responses = [f.result() for f in futures]
        elapsed = time.monotonic() - start
        self.assertEqual([0] * 8, [r.exit_code for r in responses])
        for i in range(8):
            self.assertEqual("%d\n" % i, read(os.path.join(self.runner.build, "parallel-%d/stdout" % i)))
        self.assertLess(elapsed, 12, "the eight 2 s runs did not run at once")

    def test_proc_is_fresh_with_a_pid_1(self):
        response, out, err = self.runner.run("proc", ["sh", "-c", "test -r /proc/1/stat && echo pid1; echo $$; ls /proc | grep -c '^[0-9]'"])
        self.assertEqual(0, response.exit_code, err)
        lines = out.split()
        self.assertEqual("pid1", lines[0])
        self.assertLessEqual(int(lines[1]), 4, "the command is not near the top of a PID namespace of its own")
        self.assertLessEqual(int(lines[2]), 6, "the host's processes are visible")

    def test_no_network(self):
        response, out, err = self.runner.run("net", ["sh", "-c", "cat /proc/net/dev"])
        self.assertEqual(0, response.exit_code, err)
        interfaces = [line.split(":")[0].strip() for line in out.splitlines()[2:]]
        self.assertEqual(["lo"], interfaces)

    def test_tmp_is_the_actions_temporary_directory(self):
        d = self.runner.action("tmp")
        with open(os.path.join(d, "tmp/given"), "w") as f:
            f.write("from bb_worker")
        response = self.runner.stub.Run(self.runner.request("tmp", ["sh", "-c", "cat /tmp/given; echo made > /tmp/made"]),
                                        timeout=60)
        self.assertEqual(0, response.exit_code, read(os.path.join(d, "stderr")))
        self.assertEqual("from bb_worker", read(os.path.join(d, "stdout")))
        self.assertEqual("made\n", read(os.path.join(d, "tmp/made")))
        self.assertFalse(os.path.exists(os.path.join(d, "root/tmp/made")))

    def test_resource_usage_is_plausible(self):
        response, _, err = self.runner.run("usage", ["sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
        self.assertEqual(0, response.exit_code, err)
        usage = usage_of(response)
        cpu = usage.user_time.ToTimedelta().total_seconds() + usage.system_time.ToTimedelta().total_seconds()
        self.assertGreater(cpu, 0.1, usage)
        self.assertLess(cpu, 60, usage)
        self.assertGreater(usage.maximum_resident_set_size, 100 * 1024, usage)
        self.assertLess(usage.maximum_resident_set_size, 1 << 30, usage)

    def test_the_input_root_is_left_as_the_action_left_it(self):
        d = self.runner.action("clean")
        before = sorted(os.listdir(os.path.join(d, "root")))
        response = self.runner.stub.Run(self.runner.request("clean", ["sh", "-c", "echo out > /output"]), timeout=60)
        self.assertEqual(0, response.exit_code)
        self.assertEqual(sorted(before + ["output"]), sorted(os.listdir(os.path.join(d, "root"))))


class WaitingTest(unittest.TestCase):
    """Calls beyond --concurrency wait, as many as --concurrency of them; any more are refused at
    once with RESOURCE_EXHAUSTED, so that what the runner holds stays bounded (review finding)."""

    def test_calls_wait_for_a_turn_and_beyond_that_are_refused(self):
        r = Runner("--concurrency", "1")
        try:
            mark = "BWRAPD_BB_MARK=" + uuid.uuid4().hex
            name, value = mark.split("=")
            for action in ["running", "waiting", "refused", "later"]:
                r.action(action)
            env = dict(PATH, **{name: value})
            running = r.stub.Run.future(r.request("running", ["sleep", "100"], env), timeout=60)
            self.assertTrue(wait_until(lambda: marked_processes(mark), 30), "the first action never started")
            waiting = r.stub.Run.future(r.request("waiting", ["sh", "-c", "echo ran"]), timeout=60)
            time.sleep(1)
            self.assertFalse(waiting.done(), "the second call did not wait for its turn")
            start = time.monotonic()
            with self.assertRaises(grpc.RpcError) as refused:
                r.stub.Run(r.request("refused", ["true"]), timeout=30)
            self.assertEqual(grpc.StatusCode.RESOURCE_EXHAUSTED, refused.exception.code(), refused.exception.details())
            self.assertLess(time.monotonic() - start, 5)
            r.stub.CheckReadiness(runner_pb2.CheckReadinessRequest(path="later"), timeout=5)  # never waits behind Runs
            running.cancel()
            self.assertEqual(0, waiting.result(timeout=30).exit_code)  # its turn came when the first ended
            self.assertEqual("ran\n", read(os.path.join(r.build, "waiting/stdout")))
            self.assertEqual(0, r.stub.Run(r.request("later", ["true"]), timeout=30).exit_code)
        finally:
            r.close()

    def test_a_call_whose_deadline_passes_while_it_waits_ends_then(self):
        r = Runner("--concurrency", "1")
        try:
            r.action("running")
            r.action("waiting")
            running = r.stub.Run.future(r.request("running", ["sleep", "100"]), timeout=60)
            time.sleep(1)
            start = time.monotonic()
            with self.assertRaises(grpc.RpcError) as e:
                r.stub.Run(r.request("waiting", ["true"]), timeout=1)
            self.assertEqual(grpc.StatusCode.DEADLINE_EXCEEDED, e.exception.code())
            self.assertLess(time.monotonic() - start, 3)
            running.cancel()
            # Its place was given back: once the cancelled run has ended too, a call runs again.
            self.assertTrue(wait_until(lambda: running.done(), 5))
            for attempt in range(100):
                try:
                    self.assertEqual(0, r.stub.Run(r.request("waiting", ["true"]), timeout=30).exit_code)
                    break
                except grpc.RpcError as refused:  # the cancelled run's handler may still be cleaning up
                    self.assertEqual(grpc.StatusCode.RESOURCE_EXHAUSTED, refused.code(), refused.details())
                    time.sleep(0.05)
            else:
                self.fail("no turn came back after the cancelled run")
        finally:
            r.close()

    def test_calls_are_counted_at_their_start_over_all_connections(self):
        """Review finding: a call was counted only once its request was read whole and its handler
        ran, and the limit of open calls was per connection: a client opening many connections
        made the runner hold as many parsed requests of up to 2.25 MiB as it opened calls, until
        its heap was spent. Here each call sends its request but never ends its side, so a Run's
        handler never runs: the calls are counted at their start whatever connection they came on,
        2 x --concurrency Runs and 4 calls more held in all, any beyond refused at once."""
        r = Runner("--concurrency", "1")
        hold = threading.Event()
        channels = []
        try:
            r.action("held", with_root=False)

            def open_calls(method, request, count):
                return unfinished_calls(r, method, request, count, hold, channels)

            runs = open_calls("Run", r.request("held", ["true"]), 6)
            self.assertTrue(wait_until(lambda: len(refused(runs)) == 4, 20),
                            "calls ended: %s" % [c.code() for c in runs if c.done()])
            time.sleep(0.5)
            self.assertEqual(4, len([c for c in runs if c.done()]), "2 Runs are held, waiting for their requests' end")
            start = time.monotonic()
            with self.assertRaises(grpc.RpcError) as e:
                r.stub.Run(r.request("held", ["true"]), timeout=30)
            self.assertEqual(grpc.StatusCode.RESOURCE_EXHAUSTED, e.exception.code(), e.exception.details())
            self.assertLess(time.monotonic() - start, 5)
            r.stub.CheckReadiness(runner_pb2.CheckReadinessRequest(path="held"), timeout=5)  # never waits behind Runs

            checks = open_calls("CheckReadiness", runner_pb2.CheckReadinessRequest(path="held"), 5)
            self.assertTrue(wait_until(lambda: len(refused(checks)) == 1, 20),
                            "calls ended: %s" % [c.code() for c in checks if c.done()])

            hold.set()  # the held calls end their requests, are answered, and give their places back
            self.assertTrue(wait_until(lambda: all(c.done() for c in runs + checks), 30))
            r.action("later")
            self.assertEqual(0, r.stub.Run(r.request("later", ["true"]), timeout=30).exit_code)
        finally:
            hold.set()
            for channel in channels:
                channel.close()
            r.close()

    def test_a_request_that_would_take_more_heap_than_a_call_is_given_is_refused_unparsed(self):
        """Review finding: a 2.1 MB request of 700000 one-byte arguments took 38.6 MB of the heap
        once parsed, 18 times its size, so the calls held could take far more heap than they were
        counted for. Such a request (it could never run: bwrap takes 9000 arguments) is now refused
        as it arrives, before it is parsed, though its call is still open."""
        r = Runner("--concurrency", "1")
        hold = threading.Event()
        channels = []
        try:
            calls = unfinished_calls(r, "Run", r.request("many", ["true"] + ["a"] * 700000), 2, hold, channels)
            self.assertTrue(wait_until(lambda: len(refused(calls)) == 2, 30), "calls ended: %s" % [c.code() for c in calls if c.done()])
            self.assertIn("of the runner's heap once parsed", refused(calls)[0].details())
            r.action("after")
            for attempt in range(100):  # their places come back once gRPC has ended their calls
                try:
                    self.assertEqual(0, r.stub.Run(r.request("after", ["true"]), timeout=30).exit_code)
                    break
                except grpc.RpcError as e:
                    self.assertEqual(grpc.StatusCode.RESOURCE_EXHAUSTED, e.code(), e.details())
                    time.sleep(0.05)
            else:
                self.fail("the refused calls' places never came back")
        finally:
            hold.set()
            for channel in channels:
                channel.close()
            r.close()

    def test_no_more_calls_are_held_than_the_heap_holds(self):
        """Review finding: 2 x --concurrency + 4 requests at their largest need more than the
        launcher's 256 MiB of heap above --concurrency 44, and a client sending them spent it. The
        runner now holds no more calls than its heap takes, and says so at its start: here a 64 MiB
        heap, far below what --concurrency 16 would need."""
        r = Runner("--concurrency", "16", env=dict(os.environ, BWRAPD_JVM_OPTS=os.environ.get("BWRAPD_JVM_OPTS", "") + " -Xmx64m"))
        hold = threading.Event()
        channels = []
        try:
            said = re.search(r"the heap \(\d+ MiB\) holds (\d+) calls at once", read(os.path.join(r.dir, "runner.log")))
            self.assertIsNotNone(said, read(os.path.join(r.dir, "runner.log")))
            held = int(said.group(1))
            self.assertLess(held, 2 * 16 + 4)
            r.action("held", with_root=False)
            checks = unfinished_calls(r, "CheckReadiness", runner_pb2.CheckReadinessRequest(path="held"), held + 1, hold, channels)
            self.assertTrue(wait_until(lambda: len(refused(checks)) == 1, 30), "calls ended: %s" % [c.code() for c in checks if c.done()])
            self.assertIn("what the heap holds", refused(checks)[0].details())
            hold.set()
            self.assertTrue(wait_until(lambda: all(c.done() for c in checks), 30))
            r.stub.CheckReadiness(runner_pb2.CheckReadinessRequest(path="held"), timeout=30)
        finally:
            hold.set()
            for channel in channels:
                channel.close()
            r.close()


def http2_connection(path, preface=True):
    """A raw connection to the runner's socket: with PREFACE, it says it speaks HTTP/2 (the client's
    preface and an empty SETTINGS) and then nothing more, as an idle client does."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    if preface:
        try:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + struct.pack(">I", 0)[1:] + b"\x04\x00" + struct.pack(">I", 0))
        except OSError:  # closed by the runner already
            pass
    return s


def closed_by_the_runner(s, seconds):
    """Whether the runner closes connection S within SECONDS (what it sent meanwhile is read and dropped)."""
    s.settimeout(0.2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if not s.recv(65536):
                return True
        except socket.timeout:
            pass
        except OSError:  # reset
            return True
    return False


def open_descriptors(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class StalledClientTest(unittest.TestCase):
    """Clients that take a place and never use it: calls that never send their whole request,
    connections that never speak, connections without number."""

    def test_calls_that_never_send_their_whole_request_give_their_places_back(self):
        """Review finding: an admitted call kept its place however long its client took to send its
        request, so a client holding 2 x --concurrency + 4 calls that never sent (headers only, or
        the message without its end) kept bb_worker's calls out for as long as it liked. Such a call
        is now ended DEADLINE_EXCEEDED some seconds after its start, its place given back."""
        r = Runner("--concurrency", "1")
        hold = threading.Event()
        channels = []
        try:
            r.action("held", with_root=False)
            r.action("real")
            run = r.request("held", ["true"])
            check = runner_pb2.CheckReadinessRequest(path="held")
            stalled = unfinished_calls(r, "Run", run, 1, hold, channels, send=False)  # the headers only
            stalled += unfinished_calls(r, "Run", run, 1, hold, channels)  # the message, never its end
            stalled += unfinished_calls(r, "CheckReadiness", check, 2, hold, channels, send=False)
            stalled += unfinished_calls(r, "CheckReadiness", check, 2, hold, channels)
            start = time.monotonic()
            time.sleep(1)  # they take every place (a real call made meanwhile would take one of theirs)
            self.assertEqual([], [c.code() for c in stalled if c.done()])
            self.assertTrue(refused_now(lambda: r.stub.CheckReadiness(check, timeout=5)), "the stalled calls did not take every place")
            for attempt in range(1000):
                try:
                    self.assertEqual(0, r.stub.Run(r.request("real", ["true"]), timeout=30).exit_code)
                    break
                except grpc.RpcError as e:
                    self.assertEqual(grpc.StatusCode.RESOURCE_EXHAUSTED, e.code(), e.details())
                    self.assertLess(time.monotonic() - start, 25, "the stalled calls kept their places: " + e.details())
                    time.sleep(0.1)
            self.assertLess(time.monotonic() - start, 25)
            self.assertTrue(wait_until(lambda: all(c.done() for c in stalled), 5), "a stalled call was left open")
            for call in stalled:
                self.assertEqual(grpc.StatusCode.DEADLINE_EXCEEDED, call.code(), call.details())
                self.assertRegex(call.details(), r"did not arrive whole within \d+ s")
        finally:
            hold.set()
            for channel in channels:
                channel.close()
            r.close()

    def test_a_run_may_wait_and_run_longer_than_its_request_may_take_to_arrive(self):
        """The time a request is given to arrive ends when it has: a Run waiting for its turn, then
        running, for longer than that still ends as its action does."""
        r = Runner("--concurrency", "1")
        try:
            for name in ["first", "second"]:
                r.action(name)
            first = r.stub.Run.future(r.request("first", ["sleep", "12"]), timeout=60)
            time.sleep(0.5)
            second = r.stub.Run.future(r.request("second", ["sh", "-c", "sleep 1; echo ran"]), timeout=60)
            self.assertEqual(0, first.result(timeout=60).exit_code)
            self.assertEqual(0, second.result(timeout=60).exit_code)
            self.assertEqual("ran\n", read(os.path.join(r.build, "second/stdout")))
        finally:
            r.close()

    def test_connections_beyond_the_limit_are_closed_at_once_and_actions_still_run(self):
        """Review finding: the runner took every connection offered (grpc-java has no limit), each
        holding a descriptor; a client opening thousands spent the runner's open files, and then
        every action failed. Here the runner may open 400 files: 500 connections more than that are
        offered while bb_worker's connection is open, the runner keeps a bounded number of them and
        closes the rest at once, and bb_worker's Run still runs. Closed, they give their places back."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this test's own connections
        r = Runner("--concurrency", "1", open_files=400)
        flood = []
        try:
            r.action("real")
            rest = open_descriptors(r.process.pid)
            flood = [http2_connection(r.socket) for _ in range(900)]
            refusing = wait_until(lambda: "connections are open already" in read(os.path.join(r.dir, "runner.log")), 10)
            self.assertEqual(0, r.stub.Run(r.request("real", ["true"]), timeout=30).exit_code)
            self.assertTrue(refusing, "no connection was refused")
            limit = int(re.search(r"(\d+) connections are open already", read(os.path.join(r.dir, "runner.log"))).group(1))
            self.assertLessEqual(limit, 400 - 200, "the limit leaves the runs too few descriptors")
            closed = sum(closed_by_the_runner(s, 0.05) for s in flood)
            self.assertEqual(900 - (limit - 1), closed, "all but the limit's (bb_worker's connection counted) closed at once")
            self.assertLessEqual(open_descriptors(r.process.pid), rest + limit + 8)
            r.stub.CheckReadiness(runner_pb2.CheckReadinessRequest(path="real"), timeout=30)
            for s in flood:
                s.close()
            flood = []
            # Their places given back, a new client connects and is answered.
            with grpc.insecure_channel("unix:" + r.socket, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                runner_pb2_grpc.RunnerStub(channel).CheckReadiness(runner_pb2.CheckReadinessRequest(path="real"), timeout=30)
        finally:
            for s in flood:
                s.close()
            r.close()
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    def test_a_connection_that_never_speaks_http2_is_closed_after_seconds(self):
        """A connection that sends nothing holds no call, but a place among the connections: it is
        closed some seconds after it was opened (grpc-java's handshake timeout, 120 s by default)."""
        r = Runner("--concurrency", "1")
        try:
            r.action("a", with_root=False)
            with http2_connection(r.socket, preface=False) as silent:
                start = time.monotonic()
                self.assertTrue(closed_by_the_runner(silent, 30), "the silent connection stayed open")
                self.assertLess(time.monotonic() - start, 20)
            r.stub.CheckReadiness(runner_pb2.CheckReadinessRequest(path="a"), timeout=30)
        finally:
            r.close()


class EndTest(unittest.TestCase):
    def test_sigterm_answers_a_run_in_flight_unavailable_and_kills_its_sandbox(self):
        """Review finding: the documentation promises UNAVAILABLE when the runner shuts down, but a
        Run in flight ended CANCELLED (the transport reset its stream first)."""
        r = Runner()
        try:
            mark = "BWRAPD_BB_MARK=" + uuid.uuid4().hex
            name, value = mark.split("=")
            r.action("in-flight")
            future = r.stub.Run.future(r.request("in-flight", ["sh", "-c", "sleep 100 & sleep 100"], dict(PATH, **{name: value})),
                                       timeout=60)
            self.assertTrue(wait_until(lambda: len(marked_processes(mark)) >= 3, 30), "the action never started")
            r.process.terminate()
            with self.assertRaises(grpc.RpcError) as e:
                future.result(timeout=30)
            self.assertEqual(grpc.StatusCode.UNAVAILABLE, e.exception.code(), e.exception.details())
            self.assertIn("shutting down", e.exception.details())
            self.assertEqual(128 + 15, r.process.wait(30))
            self.assertEqual([], marked_processes(mark))
            self.assertFalse(os.path.exists(r.socket), "the socket outlived the runner")
        finally:
            r.close()


class SocketTest(unittest.TestCase):
    """The runner's socket: who may connect."""

    def test_the_socket_is_0660_whatever_the_umask_and_removed_at_the_end(self):
        """Review finding: the socket took its mode from the runner's umask; with umask 000 any
        local user could run actions as the runner's user (root, with --root host). Now 0660 (the
        runner's user and group: bb_worker's user belongs in that group), made so before it is in
        place, and removed when the runner ends."""
        for umask in [0o000, 0o077]:
            r = Runner(umask=umask)
            try:
                st = os.lstat(r.socket)
                self.assertEqual(0o140660, st.st_mode, "umask %03o: %o" % (umask, st.st_mode))
                self.assertEqual((os.getuid(), os.getgid()), (st.st_uid, st.st_gid))
                self.assertEqual(["build", "runner.log", "runner.sock"], sorted(os.listdir(r.dir)), "the private directory is left")
                r.action("a", with_root=False)
                r.stub.CheckReadiness(runner_pb2.CheckReadinessRequest(path="a"), timeout=30)
            finally:
                r.channel.close()
                r.process.terminate()
                r.process.wait(30)
                self.assertFalse(os.path.exists(r.socket), "the socket outlived the runner")
                r.close()

    def test_another_file_at_the_path_is_an_error_and_stays(self):
        d = tempfile.mkdtemp(prefix="bwrapd-bb-")
        try:
            listen = os.path.join(d, "runner.sock")
            with open(listen, "w") as f:
                f.write("keep")
            os.mkdir(os.path.join(d, "build"))
            process = subprocess.run([BWRAPD, "buildbarn-runner", "--listen", listen, "--build-directory", os.path.join(d, "build")],
                                     stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
            self.assertEqual(2, process.returncode, process.stderr)
            self.assertIn(b"exists and is not a socket", process.stderr)
            self.assertEqual("keep", read(listen))
            self.assertEqual(["build", "runner.sock"], sorted(os.listdir(d)))
        finally:
            shutil.rmtree(d)

    def test_a_socket_in_the_build_directory_is_refused_at_the_start(self):
        """Review finding: --listen inside --build-directory was taken. Actions' files are there
        (with --root input their input roots, their /): an action could replace the socket or
        connect to it. Refused at the start, exit status 2, nothing made there, however the path is
        spelled (a link to a directory in it, the directory bind-mounted elsewhere); a neighbour whose
        name merely begins alike serves."""
        d = tempfile.mkdtemp(prefix="bwrapd-bb-")
        try:
            build = os.path.join(d, "build")
            os.makedirs(os.path.join(build, "sub"))
            os.symlink(os.path.join(build, "sub"), os.path.join(d, "link"))
            for listen in [os.path.join(build, "runner.sock"), os.path.join(build, "sub", "runner.sock"),
                           os.path.join(d, "link", "runner.sock"), os.path.join(build, "sub", "..", "runner.sock")]:
                process = subprocess.run([BWRAPD, "buildbarn-runner", "--listen", listen, "--build-directory", build],
                                         stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
                self.assertEqual(2, process.returncode, listen + ": " + process.stderr.decode())
                self.assertIn(b"in the build directory", process.stderr, listen)
                self.assertEqual(["sub"], os.listdir(build), listen)
                self.assertEqual([], os.listdir(os.path.join(build, "sub")), listen)
            if os.getuid() == 0:  # the build directory bind-mounted elsewhere: its device and inode tell
                os.mkdir(os.path.join(d, "alias"))
                process = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                          'mount --bind "$1" "$2" && exec "$3" buildbarn-runner --listen "$2/runner.sock" --build-directory "$1"',
                                          "sh", build, os.path.join(d, "alias"), BWRAPD],
                                         stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
                self.assertEqual(2, process.returncode, "bind mount: " + process.stderr.decode())
                self.assertIn(b"in the build directory", process.stderr)
                self.assertEqual(["sub"], os.listdir(build))
            os.mkdir(build + "2")
            listen = os.path.join(build + "2", "runner.sock")  # its path begins with the build directory's
            process = subprocess.Popen([BWRAPD, "buildbarn-runner", "--listen", listen, "--build-directory", build],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                with grpc.insecure_channel("unix:" + listen) as channel:
                    grpc.channel_ready_future(channel).result(timeout=60)
                    runner_pb2_grpc.RunnerStub(channel).CheckReadiness(runner_pb2.CheckReadinessRequest(path="sub"), timeout=30)
            finally:
                process.terminate()
                process.communicate(timeout=30)
        finally:
            shutil.rmtree(d)


class _HostRootRunner:
    """A test class's one `--root host` runner, its build directory below PARENT."""
    parent = None

    @classmethod
    def setUpClass(cls):
        cls.runner = Runner("--root", "host", parent=cls.parent)

    @classmethod
    def tearDownClass(cls):
        cls.runner.close()


class HostRootTest(_HostRootRunner, unittest.TestCase):
    """--root host: the host's / read-only, the input root read-write at its own path. The runner's
    directory is under /var/tmp, as a farm's /worker is: under /tmp the action's own /tmp would hide
    the socket and the build directory whatever the runner does."""

    parent = "/var/tmp"

    def test_host_tools_and_the_input_root_at_its_path(self):
        d = self.runner.action("host")
        os.makedirs(os.path.join(d, "root/src"))
        with open(os.path.join(d, "tmp/given"), "w") as f:
            f.write("from bb_worker\n")
        root = os.path.realpath(os.path.join(d, "root"))
        response = self.runner.stub.Run(self.runner.request(
            "host", ["/bin/sh", "-c", "pwd; echo built > out; touch /etc/bwrapd-bb-test 2>/dev/null || echo read-only; cat /tmp/given"],
            working_directory="src"), timeout=60)
        self.assertEqual(0, response.exit_code, read(os.path.join(d, "stderr")))
        self.assertEqual(root + "/src\nread-only\nfrom bb_worker\n", read(os.path.join(d, "stdout")))
        self.assertEqual("built\n", read(os.path.join(d, "root/src/out")))
        self.assertFalse(os.path.exists("/etc/bwrapd-bb-test"))

    def test_an_action_reaches_neither_the_runners_socket_nor_other_actions_nor_run(self):
        """Review finding: a read-only / does not stop connect(2) on the runner's socket, nor does
        the network namespace: an action ran an action of its own on ANOTHER action's input root
        and read the whole build directory. The build directory, the socket's directory and /run
        are hidden behind empty read-only tmpfs mounts."""
        r = self.runner
        a, b = r.action("attacker"), r.action("victim")
        shutil.copytree(STUBS, os.path.join(a, "tmp/stubs"))
        probe = (
            "import os, sys; sys.path.insert(0, '/tmp/stubs')\n"
            "import grpc, runner_pb2, runner_pb2_grpc\n"
            "print('socket', os.path.exists(%(socket)r))\n"
            "print('build', sorted(os.listdir(%(build)r)))\n"
            "print('run', os.listdir('/run'))\n"
            "print('root', sorted(os.listdir(%(root)r)) == sorted(os.listdir('.')))\n"
            "st = runner_pb2_grpc.RunnerStub(grpc.insecure_channel('unix:' + %(socket)r))\n"
            "try:\n"
            "  st.Run(runner_pb2.RunRequest(arguments=['sh', '-c', 'echo PWNED > pwned'], environment_variables={'PATH': '/bin'},\n"
            "    stdout_path='victim/o', stderr_path='victim/e', input_root_directory='victim/root',\n"
            "    temporary_directory='victim/tmp', server_logs_directory='victim/server_logs'), timeout=5)\n"
            "  print('ran')\n"
            "except grpc.RpcError as e:\n"
            "  print('refused', e.code())\n"
        ) % {"socket": r.socket, "build": r.build, "root": os.path.realpath(os.path.join(a, "root"))}
        response = r.stub.Run(r.request("attacker", ["/usr/bin/python3", "-c", probe]), timeout=60)
        out = read(os.path.join(a, "stdout"))
        self.assertEqual(0, response.exit_code, read(os.path.join(a, "stderr")))
        self.assertFalse(os.path.exists(os.path.join(b, "root/pwned")), "the action ran a command in another action's root")
        self.assertIn("socket False\n", out)
        self.assertIn("build ['attacker']\n", out)  # only the mount point of its own input root
        self.assertIn("run []\n", out)
        self.assertIn("root True\n", out)  # its own input root is still there, at its path
        self.assertIn("refused StatusCode.UNAVAILABLE\n", out)

class HostRootBelowTmpTest(_HostRootRunner, unittest.TestCase):
    """--root host with the build directory below /tmp: the input root's mount point lies in the
    action's temporary directory, which is bound at /tmp first."""

    parent = "/tmp"

    def test_the_input_root_is_at_its_path(self):
        d = self.runner.action("below")
        response = self.runner.stub.Run(self.runner.request("below", ["/bin/sh", "-c", "pwd; echo built > out"]), timeout=60)
        self.assertEqual(0, response.exit_code, read(os.path.join(d, "stderr")))
        self.assertEqual(os.path.realpath(os.path.join(d, "root")) + "\n", read(os.path.join(d, "stdout")))
        self.assertEqual("built\n", read(os.path.join(d, "root/out")))

    def test_a_link_in_the_temporary_directory_is_refused_not_followed(self):
        """Review finding: a link planted in the action's temporary directory (by bb_worker's user,
        or an earlier action given the same directory) on the way to the input root's mount point
        had bwrap, which makes mount points from its setup root where /oldroot is the host, create
        directories anywhere on the host (as root with a root runner). Refused now, nothing made."""
        r = self.runner
        victim = tempfile.mkdtemp(prefix="bwrapd-bb-victim-", dir="/var/tmp")
        try:
            d = r.action("planted")
            first = os.path.relpath(r.build, "/tmp").split("/")[0]
            os.symlink("/oldroot" + victim, os.path.join(d, "tmp", first))  # the link bwrap met first: /tmp/<first>
            deeper = r.action("planted-deeper")
            inner = os.path.join(deeper, "tmp", os.path.relpath(r.build, "/tmp"))
            os.makedirs(inner)
            os.symlink("/oldroot" + victim, os.path.join(inner, "planted-deeper"))  # the input root's parent
            for name in ["planted", "planted-deeper"]:
                with self.assertRaises(grpc.RpcError, msg=name) as e:
                    r.stub.Run(r.request(name, ["/bin/true"]), timeout=60)
                self.assertEqual(grpc.StatusCode.INVALID_ARGUMENT, e.exception.code(), name + ": " + e.exception.details())
                self.assertIn("symbolic link", e.exception.details())
            self.assertEqual([], os.listdir(victim), "bwrap created directories on the host through the link")
        finally:
            shutil.rmtree(victim, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
