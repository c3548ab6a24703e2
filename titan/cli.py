"""The `titan` command: `titan up` runs a local cluster, `titan demo` shows one at work, and the other
subcommands (cli_jobs, cli_watch) submit, control and watch a cluster's jobs.

Exit codes: 0 done, 1 a job did not complete or the master refused or did not answer, 2 a usage error
or bad input. Errors are one line on stderr, `titan COMMAND: what went wrong`."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from typing import List, Optional

from titan import cli_files, cli_jobs, cli_watch, defaults
from titan import keys as keys_command
from titan.cli_common import CommandError, add_master_options, connect, console, note
from titan.cluster import LocalCluster, WorkerSpec
from titan.core.errors import TitanError
from titan.web import add_commands as add_dashboard_commands

DEMO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo")
DEMO_SHARDS = 5
FOLLOW_QUIET_S = 1.0   # with no event for this long, ask the master whether the DAG has finished


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except CommandError as exc:
        return _say(args, str(exc), exc.exit_code)
    except (FileNotFoundError, ValueError) as exc:   # bad input: a pipeline, a DAG, a path, a gate
        return _say(args, str(exc), 2)
    except TitanError as exc:                        # the master refused, or did not answer
        return _say(args, exc.message, 1)
    except Exception as exc:  # one readable line, not a traceback
        return _say(args, f"{type(exc).__name__}: {exc}", 1)


def _say(args, message: str, exit_code: int) -> int:
    note(args.command, message)
    return exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="titan", description="Titan, a cluster job scheduler on ZeroMQ.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

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

    pipeline = commands.add_parser("run", help="submit a YAML pipeline (original Titan format)",
                                   description="Check a pipeline file and submit it as one DAG. With --wait, "
                                               "show each job's state as it changes; exit 1 if any job "
                                               "did not complete.")
    pipeline.add_argument("pipeline", help="the YAML file")
    pipeline.add_argument("--wait", action="store_true", help="follow the pipeline until it ends")
    pipeline.add_argument("--timeout", type=float, default=None, help="with --wait: give up after this long")
    add_master_options(pipeline, timeout=False)
    pipeline.set_defaults(run=run_pipeline)

    for verb, explanation in (("approve", "let the jobs below a human-in-the-loop gate run"),
                              ("reject", "cancel everything below a human-in-the-loop gate")):
        gate = commands.add_parser(verb, help=explanation, description=f"{explanation[0].upper()}"
                                   f"{explanation[1:]}. Gates are named hitl-gate-<job id>.")
        gate.add_argument("gate", help="the gate's id, e.g. hitl-gate-train")
        if verb == "reject":
            gate.add_argument("--reason", default="", help="recorded as the gate's reason")
        add_master_options(gate)
        gate.set_defaults(run=run_gate_decision)
    cli_jobs.add_commands(commands)
    cli_watch.add_commands(commands)
    cli_files.add_commands(commands)
    add_dashboard_commands(commands)
    keys_command.add_commands(commands)
    return parser


def run_gate_decision(args) -> int:
    with connect(args) as client:
        if args.command == "approve":
            state = client.approve(args.gate)
        else:
            state = client.reject(args.gate, args.reason)
    print(f"{args.gate}: {state}")
    return 0


# ----------------------------------------------------------------- titan up

def run_up(args) -> int:
    cluster = LocalCluster(workers=up_workers(args.workers, args.cap, args.slots), port=args.port,
                           data_dir=args.data_dir, keys=args.keys, log_dir=tempfile.mkdtemp(prefix="titan-up-"))
    # Ctrl-C stops the cluster even when started where SIGINT is ignored (e.g. from `nohup ... &`).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: _interrupt())
    try:
        cluster.start()
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
        return 0
    finally:
        cluster.stop()


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


# ----------------------------------------------------------------- titan demo

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


def follow_dag(client, events, dag: str, started: float, timeout: Optional[float]) -> dict:
    """Print each job's state change until the DAG has finished; returns {job_id: last state}. When events
    were lost, or none came for a while (the lost one may have been the last), the master's view of the
    DAG settles it."""
    final = {}
    deadline = None if timeout is None else started + timeout
    while True:
        quiet = FOLLOW_QUIET_S if deadline is None else min(FOLLOW_QUIET_S, max(0.0, deadline - time.monotonic()))
        event = events.get(timeout=quiet)
        if event is not None and event.get("dag") == dag:
            if event["topic"] == "dag.finished":
                return final
            if event["topic"].startswith("job."):
                print_state_change(event, started)
                final[event["job_id"]] = event["state"]
        if event is None or events.take_gap() is not None:
            described = client.dag_status(dag)
            if described["finished"]:
                return {**final, **{job["job_id"]: job["state"] for job in described["jobs"]}}
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"DAG {dag!r} did not finish within {timeout:g}s")


def print_state_change(event: dict, started: float) -> None:
    where = f" on {event['worker']}" if event.get("worker") else ""
    why = f"  ({event['reason']})" if event.get("reason") else ""
    print(f"  {time.monotonic() - started:7.3f}s  {event['job_id']:<9} {event['state']:<10}{where}{why}",
          flush=True)


# ----------------------------------------------------------------- titan run

def run_pipeline(args) -> int:
    from titan_sdk import load_pipeline

    pipeline = load_pipeline(args.pipeline)
    with connect(args) as client:
        if not args.wait:
            job_ids = client.submit_pipeline(pipeline)
            print(f"submitted pipeline {pipeline.name!r}: {len(job_ids)} jobs ({', '.join(job_ids)})")
            return 0
        if console().is_terminal:   # a progress bar; elsewhere, a line per state change (below)
            job_ids = client.submit_pipeline(pipeline)
            print(f"submitted pipeline {pipeline.name!r}: {len(job_ids)} jobs", flush=True)
            return cli_jobs.wait_with_progress(client, job_ids, label=pipeline.name)
        with client.events(topics=["job.", "dag."]) as events:
            started = time.monotonic()
            client.submit_pipeline(pipeline)
            print(f"submitted pipeline {pipeline.name!r}: {len(pipeline.jobs)} jobs", flush=True)
            final = follow_dag(client, events, pipeline.name, started, args.timeout)
    completed = sum(1 for state in final.values() if state == "COMPLETED")
    print(f"{completed} of {len(pipeline.jobs)} jobs completed in {time.monotonic() - started:.2f}s")
    return 0 if completed == len(pipeline.jobs) else 1


def print_logs(client, job_ids: List[str]) -> None:
    print("\nlogs:")
    for job_id in job_ids:
        for line in client.fetch_logs(job_id).splitlines() or ["(no output)"]:
            print(f"  {job_id:<9} | {line}")


if __name__ == "__main__":
    sys.exit(main())
