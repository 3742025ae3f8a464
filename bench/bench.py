#!/usr/bin/python3
"""bwrapd performance benchmark (docs/performance.md explains every number).

Usage (from the checkout, after the helper was built):

    /usr/bin/python3 bench/bench.py            # ~5 minutes
    /usr/bin/python3 bench/bench.py --quick    # ~1 minute smoke run

What it compares, always interleaved round by round (A, B, C, then B, C, A, ...; for latency a
new random order every round) so that noise from the (shared) machine hits every contender alike:

  1. latency of one /bin/true sandbox in a busybox root, requests one at a time:
     (a) bwrapd `sandbox/run` over one long-lived helper, (b) Python `subprocess.Popen` of the very
     same bwrap argv and environment (from the helper's `sandbox/argv`), (c) BuildStream 1.6's own
     `SandboxBwrap.run()` in this process, (d) the floor: bench/floor/run_floor.c (compiled
     here with gcc), the same argv from C doing only what bwrapd must per run (a cgroup, the
     spawn, bwrap's status, reaping bwrap and the sandbox's init, cpu.stat), with and without the
     cgroup, and `run_floor --rules`: also what bwrapd's rules ask of a run, the plain way in C;
  2. throughput with 16 and 64 runs in flight: bwrapd (pipelined requests) vs Python threads
     each doing Popen of the same argv, and both floors (one run_floor process per run in flight);
  3. helper start-up (spawn to `initialize` response), with and without the JDK AOT cache, and
     the floors under it: the native binary's `--version`, bench/floor's Quarkus-only binary (when
     built: ./mvnw -f bench/floor/pom.xml package -Dnative ...), `java -version`;
  4. the helper's memory (VmRSS, VmHWM): idle, with 16 sandboxes running, after the benchmark;
  5. streaming 200 MiB of text on stdout: bwrapd "stream" (sandbox/output notifications, decoded
     here), bwrapd "file" (the command writes a temp file), Python Popen reading the pipe.

The roots are tools/make-rootfs.sh's busybox root with /dev (and the device mount points), /proc
and /tmp already present, so no contender creates or removes anything in them; one more latency
contender runs bwrapd on the bare root, to show what its cleanup costs.

Writes bench/results/latest.{md,json,png}. Standard library only (matplotlib for the plot, if
installed). Not a test: it asserts that every run succeeded, not how fast it was.
"""
import argparse
import base64
import datetime
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
MiB = 1024 * 1024


# --------------------------------------------------------------------------------------------
# A minimal NDJSON JSON-RPC client: one thread, blocking reads, no reader thread in between.
# --------------------------------------------------------------------------------------------

class RpcError(Exception):
    pass


def cpu_seconds_of(pid):
    """User + system CPU seconds of process `pid` (all its threads), from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid):
    """The live descendants of process `pid`."""
    pids = []
    todo = [pid]
    while todo:
        pid = todo.pop()
        try:
            tasks = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for task in tasks:
            try:
                with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                    found = [int(p) for p in f.read().split()]
            except OSError:
                continue
            pids += found
            todo += found
    return pids


class Helper:
    """One bwrapd process spoken to over its stdin/stdout."""

    def __init__(self, command, env=None):
        self.stderr = tempfile.TemporaryFile()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     env=env, bufsize=0, cwd="/")
        self.out = open(self.proc.stdout.fileno(), "rb", buffering=1 << 20, closefd=False)
        self.infd = self.proc.stdin.fileno()
        self.next_id = 0

    @property
    def pid(self):
        return self.proc.pid

    def send(self, method, params=None, id_=None):
        message = {"jsonrpc": "2.0", "method": method}
        if id_ is not None:
            message["id"] = id_
        if params is not None:
            message["params"] = params
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        while data:
            data = data[os.write(self.infd, data):]

    def request(self, method, params=None):
        self.next_id += 1
        self.send(method, params, self.next_id)
        return self.next_id

    def recv(self):
        line = self.out.readline()
        if not line:
            raise RpcError("bwrapd ended; its stderr:\n" + self.stderr_text())
        return json.loads(line)

    def call(self, method, params=None, on_notification=None):
        id_ = self.request(method, params)
        while True:
            message = self.recv()
            if message.get("id") == id_:
                if "error" in message:
                    raise RpcError("%s: %s" % (method, json.dumps(message["error"])[:2000]))
                return message["result"]
            if on_notification is not None and "method" in message:
                on_notification(message)

    def stderr_text(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-4000:]

    def cpu_seconds(self):
        """CPU time of the helper process (all its threads) and of its live descendants. Read
        between runs, the only live ones are the helper's own long-lived ones (its watchdog);
        bwrap and the sandboxes, once reaped, are not counted."""
        total = 0.0
        for pid in [self.proc.pid] + self.children():
            try:
                total += cpu_seconds_of(pid)
            except OSError:
                continue  # ended in between
        return total

    def children(self):
        """The helper's live descendants (its watchdog shell and what that runs)."""
        return descendants(self.proc.pid)

    def memory(self):
        return memory_of(self.proc.pid)

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()
        self.proc.stdout.close()
        self.stderr.close()


def check_run(result, what):
    if result.get("status") != "exited" or result.get("exitCode") != 0:
        raise SystemExit("bench: a %s run failed: %s" % (what, json.dumps(result)[:2000]))


# --------------------------------------------------------------------------------------------
# Python Popen of the exact bwrap argv, with bwrap's status pipe as descriptor 3.
# --------------------------------------------------------------------------------------------

# Descriptor 3 is held open (on /dev/null) for the whole run, so nothing else is ever given it;
# each spawn points it at a fresh status pipe for the child (pass_fds keeps it) and back again.
SPAWN_LOCK = threading.Lock()
FD3_PARKED = None


def park_fd3():
    global FD3_PARKED
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fstat(3)
        in_use = True
    except OSError:
        in_use = False
    if in_use and null != 3:
        raise SystemExit("bench: descriptor 3 is already in use; run the benchmark from a plain shell")
    if null != 3:
        os.dup2(null, 3, inheritable=False)
        os.close(null)
    FD3_PARKED = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


class Invocation:
    """bwrapd's argv for a run (`sandbox/argv`), for the other contenders. Its `--seccomp N` (the
    keyring filter bwrapd adds to every run, docs/protocol.md) is left out: the program reaches
    bwrap on a descriptor only the helper has (`seccomp_dropped` says so)."""

    def __init__(self, result):
        self.executable = result["executable"]
        argv = list(result["argv"])
        self.seccomp_dropped = "--seccomp" in argv[:argv.index("--") if "--" in argv else len(argv)]
        if self.seccomp_dropped:
            at = argv.index("--seccomp")
            del argv[at:at + 2]
        self.argv = argv
        env = result["env"]
        if isinstance(env, dict):
            self.env = dict(env)
        else:
            self.env = dict(entry.split("=", 1) for entry in env)


def popen_run(inv, stdout=subprocess.DEVNULL, reader=None):
    """One bwrap run as a careful Python program would do it: spawn, read bwrap's status lines to
    their end, wait. `reader(proc)`, if given, drains stdout first; its result is returned."""
    r, w = os.pipe()
    with SPAWN_LOCK:  # descriptor 3 is shared by all threads: point it at this run's pipe
        os.dup2(w, 3)
        os.close(w)
        try:
            proc = subprocess.Popen(inv.argv, executable=inv.executable, env=inv.env, start_new_session=True,
                                    stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.DEVNULL, pass_fds=(3,))
        finally:
            os.dup2(FD3_PARKED, 3, inheritable=False)
    count = reader(proc) if reader is not None else None
    chunks = []
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    rc = proc.wait()
    status = b"".join(chunks).decode()
    exit_codes = [json.loads(line).get("exit-code") for line in status.splitlines() if line.strip()]
    if rc != 0 or exit_codes[-1:] != [0]:
        raise SystemExit("bench: a Popen run failed: rc=%s status=%r" % (rc, status))
    return count


