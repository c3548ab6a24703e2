"""`python -m benchmarks.master_cpu [--jobs 10000] [--runs 3]`: S1-null's jobs/s and the master's CPU per job.

On a shared machine jobs/s follows the load more than the code; the CPU time the master process spends
per job (user + system, all its threads, from psutil) moves far less, so it is what an A/B of a change to
the master's hot path compares (alternate runs of the two trees, PYTHONPATH=tree). One cluster as
`python -m benchmarks` starts it (journal on, 2 workers x 4 null slots), one warm-up, then --runs
submissions of --jobs independent jobs; prints each run and the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

import psutil

from benchmarks.__main__ import Bench, Sizes
from titan.cluster import LocalCluster, WorkerSpec


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.master_cpu", description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="independent null jobs per run (default 10000)")
    parser.add_argument("--runs", type=int, default=3, help="measured runs after the warm-up (default 3)")
    args = parser.parse_args(argv)
    workers = [WorkerSpec(f"bench-{n}", slots=4, extra_args=("--executor", "null")) for n in (1, 2)]
    with tempfile.TemporaryDirectory(prefix="titan-bench-") as scratch:
        script = os.path.join(scratch, "ok.py")
        with open(script, "w") as handle:
            handle.write("print('ok')\n")
        with LocalCluster(workers=workers, data_dir=os.path.join(scratch, "data")) as cluster:
            bench, master = Bench(cluster, Sizes(), script), psutil.Process(cluster.master.pid)
            bench.independent(args.jobs)   # warm-up
            rates, cpu_us = [], []
            for run in range(1, args.runs + 1):
                before = master.cpu_times()
                rates.append(bench.independent(args.jobs))
                after = master.cpu_times()
                cpu_us.append((after.user - before.user + after.system - before.system) / args.jobs * 1e6)
                print(f"run {run}: {rates[-1]:,.0f} jobs/s, master CPU {cpu_us[-1]:.1f} us/job "
                      f"(load average {os.getloadavg()[0]:.2f})", flush=True)
    print(f"median: {statistics.median(rates):,.0f} jobs/s, master CPU {statistics.median(cpu_us):.1f} us/job")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
