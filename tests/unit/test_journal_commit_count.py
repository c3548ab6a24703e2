"""The SQLite journal's count of the commits it holds (titan/master/journal_check.py): a commit that
appends state changes is counted by that row's id, one that appends none by `meta`; either way a WAL
that lost acknowledged commits is refused, and folding (which deletes those rows) loses no count."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from titan.core.jobs import JobRun, JobSpec, JobState
from titan.master.journal import JournalCorrupt
from titan.master.journal_check import COMMITS_KEY, COUNTER_SUFFIX
from titan.master import sqlite_journal
from titan.master.sqlite_journal import FILE_NAME, SqliteJournal
from tests.unit.test_journal_integrity import files_left_by_kill9

WAL_HEADER, WAL_FRAME_HEADER, PAGE = 32, 24, 4096


def admitted(journal: SqliteJournal, count: int) -> list:
    runs = [JobRun(spec=JobSpec(job_id=f"job-{n}", filename="j.py", script=b"pass\n"), dag=None, seq=n + 1)
            for n in range(count)]
    for run in runs:
        journal.record_submission(run, None, hashlib.sha256(run.spec.script).hexdigest())
    journal.commit()
    return runs


def change_states(journal: SqliteJournal, runs: list, attempt: int) -> None:
    """One commit per run, each with a state change and nothing else."""
    for run in runs:
        run.state, run.attempt, run.worker = JobState.RUNNING, attempt, "w1"
        journal.record_state(run)
        journal.commit()


def meta_count(journal: SqliteJournal) -> int:
    return int(journal.db.execute("SELECT value FROM meta WHERE key = ?", (COMMITS_KEY,)).fetchone()[0])


def test_a_commit_of_state_changes_alone_is_counted_by_its_row_not_by_meta(tmp_path):
    journal = SqliteJournal(str(tmp_path))
    runs = admitted(journal, 5)
    before, held = meta_count(journal), journal.commits_held
    change_states(journal, runs, 1)
    assert journal.commits_held == held + 5
    assert meta_count(journal) == before, "meta was written by commits that had a row to count them"
    (newest,) = journal.db.execute("SELECT MAX(id) FROM job_transitions").fetchone()
    assert newest == journal.commits_held
    journal.close()
    reopened = SqliteJournal(str(tmp_path))
    assert reopened.commits_held == held + 5
    assert meta_count(reopened) == held + 5, "a clean close writes the count to meta, for an older Titan"


def test_folding_the_rows_that_counted_commits_keeps_the_count(tmp_path):
    journal = SqliteJournal(str(tmp_path))
    runs = admitted(journal, 4)
    change_states(journal, runs, 1)
    held = journal.commits_held
    while journal.compact():
        pass
    assert journal.db.execute("SELECT COUNT(*) FROM job_transitions").fetchone() == (0,)
    assert meta_count(journal) == held
    journal.close()
    reopened = SqliteJournal(str(tmp_path))   # the counter file says `held` were acknowledged
    assert reopened.commits_held == held
    change_states(reopened, runs[:1], 2)     # numbered on from there, not from the emptied table
    assert reopened.commits_held == held + 1
    reopened.close()
    assert {r.job_id: r.attempt for r in SqliteJournal(str(tmp_path)).load().runs}["job-0"] == 2


def test_a_wal_cut_short_of_the_last_state_change_commits_is_refused(tmp_path):
    """The master killed, then its WAL lost its last frames (those commits counted by their rows only):
    SQLite replays what is left without a word; the journal must not."""
    live = SqliteJournal(str(tmp_path / "live"))
    runs = admitted(live, 6)
    change_states(live, runs, 1)
    killed = files_left_by_kill9(tmp_path / "live", tmp_path / "killed")
    live.close()
    wal = killed / (FILE_NAME + "-wal")
    data = wal.read_bytes()
    wal.write_bytes(data[:len(data) - 2 * (WAL_FRAME_HEADER + PAGE)])   # the last commit or two
    with pytest.raises(JournalCorrupt, match=r"WAL lost the last \d+"):
        SqliteJournal(str(killed)).load()


def test_a_journal_with_more_state_rows_than_counted_commits_opens_and_commits(tmp_path):
    """A journal of before the count holds unfolded rows whose ids pass its count (which starts at 0):
    its next commit's row must not take an id already there."""
    journal = SqliteJournal(str(tmp_path))
    runs = admitted(journal, 3)
    change_states(journal, runs, 1)
    journal.close()
    db = sqlite3.connect(str(tmp_path / FILE_NAME))
    db.execute("UPDATE job_transitions SET id = id + 10")
    db.execute("UPDATE meta SET value = '0' WHERE key = ?", (COMMITS_KEY,))
    db.commit()
    db.close()
    (tmp_path / (FILE_NAME + COUNTER_SUFFIX)).unlink()   # as such a journal had none
    older = SqliteJournal(str(tmp_path))
    newest = older.commits_held
    assert newest >= 13
    change_states(older, runs[:1], 2)
    assert older.commits_held == newest + 1
    older.close()
    assert {r.job_id: r.attempt for r in SqliteJournal(str(tmp_path)).load().runs}["job-0"] == 2


def test_a_commit_that_folds_its_own_row_is_counted_in_meta(tmp_path, monkeypatch):
    """Past FORCED_COMPACT_AT a commit folds, and a big enough fold takes the row counting the commit."""
    monkeypatch.setattr(sqlite_journal, "FORCED_COMPACT_AT", 0)
    journal = SqliteJournal(str(tmp_path))
    runs = admitted(journal, 3)
    change_states(journal, runs, 1)
    assert journal.db.execute("SELECT COUNT(*) FROM job_transitions").fetchone() == (0,)
    assert meta_count(journal) == journal.commits_held
    held = journal.commits_held
    journal.close()
    assert SqliteJournal(str(tmp_path)).commits_held == held
