"""`python -m benchmarks.list_jobs [--jobs 1000000]`: how long list_jobs takes over a master's history.

Fills a scheduler (titan.core, no sockets: what the master answers list_jobs from) with --jobs finished
runs through its own calls, as a master that ran them would hold them (DAGs of 100, four workers, one
job in 100 failed), then times each kind of query: newest first, by state, DAG, worker and age, a page deep
in, and the first query after more jobs ended (which sorts what the indexes gained). Prints the median and
the worst of --repeat tries of each, in milliseconds. The network adds a round trip (S5-null, ~1 ms).
"""

from __future__ import annotations

import argparse
import statistics
import time

from titan.core.jobs import JobSpec
from titan.core.scheduler import Scheduler

DAG_SIZE = 100
WORKERS = ("w1", "w2", "w3", "w4")


def fill(scheduler: Scheduler, jobs: int, start: int = 0, clock: float = 0.0) -> float:
    """`jobs` more runs through the scheduler: submitted as DAGs, dispatched, ended (1 in 100 failed)."""
    for first in range(start, start + jobs, DAG_SIZE):
        clock += 0.01
        dag = f"dag-{first // DAG_SIZE}"
        specs = [JobSpec(job_id=f"job-{i}", filename="null.py") for i in range(first, min(first + DAG_SIZE, start + jobs))]
        scheduler.submit(dag, specs, clock)   # each worker has DAG_SIZE slots: all of them start now
        for spec in specs:
            run = scheduler.jobs[spec.job_id]
            code = 1 if int(spec.job_id[4:]) % 100 == 99 else 0
            scheduler.job_finished(run.worker_id, spec.job_id, run.attempt, code, clock)
    return clock


def timed(query, repeat: int) -> tuple:
    took = []
    for _ in range(repeat):
        began = time.perf_counter()
        query()
        took.append((time.perf_counter() - began) * 1000)
    return statistics.median(took), max(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    scheduler = Scheduler()
    for worker in WORKERS:
        scheduler.worker_joined(worker, worker, [], DAG_SIZE, {}, 0.0)
    scheduler.submit(None, [JobSpec(job_id="long-running", filename="null.py")], 0.0)   # oldest of all, never ends
    began = time.perf_counter()
    clock = fill(scheduler, args.jobs)
    print(f"{args.jobs:,} finished jobs in the scheduler after {time.perf_counter() - began:.1f}s")
    middle_dag = f"dag-{args.jobs // DAG_SIZE // 2}"
    deep = scheduler.list_jobs(limit=1_000)
    for _ in range(9):
        deep = scheduler.list_jobs(limit=1_000, cursor=deep["next_cursor"])
    queries = {
        "newest 100": lambda: scheduler.list_jobs(),
        "state=FAILED": lambda: scheduler.list_jobs(state="FAILED"),
        "state=COMPLETED": lambda: scheduler.list_jobs(state="COMPLETED"),
        "state=RUNNING (1, oldest)": lambda: scheduler.list_jobs(state="RUNNING"),
        "state=QUEUED (none)": lambda: scheduler.list_jobs(state="QUEUED"),
        f"dag={middle_dag}": lambda: scheduler.list_jobs(dag=middle_dag),
        "worker=w3": lambda: scheduler.list_jobs(worker="w3"),
        "since (last 1%)": lambda: scheduler.list_jobs(since=clock * 0.99),
        "page 11 (cursor)": lambda: scheduler.list_jobs(cursor=deep["next_cursor"]),
        "limit 1000": lambda: scheduler.list_jobs(limit=1_000),
    }
    print(f"{'query':24} {'median ms':>10} {'max ms':>8}")
    for name, query in queries.items():
        median, worst = timed(query, args.repeat)
        print(f"{name:24} {median:10.3f} {worst:8.3f}")
    fill(scheduler, 10_000, start=args.jobs, clock=clock)
    median, worst = timed(lambda: scheduler.list_jobs(state="FAILED"), 1)
    print(f"{'FAILED after 10,000 more':24} {median:10.3f} {worst:8.3f}   (first query: sorts what the indexes gained)")


if __name__ == "__main__":
    main()
