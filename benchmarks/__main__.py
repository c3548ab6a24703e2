"""`python -m benchmarks [--quick] [--only S1,S5-null] [--json FILE]`: scheduling throughput and latency.

Starts its own local cluster (a master with a journal, 2 workers x 4 slots), runs each shape once to
warm up and then RUNS times, and prints min / median / max. Shapes marked "null" use the workers'
benchmark-only null executor (jobs reported done without running), so the figure is the scheduler and
the wire alone; "real" shapes run real scripts (Python; S2-sh a shell script). `--only` runs the shapes whose names start with
one of the given prefixes (S5 covers S5-null, S5-real and their p99), e.g. for A/B runs of one change.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import itertools
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List

import psutil

from benchmarks import echo
from titan.cluster import LocalCluster, WorkerSpec
from titan_sdk import TitanJob

RUNS = 3          # measured runs per shape, after one warm-up
QUICK_RUNS = 1


@dataclass
class Sizes:
    independent: int = 10_000     # S1
    real_jobs: int = 500          # S2
    chain: int = 200              # S3
    fan: int = 1_000              # S4
    single_runs: int = 50         # S5
    store_ops: int = 5_000        # S6, per client thread
    huge_dag: int = 100_000       # S7
    layer: int = 1_000            # S7


# --quick checks that every shape runs, in seconds; its figures are not measurements.
QUICK = Sizes(independent=200, real_jobs=20, chain=10, fan=40, single_runs=5, store_ops=200,
              huge_dag=2_000, layer=200)


class Bench:
    """One cluster, and the shapes that run on it."""

    def __init__(self, cluster: LocalCluster, sizes: Sizes, script: str):
        self.cluster, self.sizes, self.script = cluster, sizes, script
        self.client = cluster.client(timeout=600)
        self.counter = 0

    def ids(self, count: int, prefix: str) -> List[str]:
        self.counter += 1
        return [f"{prefix}{self.counter}_{i}" for i in range(count)]

    def run_dag(self, jobs: List[TitanJob]) -> float:
        started = time.perf_counter()
        self.client.submit_dag(jobs[0].job_id + "_dag", jobs)
        states = self.client.wait([job.job_id for job in jobs], timeout=1200)
        elapsed = time.perf_counter() - started
        failed = [job_id for job_id, state in states.items() if state != "COMPLETED"]
        if failed:
            raise RuntimeError(f"{len(failed)} benchmark jobs did not complete, e.g. {failed[:3]}")
        return elapsed

    def independent(self, count: int) -> float:
        """jobs/s from submitting the first to seeing the last complete."""
        return count / self.run_dag([TitanJob(i, self.script) for i in self.ids(count, "s1_")])

    def chain(self) -> float:
        """ms per link of a chain where each job's parent is the one before."""
        ids = self.ids(self.sizes.chain, "s3_")
        jobs = [TitanJob(job_id, self.script, parents=[ids[n - 1]] if n else None) for n, job_id in enumerate(ids)]
        return self.run_dag(jobs) * 1000 / len(jobs)

    def fan(self) -> float:
        """seconds for 1 root -> N parallel -> 1 collector."""
        root, *middle, collector = self.ids(self.sizes.fan + 2, "s4_")
        jobs = [TitanJob(root, self.script), *[TitanJob(m, self.script, parents=[root]) for m in middle],
                TitanJob(collector, self.script, parents=middle)]
        return self.run_dag(jobs)

    def single(self) -> List[float]:
        """ms from submitting one job to seeing it COMPLETED, several times in a row."""
        latencies = []
        for job_id in self.ids(self.sizes.single_runs, "s5_"):
            started = time.perf_counter()
            self.client.submit_job(TitanJob(job_id, self.script))
            if self.client.wait(job_id, timeout=60) != "COMPLETED":
                raise RuntimeError(f"{job_id} did not complete")
            latencies.append((time.perf_counter() - started) * 1000)
        return latencies

    def store(self, threads: int) -> float:
        """TitanStore put-then-get operations per second, with `threads` clients in parallel, timed from
        when all of them are connected."""
        per_thread = self.sizes.store_ops // threads
        names = itertools.count()

        def work(ready: threading.Barrier) -> None:
            index = next(names)
            with self.cluster.client(timeout=60) as client:
                client.store_get(f"bench/{index}/connect")
                ready.wait()
                for n in range(per_thread // 2):
                    client.store_put(f"bench/{index}/{n}", "v")
                    client.store_get(f"bench/{index}/{n}")

        return (per_thread // 2) * 2 * threads / echo.timed_threads(threads, work)

    def huge_dag(self) -> Dict[str, float]:
        """Seconds to accept one DAG of many layered jobs, and the master's RSS after."""
        ids = self.ids(self.sizes.huge_dag, "s7_")
        layer = self.sizes.layer
        jobs = [TitanJob(job_id, self.script, parents=[ids[n - layer]] if n >= layer else None)
                for n, job_id in enumerate(ids)]
        started = time.perf_counter()
        self.client.submit_dag(ids[0] + "_dag", jobs)
        seconds = time.perf_counter() - started
        rss_mb = psutil.Process(self.cluster.master.pid).memory_info().rss / 2**20
        self.client.cancel_dag(ids[0] + "_dag")
        return {"seconds": seconds, "rss-mb": rss_mb}


# Shape-name prefixes to run (--only); empty: all of them.
ONLY: List[str] = []
NULL_SHAPES = ("S1-null", "S3-null", "S4-null", "S5-null", "S5-null-p99", "S6-1", "S6-5", "S6-echo-1",
               "S6-echo-5", "S7-seconds", "S7-rss-mb")
REAL_SHAPES = ("S1-real", "S2", "S2-sh", "S3-real", "S4-real", "S5-real", "S5-real-p99")


def wanted(*shapes: str) -> bool:
    return not ONLY or any(shape.startswith(prefix) for shape in shapes for prefix in ONLY)


def measure(run: Callable[[], Dict[str, float]], results: Dict[str, List[float]], runs: int,
            shapes: tuple = ()) -> None:
    """Run once to warm up, then `runs` times; each run gives one figure per shape key. Skipped unless
    one of `shapes` (the keys it gives) is wanted."""
    if shapes and not wanted(*shapes):
        return
    run()
    labels: List[str] = []
    for _ in range(runs):
        for label, value in run().items():
            results.setdefault(label, []).append(value)
            labels += [label] if label not in labels else []
    for label in labels:
        print(f"  {label:<12} {summary(results[label])}  {unit(label)}", flush=True)


def summary(values: List[float]) -> str:
    return f"min {min(values):10.2f}   median {statistics.median(values):10.2f}   max {max(values):10.2f}"


def run_cluster(executor: str, sizes: Sizes, script: str, data_dir: str, results: Dict[str, List[float]],
                runs: int) -> None:
    workers = [WorkerSpec(f"bench-{n}", slots=4, extra_args=("--executor", executor)) for n in (1, 2)]
    kind = "null" if executor == "null" else "real"
    with LocalCluster(workers=workers, data_dir=data_dir) as cluster:
        bench = Bench(cluster, sizes, script)
        print(f"{kind} jobs ({'null executor: benchmark only, nothing runs' if kind == 'null' else 'print(ok)'}):")
        measure(lambda: {f"S1-{kind}": bench.independent(sizes.independent)}, results, runs, (f"S1-{kind}",))
        if kind == "real":
            measure(lambda: {"S2": bench.independent(sizes.real_jobs)}, results, runs, ("S2",))
            shell = Bench(cluster, sizes, _shell_script(os.path.dirname(script)))
            measure(lambda: {"S2-sh": shell.independent(sizes.real_jobs)}, results, runs, ("S2-sh",))
            shell.client.close()
        measure(lambda: {f"S3-{kind}": bench.chain()}, results, runs, (f"S3-{kind}",))
        measure(lambda: {f"S4-{kind}": bench.fan()}, results, runs, (f"S4-{kind}",))
        measure(lambda: _latencies(kind, bench.single()), results, runs, (f"S5-{kind}", f"S5-{kind}-p99"))
        if kind == "null":
            measure(lambda: {"S6-1": bench.store(1)}, results, runs, ("S6-1",))
            measure(lambda: {"S6-5": bench.store(5)}, results, runs, ("S6-5",))
            if wanted("S6-echo-1", "S6-echo-5"):
                print("the ceiling under S6 (bare ZeroMQ echo, same clients; see benchmarks/echo.py):")
            measure(lambda: {"S6-echo-1": echo.round_trips_per_second(1, sizes.store_ops)}, results, runs,
                    ("S6-echo-1",))
            measure(lambda: {"S6-echo-5": echo.round_trips_per_second(5, sizes.store_ops)}, results, runs,
                    ("S6-echo-5",))
        bench.client.close()
    if kind == "null":   # each S7 run gets a fresh master, so its RSS is that of one huge DAG
        measure(lambda: huge_dag_on_fresh_cluster(workers, sizes, script, data_dir), results, runs,
                ("S7-seconds", "S7-rss-mb"))


def _shell_script(folder: str) -> str:
    """S2-sh's job: a `.sh` script (`echo ok`), which every worker runs as a new process."""
    path = os.path.join(folder, "ok.sh")
    with open(path, "w") as handle:
        handle.write("echo ok\n")
    return path


def huge_dag_on_fresh_cluster(workers: List[WorkerSpec], sizes: Sizes, script: str, data_dir: str) -> Dict[str, float]:
    with LocalCluster(workers=workers, data_dir=tempfile.mkdtemp(dir=os.path.dirname(data_dir))) as cluster:
        bench = Bench(cluster, sizes, script)
        try:
            return {f"S7-{key}": value for key, value in bench.huge_dag().items()}
        finally:
            bench.client.close()


def _latencies(kind: str, values: List[float]) -> Dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {f"S5-{kind}": statistics.median(values), f"S5-{kind}-p99": p99}


UNITS = {"S1": "jobs/s", "S2": "jobs/s", "S3": "ms/link", "S4": "s", "S5": "ms", "S6": "ops/s",
         "S7-seconds": "s", "S7-rss-mb": "MB"}


def unit(shape: str) -> str:
    return UNITS.get(shape, UNITS.get(shape[:2], ""))



def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a measurement")
    parser.add_argument("--json", metavar="FILE", help="also write {shape: {min, median, max, unit}} here")
    parser.add_argument("--only", metavar="SHAPES", default="",
                        help="comma-separated shape-name prefixes to run, e.g. S1,S5-null (default: all)")
    parser.add_argument("--peers", action="store_true",
                        help="instead: shapes T1-T5 of real work on Titan (each isolation), Ray and Dask")
    parser.add_argument("--runs", type=int, default=None, help="with --peers, measured runs per shape (default 3)")
    parser.add_argument("--systems", metavar="NAME[,NAME]",
                        help="with --peers, only these: titan, titan-pool, titan-fork, titan-process, ray, dask")
    args = parser.parse_args(argv)
    if args.peers:
        return peers_main(args)
    ONLY[:] = [prefix.strip() for prefix in args.only.split(",") if prefix.strip()]
    sizes, runs = (QUICK, QUICK_RUNS) if args.quick else (Sizes(), RUNS)
    print(f"Titan benchmarks{' (--quick: a smoke run, not a measurement)' if args.quick else ''}: "
          f"{os.cpu_count()} CPUs, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"master journal on; 2 workers x 4 slots; {runs} run(s) per shape after a warm-up")
    results: Dict[str, List[float]] = {}
    with tempfile.TemporaryDirectory(prefix="titan-bench-") as scratch:
        script = os.path.join(scratch, "ok.py")
        with open(script, "w") as handle:
            handle.write("print('ok')\n")
        for executor, shapes in (("null", NULL_SHAPES), ("fork", REAL_SHAPES)):
            if wanted(*shapes):
                run_cluster(executor, sizes, script, os.path.join(scratch, f"data-{executor}"), results, runs)
    table = {shape: {"min": min(v), "median": statistics.median(v), "max": max(v), "unit": unit(shape)}
             for shape, v in results.items()}
    print_table(table)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(table, handle, indent=2)
    return 0


def peers_main(args) -> int:
    from benchmarks import peers   # it imports this module's Bench

    sizes = peers.QUICK_PEERS if args.quick else peers.PeerSizes()
    sizes = dataclasses.replace(sizes, runs=args.runs or sizes.runs)
    systems = [s.strip() for s in args.systems.split(",")] if args.systems else None
    print(f"Titan and its peers{' (--quick: a smoke run, not a measurement)' if args.quick else ''}: "
          f"{os.cpu_count()} CPUs, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"8 slots each; median of {sizes.runs} run(s) per shape after a warm-up")
    with tempfile.TemporaryDirectory(prefix="titan-peers-") as scratch:
        results = peers.run(sizes, scratch, systems)
    print()
    print(peers.table(results))
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


def print_table(table: Dict[str, dict]) -> None:
    print(f"\n{'shape':<12} {'min':>12} {'median':>12} {'max':>12}  unit")
    for shape in sorted(table):
        row = table[shape]
        print(f"{shape:<12} {row['min']:>12.2f} {row['median']:>12.2f} {row['max']:>12.2f}  {row['unit']}")


if __name__ == "__main__":
    sys.exit(main())