# --------------------------------------------------------------------------------------------
# The floor under the helper's CPU per run: bench/floor/run_floor.c, the same argv in C doing only
# what bwrapd must per run (a cgroup, the spawn, bwrap's status, both reaps, cpu.stat, removal).
# --------------------------------------------------------------------------------------------

RUN_FLOOR_SOURCE = os.path.join(HERE, "floor", "run_floor.c")


def build_run_floor(tmpdir):
    """Compiles run_floor.c into tmpdir; None (and a message) without gcc."""
    binary = os.path.join(tmpdir, "run_floor")
    gcc = shutil.which("gcc")
    if gcc is None:
        print("bench: no gcc, so no floor (C) contender", flush=True)
        return None
    subprocess.run([gcc, "-O2", "-o", binary, RUN_FLOOR_SOURCE], check=True)
    return binary


class RunFloor:
    """One run_floor process: a line in, one run of `inv`, a line out."""

    def __init__(self, binary, inv, cgroup_base, root=None):
        """With `root`, the floor under bwrapd's rules (run_floor --rules): a JSON line in, JSON lines out."""
        rules = ["--rules", root] if root else []
        self.proc = subprocess.Popen([binary] + rules + [cgroup_base or "-", inv.executable] + inv.argv, env=inv.env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.rules = bool(root)

    def run(self):
        if not self.rules:
            self.proc.stdin.write(b"run\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline()
            if answer != b"ok 0\n":
                raise SystemExit("bench: a floor (C) run failed: %r" % answer)
            return
        self.proc.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"sandbox/run","params":{}}\n')
        self.proc.stdin.flush()
        while True:  # sandbox/started, then the answer
            message = json.loads(self.proc.stdout.readline() or b"null")
            if message is None or "id" in message:
                break
        if not message or (message.get("result") or {}).get("exitCode") != 0:
            raise SystemExit("bench: a floor (C, rules) run failed: %r" % message)

    def cpu_seconds(self):
        """Its own CPU and its live descendants' (the rules floor's watchdog), as for the helper."""
        total = 0.0
        for pid in [self.proc.pid] + descendants(self.proc.pid):
            try:
                total += cpu_seconds_of(pid)
            except OSError:
                continue  # ended in between
        return total

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(30)
        self.proc.stdout.close()


def floor_variants(binary, inv, cgroup_base, root):
    """The floor with a cgroup per run (as bwrapd, where the helper has one) and without, and the
    floor under bwrapd's rules (a cgroup where bwrapd has one)."""
    variants = {}
    if binary is None:
        return variants
    if cgroup_base:
        variants["floor"] = RunFloor(binary, inv, cgroup_base)
    variants["floor-nocgroup"] = RunFloor(binary, inv, None)
    variants["floor-rules"] = RunFloor(binary, inv, cgroup_base, root)
    return variants


# --------------------------------------------------------------------------------------------
# BuildStream 1.6's SandboxBwrap, the real class, created the way BuildStream's Linux platform does.
# --------------------------------------------------------------------------------------------

class BuildStreamSandbox:
    def __init__(self, directory):
        from buildstream._platform import Platform
        from buildstream.sandbox import SandboxFlags
        from buildstream.sandbox._config import SandboxConfig
        import buildstream
        self.version = getattr(buildstream, "__version__", None) or package_version("python3-buildstream")
        uname = os.uname()
        self.devnull = open(os.devnull, "w")
        # Platform.create_sandbox probes user namespaces and --die-with-parent like `bst` does.
        # The context and project are only stored by Sandbox, never used by SandboxBwrap.run().
        self.sandbox = Platform.get_platform().create_sandbox(
            None, None, directory, config=SandboxConfig(0, 0, uname.sysname, uname.machine),
            stdout=self.devnull, stderr=self.devnull)
        if type(self.sandbox).__name__ != "SandboxBwrap":
            raise SystemExit("bench: BuildStream gave a %s, not a SandboxBwrap" % type(self.sandbox).__name__)
        self.sandbox.set_environment({"PATH": PATH})
        self.sandbox.set_work_directory("/")
        # A read-only root: BuildStream would otherwise put a FUSE layer (SafeHardlinks) under it.
        self.flags = SandboxFlags.ROOT_READ_ONLY

    @property
    def root(self):
        return self.sandbox.get_directory()

    def run(self):
        rc = self.sandbox.run(["/bin/true"], self.flags)
        if rc != 0:
            raise SystemExit("bench: a BuildStream run failed with %s" % rc)


# --------------------------------------------------------------------------------------------
# Statistics and environment.
# --------------------------------------------------------------------------------------------

def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values):
    return {"n": len(values), "median": statistics.median(values), "p90": percentile(values, 90),
            "mean": statistics.fmean(values), "min": min(values), "max": max(values)}


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def wait_for_quiet(max_load, max_wait):
    deadline = time.monotonic() + max_wait
    while True:
        load = loadavg()
        if load[0] <= max_load or time.monotonic() >= deadline:
            return load
        print("  load average %.2f > %.2f, waiting..." % (load[0], max_load), flush=True)
        time.sleep(min(10, max(0.0, deadline - time.monotonic())) or 1)


def package_version(name):
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True).stdout or None
    except OSError:
        return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def find_jdk():
    """The JDK the launcher would pick (same rules as ./bwrapd)."""
    candidates = [os.environ.get("BWRAPD_JAVA_HOME"), os.environ.get("JAVA_HOME")]
    try:
        candidates += sorted(os.path.join("/usr/lib/jvm", d) for d in os.listdir("/usr/lib/jvm"))
    except OSError:
        pass
    for home in candidates:
        if not home or not os.access(os.path.join(home, "bin", "java"), os.X_OK):
            continue
        try:
            with open(os.path.join(home, "release")) as f:
                fields = dict(line.strip().split("=", 1) for line in f if "=" in line)
        except OSError:
            continue
        version = fields.get("JAVA_VERSION", "").strip('"')
        try:
            if int(version.split(".")[0]) >= 25:
                return home, fields
        except ValueError:
            continue
    return None, {}


class Build:
    """One build of bwrapd under test: the native binary, or the JVM build through the launcher."""

    def __init__(self, name, command, env, label, jvm, size_bytes):
        self.name, self.command, self.env, self.label, self.jvm, self.size_bytes = name, command, env, label, jvm, size_bytes

    def start(self, env=None):
        return Helper(self.command, env=env or self.env)


def tree_size(path):
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(directory, name)).st_size
    return total


