"""`titan up` and `titan demo`: an embedded local cluster on this machine, and a small DAG run on one."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from typing import List

from titan import defaults
from titan.cli.common import CommandError, stop_on_ctrl_c
from titan.cli.pipelines import follow_dag, print_logs
from titan.cluster import LocalCluster, WorkerSpec, ports_in_use

DEMO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "demo")
DEMO_SHARDS = 5


def add_commands(commands) -> None:
    up = commands.add_parser("up", help="run a master and workers on this machine until Ctrl-C",
                             description="Run an embedded local cluster: a master and workers as child "
                                         "processes on loopback. Ctrl-C stops all of it.")
    up.add_argument("--workers", type=int, default=2, help="general-purpose workers (default %(default)s)")
    up.add_argument("--cap", action="append", default=[], metavar="TAG",
                    help="also start one worker offering TAG (repeat, or comma-separate: --cap GPU,HIGH_MEM)")
    up.add_argument("--slots", type=int, default=2, help="jobs each worker runs at once (default %(default)s)")
    up.add_argument("--port", type=int, default=defaults.DEFAULT_PORT,
                    help="master base port; uses PORT..PORT+3 (default %(default)s)")
    up.add_argument("--data-dir", default=None, help="passed to the master")
    up.add_argument("--keys", default=None, metavar="DIR",
                    help="key directory from `titan keys init`: CURVE for the master, its workers and clients")
    up.set_defaults(run=run_up)

    demo = commands.add_parser("demo", help="start a local cluster, run a small DAG on it, show what happens",
                               description="Starts a local cluster on free ports, submits a fan-out DAG with "
                                           "a GPU-routed job, prints each state change and the logs, and "
                                           "exits 0 when every job completed.")
    demo.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the DAG")
    demo.set_defaults(run=run_demo)


def run_up(args) -> int:
    busy = ports_in_use("127.0.0.1", args.port)
    if busy:
        raise CommandError(f"port {', '.join(map(str, busy))} on 127.0.0.1 is already in use (another titan up or "
                           f"master?): stop it, or pick other ports with --port (titan up uses PORT..PORT+3)")
    log_dir = tempfile.mkdtemp(prefix="titan-up-")
    cluster = LocalCluster(workers=up_workers(args.workers, args.cap, args.slots), port=args.port,
                           data_dir=args.data_dir, keys=args.keys, log_dir=log_dir)
    stop_on_ctrl_c()
    signal.signal(signal.SIGTERM, lambda *_: _interrupt())
    clean = False
    try:
        _start(cluster)
        print_cluster(cluster)
        print("Ctrl-C stops the master and every worker.", flush=True)
        while all(process.poll() is None for process in cluster.processes()):
            time.sleep(0.5)
        dead = [name for name, process in cluster.named_processes() if process.poll() is not None]
        print(f"titan up: {', '.join(dead)} exited; stopping the cluster (logs in {cluster.log_dir})",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping the cluster ...", flush=True)
        clean = True
        return 0
    finally:
        cluster.stop()
        if clean:   # the process logs are kept only when something went wrong
            shutil.rmtree(log_dir, ignore_errors=True)


def _start(cluster: LocalCluster) -> None:
    """Start it, or say in one line why not (the master's last words, e.g. a port taken meanwhile)."""
    try:
        cluster.start()
    except (RuntimeError, TimeoutError) as exc:
        master_log = os.path.join(cluster.log_dir, "master.log")
        last_words = open(master_log).read().strip().splitlines()[-1:] if os.path.exists(master_log) else []
        raise CommandError(f"the cluster did not start: {exc}" + "".join(f" ({line})" for line in last_words)) from None


def _interrupt():
    raise KeyboardInterrupt


def up_workers(general: int, capabilities: List[str], slots: int) -> List[WorkerSpec]:
    workers = [WorkerSpec(f"worker-{i}", (), slots) for i in range(1, general + 1)]
    tags = [tag.strip() for item in capabilities for tag in item.split(",") if tag.strip()]
    workers += [WorkerSpec(f"{tag.lower()}-1", (tag,), slots) for tag in tags]
    return workers


def print_cluster(cluster: LocalCluster) -> None:
    print(f"Titan master on {cluster.host}:{cluster.port} (workers {cluster.port + 1}, "
          f"events {cluster.port + 2}, store {cluster.port + 3})")
    for spec in cluster.workers:
        offers = ", ".join(["GENERAL", *spec.capabilities])
        print(f"  worker {spec.name:<12} {offers:<20} {spec.slots} slot{'s' if spec.slots != 1 else ''}")
    print(f"Scripts reach it with TitanClient(port={cluster.port}) or TITAN_PORT={cluster.port}; "
          f"process logs in {cluster.log_dir}", flush=True)


def run_demo(args) -> int:
    from titan_sdk import TitanJob  # the SDK sits above the cluster module; only the demo needs it

    workers = [WorkerSpec("worker-1", (), 2), WorkerSpec("worker-2", (), 2), WorkerSpec("gpu-1", ("GPU",), 1)]
    log_dir = tempfile.mkdtemp(prefix="titan-demo-")
    with LocalCluster(workers=workers, log_dir=log_dir) as cluster:
        print_cluster(cluster)
        jobs = demo_jobs(TitanJob)
        with cluster.client() as client, client.events(topics=["job.", "dag."]) as events:
            print(f"\nsubmitting DAG 'demo': fetch -> {DEMO_SHARDS} shards in parallel -> merge -> "
                  "train (needs GPU)\n")
            started = time.monotonic()
            client.submit_dag("demo", jobs)
            final = follow_dag(client, events, "demo", started, args.timeout)
            elapsed = time.monotonic() - started
            print_logs(client, [job.job_id for job in jobs])
    completed = sum(1 for state in final.values() if state == "COMPLETED")
    print(f"\n{completed} of {len(final)} jobs completed in {elapsed:.2f}s.")
    if completed == len(final) == len(jobs):
        shutil.rmtree(log_dir, ignore_errors=True)   # kept only when something went wrong
        return 0
    print(f"master and worker logs are in {log_dir}")
    return 1


def demo_jobs(TitanJob) -> list:
    def script(name: str) -> str:
        return os.path.join(DEMO_DIR, name)

    shards = [TitanJob(f"shard_{i}", script("shard.py"), args=str(i), parents=["fetch"])
              for i in range(DEMO_SHARDS)]
    return [TitanJob("fetch", script("fetch.py"), priority=5), *shards,
            TitanJob("merge", script("merge.py"), parents=[s.job_id for s in shards]),
            TitanJob("train", script("train.py"), requirement="GPU", parents=["merge"])]
