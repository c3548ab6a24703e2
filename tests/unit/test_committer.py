"""The master's committer through a journal outage: a failed commit or fold starts it, nothing is lost
from what is pending, a retry waits its interval, and the first good commit ends it."""

from __future__ import annotations

import sqlite3

from titan.master.committer import Committer
from titan.master.journal import JournalWriteError
from titan.master.sqlite_journal import SqliteJournal


class FullDisk(SqliteJournal):
    """A real SQLite journal whose writes fail while `full` is set, as SQLite does on a full disk."""

    full = False

    def commit(self) -> None:
        if self.full and self.has_pending:
            raise JournalWriteError(f"journal {self.path} cannot be written (database or disk is full)")
        super().commit()

    def compact(self, batch: int = 2_000) -> bool:
        if self.full:
            raise JournalWriteError(f"journal {self.path} cannot be written (database or disk is full)")
        return super().compact(batch)


def test_a_failed_fold_starts_an_outage_instead_of_ending_the_master(tmp_path):
    journal = FullDisk(str(tmp_path))
    committer = Committer(journal, retry_every=1.0)
    journal.full = True
    committer.compact(100, now=0.0)
    assert committer.failure and "disk is full" in committer.failure


def test_what_was_recorded_in_an_outage_is_written_by_the_first_good_commit(tmp_path):
    journal = FullDisk(str(tmp_path))
    committer = Committer(journal, retry_every=1.0)
    journal.full = True
    journal.record_store("k", "v")
    assert not committer.commit(now=0.0) and committer.failure
    journal.full = False
    assert not committer.commit(now=0.5), "a retry waits its interval"
    assert committer.commit(now=1.0) and committer.failure is None
    journal.close()
    rows = sqlite3.connect(str(tmp_path / "titan.db")).execute("SELECT key FROM store").fetchall()
    assert rows == [("k",)]
