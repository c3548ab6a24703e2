"""`titan jobs` and `titan dags`: what ran, when, where and how it ended, newest first."""

from __future__ import annotations

import argparse
import datetime
import time
from typing import Optional

from titan import defaults
from titan.argtypes import duration, positive_int
from titan.cli.common import Section, add_json_option, add_master_options, connect, print_json, show

JOB_COLUMNS = ("job", "dag run", "state", "worker", "submitted", "waited", "ran", "exit", "reason")
DAG_RUN_COLUMNS = ("run", "submitted", "jobs", "outcome", "duration")


def add_commands(commands) -> None:
    jobs = commands.add_parser("jobs", help="list jobs, newest first, by state, DAG or age",
                               description="Jobs' runs newest first, earlier runs of a re-submitted job too.")
    jobs.add_argument("--state", help="only jobs in this state (e.g. FAILED)")
    jobs.add_argument("--dag", help="only this DAG's jobs (every run of it)")
    jobs.add_argument("--worker", help="only jobs that ran (any attempt) on this worker")
    jobs.add_argument("--since", type=duration, metavar="AGE", help="only jobs submitted in the last AGE (30s, 1h, 2d)")
    jobs.add_argument("--limit", type=positive_int, default=defaults.JOBS_LISTED, help="at most this many")
    add_json_option(jobs)
    add_master_options(jobs)
    jobs.set_defaults(run=run_jobs)

    dags = commands.add_parser("dags", help="a DAG's runs, or the DAGs recently submitted",
                               description="With NAME: its runs, newest first (when, how many jobs, outcome, "
                                           "duration). Without: the latest run of each recent DAG.")
    dags.add_argument("name", nargs="?", help="a DAG name")
    dags.add_argument("--limit", type=positive_int, default=defaults.DAG_RUNS_LISTED, help="at most this many runs")
    add_json_option(dags)
    add_master_options(dags)
    dags.set_defaults(run=run_dags)

    forget = commands.add_parser("forget", help="forget a DAG's ended runs, or every job that ended before a date",
                                 description="Let the master forget ended jobs now rather than when --keep-completed "
                                             "/ --keep-failed say: their state, logs and journal rows go.")
    which = forget.add_mutually_exclusive_group(required=True)
    which.add_argument("--dag", help="every ended run of this DAG (refused while it runs)")
    which.add_argument("--before", type=moment, metavar="DATE",
                       help="every job that ended before DATE: 2026-12-01, 2026-12-01T18:00, or an age (7d)")
    add_json_option(forget)
    add_master_options(forget)
    forget.set_defaults(run=run_forget)


def run_jobs(args) -> int:
    since = None if args.since is None else time.time() - args.since
    with connect(args) as client:
        page = client.list_jobs(state=args.state, dag=args.dag, worker=args.worker, since=since, limit=args.limit)
    if args.json:
        return print_json(page)
    rows = [(j["job_id"], j["run"], j["state"], j["worker"], clock_time(j["submitted_at"]),
             seconds(j["wait_seconds"]), seconds(j["run_seconds"]), j["exit_code"], j["reason"])
            for j in page["jobs"]]
    more = " (more: raise --limit)" if page["next_cursor"] else ""
    show([Section(f"{len(rows)} jobs, newest first{more}", JOB_COLUMNS, rows)])
    return 0


def run_dags(args) -> int:
    with connect(args) as client:
        if args.name is None:
            names = client.stats()["recent_dags"]
            runs = [client.dag_runs(name, limit=1)[0] for name in names]
        else:
            runs = client.dag_runs(args.name, limit=args.limit)
    if args.json:
        return print_json(runs)
    rows = [(r["run"], clock_time(r["submitted_at"]), r["jobs"], r["outcome"], seconds(r["duration_s"]))
            for r in runs]
    show([Section(f"runs of DAG {args.name}" if args.name else "recent DAGs, latest run each", DAG_RUN_COLUMNS, rows)])
    return 0


def run_forget(args) -> int:
    with connect(args) as client:
        result = client.forget(dag=args.dag, before=args.before)
    if args.json:
        return print_json(result)
    if args.dag:
        print(f"forgot {result['forgotten']} jobs of DAG {args.dag}")
    else:
        print(f"forgetting {result['to_forget']} jobs that ended before {clock_time(args.before)}, a batch at a time")
    return 0


def moment(text: str) -> float:
    """An argparse type: a local date (and time) in ISO form, or an age (7d: seven days ago), as Unix time."""
    try:
        return datetime.datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        pass
    try:
        return time.time() - duration(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a date (2026-12-01, 2026-12-01T18:00) "
                                         "nor an age (30m, 7d)") from None


def clock_time(at: Optional[float]) -> str:
    """A Unix time as people read it here: local date and time, to the second."""
    return "" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def seconds(value: Optional[float]) -> str:
    if value is None:
        return ""
    if value < 60:
        return f"{value:.2f}s" if value < 10 else f"{value:.1f}s"
    minutes, rest = divmod(int(value), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"
