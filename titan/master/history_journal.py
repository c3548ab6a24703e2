"""The journal's share of job history (titan/core/history.py), in SQLite beside sqlite_journal.py; its
pure parts (what rides in a spec row and a state change, the packed records, ForgottenRows and
ForgottenUnfolded) are postgres_journal.py's too, which keeps the same rows in PostgreSQL.

- A run's times ride along with its state: each packed state change (sqlite_journal's job_transitions)
  carries HISTORY_STATE_FIELDS after the ten state columns, and folding writes them to `run_times`
  (seq -> its times, and its earlier attempts packed; plain columns, so folding packs nothing for the
  many jobs that ran once). When it was submitted, and its DAG run, are known at admission and
  go into the spec row (SPEC_EXTRAS), so a run never dispatched needs no times row.
- An earlier run of a job submitted again (whose spec, logs and state row make way for the new run's)
  is kept as one packed record in `past_runs`.
- Each DAG submission is a row of `dag_runs`, written when it starts and again when it ends.
- A forgotten run (titan/core/retention.py) takes all its rows with it (`forget`), and the file gives
  the freed pages back a few at a time: the journal uses `auto_vacuum=INCREMENTAL` (an older journal is
  rebuilt that way once, when first opened: USE_INCREMENTAL_VACUUM).

UPGRADE_ADD_HISTORY adds the tables to a journal of before them (they start empty: its jobs have no
times, its DAGs one run each, see Scheduler.restore); the upgrade is marked by its own meta key,
`history_version`, so it chains with any change of `schema_version`.
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from typing import Iterable, List

import msgpack

from titan import defaults
from titan.core.history import DagRun
from titan.core.jobs import JobRun, JobSpec, JobState
from titan.master.journal_check import SPEC_EXTRAS, STATE_COLUMNS, each_row, with_crc

HISTORY_VERSION = "1"
HISTORY_TABLES = """
CREATE TABLE IF NOT EXISTS run_times (seq INTEGER PRIMARY KEY, queued_at REAL, started_at REAL, ended_at REAL,
    ended_attempts BLOB, crc INTEGER);
CREATE TABLE IF NOT EXISTS past_runs (seq INTEGER PRIMARY KEY, job_id TEXT NOT NULL, record BLOB NOT NULL, crc INTEGER);
CREATE TABLE IF NOT EXISTS dag_runs (run TEXT PRIMARY KEY, dag TEXT NOT NULL, number INTEGER NOT NULL,
    submitted_at REAL, ended_at REAL, outcome TEXT, seqs BLOB NOT NULL, crc INTEGER);
