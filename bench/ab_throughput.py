#!/usr/bin/python3
"""A/B throughput of builds of the helper, for one change (docs/performance.md, "Latest
results"). Not the benchmark: bench/bench.py is.

Usage: /usr/bin/python3 bench/ab_throughput.py IN_FLIGHT HELPER [HELPER ...]

Each helper (a native binary, or ./bwrapd) runs the same /bin/true sandbox in a prepared busybox
root with IN_FLIGHT requests pipelined (bench.py's bwrapd_pipelined), 8 rounds of 400 runs,
the helpers' order swapped every round so the machine's noise hits every one alike. Prints each
helper's runs per second over all rounds, its CPU per run (all its threads and its watchdog) and
each round's rate.
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

ROUNDS, PER_ROUND = 8, 400


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    level = int(sys.argv[1])
    exes = [os.path.abspath(exe) if os.sep in exe else exe for exe in sys.argv[2:]]  # the helpers start in /
    tmpdir = tempfile.mkdtemp(prefix="bwrapd-ab-")
    helpers = []
    try:
        root = os.path.join(tmpdir, "root")
        bench.make_root(root)
        bench.park_fd3()
        for exe in exes:
            helper = bench.Helper([exe])
            helper.call("initialize", {})
            helpers.append(helper)
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
        print("%d in flight, load %.1f" % (level, bench.loadavg()[0]))
        for exe in exes:
            v = rates[exe]
            print("%s: %.1f runs/s, helper CPU %.2f ms a run; rounds %s" % (
                exe, len(v) / sum(1.0 / x for x in v), cpu[exe] * 1000 / (PER_ROUND * len(v)), " ".join("%.0f" % x for x in v)))
    finally:
        for helper in helpers:
            helper.close()
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    main()
