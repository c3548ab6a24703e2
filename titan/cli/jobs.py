"""`titan submit | status | logs | cancel | retry | store`: acting on jobs, DAGs and TitanStore from a shell."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter

from titan import defaults
from titan.argtypes import positive_float
from titan.cli import waiting
from titan.cli.common import (CommandError, Section, add_json_option, add_master_options, connect, note, print_json,
                               show, stop_on_ctrl_c)
from titan.core.errors import JobConflict, UnknownDag, UnknownJob

JOB_FIELDS = ("job_id", "dag", "state", "worker", "attempt", "exit_code", "reason", "requirement", "priority",
              "parents", "retries", "failures", "timeout", "note", "run")
TIME_FIELDS = ("submitted_at", "queued_at", "started_at", "ended_at", "wait_seconds", "run_seconds", "attempts")


def add_commands(commands) -> None:
    _add_submit(commands)
    status = commands.add_parser("status", help="a job's or a DAG's state; with no name, the cluster's",
                                 description="With JOB: everything the master knows of it. With DAG: each "
                                             "job's state. With nothing: workers, queues and job counts.")
    status.add_argument("name", nargs="?", help="a job id or a DAG name")
    add_json_option(status)
    add_master_options(status)
    status.set_defaults(run=run_status)

    logs = commands.add_parser("logs", help="a job's output; -f follows it while the job runs",
                               description="Print a job's stdout and stderr. With -f, keep printing new "
                                           "output until the job ends; then exit 0 if it completed, else 1.")
    logs.add_argument("job", help="the job id")
    logs.add_argument("-f", "--follow", action="store_true", help="follow the output until the job ends")
    add_master_options(logs)
    logs.set_defaults(run=run_logs)

    for verb, summary, description, run in (
            ("cancel", "cancel a job (and what depends on it) or a whole DAG",
             "Cancel a waiting or running job and its descendants; with --dag, every unfinished job of the DAG.",
             run_cancel),
            ("retry", "run a FAILED or CANCELLED job again, or every such job of a DAG",
             "Run a FAILED or CANCELLED job again from the spec it last ran with; with --dag, every FAILED or "
             "CANCELLED job of the DAG, in the DAG's order (the DAG stays one run).", run_retry)):
        parser = commands.add_parser(verb, help=summary, description=description)
        parser.add_argument("name", help="the job id (or, with --dag, the DAG name)")
        parser.add_argument("--dag", action="store_true", help=f"NAME is a DAG: {verb} all of it")
        add_master_options(parser)
        parser.set_defaults(run=run)
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
                        help="the job's id (default: the file's name without its extension, e.g. train for "
                             "train.py; train-2, train-3, ... while a job of that name is still active)")
    submit.add_argument("--wait", action="store_true", help="follow the job until it ends")
    submit.add_argument("--timeout", type=positive_float, default=None, help=waiting.TIMEOUT_HELP)
    add_master_options(submit, timeout=False)
    submit.set_defaults(run=run_submit)


def run_submit(args) -> int:
    from titan_sdk import TitanJob

    def job_named(job_id: str):
        job = TitanJob(job_id, os.path.abspath(args.file), args=args.args, requirement=args.requirement,
                       priority=args.priority, retries=args.retries)
        if job.not_found_locally:   # the command sends the file it is given, never a deployed one
            raise FileNotFoundError(job.not_found_locally)
        return job

    started = time.monotonic()
    with connect(args) as client:
        if args.job_id:
            job_id = client.submit_job(job_named(args.job_id))
        else:
            job_id = submit_under_free_name(client, job_named, os.path.splitext(os.path.basename(args.file))[0])
        print(f"submitted {job_id}", flush=True)
        waiting.warn_if_case_differs(client, "submit", [args.requirement])
        if not args.wait:
            return 0
        with waiting.said_to_keep_running_on_ctrl_c(f"job {job_id}", f"titan cancel {job_id}"):
            return waiting.wait_with_progress(client, [job_id], label=job_id, timeout=args.timeout,
                                              command_started=started)


def submit_under_free_name(client, job_named, stem: str) -> str:
    """Submit as `stem`, or stem-2, stem-3, ... while the names before are taken by active jobs: the
    master refuses an active id (JobConflict) and accepts an ended one as a new run, so asking it is the
    only check that cannot race another submitter."""
    number = 1
    while True:
        try:
            return client.submit_job(job_named(stem if number == 1 else f"{stem}-{number}"))
        except JobConflict:
            number += 1


# ----------------------------------------------------------------- status

def run_status(args) -> int:
    from titan.cli.watch import cluster_sections

    with connect(args) as client:
        if args.name is None:
            stats = client.stats()
            if args.json:
                return print_json(stats)
            show(cluster_sections(stats, with_workers=False))
            return 0
        try:
            info = client.job_info(args.name)
        except UnknownJob:
            try:
                dag = client.dag_status(args.name)
            except UnknownDag:
                raise CommandError(f"no job or DAG named {args.name!r} on this master") from None
            if args.json:
                return print_json(dag)
            show_dag(dag)
            return 0
    if args.json:
        return print_json(info)
    show_job(info)
    return 0


def show_job(info: dict) -> None:
    """The usual fields first, then when it started and how long it took, then any other; each attempt
    on a line of its own when there were several."""
    from titan.cli.history import clock_time, seconds

    started, ended = info.get("started_at"), info.get("ended_at")
    when = {"submitted": clock_time(info.get("submitted_at")), "started": clock_time(started),
            "ended": clock_time(ended), "waited": seconds(info.get("wait_seconds")),
            "ran": seconds(info.get("run_seconds"))}
    if started is not None and ended is None and info.get("state") == "RUNNING":
        when["running for"] = seconds(max(0.0, time.time() - started))
    attempts = info.get("attempts") or []
    shown = {*JOB_FIELDS, *TIME_FIELDS}
    for name, value in [*((n, info.get(n)) for n in JOB_FIELDS), *when.items(),
                        *((n, info[n]) for n in sorted(set(info) - shown))]:
        if value not in (None, "", [], {}):
            print(f"{name}: {','.join(map(str, value)) if isinstance(value, list) else value}")
    for each in attempts if len(attempts) > 1 else ():
        took = seconds(each["ended_at"] - each["started_at"]) if each["ended_at"] and each["started_at"] else "running"
        print(f"  attempt {each['attempt']} on {each['worker']}: started {clock_time(each['started_at'])}, "
              f"{took}, exit {each['exit_code']}{', ' + each['reason'] if each['reason'] else ''}")


def show_dag(dag: dict) -> None:
    counts = Counter(job["state"] for job in dag["jobs"])
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    print(f"dag {dag['dag']}: {'finished' if dag['finished'] else 'running'}; {summary}", flush=True)
    rows = [(j["job_id"], j["state"], j["worker"], j["attempt"], j["exit_code"], j["reason"]) for j in dag["jobs"]]
    show([Section("", ("job", "state", "worker", "attempt", "exit", "reason"), rows)])
    when = _dag_run_times(dag)
    if when:
        print(when, flush=True)


def _dag_run_times(dag: dict) -> str:
    """'run pipe#2: started <time>, took <duration>' (running for, while it runs), or '' before any start."""
    from titan.cli.history import clock_time, seconds

    starts = [j["started_at"] for j in dag["jobs"] if j.get("started_at") is not None]
    if not starts:
        return ""
    ends = [j["ended_at"] for j in dag["jobs"] if j.get("ended_at") is not None]
    last = max(ends) if dag["finished"] and ends else time.time()
    took = f"{'took' if dag['finished'] else 'running for'} {seconds(max(0.0, last - min(starts)))}"
    return f"run {dag.get('run') or dag['dag']}: started {clock_time(min(starts))}, {took}"


# ----------------------------------------------------------------- logs, cancel

def run_logs(args) -> int:
    with connect(args) as client:
        if not args.follow:
            sys.stdout.write(client.fetch_logs(args.job))
            return 0
        stop_on_ctrl_c()
        for text in client.follow_logs(args.job):
            sys.stdout.write(text)
            sys.stdout.flush()
        info = client.job_info(args.job)
    if info["state"] == "COMPLETED":
        return 0
    note("logs", f"job {args.job} {info['state']}: {info.get('reason') or 'no reason given'}")
    return 1


def _acting_on(job_method: str, dag_method: str):
    """A command that calls `job_method` on a job, or with --dag `dag_method` on a DAG, and shows the answer."""
    def run(args) -> int:
        with connect(args) as client:
            if args.dag:
                show_dag(getattr(client, dag_method)(args.name))
            else:
                print(f"{args.name}: {getattr(client, job_method)(args.name)}")
        return 0
    return run


run_cancel = _acting_on("cancel", "cancel_dag")
run_retry = _acting_on("retry", "retry_dag")


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