def find_builds(helper):
    """The builds to compare: --helper alone if given, else both builds of this checkout that exist."""
    if helper:
        label, jvm = helper_mode([helper])
        return [Build("bwrapd", [helper], None, label, jvm, None)]
    target = os.path.join(REPO, "target")
    builds = []
    natives = sorted(n for n in os.listdir(target) if n.startswith("bwrapd-") and n.endswith("-runner")) \
        if os.path.isdir(target) else []
    if natives:
        binary = os.path.join(target, natives[0])
        builds.append(Build("native", [binary], None, "native image (target/%s)" % natives[0], False,
                            os.path.getsize(binary)))
    if os.path.isfile(os.path.join(target, "quarkus-app", "quarkus-run.jar")):
        aot = os.path.join(target, "bwrapd.aot")
        size = tree_size(os.path.join(target, "quarkus-app")) + (os.path.getsize(aot) if os.path.isfile(aot) else 0)
        label = "JVM, AOT cache target/bwrapd.aot" if os.path.isfile(aot) else "JVM, no AOT cache"
        builds.append(Build("jvm", [os.path.join(REPO, "bwrapd")], dict(os.environ, BWRAPD_JVM="1"), label, True, size))
    if not builds:
        raise SystemExit("bench: nothing built; run ./mvnw package -DskipTests (and/or -Dnative) first")
    return builds


def helper_mode(helper_cmd):
    launcher = os.path.realpath(helper_cmd[0])
    if os.path.basename(launcher) != "bwrapd":
        return "custom (%s)" % launcher, False
    home = os.path.dirname(launcher)
    target = os.path.join(home, "target")
    try:
        natives = [n for n in os.listdir(target) if n.startswith("bwrapd-") and n.endswith("-runner")]
    except OSError:
        natives = []
    if natives:
        return "native image (%s)" % natives[0], False
    if os.path.isfile(os.path.join(target, "bwrapd.aot")):
        return "JVM, AOT cache target/bwrapd.aot", True
    return "JVM, no AOT cache", False


def machine(builds, init):
    home, fields = find_jdk()
    jdk = None
    if home:
        jdk = "%s %s (%s)" % (fields.get("IMPLEMENTOR", "").strip('"'),
                              fields.get("JAVA_RUNTIME_VERSION", fields.get("JAVA_VERSION", "")).strip('"'), home)
    uname = os.uname()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "kernel": "%s %s" % (uname.sysname, uname.release),
        "bwrap": "%s %s" % (init["bwrap"]["path"], init["bwrap"]["version"]),
        "jdk": jdk,
        "python": platform.python_version(),
        "buildstream": package_version("python3-buildstream"),
        "builds": {b.name: {"label": b.label, "command": " ".join(b.command), "size_bytes": b.size_bytes} for b in builds},
        "uid": os.getuid(),
        "userNamespaces": init["capabilities"].get("userNamespaces"),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------------------------
# The measurements.
# --------------------------------------------------------------------------------------------

def run_params(root, **extra):
    params = {"command": ["/bin/true"], "root": root, "stdout": "discard", "stderr": "discard",
              "readOnlyRoot": True, "env": {"PATH": PATH}}
    params.update(extra)
    return params


def bench_latency(helpers, roots, bst, runs, warmup, floor_binary, cgroup_base):
    """1. One run at a time, every contender interleaved; milliseconds per run. `helpers` maps each
    build's name to a running helper; the first one also runs on the bare root."""
    params = run_params(roots["bwrapd"])
    bare_params = run_params(roots["bare"])
    primary = next(iter(helpers))
    inv = Invocation(helpers[primary].call("sandbox/argv", run_params(roots["popen"])))
    floors = floor_variants(floor_binary, inv, cgroup_base, roots["popen"])

    def bwrapd_bare():
        c = time.process_time()
        t = time.perf_counter()
        result = helpers[primary].call("sandbox/run", bare_params)
        elapsed = time.perf_counter() - t
        cpu["bare"] += time.process_time() - c
        check_run(result, "bwrapd (bare root)")
        if not result["cleanup"]["ok"] or "/proc" not in result["cleanup"]["removed"]:
            raise SystemExit("bench: the bare-root run did not clean up as expected: %s" % result["cleanup"])
        return elapsed

    def bwrapd(name):
        def run():
            c = time.process_time()
            t = time.perf_counter()
            result = helpers[name].call("sandbox/run", params)
            elapsed = time.perf_counter() - t
            cpu[name] += time.process_time() - c
            check_run(result, "bwrapd " + name)
            server_ms[name].append(result["durationMs"])
            return elapsed
        return run

    def popen():
        c = time.process_time()
        t = time.perf_counter()
        popen_run(inv)
        elapsed = time.perf_counter() - t
        cpu["popen"] += time.process_time() - c
        return elapsed

    def buildstream():
        c = time.process_time()
        t = time.perf_counter()
        bst.run()
        elapsed = time.perf_counter() - t
        cpu["buildstream"] += time.process_time() - c
        return elapsed

    def floor(name):
        def run():
            t = time.perf_counter()
            floors[name].run()
            return time.perf_counter() - t
        return run

    contenders = [(name, bwrapd(name)) for name in helpers] + [("popen", popen)]
    if bst is not None:
        contenders.append(("buildstream", buildstream))
    contenders += [(name, floor(name)) for name in floors]
    contenders.append(("bare", bwrapd_bare))
    server_ms = {name: [] for name in helpers}
    cpu = {name: 0.0 for name, _ in contenders}
    for _ in range(warmup):
        for _, fn in contenders:
            fn()
    for values in server_ms.values():
        values.clear()
    cpu.update((name, 0.0) for name in cpu)
    floor_cpu = {name: f.cpu_seconds() for name, f in floors.items()}
    times = {name: [] for name, _ in contenders}
    # A new order every round, not a rotation: rotated, each contender mostly follows the same one,
    # and the one after Popen or BuildStream pays for what they leave running (their sandbox's init
    # and its teardown, which they do not wait for); shuffled, every one follows each alike.
    order = random.Random(1)
    for _ in range(runs):
        for name, fn in order.sample(contenders, len(contenders)):
            times[name].append(fn() * 1000.0)
    for name, f in floors.items():  # the floor process does nothing else: its own CPU over the runs
        cpu[name] = f.cpu_seconds() - floor_cpu[name]
        f.close()
    out = {name: summary(v) for name, v in times.items()}
    out["durationMs"] = {name: summary(v) for name, v in server_ms.items()}
    out["primary"] = primary
    # CPU milliseconds per run spent by the orchestrating process(es), not by bwrap or the command:
    # for bwrapd the helper (all its threads) plus this client; for the others this Python process.
    # The helper's CPU time is only readable per process, in clock ticks: it is taken over a block of
    # runs of one kind after the interleaved part.
    out["cpu_ms_per_run"] = {name: {"client": cpu[name] * 1000 / runs} for name in helpers}
    for name in cpu:
        if name not in helpers and name != "bare":
            out["cpu_ms_per_run"][name] = cpu[name] * 1000 / runs
    for name, fn in [(name, bwrapd(name)) for name in helpers] + [("bare", bwrapd_bare)]:
        helper = helpers[primary if name == "bare" else name]
        before = helper.cpu_seconds()
        for _ in range(runs):
            fn()
        if name == "bare":
            out["cpu_ms_per_run"][primary]["helper_bare"] = (helper.cpu_seconds() - before) * 1000 / runs
        else:
            out["cpu_ms_per_run"][name]["helper"] = (helper.cpu_seconds() - before) * 1000 / runs
    out["raw"] = times
    out["argv"] = [inv.executable] + inv.argv[1:]
    out["seccomp_dropped"] = inv.seccomp_dropped
    return out