"""
UPGRADE_ADD_HISTORY = HISTORY_TABLES + f"""
INSERT OR REPLACE INTO meta VALUES ('history_version', '{HISTORY_VERSION}');
"""

HISTORY_STATE_FIELDS = ("queued_at", "started_at", "ended_at", "ended_attempts")


def add_history(db: sqlite3.Connection) -> None:
    """Create the history tables if this journal has none yet (UPGRADE_ADD_HISTORY), in one transaction."""
    row = db.execute("SELECT value FROM meta WHERE key = 'history_version'").fetchone()
    if row is not None and row[0] == HISTORY_VERSION:
        return
    if row is not None:
        raise sqlite3.DatabaseError(f"history version {row[0]}, this Titan reads version {HISTORY_VERSION}")
    db.executescript(f"BEGIN; {UPGRADE_ADD_HISTORY} COMMIT;")


def use_incremental_vacuum(db: sqlite3.Connection) -> None:
    """USE_INCREMENTAL_VACUUM: a new journal is made so; an existing one is rebuilt so (VACUUM), once."""
    (mode,) = db.execute("PRAGMA auto_vacuum").fetchone()
    if mode == INCREMENTAL:
        return
    db.execute("PRAGMA auto_vacuum=INCREMENTAL")
    (tables,) = db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    if tables:
        db.execute("VACUUM")


INCREMENTAL = 2   # PRAGMA auto_vacuum's value for INCREMENTAL


def forget(db: sqlite3.Connection, forgotten: "ForgottenRows", unfolded: "ForgottenUnfolded") -> float:
    """Delete the rows of forgotten runs, their DAG runs and DAGs, and scripts no run uses any more;
    returns the CPU seconds it took. State changes of theirs still to be folded are noted in `unfolded`."""
    if not forgotten:
        return 0.0
    began = time.thread_time()
    (newest,) = db.execute("SELECT MAX(id) FROM job_transitions").fetchone()
    if newest is not None and forgotten.runs:
        unfolded.add(newest, [seq for _, seq in forgotten.runs])
    by_seq = [(seq,) for _, seq in forgotten.runs]
    db.executemany("DELETE FROM job_specs WHERE seq = ?", by_seq)
    db.executemany("DELETE FROM job_states WHERE job_id = ? AND seq = ?", forgotten.runs)
    db.executemany("DELETE FROM logs WHERE job_id = ? AND seq = ?", forgotten.runs)
    db.executemany("DELETE FROM run_times WHERE seq = ?", by_seq)
    db.executemany("DELETE FROM past_runs WHERE seq = ?", by_seq)
    db.executemany("DELETE FROM dag_runs WHERE run = ?", [(run,) for run in forgotten.dag_runs])
    db.executemany("DELETE FROM dags WHERE name = ?", [(dag,) for dag in forgotten.dags])
    db.executemany("DELETE FROM agent_runs WHERE dag = ?", [(dag,) for dag in forgotten.dags])
    db.executemany("DELETE FROM scripts WHERE sha256 = ?", [(sha,) for sha in forgotten.scripts])
    db.executemany("DELETE FROM replies WHERE id = ?", [(row_id,) for row_id in forgotten.replies])
    return time.thread_time() - began


class ForgottenRows:
    """What one commit forgets: (job id, seq) of runs, DAG run ids, DAG names, script sha256s, and
    the row ids of replies that went with the runs they named (or were replaced)."""

    def __init__(self):
        self.runs: List[tuple] = []
        self.dag_runs: List[str] = []
        self.dags: List[str] = []
        self.scripts: List[str] = []
        self.replies: List[int] = []

    def __bool__(self) -> bool:
        return bool(self.runs or self.dag_runs or self.dags or self.scripts or self.replies)

    def add(self, runs: List[JobRun], dag_runs: List[str], dags: List[str], scripts: List[str]) -> None:
        self.runs += [(run.job_id, run.seq) for run in runs]
        self.dag_runs += dag_runs
        self.dags += dags
        self.scripts += scripts


def vacuum_some(db: sqlite3.Connection) -> float:
    """Give back a few freed pages (auto_vacuum=INCREMENTAL), after a commit that forgot something;
    returns the seconds it took. A failure loses nothing (the pages stay free for SQLite to reuse)."""
    began = time.thread_time()
    try:
        (free,) = db.execute("PRAGMA freelist_count").fetchone()
        if free >= 4 * defaults.VACUUM_PAGES:   # else SQLite reuses them: not worth a commit of its own
            db.execute(f"PRAGMA incremental_vacuum({defaults.VACUUM_PAGES})").fetchall()
    except sqlite3.Error:
        pass
    return time.thread_time() - began


def drop_orphans(db: sqlite3.Connection) -> None:
    """At load, after folding: state and times rows of runs forgotten while their changes waited to be
    folded by a master that was then killed (its memory of them went with it)."""
    db.execute("BEGIN")
    db.execute("DELETE FROM job_states WHERE seq NOT IN (SELECT seq FROM job_specs)")
    db.execute("DELETE FROM run_times WHERE seq NOT IN (SELECT seq FROM job_specs)")
    db.execute("COMMIT")


class ForgottenUnfolded:
    """Runs forgotten while state changes of theirs may still wait in job_transitions: folding those
    would bring back a state row of a run that is gone. Each batch is dropped once the rows up to the
    newest that existed when it was forgotten are folded, so this holds no more than the backlog does.
    Both only count once their transaction is committed (settle): a fold rolled back leaves those rows
    to fold again, and a forgetting rolled back is noted again, with its new newest id, when retried."""

    def __init__(self):
        self.seqs: set = set()
        self._batches: deque = deque()   # (newest job_transitions id then, seqs)
        self._added = 0                  # batches the open transaction added
        self._folding = None             # the newest id a fold of the open transaction reached

    def add(self, newest_id: int, seqs: List[int]) -> None:
        self._batches.append((newest_id, seqs))
        self.seqs.update(seqs)
        self._added += 1

    def folded(self, up_to_id: int) -> None:
        """The open transaction folds the rows up to `up_to_id`: settle() once it is committed."""
        self._folding = up_to_id

    def settle(self, committed: bool) -> None:
        """The open transaction ended, committed or rolled back."""
        up_to_id, added, self._folding, self._added = self._folding, self._added, None, 0
        if not committed:
            for _ in range(added):
                self.seqs.difference_update(self._batches.pop()[1])
            return
        while up_to_id is not None and self._batches and self._batches[0][0] <= up_to_id:
            self.seqs.difference_update(self._batches.popleft()[1])

    def without(self, states: Iterable[list]) -> Iterable[list]:
        seqs = self.seqs
        return (state for state in states if state[1] not in seqs) if seqs else states


# ----------------------------------------------------------------- riding along with specs and states

def with_spec_extras(spec: dict, run: JobRun) -> dict:
    for name in SPEC_EXTRAS:
        spec[name] = getattr(run, name)
    return spec


def write_run_times(db: sqlite3.Connection, states: Iterable[list]) -> None:
    db.executemany("INSERT OR REPLACE INTO run_times VALUES (?, ?, ?, ?, ?, ?)", with_crc(run_times_rows(states)))


def run_times_rows(states: Iterable[list]) -> Iterable[tuple]:
    """(seq, queued_at, started_at, ended_at, ended_attempts packed) of each packed state change that
    carries HISTORY_STATE_FIELDS (those of a master of before history do not)."""
    return ((state[1], state[10], state[11], state[12], None if state[13] is None else _pack(state[13]))
            for state in states if len(state) > STATE_COLUMNS)


def apply_times(run: JobRun, times: tuple) -> JobRun:
    """The run with what its run_times row (`times`, its columns after seq) says."""
    run.queued_at, run.started_at, run.ended_at, attempts = times
    run.ended_attempts = None if attempts is None else _unpack(attempts)
    return run


def forget_replaced(db: sqlite3.Connection, seqs: List[int]) -> None:
    db.executemany("DELETE FROM run_times WHERE seq = ?", [(seq,) for seq in seqs])


# ----------------------------------------------------------------- past runs and DAG runs

PAST_RUN_FIELDS = ("job_id", "filename", "requirement", "dag", "dag_run", "state", "attempt", "failures",
                   "worker", "reason", "exit_code", "submitted_at", "queued_at", "started_at", "ended_at",
                   "ended_attempts", "archive")   # archive last: records written before it end one short


def write_past_runs(db: sqlite3.Connection, runs: Iterable[JobRun]) -> None:
    db.executemany("INSERT OR REPLACE INTO past_runs VALUES (?, ?, ?, ?)",
                   with_crc((run.seq, run.job_id, past_record(run)) for run in runs))


def past_record(run: JobRun) -> bytes:
    """The run as one packed record of PAST_RUN_FIELDS (past_run reads it back)."""
    values = {"filename": run.spec.filename, "requirement": run.spec.requirement, "state": run.state.value,
              "archive": run.spec.archive}
    return _pack([values[name] if name in values else getattr(run, name) for name in PAST_RUN_FIELDS])


def load_past_runs(db: sqlite3.Connection) -> List[JobRun]:
    return list(each_row("past_runs", db.execute("SELECT seq, record FROM past_runs ORDER BY seq"), past_run))


def past_run(seq: int, record: bytes) -> JobRun:
    fields = dict(zip(PAST_RUN_FIELDS, _unpack(record)))
    spec = JobSpec(job_id=fields.pop("job_id"), filename=fields.pop("filename"), requirement=fields.pop("requirement"),
                   archive=fields.pop("archive", None))   # the content it ran from stays pinned while it is kept
    fields["state"] = JobState(fields["state"])
    return JobRun(spec=spec, seq=seq, **fields)


def write_dag_runs(db: sqlite3.Connection, dag_runs: Iterable[DagRun]) -> None:
    db.executemany("INSERT OR REPLACE INTO dag_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   with_crc(map(dag_run_row, dag_runs)))


def dag_run_row(d: DagRun) -> tuple:
    """(run, dag, number, submitted_at, ended_at, outcome, seqs packed): dag_run_from_row reads it back."""
    return d.run_id, d.dag, d.number, d.submitted_at, d.ended_at, d.outcome, _pack(d.seqs)


def dag_run_from_row(run: str, dag: str, number: int, submitted, ended, outcome, seqs: bytes) -> DagRun:
    return DagRun(run, dag, number, submitted, list(_unpack(seqs)), ended, outcome)


def load_dag_runs(db: sqlite3.Connection) -> List[DagRun]:
    rows = db.execute("SELECT run, dag, number, submitted_at, ended_at, outcome, seqs FROM dag_runs ORDER BY number")
    return list(each_row("dag_runs", rows, dag_run_from_row))


def _pack(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _unpack(blob: bytes):
    return msgpack.unpackb(blob, raw=False)

