"""`titan submit | status | logs | cancel | store`: acting on jobs, DAGs and TitanStore from a shell."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections import Counter
from typing import Dict, List

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from titan import defaults
from titan.cli.common import CommandError, Section, add_master_options, connect, console, note, show
from titan.core.errors import UnknownDag, UnknownJob

FINAL_ORDER = ("COMPLETED", "FAILED", "CANCELLED")
JOB_FIELDS = ("job_id", "dag", "state", "worker", "attempt", "exit_code", "reason", "requirement", "priority",
              "parents", "retries", "failures", "timeout", "note")


def add_commands(commands) -> None:
    _add_submit(commands)
    status = commands.add_parser("status", help="a job's or a DAG's state; with no name, the cluster's",
                                 description="With JOB: everything the master knows of it. With DAG: each "
                                             "job's state. With nothing: workers, queues and job counts.")
    status.add_argument("name", nargs="?", help="a job id or a DAG name")
    add_master_options(status)
    status.set_defaults(run=run_status)

    logs = commands.add_parser("logs", help="a job's output; -f follows it while the job runs",
                               description="Print a job's stdout and stderr. With -f, keep printing new "
                                           "output until the job ends; then exit 0 if it completed, else 1.")
    logs.add_argument("job", help="the job id")
    logs.add_argument("-f", "--follow", action="store_true", help="follow the output until the job ends")
    add_master_options(logs)
    logs.set_defaults(run=run_logs)

    cancel = commands.add_parser("cancel", help="cancel a job (and what depends on it) or a whole DAG",
                                 description="Cancel a waiting or running job and its descendants; with "
                                             "--dag, every unfinished job of the DAG.")
    cancel.add_argument("name", help="the job id (or, with --dag, the DAG name)")
    cancel.add_argument("--dag", action="store_true", help="NAME is a DAG: cancel all of it")
    add_master_options(cancel)
    cancel.set_defaults(run=run_cancel)
    _add_store(commands)


# ----------------------------------------------------------------- submit

def _add_submit(commands) -> None:
    submit = commands.add_parser("submit", help="submit one script as a job",
                                 description="Submit a script (.py runs with the worker's Python, .sh with "
                                             "bash, anything else directly). With --wait, show progress "
                                             "and exit 0 if it completed, 1 if not.")
    submit.add_argument("file", help="the script to run")
    submit.add_argument("--requirement", default=defaults.DEFAULT_REQUIREMENT,
                        help="capability a worker must offer (default %(default)s: any worker)")
    submit.add_argument("--args", default="", help='arguments for the script, split like a shell: "--lr 0.1"')
    submit.add_argument("--priority", type=int, default=defaults.DEFAULT_PRIORITY,
                        help="higher runs first among ready jobs (default %(default)s)")
    submit.add_argument("--retries", type=int, default=0, help="failed attempts to run again (default 0)")
    submit.add_argument("--id", dest="job_id", default=None,
                        help="the job's id (default: the file's name and a random suffix)")
    submit.add_argument("--wait", action="store_true", help="follow the job until it ends")
    add_master_options(submit)
    submit.set_defaults(run=run_submit)


def run_submit(args) -> int:
    from titan_sdk import TitanJob

    job_id = args.job_id or f"{os.path.splitext(os.path.basename(args.file))[0]}-{uuid.uuid4().hex[:6]}"
    job = TitanJob(job_id, os.path.abspath(args.file), args=args.args, requirement=args.requirement,
                   priority=args.priority, retries=args.retries)
    if job.not_found_locally:   # the command sends the file it is given, never a deployed one
        raise FileNotFoundError(job.not_found_locally)
    with connect(args) as client:
        client.submit_job(job)
        print(f"submitted {job_id}", flush=True)
        if not args.wait:
            return 0
        return wait_with_progress(client, [job_id], label=job_id)


def wait_with_progress(client, job_ids: List[str], label: str) -> int:
    """Follow the jobs to their end: a progress bar on a terminal, else one line per job that ends.
    0 if all completed, 1 if not (each failure's reason is printed)."""
    started = time.monotonic()
    out = console()
    counts: Counter = Counter()
    if out.is_terminal:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), console=out) as progress:
            task = progress.add_task(label, total=len(job_ids), counts="")

            def advance(job_id: str, state: str) -> None:
                counts[state] += 1
                progress.update(task, advance=1, counts=_counts_text(counts))

            final = client.wait(job_ids, on_final=advance)
    else:
        def line(job_id: str, state: str) -> None:
            print(f"{job_id} {state}", flush=True)

        final = client.wait(job_ids, on_final=line)
    return _report_end(client, final, time.monotonic() - started)


