"""`python -m benchmarks.journal_commit [--commits N] [--profile]`: the CPU of one SQLite journal commit.

The master's main thread commits once per turn; at S1-null a turn is mostly one worker batch of results
and the dispatches that follow, at S5-null one request (its submission and reply) and then its result.
Three commit shapes, each timed alone with `time.thread_time` (this thread's CPU, not the wait for a core
on a loaded machine), in microseconds, the median and the mean:

- `batch`: BATCH runs ended and BATCH others dispatched (2 x BATCH state changes);
- `submit`: one job admitted, with its reply to the client;
- `result`: one job's state change.

The journal folds (compact) every FOLD_EVERY commits, as an idle master would. For an A/B against
another tree run it from outside both trees (`python -m` puts the current directory first on sys.path):
`cd /tmp && PYTHONPATH=/path/to/tree python -m benchmarks.journal_commit`.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import pstats
import statistics
import tempfile
import time

from titan.core.jobs import JobRun, JobSpec, JobState
from titan.master.sqlite_journal import SqliteJournal

SCRIPT = b"pass\n"
SHA = hashlib.sha256(SCRIPT).hexdigest()
BATCH = 4
FOLD_EVERY = 50


class Shapes:
    """Record one commit's worth of each shape into the journal."""

    def __init__(self, journal: SqliteJournal):
        self.journal, self.seq = journal, 0

    def new_run(self) -> JobRun:
        self.seq += 1
        return JobRun(spec=JobSpec(job_id=f"j{self.seq}", filename="j.py", script=SCRIPT), dag=None, seq=self.seq)

    def admit(self, count: int) -> list:
        runs = [self.new_run() for _ in range(count)]
        for run in runs:
            run.submitted_at = time.time()
            self.journal.record_submission(run, None, SHA)
        return runs

    def batch(self) -> None:
        running = self.admit(2 * BATCH)
        self.journal.commit()
        for run in running:
            _dispatch(run)
        self.journal.record_states({run.job_id: run for run in running[:BATCH]})
        self.journal.commit()
        for run in running[:BATCH]:
            _end(run)
        for run in running[BATCH:]:
            _dispatch(run)
        self.journal.record_states({run.job_id: run for run in running})

    def submit(self) -> None:
        self.admit(1)
        self.journal.record_reply("client", f"r{self.seq}", b"\x81\xa2ok\xc3")

    def result(self) -> None:
        (run,) = self.admit(1)
        _dispatch(run)
        self.journal.commit()
        _end(run)
        self.journal.record_state(run)


def _dispatch(run: JobRun) -> None:
    run.state, run.attempt, run.worker_id, run.worker = JobState.RUNNING, run.attempt + 1, "w1", "host:1"
    run.queued_at = run.started_at = time.time()


def _end(run: JobRun) -> None:
    run.state, run.exit_code, run.last_worker_id, run.worker_id = JobState.COMPLETED, 0, run.worker_id, None
    run.ended_at = time.time()


def measure(shape: str, commits: int, profiler=None) -> tuple:
    """The median and mean CPU microseconds of a commit of `shape` (the mean counts the commits that
    checkpoint the WAL; what is recorded before a commit is not counted)."""
    with tempfile.TemporaryDirectory() as data_dir:
        journal = SqliteJournal(data_dir)
        journal.load()
        shapes, spent = Shapes(journal), []
        for n in range(commits):
            getattr(shapes, shape)()
            if profiler:
                profiler.enable()
            began = time.thread_time()
            journal.commit()
            spent.append(time.thread_time() - began)
            if profiler:
                profiler.disable()
            if n % FOLD_EVERY == FOLD_EVERY - 1:
                journal.compact()
        journal.close()
    return round(statistics.median(spent) * 1e6, 1), round(statistics.mean(spent) * 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=3000)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions of the commits")
    args = parser.parse_args()
    profiler = cProfile.Profile() if args.profile else None
    shapes = ("batch", "submit", "result")
    print("(median, mean) us:", {shape: measure(shape, args.commits, profiler) for shape in shapes})
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