def bwrapd_pipelined(helper, params, total, inflight):
    sent = done = 0
    t = time.perf_counter()
    while sent < min(inflight, total):
        helper.request("sandbox/run", params)
        sent += 1
    while done < total:
        message = helper.recv()
        if "id" not in message:
            continue
        if "error" in message:
            raise SystemExit("bench: pipelined run failed: %s" % json.dumps(message["error"])[:2000])
        check_run(message["result"], "pipelined bwrapd")
        done += 1
        if sent < total:
            helper.request("sandbox/run", params)
            sent += 1
    return total / (time.perf_counter() - t)


def in_threads(total, runners, what):
    """Runs per second of `total` runs shared by one thread per runner (a callable doing one run)."""
    left = [total]
    lock = threading.Lock()
    errors = []

    def worker(run):
        try:
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                run()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    workers = [threading.Thread(target=worker, args=(run,)) for run in runners]
    t = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t
    if errors:
        raise SystemExit("bench: a %s thread failed: %r" % (what, errors[0]))
    return total / elapsed


def popen_threads(inv, total, threads):
    return in_threads(total, [lambda: popen_run(inv)] * threads, "Popen")


def floor_processes(pool, total):
    """`total` floor runs over a pool of floor processes, one thread each."""
    return in_threads(total, [f.run for f in pool], "floor (C)")


def bench_throughput(helpers, roots, levels, total, rounds, floor_binary, cgroup_base):
    """2. Runs per second with `level` runs in flight; each round does total/rounds runs per contender."""
    params = run_params(roots["bwrapd"])
    inv = Invocation(next(iter(helpers.values())).call("sandbox/argv", run_params(roots["popen"])))
    per_round = max(1, total // rounds)
    # the floor: as many run_floor processes as runs in flight, each one run at a time
    floors = {"floor": None, "floor-rules": roots["popen"]} if floor_binary is not None else {}
    pools = {(name, level): [RunFloor(floor_binary, inv, cgroup_base, root) for _ in range(level)]
             for name, root in floors.items() for level in levels}
    names = list(helpers) + ["popen"] + list(floors)
    results = {}
    for level in levels:
        results[level] = {name: [] for name in names}
    # warm-up: one short round of each
    for level in levels:
        for helper in helpers.values():
            bwrapd_pipelined(helper, params, level, level)
        popen_threads(inv, level, level)
        for name in floors:
            floor_processes(pools[(name, level)], level)
    cpu = {(level, name): 0.0 for level in levels for name in names}

    def helper_cpu(name, level):  # plus this process's, as for bwrapd's client and Python's threads
        if name in floors:
            return sum(f.cpu_seconds() for f in pools[(name, level)])
        return helpers[name].cpu_seconds() if name in helpers else 0

    for r in range(rounds):
        for level in levels:
            contenders = [(name, lambda name=name: bwrapd_pipelined(helpers[name], params, per_round, level)) for name in helpers]
            contenders.append(("popen", lambda: popen_threads(inv, per_round, level)))
            for name in floors:
                contenders.append((name, lambda name=name: floor_processes(pools[(name, level)], per_round)))
            k = r % len(contenders)
            for name, fn in contenders[k:] + contenders[:k]:
                c = time.process_time() + helper_cpu(name, level)
                results[level][name].append(fn())
                cpu[(level, name)] += time.process_time() + helper_cpu(name, level) - c
    for pool in pools.values():
        for f in pool:
            f.close()
    out = {}
    for level, by in results.items():
        # overall rate over all rounds: runs / total time (harmonic mean of the round rates)
        out[str(level)] = {name: {"runs_per_s": len(v) / sum(1.0 / x for x in v), "rounds": v,
                                  "runs": per_round * len(v),
                                  "cpu_ms_per_run": cpu[(level, name)] * 1000 / (per_round * len(v))}
                           for name, v in by.items()}
    return out


def memory_of(pid):
    """VmRSS, VmHWM, RssAnon and RssFile of a process, in KiB."""
    values = {}
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0])
    return values


FLOOR = os.path.join(HERE, "floor", "target", "quarkus-floor-0.1.0-runner")