def _counts_text(counts: Counter) -> str:
    return "  ".join(f"{state} {counts[state]}" for state in FINAL_ORDER if counts[state])


def _report_end(client, final: Dict[str, str], elapsed: float) -> int:
    for job_id, state in final.items():
        if state != "COMPLETED":
            print(f"{job_id} {state}: {client.job_info(job_id).get('reason') or 'no reason given'}",
                  file=sys.stderr)
    completed = sum(1 for state in final.values() if state == "COMPLETED")
    print(f"{completed} of {len(final)} jobs completed in {elapsed:.2f}s", flush=True)
    return 0 if completed == len(final) else 1


# ----------------------------------------------------------------- status

def run_status(args) -> int:
    from titan.cli.watch import cluster_sections

    with connect(args) as client:
        if args.name is None:
            show(cluster_sections(client.stats(), with_workers=False))
            return 0
        try:
            info = client.job_info(args.name)
        except UnknownJob:
            try:
                show_dag(client.dag_status(args.name))
            except UnknownDag:
                raise CommandError(f"no job or DAG named {args.name!r} on this master") from None
            return 0
    for name in [*JOB_FIELDS, *sorted(set(info) - set(JOB_FIELDS))]:   # the usual first, then any other
        if info.get(name) not in (None, "", [], {}):
            value = ",".join(map(str, info[name])) if isinstance(info[name], list) else info[name]
            print(f"{name}: {value}")
    return 0


def show_dag(dag: dict) -> None:
    counts = Counter(job["state"] for job in dag["jobs"])
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    print(f"dag {dag['dag']}: {'finished' if dag['finished'] else 'running'}; {summary}", flush=True)
    rows = [(j["job_id"], j["state"], j["worker"], j["attempt"], j["exit_code"], j["reason"]) for j in dag["jobs"]]
    show([Section("", ("job", "state", "worker", "attempt", "exit", "reason"), rows)])


# ----------------------------------------------------------------- logs, cancel

def run_logs(args) -> int:
    with connect(args) as client:
        if not args.follow:
            sys.stdout.write(client.fetch_logs(args.job))
            return 0
        for text in client.follow_logs(args.job):
            sys.stdout.write(text)
            sys.stdout.flush()
        info = client.job_info(args.job)
    if info["state"] == "COMPLETED":
        return 0
    note("logs", f"job {args.job} {info['state']}: {info.get('reason') or 'no reason given'}")
    return 1


def run_cancel(args) -> int:
    with connect(args) as client:
        if args.dag:
            show_dag(client.cancel_dag(args.name))
        else:
            print(f"{args.name}: {client.cancel(args.name)}")
    return 0


# ----------------------------------------------------------------- store

STORE_VERBS = {
    "get": ("print a key's value", ("key",)),
    "put": ("set a key to a value", ("key", "value")),
    "delete": ("remove a key (prints 1 if it existed, else 0)", ("key",)),
    "incr": ("add to a counter and print its new value", ("key",)),
    "keys": ("list keys, optionally only those starting with PREFIX", ()),
    "sadd": ("add a member to a set (prints 1 if it was new)", ("key", "member")),
    "smembers": ("list a set's members", ("key",)),
}


def _add_store(commands) -> None:
    store = commands.add_parser("store", help="read and write TitanStore: get, put, delete, incr, keys, ...",
                                description="TitanStore, the master's key-value store that jobs share.")
    verbs = store.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, (explanation, operands) in STORE_VERBS.items():
        parser = verbs.add_parser(verb, help=explanation, description=explanation[0].upper() + explanation[1:])
        for operand in operands:
            parser.add_argument(operand)
        if verb == "incr":
            parser.add_argument("--by", type=int, default=1, help="how much to add (default 1)")
        if verb == "keys":
            parser.add_argument("prefix", nargs="?", default="")
        add_master_options(parser)
        parser.set_defaults(run=run_store)


def run_store(args) -> int:
    with connect(args) as client:
        if args.verb == "get":
            value = client.store_get(args.key)
            if value is None:
                raise CommandError(f"no key {args.key!r} in TitanStore")
            print(value)
        elif args.verb == "put":
            print(client.store_put(args.key, args.value))
        elif args.verb == "delete":
            print(client.store_delete(args.key))
        elif args.verb == "incr":
            print(client.store_incr(args.key, args.by))
        elif args.verb == "sadd":
            print(client.store_sadd(args.key, args.member))
        else:
            items = client.store_smembers(args.key) if args.verb == "smembers" else client.store_keys(args.prefix)
            for item in items:
                print(item)
    return 0
