#!/usr/bin/python3
"""A/B latency or throughput of builds of the helper, for one change (docs/performance.md,
"Where a run's latency goes", "Latest results"). Not the benchmark: bench/bench.py is.

Usage: /usr/bin/python3 bench/ab.py RUNS HELPER [HELPER ...]
       /usr/bin/python3 bench/ab.py --throughput IN_FLIGHT HELPER [HELPER ...]

Each helper (a native binary, or ./bwrapd) runs the same /bin/true sandbox in a prepared busybox
root, interleaved round by round with Python's Popen of the same bwrap argv (bench.py's
contenders), so the machine's noise hits every one alike. Prints the median milliseconds from
request to answer, the ratio to Popen, the helper's CPU per run (all its threads and its
watchdog) and the median durationMs the helper reports (its run alone, without the request's
parsing, the hand-offs and the pipes).

With --throughput, each helper runs the same sandbox with IN_FLIGHT requests pipelined
(bench.py's bwrapd_pipelined), 8 rounds of 400 runs, the helpers' order swapped every round.
Prints each helper's runs per second over all rounds, its CPU per run and each round's rate.
"""
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    args = sys.argv[1:]
    throughput = args[:1] == ["--throughput"]
    if throughput:
        args = args[1:]
    if len(args) < 2:
        raise SystemExit(__doc__)
    count = int(args[0])
    exes = [os.path.abspath(exe) if os.sep in exe else exe for exe in args[1:]]  # the helpers start in /
    tmpdir = tempfile.mkdtemp(prefix="bwrapd-ab-")
    helpers = []
    try:
        root = os.path.join(tmpdir, "root")
        bench.make_root(root)
        bench.park_fd3()
        for exe in exes:
            helpers.append(bench.Helper([exe]))
        (compare_throughput if throughput else compare)(count, exes, helpers, root)
    finally:
        for helper in helpers:
            helper.close()
        shutil.rmtree(tmpdir, ignore_errors=True)


def compare(runs, exes, helpers, root):
    for helper in helpers:
        helper.call("initialize", {})
    params = bench.run_params(root)
    inv = bench.Invocation(helpers[0].call("sandbox/argv", params))
    durations = {exe: [] for exe in exes}

    def through(helper, exe):
        def run():
            result = helper.call("sandbox/run", params)
            bench.check_run(result, exe)
            durations[exe].append(result["durationMs"])
        return run

    contenders = [(exe, through(h, exe)) for h, exe in zip(helpers, exes)] + [("popen", lambda: bench.popen_run(inv))]
    for _ in range(30):  # warm-up
        for _, run in contenders:
            run()
    for values in durations.values():
        values.clear()
    times = {name: [] for name, _ in contenders}
    cpu_before = [h.cpu_seconds() for h in helpers]
    # Every order in turn, not a rotation: rotated, the helper after Popen in the list follows it in
    # two rounds of three and pays for what Popen leaves running (its sandbox's init and teardown,
    # which Popen does not wait for): the same binary named twice was 0.1-0.25 x Popen slower first.
    orders = list(itertools.permutations(contenders))
    for i in range(runs):
        for name, run in orders[i % len(orders)]:
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) * 1000)
    cpu = [(h.cpu_seconds() - before) * 1000 / runs for h, before in zip(helpers, cpu_before)]
    popen = statistics.median(times["popen"])
    print("popen: %.3f ms (load %.1f)" % (popen, os.getloadavg()[0]))
    for exe, cpu_ms in zip(exes, cpu):
        median = statistics.median(times[exe])
        print("%s: %.3f ms, %.3f x Popen, helper CPU %.2f ms a run, durationMs %.3f"
              % (exe, median, median / popen, cpu_ms, statistics.median(durations[exe])))


ROUNDS, PER_ROUND = 8, 400


def compare_throughput(level, exes, helpers, root):
    for helper in helpers:
        helper.call("initialize", {})
    params = bench.run_params(root)
    for helper in helpers:  # warm-up
        bench.bwrapd_pipelined(helper, params, 200, level)
    rates = {exe: [] for exe in exes}
    cpu = dict.fromkeys(exes, 0.0)
    for r in range(ROUNDS):
        pairs = list(zip(exes, helpers))
        for exe, helper in (pairs if r % 2 == 0 else pairs[::-1]):
            before = helper.cpu_seconds()
            rates[exe].append(bench.bwrapd_pipelined(helper, params, PER_ROUND, level))
            cpu[exe] += helper.cpu_seconds() - before
    print("%d in flight (load %.1f)" % (level, os.getloadavg()[0]))
    for exe in exes:
        v = rates[exe]
        print("%s: %.1f runs/s, helper CPU %.2f ms a run; rounds %s" % (
            exe, len(v) / sum(1.0 / x for x in v), cpu[exe] * 1000 / (PER_ROUND * len(v)), " ".join("%.0f" % x for x in v)))


if __name__ == "__main__":
    main()
