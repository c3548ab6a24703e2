"""`python -m benchmarks.journal_forget [--rounds N]`: what a commit that forgets costs, on both journals.

Each round admits FORGET_BATCH ended runs (a log line each), commits and folds them, then times a commit of
one store put alone and a commit of one store put with those runs forgotten (record_forgotten): wall time
and the journal's forget_seconds (the master's CPU spent deleting, which the cleaning budget counts).
PostgreSQL is a server of its own in a temp folder (tests/postgres/pg_server.py), without fsync.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time

from tests.postgres.pg_server import PostgresServer, missing_reason, remove, wait_for_connection
from titan import defaults
from titan.core.jobs import JobRun, JobSpec, JobState
from titan.master.sqlite_journal import SqliteJournal

SCRIPT = b"print('ok')\n"


def ended_runs(first_seq: int) -> list:
    runs = []
    for seq in range(first_seq, first_seq + defaults.FORGET_BATCH):
        run = JobRun(spec=JobSpec(job_id=f"j{seq}", filename="j.py", script=SCRIPT), dag=None, seq=seq)
        run.state, run.attempt, run.started_at, run.ended_at = JobState.COMPLETED, 1, 1.0, 2.0
        runs.append(run)
    return runs


def measure(journal, rounds: int) -> dict:
    plain, forgetting, cpu = [], [], []
    for n in range(rounds):
        runs = ended_runs(1 + n * defaults.FORGET_BATCH)
        for run in runs:
            journal.record_submission(run, None, hashlib.sha256(SCRIPT).hexdigest())
            journal.record_log(run.job_id, run.seq, 1, "stdout", "out\n")
        journal.commit()
        while journal.compact():
            pass
        journal.record_store("k", str(n))
        began = time.perf_counter()
        journal.commit()
        plain.append(time.perf_counter() - began)
        journal.record_store("k", str(n))
        journal.record_forgotten(runs, [], [], [])
        before, began = journal.forget_seconds, time.perf_counter()
        journal.commit()
        forgetting.append(time.perf_counter() - began)
        cpu.append(journal.forget_seconds - before)
    journal.close()
    return {"commit_ms": statistics.median(plain) * 1000, "forgetting_commit_ms": statistics.median(forgetting) * 1000,
            "forget_cpu_ms": statistics.median(cpu) * 1000}


def postgres_journal(folder: str):
    from titan.master.lease import Lease
    from titan.master.postgres_journal import PostgresJournal
    server = PostgresServer(folder).start()
    wait_for_connection(server.url)
    lease = Lease(server.url, "bench", "127.0.0.1:0")
    epoch = lease.try_take()
    lease.close()
    return server, PostgresJournal(server.url, epoch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as data_dir:
        print("sqlite", {k: round(v, 2) for k, v in measure(SqliteJournal(data_dir), rounds).items()})
    if missing_reason():
        print("postgres skipped:", missing_reason())
        return
    folder = tempfile.mkdtemp()
    server, journal = postgres_journal(folder)
    try:
        print("postgres", {k: round(v, 2) for k, v in measure(journal, rounds).items()})
    finally:
        server.stop()
        remove(folder)


if __name__ == "__main__":
    main()