def floor_start():
    """bench/floor's binary (Quarkus alone, bwrapd's toolchain and flags): ms from spawn to its
    answer to one line, and its memory then."""
    t = time.perf_counter()
    proc = subprocess.Popen([FLOOR], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        proc.stdin.write(b"start\n")
        proc.stdin.flush()
        if proc.stdout.readline() != b"ok\n":
            raise SystemExit("bench: %s did not answer ok" % FLOOR)
        ms = (time.perf_counter() - t) * 1000.0
        return ms, memory_of(proc.pid)
    finally:
        proc.stdin.close()
        proc.wait(10)


def bench_startup(builds, samples, root):
    """3. Spawn to initialize response, milliseconds; memory right after initialize; the first
    sandbox run of a fresh helper (cold code); and, for the JVM build, the JVM alone."""
    modes = []
    for build in builds:
        modes.append((build.name, build, None))
        if build.jvm:
            modes.append((build.name + "-no-aot", build, dict(build.env or os.environ, BWRAPD_JVM_OPTS="-XX:AOTMode=off")))
    jvm = any(build.jvm for build in builds)
    times = {name: [] for name, _, _ in modes}
    first = {name: [] for name, _, _ in modes}
    memory = {name: [] for name, _, _ in modes}
    floor = []
    native_floor = {build.name: [] for build in builds if not build.jvm}
    quarkus_floor = []
    home, _ = find_jdk()
    for i in range(samples):
        k = i % len(modes)
        for name, build, env in modes[k:] + modes[:k]:
            t = time.perf_counter()
            h = build.start(env)
            try:
                h.call("initialize", {"clientName": "bench"})
                times[name].append((time.perf_counter() - t) * 1000.0)
                memory[name].append(h.memory())
                t = time.perf_counter()
                check_run(h.call("sandbox/run", run_params(root)), "first run")
                first[name].append((time.perf_counter() - t) * 1000.0)
            finally:
                h.close()
        for build in builds:
            if build.name in native_floor:
                # the image's own floor: the same binary starting Quarkus, printing its version and exiting
                t = time.perf_counter()
                subprocess.run(build.command + ["--version"], stdout=subprocess.DEVNULL, check=True)
                native_floor[build.name].append((time.perf_counter() - t) * 1000.0)
        if native_floor and os.path.isfile(FLOOR):
            quarkus_floor.append(floor_start())
        if jvm and home:
            # the floor: the same JDK starting and stopping with the launcher's main VM flags, no application
            t = time.perf_counter()
            subprocess.run([os.path.join(home, "bin", "java"), "-Xshare:auto", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                            "-Xss512k", "-Xms8m", "-version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            floor.append((time.perf_counter() - t) * 1000.0)
    out = {name: summary(v) for name, v in times.items()}
    for name, m in memory.items():
        out[name]["VmRSS_KiB_median"] = statistics.median(x["VmRSS"] for x in m)
        out[name]["VmHWM_KiB_median"] = statistics.median(x["VmHWM"] for x in m)
        out[name]["first_run_ms_median"] = statistics.median(first[name])
    if floor:
        out["jvm-floor"] = summary(floor)
    for name, v in native_floor.items():
        out[name + "-version"] = summary(v)
    if quarkus_floor:
        out["quarkus-floor"] = summary([ms for ms, _ in quarkus_floor])
        out["quarkus-floor"]["VmRSS_KiB_median"] = statistics.median(m["VmRSS"] for _, m in quarkus_floor)
        out["quarkus-floor"]["RssAnon_KiB_median"] = statistics.median(m["RssAnon"] for _, m in quarkus_floor)
        out["quarkus-floor"]["size_bytes"] = os.path.getsize(FLOOR)
    out["raw"] = times
    return out


def bench_memory_under_load(helper, root, concurrent):
    """4. VmRSS/VmHWM while `concurrent` sandboxes run (each sleeps 2 s)."""
    params = {"command": ["/bin/sleep", "2"], "root": root, "stdout": "capture", "stderr": "capture",
              "readOnlyRoot": True, "env": {"PATH": PATH}}
    ids = [helper.request("sandbox/run", params) for _ in range(concurrent)]
    started = 0
    pending = set(ids)
    sample = None
    while pending:
        message = helper.recv()
        if message.get("method") == "sandbox/started":
            started += 1
            if started == concurrent:
                time.sleep(0.3)
                sample = helper.memory()
        elif message.get("id") in pending:
            if "error" in message:
                raise SystemExit("bench: memory run failed: %s" % message["error"])
            check_run(message["result"], "memory")
            pending.discard(message["id"])
    return sample


def bench_streaming(helpers, roots, mib, rounds, tmpdir):
    """5. MB/s for `mib` MiB of text on stdout (cat of a 1 MiB file, `mib` times), three ways, interleaved."""
    size = mib * MiB
    # cat (sendfile) of a cached file: the command costs little, so the transport is what is measured
    command = ["/bin/sh", "-c", "i=0; while [ $i -lt %d ]; do cat /blob; i=$((i+1)); done" % mib]
    stream_params = {"command": command, "root": roots["bwrapd"], "stdout": "stream", "stderr": "discard",
                     "readOnlyRoot": True, "env": {"PATH": PATH}}
    out_file = os.path.join(tmpdir, "stream-out")
    file_params = dict(stream_params, stdout={"file": out_file})
    inv = Invocation(next(iter(helpers.values())).call("sandbox/argv", dict(stream_params, root=roots["popen"], stdout="capture")))

    def stream(name):
        helper = helpers[name]
        got = [0]

        def on_output(message):
            if message["method"] != "sandbox/output":
                return
            p = message["params"]
            if "text" in p:
                got[0] += len(p["text"].encode("utf-8"))
            else:
                got[0] += len(base64.b64decode(p["base64"]))

        c, hc = time.process_time(), helper.cpu_seconds()
        t = time.perf_counter()
        result = helper.call("sandbox/run", stream_params, on_notification=on_output)
        elapsed = time.perf_counter() - t
        cpu[name + "_stream"] += helper.cpu_seconds() - hc + time.process_time() - c
        check_run(result, "stream")
        if got[0] != size:
            raise SystemExit("bench: stream mode delivered %d bytes, not %d" % (got[0], size))
        return size / elapsed / 1e6

    def to_file(name):
        helper = helpers[name]
        c, hc = time.process_time(), helper.cpu_seconds()
        t = time.perf_counter()
        result = helper.call("sandbox/run", file_params)
        elapsed = time.perf_counter() - t
        cpu[name + "_file"] += helper.cpu_seconds() - hc + time.process_time() - c
        check_run(result, "file")
        got = os.path.getsize(out_file)
        os.unlink(out_file)
        if got != size:
            raise SystemExit("bench: file mode wrote %d bytes, not %d" % (got, size))
        return size / elapsed / 1e6

    # The client's side alone: the frames the helper sends for the same bytes (64 KiB chunks, the
    # helper's pipe reads), written by `cat` from a cached file, read and decoded as stream() does.
    # What the Python client's JSON decoding allows, whatever helper sends the frames.
    frames_path = os.path.join(tmpdir, "stream-frames")
    with open(os.path.join(roots["bwrapd"], "blob"), "rb") as f:
        blob = f.read()
    with open(frames_path, "wb") as f:
        frames = [json.dumps({"jsonrpc": "2.0", "method": "sandbox/output", "params": {
            "sandboxId": "sb-1", "stream": "stdout", "text": blob[at:at + (1 << 16)].decode()}},
            separators=(",", ":")).encode() + b"\n" for at in range(0, len(blob), 1 << 16)]
        for _ in range(mib):
            f.writelines(frames)

    def client_alone():
        proc = subprocess.Popen(["cat", frames_path], stdout=subprocess.PIPE, bufsize=0)
        out = open(proc.stdout.fileno(), "rb", buffering=1 << 20, closefd=False)
        c = time.process_time()
        t = time.perf_counter()
        got = 0
        for line in iter(out.readline, b""):
            got += len(json.loads(line)["params"]["text"].encode("utf-8"))
        elapsed = time.perf_counter() - t
        cpu["client_alone"] += time.process_time() - c
        proc.wait()
        proc.stdout.close()
        if got != size:
            raise SystemExit("bench: the replayed frames held %d bytes, not %d" % (got, size))
        return size / elapsed / 1e6

    def popen_pipe():
        def reader(proc):
            fd = proc.stdout.fileno()
            n = 0
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                n += len(chunk)
            proc.stdout.close()
            return n

        c = time.process_time()
        t = time.perf_counter()
        got = popen_run(inv, stdout=subprocess.PIPE, reader=reader)
        elapsed = time.perf_counter() - t
        cpu["popen_pipe"] += time.process_time() - c
        if got != size:
            raise SystemExit("bench: Popen read %d bytes, not %d" % (got, size))
        return size / elapsed / 1e6

    contenders = []
    for name in helpers:
        contenders += [(name + "_stream", lambda name=name: stream(name)), (name + "_file", lambda name=name: to_file(name))]
    contenders += [("client_alone", client_alone), ("popen_pipe", popen_pipe)]
    rates = {name: [] for name, _ in contenders}
    cpu = {name: 0.0 for name, _ in contenders}
    for i in range(rounds):
        k = i % len(contenders)
        for name, fn in contenders[k:] + contenders[:k]:
            rates[name].append(fn())
    # CPU seconds per 100 MiB spent outside the sandbox: helper + client, or the Python reader
    os.unlink(frames_path)
    return {name: {"MB_per_s_median": statistics.median(v), "rounds": v,
                   "cpu_s_per_100MiB": cpu[name] / rounds * 100 / mib} for name, v in rates.items()} | {"bytes": size}


# --------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------

def verdict(ok):
    return "met" if ok else "**missed**"


def build_label(res, name):
    return {"native": "bwrapd native", "jvm": "bwrapd JVM"}.get(name, "bwrapd")


def report_markdown(res):
    m = res["machine"]
    lat = res["latency"]
    thr = res["throughput"]
    st = res["startup"]
    mem = res["memory"]
    stream = res["streaming"]
    names = list(m["builds"])
    lines = []
    add = lines.append
    add("# bwrapd benchmark results")
    add("")
    add("Generated by `/usr/bin/python3 bench/bench.py%s` on %s." % (" --quick" if res["quick"] else "", m["date"]))
    add("")
    add("| machine | |")
    add("| --- | --- |")
    add("| nproc | %s |" % m["nproc"])
    add("| CPU | %s |" % m["cpu"])
    add("| kernel | %s |" % m["kernel"])
    add("| bwrap | %s |" % m["bwrap"])
    add("| JDK | %s |" % m["jdk"])
    for name, build in m["builds"].items():
        size = " (%.1f MB)" % (build["size_bytes"] / 1e6) if build["size_bytes"] else ""
        add("| %s | `%s`: %s%s, version %s |" % (build_label(res, name), build["command"], build["label"], size,
                                                res.get("server_version")))
    add("| Python / BuildStream | %s / %s |" % (m["python"], m["buildstream"]))
    add("| user | uid %s, user namespaces %s |" % (m["uid"], m["userNamespaces"]))
    add("| load average (1 min) | %s at start, %s at end (other work was running on the machine) |"
        % (res["load"]["start"][0], res["load"]["end"][0]))
    add("")
    add("## 1. Latency of one `/bin/true` sandbox (busybox root, read-only, stdout/stderr discarded)")
    add("")
    add("%d runs each, interleaved; milliseconds from request to answer." % lat[names[0]]["n"]
        + (" The other contenders run bwrapd's argv less its `--seccomp` (the keyring filter bwrapd adds"
           " to every run, whose program only the helper holds)." if lat.get("seccomp_dropped") else ""))
    add("")
    add("| contender | median ms | p90 ms | mean ms | min ms |")
    add("| --- | ---: | ---: | ---: | ---: |")
    labels = {name: "%s `sandbox/run` (one helper)" % build_label(res, name) for name in names}
    labels.update({"popen": "Python `subprocess.Popen`, same bwrap argv",
                   "buildstream": "BuildStream 1.6 `SandboxBwrap.run()`",
                   "bare": "%s, bare root (removes /dev/*, /dev, /proc, /tmp after each run)" % build_label(res, lat["primary"]),
                   "floor": "floor (C): `bench/floor/run_floor.c`, same argv, a cgroup per run, both reaps",
                   "floor-nocgroup": "floor (C) without the cgroup",
                   "floor-rules": "floor (C) under bwrapd's rules: `run_floor --rules`, three threads, paths by descriptor, "
                                  "lease, watchdog, held init, poll loop, JSON lines"})
    for name in names + ["popen", "buildstream", "floor", "floor-nocgroup", "floor-rules", "bare"]:
        if name in lat:
            s = lat[name]
            add("| %s | %.2f | %.2f | %.2f | %.2f |" % (labels[name], s["median"], s["p90"], s["mean"], s["min"]))
    for name in names:
        s = lat["durationMs"][name]
        add("| (%s's own `durationMs`, inside the helper) | %.2f | %.2f | %.2f | %.2f |"
            % (build_label(res, name), s["median"], s["p90"], s["mean"], s["min"]))
    add("")
    for name in names:
        r_popen = lat[name]["median"] / lat["popen"]["median"]
        add("- %s / Popen: **%.3f** (median), %.3f (p90). Target <= 1.05: %s."
            % (build_label(res, name), r_popen, lat[name]["p90"] / lat["popen"]["p90"], verdict(r_popen <= 1.05)))
        if "buildstream" in lat:
            add("- %s / BuildStream: **%.3f** (median), %.3f (p90)." % (
                build_label(res, name), lat[name]["median"] / lat["buildstream"]["median"],
                lat[name]["p90"] / lat["buildstream"]["p90"]))
    if "native" in lat and "jvm" in lat:
        add("- native / JVM: **%.3f** (median). Target <= 1: %s." % (
            lat["native"]["median"] / lat["jvm"]["median"], verdict(lat["native"]["median"] <= lat["jvm"]["median"])))
    c = lat["cpu_ms_per_run"]
    parts = ["%s helper %.2f ms (%s+ its Python client %.2f ms)" % (
        build_label(res, name), c[name]["helper"],
        "%.2f ms on the bare root, " % c[name]["helper_bare"] if "helper_bare" in c[name] else "", c[name]["client"])
        for name in names]
    add("- CPU time of the orchestrating process per run (not bwrap's, not the command's): %s; Popen %.2f ms%s%s." % (
        "; ".join(parts), c["popen"], "; BuildStream %.2f ms" % c["buildstream"] if "buildstream" in c else "",
        "".join("; %s %.2f ms" % (label, c[key]) for key, label in (("floor", "floor (C)"),
                                                                     ("floor-nocgroup", "floor (C) without the cgroup"),
                                                                     ("floor-rules", "floor (C) under the rules"))
                if key in c)))
    if "floor" in lat:
        add("- floor (C) / Popen: **%.3f** (median): what the cgroup and the wait for the sandbox's init cost a "
            "helper that does nothing else. Helper CPU target <= 0.35 ms: floor %s (%.2f ms)." % (
                lat["floor"]["median"] / lat["popen"]["median"], verdict(c["floor"] <= 0.35), c["floor"]))
    if "floor-rules" in lat:
        add("- floor (C) under bwrapd's rules / Popen: **%.3f** (median), CPU %.2f ms a run: what a helper built "
            "to bwrapd's rules the plain way pays on this machine, before its language does anything." % (
                lat["floor-rules"]["median"] / lat["popen"]["median"], c["floor-rules"]))
    add("")
    add("## 2. Throughput (runs per second, same `/bin/true` run)")
    add("")
    add("| in flight | %s | Python threads doing Popen | %s | CPU ms per run: %s / Python |" % (
        " | ".join("%s (pipelined, one helper)" % build_label(res, n) for n in names),
        " | ".join("%s / Python" % build_label(res, n) for n in names),
        " / ".join("%s helper + client" % build_label(res, n) for n in names)))
    add("| ---: |%s ---: |%s ---: |" % (" ---: |" * len(names), " ---: |" * len(names)))
    for level, by in thr.items():
        p = by["popen"]["runs_per_s"]
        add("| %s | %s | %.1f | %s | %s / %.2f |" % (
            level, " | ".join("%.1f" % by[n]["runs_per_s"] for n in names), p,
            " | ".join("**%.2f**" % (by[n]["runs_per_s"] / p) for n in names),
            " / ".join("%.2f" % by[n]["cpu_ms_per_run"] for n in names), by["popen"]["cpu_ms_per_run"]))
    for level, by in thr.items():
        for name, what in (("floor", "floor (C)"), ("floor-rules", "floor (C) under bwrapd's rules")):
            if name in by:
                f = by[name]
                add("")
                add("- %s in flight, %s, one `run_floor` process per run in flight: %.1f runs/s, **%.2f** × Python, "
                    "CPU %.2f ms per run (the processes and this script)." % (
                        level, what, f["runs_per_s"], f["runs_per_s"] / by["popen"]["runs_per_s"], f["cpu_ms_per_run"]))
    add("")
    add("%d runs per contender and level. Target at 16 and 64 in flight >= 1.0 × Python: %s." % (
        next(iter(thr.values()))[names[0]]["runs"], "; ".join("%s at %s %s (%.2f)" % (
            build_label(res, n), level, verdict(by[n]["runs_per_s"] / by["popen"]["runs_per_s"] >= 1.0),
            by[n]["runs_per_s"] / by["popen"]["runs_per_s"]) for n in names for level, by in thr.items())))
    add("")
    add("## 3. Start-up (spawn to `initialize` response)")
    add("")
    add("| build | median ms | p90 ms | min ms | VmRSS after initialize | then the first `/bin/true` run |")
    add("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in names:
        for mode, label in ((name, "%s: %s" % (build_label(res, name), m["builds"][name]["label"])),
                            (name + "-no-aot", "%s without the AOT cache (`-XX:AOTMode=off`)" % build_label(res, name))):
            if mode in st:
                s = st[mode]
                add("| %s | %.0f | %.0f | %.0f | %.1f MiB | %.0f ms |" % (
                    label, s["median"], s["p90"], s["min"], s["VmRSS_KiB_median"] / 1024, s["first_run_ms_median"]))
    for name in names:
        if name + "-version" in st:
            s = st[name + "-version"]
            add("| %s alone: `--version` (the image and Quarkus start, then exit; no helper work) | %.0f | %.0f | %.0f | | |"
                % (build_label(res, name), s["median"], s["p90"], s["min"]))
    if "quarkus-floor" in st:
        s = st["quarkus-floor"]
        add("| Quarkus alone: bench/floor's binary answering one line (same Quarkus, toolchain and image flags; %.1f MB) "
            "| %.0f | %.0f | %.0f | %.1f MiB | |" % (s["size_bytes"] / 1e6, s["median"], s["p90"], s["min"],
                                                     s["VmRSS_KiB_median"] / 1024))
    if "jvm-floor" in st:
        s = st["jvm-floor"]
        add("| the JVM alone: `java -version`, same JDK and VM flags, no application | %.0f | %.0f | %.0f | | |"
            % (s["median"], s["p90"], s["min"]))
    add("")
    targets = {"native": 15, "jvm": 300}
    add("%d samples each. Targets: %s." % (st[names[0]]["n"], "; ".join(
        "%s < %d ms %s" % (build_label(res, n), targets.get(n, 300), verdict(st[n]["median"] <= targets.get(n, 300)))
        for n in names)))
    add("")
    add("## 4. Helper memory")
    add("")
    add("Idle and 16 running are measured on fresh helpers, before the other measurements.")
    add("")
    add("| build, when | VmRSS | VmHWM | RssAnon | RssFile |")
    add("| --- | ---: | ---: | ---: | ---: |")
    for name in names:
        for key, label in (("idle", "idle after `initialize`"), ("busy16", "16 sandboxes running"),
                           ("after", "idle after the benchmark")):
            v = mem[name][key]
            add("| %s, %s | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB |" % (
                build_label(res, name), label, v["VmRSS"] / 1024, v["VmHWM"] / 1024, v["RssAnon"] / 1024,
                v["RssFile"] / 1024))
    add("")
    targets = {"native": 20, "jvm": 48}
    add("Targets idle: %s." % "; ".join("%s < %d MiB %s" % (
        build_label(res, n), targets.get(n, 48), verdict(mem[n]["idle"]["VmRSS"] <= targets.get(n, 48) * 1024)) for n in names))
    add("")
    add("## 5. Streaming %d MiB of text on stdout (`cat` of a 1 MiB file in a loop)" % (stream["bytes"] // MiB))
    add("")
    add("| how | MB/s (median of %d) | CPU s per 100 MiB outside the sandbox |" % len(stream["popen_pipe"]["rounds"]))
    add("| --- | ---: | ---: |")
    rows = []
    for name in names:
        rows += [(name + "_stream", "%s `\"stream\"` (sandbox/output notifications, decoded by the client)" % build_label(res, name)),
                 (name + "_file", "%s `{\"file\": ...}` (the command writes the file)" % build_label(res, name))]
    rows.append(("client_alone", "the client alone: the same frames replayed by `cat`, read and decoded (no helper)"))
    rows.append(("popen_pipe", "Python Popen reading the pipe"))
    for key, label in rows:
        if key not in stream:
            continue
        add("| %s | %.0f | %.2f |" % (label, stream[key]["MB_per_s_median"], stream[key]["cpu_s_per_100MiB"]))
    add("")
    add("; ".join("%s stream / Popen pipe: %.2f, file / Popen pipe: %.2f" % (
        build_label(res, n), stream[n + "_stream"]["MB_per_s_median"] / stream["popen_pipe"]["MB_per_s_median"],
        stream[n + "_file"]["MB_per_s_median"] / stream["popen_pipe"]["MB_per_s_median"]) for n in names) + ".")
    if "client_alone" in stream:
        add("")
        add("The client alone / Popen pipe: %.2f: the most \"stream\" can reach with this client, whose JSON "
            "decoding of the frames is its own floor, on a machine where the helper and `cat` also need the CPUs." % (
                stream["client_alone"]["MB_per_s_median"] / stream["popen_pipe"]["MB_per_s_median"]))
    add("")
    add("Total benchmark time: %.0f s." % res["elapsed_s"])
    return "\n".join(lines) + "\n"


def plot(res, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib not installed (apt-get install python3-matplotlib): no plot", file=sys.stderr)
        return False
    lat, thr, st, stream, mem = res["latency"], res["throughput"], res["startup"], res["streaming"], res["memory"]
    builds = list(res["machine"]["builds"])
    short = {"native": "native", "jvm": "JVM", "bwrapd": "bwrapd"}
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    fig.suptitle("bwrapd benchmark — %s, %s CPUs, load %.1f→%.1f" % (res["machine"]["date"][:10], res["machine"]["nproc"],
                                                                      res["load"]["start"][0], res["load"]["end"][0]))

    ax = axes[0][0]
    labels = {n: "bwrapd\n" + short[n] for n in builds}
    labels.update({"popen": "Popen", "buildstream": "BuildStream", "bare": "bwrapd %s\nbare root" % short[lat["primary"]],
                   "floor": "floor (C)", "floor-rules": "floor (C)\nrules"})
    names = [n for n in builds + ["popen", "buildstream", "floor", "floor-rules", "bare"] if n in lat["raw"]]
    ax.boxplot([lat["raw"][n] for n in names], showfliers=False, whis=(10, 90))
    ax.set_xticks(range(1, len(names) + 1), [labels[n] for n in names])
    for i, n in enumerate(names, 1):
        ax.annotate("%.1f" % lat[n]["median"], (i, lat[n]["median"]), xytext=(22, 0), textcoords="offset points",
                    va="center", fontsize=9)
    ax.set_ylabel("ms per /bin/true sandbox")
    ax.set_title("1. latency, one run at a time (whiskers p10–p90)")

    ax = axes[0][1]
    levels = list(thr.keys())
    contenders = builds + ["popen"]
    width = 0.8 / len(contenders)
    for j, name in enumerate(contenders):
        ax.bar([i + (j - (len(contenders) - 1) / 2) * width for i in range(len(levels))],
               [thr[l][name]["runs_per_s"] for l in levels], width,
               label="bwrapd %s (pipelined)" % short[name] if name in builds else "Python threads + Popen")
    ax.set_xticks(range(len(levels)), ["%s in flight" % l for l in levels])
    ax.set_ylabel("runs / s")
    ax.set_title("2. throughput")
    ax.legend(loc="lower right")

    ax = axes[0][2]
    cpu = lat["cpu_ms_per_run"]
    bars = [("bwrapd %s\nhelper+client" % short[n], cpu[n]["helper"] + cpu[n]["client"]) for n in builds]
    bars.append(("Popen", cpu["popen"]))
    if "buildstream" in cpu:
        bars.append(("BuildStream", cpu["buildstream"]))
    if "floor" in cpu:
        bars.append(("floor (C)", cpu["floor"]))
    if "floor-rules" in cpu:
        bars.append(("floor (C)\nrules", cpu["floor-rules"]))
    ax.bar(range(len(bars)), [v for _, v in bars])
    ax.set_xticks(range(len(bars)), [k for k, _ in bars])
    ax.set_ylabel("CPU ms per run, outside bwrap")
    ax.set_title("1b. orchestrator CPU per /bin/true run")

    ax = axes[1][0]
    modes = [(n, short[n]) for n in builds] + [(n + "-no-aot", short[n] + "\nno AOT cache") for n in builds if n + "-no-aot" in st]
    ax.bar(range(len(modes)), [st[n]["median"] for n, _ in modes], color="tab:green")
    for i, (n, _) in enumerate(modes):
        ax.annotate("%.0f" % st[n]["median"], (i, st[n]["median"]), ha="center", va="bottom", fontsize=9)
    ax.set_yscale("log")
    ax.set_xticks(range(len(modes)), [label for _, label in modes])
    ax.set_ylabel("ms, spawn → initialize answered (median, log scale)")
    ax.set_title("3. start-up")

    ax = axes[1][1]
    keys = [("idle", "idle"), ("busy16", "16 running"), ("after", "after the bench")]
    width = 0.8 / len(builds)
    for j, name in enumerate(builds):
        ax.bar([i + (j - (len(builds) - 1) / 2) * width for i in range(3)], [mem[name][k]["VmRSS"] / 1024 for k, _ in keys],
               width, label="bwrapd " + short[name])
    ax.set_xticks(range(3), [label for _, label in keys])
    ax.set_ylabel("helper VmRSS, MiB")
    ax.set_title("4. memory")
    ax.legend()

    ax = axes[1][2]
    keys = [k for n in builds for k in (n + "_stream", n + "_file")] + ["popen_pipe"]
    ax.bar(range(len(keys)), [stream[k]["MB_per_s_median"] for k in keys])
    ax.set_xticks(range(len(keys)), [k.replace("_stream", "\nstream").replace("_file", "\nfile").replace("popen_pipe", "Popen\npipe")
                                     for k in keys])
    ax.set_ylabel("MB/s")
    ax.set_title("5. streaming %d MiB of stdout" % (stream["bytes"] // MiB))

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------------------------

DEVICES = ["full", "null", "urandom", "random", "zero"]


def make_root(path, prepared=True):
    """The busybox root of tools/make-rootfs.sh. Prepared: with /dev (and the device mount points),
    /proc and /tmp already there, as in a staged system root, so bwrap creates nothing in it and
    nothing has to be removed afterwards, whoever runs it (see docs/performance.md)."""
    subprocess.run([os.path.join(REPO, "tools", "make-rootfs.sh"), path], check=True)
    if prepared:
        for d in ("dev", "proc", "tmp"):
            os.makedirs(os.path.join(path, d), exist_ok=True)
        for device in DEVICES:
            open(os.path.join(path, "dev", device), "w").close()
        # 1 MiB of plain text lines, which the streaming measurement sends to stdout over and over
        line = b"bwrapd streaming benchmark: a line of plain ASCII text, like a build log\n"
        with open(os.path.join(path, "blob"), "wb") as f:
            f.write((line * (MiB // len(line) + 1))[:MiB])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a ~1-minute smoke run (fewer runs, 50 MB stream)")
    parser.add_argument("--helper", help="the one helper to run (default: both builds of this checkout that"
                                          " exist, the native binary and the JVM build)")
    parser.add_argument("--runs", type=int, help="latency runs per contender (default 500, quick 60)")
    parser.add_argument("--no-buildstream", action="store_true", help="skip BuildStream's SandboxBwrap")
    parser.add_argument("--max-load", type=float, default=1.5,
                        help="wait (up to --load-wait seconds) for the 1-minute load average to drop below this")
    parser.add_argument("--load-wait", type=float, default=60.0)
    parser.add_argument("--out", default=RESULTS, help="directory for latest.{md,json,png}")
    args = parser.parse_args()

    quick = args.quick
    runs = args.runs or (60 if quick else 500)
    warmup = 10 if quick else 30
    throughput_total = 96 if quick else 800
    throughput_rounds = 2 if quick else 4
    startup_samples = 5 if quick else 15
    stream_mib = 50 if quick else 200
    stream_rounds = 1 if quick else 3
    builds = find_builds(args.helper)

    park_fd3()
    print("bench: waiting for a quiet machine (load <= %.2f, at most %.0f s)" % (args.max_load, args.load_wait), flush=True)
    load_start = wait_for_quiet(args.max_load, args.load_wait)
    print("bench: load average %s" % load_start, flush=True)
    began = time.perf_counter()
    tmpdir = tempfile.mkdtemp(prefix="bwrapd-bench-")
    os.chmod(tmpdir, 0o755)
    res = {"quick": quick, "load": {"start": load_start}}
    helpers = {}
    try:
        roots = {"bwrapd": os.path.join(tmpdir, "root-bwrapd"), "popen": os.path.join(tmpdir, "root-popen"),
                 "bare": os.path.join(tmpdir, "root-bare")}
        for name, root in roots.items():
            make_root(root, prepared=name != "bare")
        bst = None
        if not args.no_buildstream:
            os.makedirs(os.path.join(tmpdir, "buildstream"))
            make_root(os.path.join(tmpdir, "buildstream", "root"))
            bst = BuildStreamSandbox(os.path.join(tmpdir, "buildstream"))
            roots["buildstream"] = bst.root

        print("bench: 3. start-up (%d samples per mode)" % startup_samples, flush=True)
        res["startup"] = bench_startup(builds, startup_samples, roots["bwrapd"])

        res["memory"] = {}
        for build in builds:
            helper = helpers[build.name] = build.start()
            init = helper.call("initialize", {"clientName": "bench"})
            res["machine"] = machine(builds, init)
            res["server_version"] = init.get("serverVersion")
            time.sleep(1.0)
            res["memory"][build.name] = {"idle": helper.memory()}
            print("bench: 4. memory of %s with 16 sandboxes running" % build.name, flush=True)
            res["memory"][build.name]["busy16"] = bench_memory_under_load(helper, roots["bwrapd"], 16)

        floor_binary = build_run_floor(tmpdir)
        cgroup = init["capabilities"].get("cgroup") or {}
        cgroup_base = cgroup.get("path") if cgroup.get("available") else None
        res["floor"] = {"cgroup": cgroup_base}

        print("bench: 1. latency (%d runs per contender, interleaved)" % runs, flush=True)
        res["load"]["latency"] = loadavg()
        res["latency"] = bench_latency(helpers, roots, bst, runs, warmup, floor_binary, cgroup_base)

        print("bench: 2. throughput (%d runs per contender and level)" % throughput_total, flush=True)
        res["load"]["throughput"] = loadavg()
        res["throughput"] = bench_throughput(helpers, roots, [16, 64], throughput_total, throughput_rounds,
                                             floor_binary, cgroup_base)

        print("bench: 5. streaming %d MiB (%d rounds)" % (stream_mib, stream_rounds), flush=True)
        res["load"]["streaming"] = loadavg()
        res["streaming"] = bench_streaming(helpers, roots, stream_mib, stream_rounds, tmpdir)
        time.sleep(1.0)
        for name, helper in helpers.items():
            res["memory"][name]["after"] = helper.memory()
    finally:
        for helper in helpers.values():
            helper.close()
        shutil.rmtree(tmpdir, ignore_errors=True)
    res["load"]["end"] = loadavg()
    res["elapsed_s"] = time.perf_counter() - began

    os.makedirs(args.out, exist_ok=True)
    markdown = report_markdown(res)
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write(markdown)
    with open(os.path.join(args.out, "latest.json"), "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    plot(res, os.path.join(args.out, "latest.png"))
    print()
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
