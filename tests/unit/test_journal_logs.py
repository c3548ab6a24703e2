"""A job's output in the journal is capped as in the master's memory (--max-log-bytes): what is dropped
from the log leaves the journal too, across commits, a failed commit and a restart."""

from __future__ import annotations

import hashlib
import os
import sqlite3

from titan.core.jobs import JobRun, JobSpec
from titan.master.journal import JournalWriteError
from titan.master.sqlite_journal import SqliteJournal

CAP = 10_000
LINE = "x" * 999 + "\n"   # 1,000 bytes a row


def submit(journal: SqliteJournal, job_id: str, seq: int, replaced_seq=None) -> None:
    run = JobRun(spec=JobSpec(job_id=job_id, filename="chatty.py", script=b"print(1)"), dag=None, seq=seq)
    journal.record_submission(run, replaced_seq, hashlib.sha256(run.spec.script).hexdigest())


def journaled_bytes(journal: SqliteJournal, job_id: str) -> int:
    (size,) = journal.db.execute("SELECT COALESCE(SUM(length(CAST(text AS BLOB))), 0) FROM logs WHERE job_id = ?",
                                 (job_id,)).fetchone()
    return size


def chatter(journal: SqliteJournal, job_id: str, seq: int, rows: int, per_commit: int = 10, start: int = 0) -> None:
    for i in range(start, start + rows):
        journal.record_log(job_id, seq, 1, "stdout", f"{i:08d}" + LINE[8:])
        if i % per_commit == per_commit - 1:
            journal.commit()
    journal.commit()


def test_a_chatty_jobs_journaled_output_stays_at_the_cap(tmp_path):
    journal = SqliteJournal(str(tmp_path), max_log_bytes=CAP)
    submit(journal, "chatty", 1)
    submit(journal, "quiet", 2)
    journal.record_log("quiet", 2, 1, "stdout", "hello\n")
    chatter(journal, "chatty", 1, rows=5_000)
    assert CAP <= journaled_bytes(journal, "chatty") < CAP + len(LINE)
    assert journaled_bytes(journal, "quiet") == 6
    journal.close()
    logs = SqliteJournal(str(tmp_path), max_log_bytes=CAP).load().logs
    chatty = "".join(text for job_id, _, _, text in logs if job_id == "chatty")
    assert chatty.endswith(f"{4999:08d}" + LINE[8:]) and len(chatty) >= CAP   # the newest output is kept
    assert os.path.getsize(tmp_path / "titan.db") < 1_000_000   # 5 MB printed


def test_one_commit_bigger_than_the_cap_writes_only_its_newest_rows(tmp_path):
    journal = SqliteJournal(str(tmp_path), max_log_bytes=CAP)
    submit(journal, "chatty", 1)
    chatter(journal, "chatty", 1, rows=500, per_commit=1_000)
    assert CAP <= journaled_bytes(journal, "chatty") < CAP + len(LINE)


def test_the_cap_holds_across_a_restart_and_a_new_run(tmp_path):
    journal = SqliteJournal(str(tmp_path), max_log_bytes=CAP)
    submit(journal, "chatty", 1)
    chatter(journal, "chatty", 1, rows=50)
    journal.close()
    journal = SqliteJournal(str(tmp_path), max_log_bytes=CAP)
    journal.load()
    chatter(journal, "chatty", 1, rows=50, start=50)
    assert CAP <= journaled_bytes(journal, "chatty") < CAP + len(LINE)
    submit(journal, "chatty", 2, replaced_seq=1)   # a new run starts with empty logs
    chatter(journal, "chatty", 2, rows=3)
    assert journaled_bytes(journal, "chatty") == 3 * len(LINE)


def test_a_smaller_cap_at_restart_trims_at_the_first_commit_even_one_without_output(tmp_path):
    """A commit writes only the parts with something pending; the rows found at open past the cap are
    pending deletions, though no output was recorded since."""
    journal = SqliteJournal(str(tmp_path), max_log_bytes=10 * CAP)
    submit(journal, "chatty", 1)
    chatter(journal, "chatty", 1, rows=50)
    journal.close()
    journal = SqliteJournal(str(tmp_path), max_log_bytes=CAP)
    journal.load()
    journal.record_store("k", "v")
    journal.commit()
    assert CAP <= journaled_bytes(journal, "chatty") < CAP + len(LINE)


def test_rows_dropped_by_a_failed_commit_are_dropped_by_the_next(tmp_path):
    journal = SqliteJournal(str(tmp_path), max_log_bytes=CAP)
    submit(journal, "chatty", 1)
    chatter(journal, "chatty", 1, rows=20)
    for i in range(20, 40):
        journal.record_log("chatty", 1, 1, "stdout", LINE)
    real_db = journal.db
    journal.db = _FailingCommit(real_db)
    try:
        journal.commit()
    except JournalWriteError:
        pass
    else:
        raise AssertionError("the commit was meant to fail")
    journal.db = real_db
    journal.commit()
    assert CAP <= journaled_bytes(journal, "chatty") < CAP + len(LINE)


class _FailingCommit:
    """A connection whose COMMIT fails as a full disk's does."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def execute(self, sql, *args):
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._db, name)
