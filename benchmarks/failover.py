"""`python -m benchmarks.failover [--quick] [--runs N]`: masters sharing a PostgreSQL journal.

Starts its own PostgreSQL 15 server in a temp folder (tests/postgres/pg_server.py: as the `postgres`
user when run as root), then measures
- takeover: from kill -9 of the leader to the first job (print('ok'), submitted right after the kill)
  completed under the new leader, with the default --lease-timeout and heartbeats: an upper bound of
  "to the first job dispatched";
- S1-null and S5-null (see benchmarks/__main__.py) with the PostgreSQL journal, beside the SQLite one:
  PostgreSQL as it comes (every commit flushed to disk), with synchronous_commit=off set in the URL, and
  a second server with its data folder in /dev/shm (tmpfs: a flush costs nothing, as on a server whose
  storage acknowledges flushes at once, e.g. NVMe with power-loss protection; not this disk's figure);
- the disk's flush time as PostgreSQL's pg_test_fsync measures it (fdatasync of one 8 kB write), before
  and after, since it varies with what else writes to the disk.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

from benchmarks.__main__ import QUICK, Bench, Sizes, summary
from tests.postgres.ha import SharedJournalCluster
from tests.postgres.pg_server import (PG_BIN, SERVER_USER, PostgresServer, missing_reason, remove,
                                      wait_for_connection)
from titan import defaults
from titan.cluster import LocalCluster, WorkerSpec
from titan_sdk import TitanJob


def takeover_seconds(url: str, log_dir: str, script: str) -> float:
    cluster = SharedJournalCluster(url, log_dir, masters=2, lease_timeout=defaults.LEASE_TIMEOUT_S,
                                   heartbeat=defaults.HEARTBEAT_INTERVAL_S, dead_after=defaults.WORKER_DEAD_AFTER_S)
    try:
        cluster.start(workers=0)
        cluster.start_worker("bench-1")
        with cluster.client(timeout=60) as client:
            wait_for(lambda: len(client.stats()["workers"]) == 1)
            client.submit_job(TitanJob(f"warm-{time.time_ns()}", script))
            leader = cluster.leader_port()
            killed_at = time.perf_counter()
            cluster.masters[leader].kill()
            job_id = f"first-{time.time_ns()}"
            client.submit_job(TitanJob(job_id, script))   # retried until the new leader takes it
            if client.wait(job_id, timeout=60) != "COMPLETED":
                raise RuntimeError("the first job after the takeover did not complete")
            return time.perf_counter() - killed_at
    finally:
        cluster.stop()


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the cluster did not come up")
        time.sleep(0.05)


def null_shapes(sizes: Sizes, script: str, master_args: tuple, data_dir, runs: int) -> Dict[str, List[float]]:
    workers = [WorkerSpec(f"bench-{n}", slots=4, extra_args=("--executor", "null")) for n in (1, 2)]
    results: Dict[str, List[float]] = {"S1-null": [], "S5-null": []}
    with LocalCluster(workers=workers, data_dir=data_dir, master_args=master_args) as cluster:
        bench = Bench(cluster, sizes, script)
        bench.independent(sizes.independent)   # warm-up
        for _ in range(runs):
            results["S1-null"].append(bench.independent(sizes.independent))
            results["S5-null"].append(statistics.median(bench.single()))
        bench.client.close()
    return results


def flush_microseconds(folder: str) -> str:
    """fdatasync of one 8 kB write in `folder`, as pg_test_fsync measures it ("?" if it cannot)."""
    prefix = ["runuser", "-u", SERVER_USER, "--"] if os.geteuid() == 0 else []
    done = subprocess.run([*prefix, os.path.join(PG_BIN, "pg_test_fsync"), "-s", "1", "-f",
                           os.path.join(folder, "fsync-test")], capture_output=True, text=True, timeout=120)
    found = re.search(r"^\s*fdatasync\s+[\d.]+ ops/sec\s+(\d+) usecs/op", done.stdout, re.MULTILINE)
    return found.group(1) if found else "?"


def new_database(server: PostgresServer, name: str) -> str:
    import psycopg
    with psycopg.connect(server.url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return server.url.rsplit("/", 1)[0] + f"/{name}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.failover", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a measurement")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    reason = missing_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    sizes = QUICK if args.quick else Sizes()
    scratch = tempfile.mkdtemp(prefix="titan-bench-failover-")
    pg_folder = tempfile.mkdtemp(prefix="titan-pg-")   # its own: the server's user must reach it
    server = PostgresServer(pg_folder, durable=True).start()   # PostgreSQL's defaults: fsync on every commit
    in_memory = PostgresServer(tempfile.mkdtemp(prefix="titan-pg-", dir="/dev/shm"), durable=True)
    try:
        in_memory.start()
        wait_for_connection(server.url)
        wait_for_connection(in_memory.url)
        print(f"disk flush (pg_test_fsync, fdatasync of 8 kB): {flush_microseconds(pg_folder)} us", flush=True)
        script = os.path.join(scratch, "ok.py")
        with open(script, "w") as handle:
            handle.write("print('ok')\n")
        print(f"{os.cpu_count()} CPUs, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"{args.runs} run(s) per figure; lease timeout {defaults.LEASE_TIMEOUT_S}s")
        takeovers = [takeover_seconds(new_database(server, f"takeover{n}"), os.path.join(scratch, f"logs{n}"),
                                      script) for n in range(args.runs)]
        print(f"  takeover      {summary(takeovers)}  s (kill -9 of the leader -> first job completed by the new one)")
        # The last: each commit returns before its WAL is flushed (a crash of PostgreSQL itself may take
        # back the last fraction of a second, as an OS crash may with SQLite's synchronous=NORMAL).
        asynchronous = new_database(server, "asynchronous") + "?options=-c%20synchronous_commit%3Doff"
        for label, master_args, data_dir in (
                ("sqlite", (), os.path.join(scratch, "data")),
                ("postgresql", ("--journal", new_database(server, "throughput")), None),
                ("pg-async", ("--journal", asynchronous), None),
                ("pg-tmpfs", ("--journal", new_database(in_memory, "in_memory")), None)):
            for shape, values in null_shapes(sizes, script, master_args, data_dir, args.runs).items():
                print(f"  {shape:<8} {label:<10} {summary(values)}  {'jobs/s' if shape == 'S1-null' else 'ms'}",
                      flush=True)
        print(f"disk flush (pg_test_fsync, fdatasync of 8 kB): {flush_microseconds(pg_folder)} us; pg-tmpfs: "
              "PostgreSQL with its data in /dev/shm (RAM), i.e. a free flush, NOT this disk")
    finally:
        server.stop("immediate")
        in_memory.stop("immediate")
        remove(pg_folder)
        remove(in_memory.folder)
        remove(scratch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
