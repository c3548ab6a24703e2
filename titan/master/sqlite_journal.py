"""The journal (titan/master/journal.py) in SQLite (WAL): what the master must not forget across a crash.

One transaction per turn of the master's loop, not one per job. Kept: every job's spec and latest state, DAGs, logs, TitanStore,
and the replies to requests that changed something (so a client retrying across a restart is answered,
not acted on twice).

A commit's job state changes are appended to `job_transitions` as one packed row rather than replaced
row by row in `job_states`: one small append where replacing touched pages all over two B-trees and
bound ten parameters per job, when the journal was a quarter of the master's time. `compact()` folds
the oldest of them into `job_states`; the master calls it when idle, and a little every second when it
never is; past FORCED_COMPACT_AT every commit folds some. Loading folds them all first. A run with no state row is as it was admitted: PENDING, never
dispatched (see `_is_as_admitted`).
"""

from __future__ import annotations

import os
import sqlite3
from collections import OrderedDict, defaultdict
from typing import Callable, Dict, List, TypeVar

import msgpack

from titan import defaults
from titan.core.jobs import JobRun, JobState
from titan.master import history_journal as history
from titan.master.deployed_scripts import DeployedScript
from titan.master.journal_check import (COMMITS_KEY, BadRow, CommitCounter, LostCommits, add_checksums,
                                        first_unwritable, run_from_row, verify_rows, with_crc)
from titan.master.journal_check import each_row as _each_row
from titan.master.journal_logs import LogRows
from titan.master.journal_buffer import BufferedJournal
from titan.master.journal import COMPACT_BATCH, JournalCorrupt, JournalInUse, JournalWriteError, Recovered

SCHEMA_VERSION = 4
LOCK_WAIT_S = 1.0              # how long a second master waits for the journal before giving up
FORCED_COMPACT_BATCH = 2_000   # folded by every commit while more than FORCED_COMPACT_AT wait
FORCED_COMPACT_AT = 100_000   # about 35,000 jobs' changes: the journal's size levels off early on
# A WAL grows to hold the biggest commit since the last checkpoint (a 10,000-job submission: megabytes)
# and SQLite keeps the file that size: past this it is cut back after a checkpoint, so the journal's size
# on disk follows what it holds, not the biggest turn it ever had.
WAL_SIZE_LIMIT = 4 * 1024 * 1024
FILE_NAME = "titan.db"
SQLITE_HEADER = b"SQLite format 3\0"
# The journal holds scripts, their args (passwords, sometimes) and logs: for the master's user alone.
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600

# One B-tree each: a TitanStore put commits its key and its reply, and every extra tree (a rowid table's
# key index, a uniqueness index, AUTOINCREMENT's counter) was one more page written per commit.
STORE_TABLE = "store (key TEXT PRIMARY KEY, kind TEXT NOT NULL, value BLOB NOT NULL) WITHOUT ROWID"
# A set's members one row each, so an sadd writes one row, not the whole set (a set row's own value holds
# only the members of journals before version 4).
STORE_MEMBERS_TABLE = "store_members (key TEXT NOT NULL, member TEXT NOT NULL, PRIMARY KEY (key, member)) WITHOUT ROWID"
REPLIES_TABLE = "replies (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, rid TEXT NOT NULL, reply BLOB NOT NULL)"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS job_specs (seq INTEGER PRIMARY KEY, job_id TEXT NOT NULL, dag TEXT, spec BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS job_states (
    job_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, state TEXT NOT NULL, attempt INTEGER NOT NULL,
    failures INTEGER NOT NULL, worker_id TEXT, worker TEXT, last_worker_id TEXT, reason TEXT, exit_code INTEGER);
CREATE TABLE IF NOT EXISTS job_transitions (id INTEGER PRIMARY KEY, count INTEGER NOT NULL, states BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS scripts (sha256 TEXT PRIMARY KEY, script BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS dags (name TEXT PRIMARY KEY, job_ids BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS agent_runs (dag TEXT PRIMARY KEY, run_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS logs (id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL, stream TEXT NOT NULL, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS logs_by_job ON logs (job_id, seq);
CREATE TABLE IF NOT EXISTS {STORE_TABLE};
CREATE TABLE IF NOT EXISTS {STORE_MEMBERS_TABLE};
CREATE TABLE IF NOT EXISTS {REPLIES_TABLE};
CREATE TABLE IF NOT EXISTS deployed_scripts (name TEXT PRIMARY KEY, script BLOB NOT NULL, deployed_at REAL NOT NULL);
"""

UNFOLDED_STATES = (JobState.PENDING, JobState.QUEUED)
COUNT_COMMIT = f"UPDATE meta SET value = ? WHERE key = '{COMMITS_KEY}'"
T = TypeVar("T")
# Version 1 kept every state in job_states, found replaced specs through an index on job_id, and had
# two B-trees for the store and three for the replies.
UPGRADE_FROM_1 = f"""
BEGIN;
DROP INDEX IF EXISTS job_specs_by_job;
CREATE TABLE new_{STORE_TABLE};
INSERT INTO new_store SELECT key, kind, value FROM store;
DROP TABLE store;
ALTER TABLE new_store RENAME TO store;
CREATE TABLE new_{REPLIES_TABLE};
INSERT INTO new_replies (channel, rid, reply) SELECT channel, rid, reply FROM replies ORDER BY id;
DROP TABLE replies;
ALTER TABLE new_replies RENAME TO replies;
UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema_version';
COMMIT;
"""

# Version 2 had no deployed_scripts table; SCHEMA has just created it (empty), so only the number moves.
UPGRADE_FROM_2 = f"UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema_version';"
# Version 3 kept a set's members in its store row only; SCHEMA has just created store_members (empty), and
# loading takes a set's members from both, so only the number moves. (An older Titan would miss members.)
UPGRADE_ADD_STORE_MEMBERS = UPGRADE_FROM_2


class SqliteJournal(BufferedJournal):
    def __init__(self, data_dir: str, max_log_bytes: int = defaults.MAX_LOG_BYTES_PER_JOB):
        os.makedirs(data_dir, mode=PRIVATE_DIR, exist_ok=True)
        self.path = os.path.join(data_dir, FILE_NAME)
        self.counter = CommitCounter(self.path)
        self._clear_pending()
        self.commits = 0   # transactions committed by commit(), for a caller that wants to know it was quiet
        try:
            self._open()
            self._read_positions(max_log_bytes)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise JournalCorrupt(self._unreadable(exc)) from None
            raise JournalInUse(f"journal {self.path} is in use by another Titan master: one master per data "
                               "dir. Stop that master first, or give this one its own --data-dir.") from None
        except sqlite3.DatabaseError as exc:
            raise JournalCorrupt(self._unreadable(exc)) from None
        except (LostCommits, ValueError) as exc:   # ValueError: a commit count that is not a number
            raise JournalCorrupt(self._unreadable(exc)) from None

    def _open(self) -> None:
        existed = os.path.exists(self.path) and os.path.getsize(self.path) > 0
        if not existed:
            self.counter.forget()
        _make_private(self.path)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=LOCK_WAIT_S)
        # Held from the first access until the master exits: no other process can open the journal
        # meanwhile, and commits skip the per-transaction lock and shared-memory work.
        self.db.execute("PRAGMA locking_mode=EXCLUSIVE")
        if existed:
            self._check_integrity()
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives the master being killed; only an OS crash or power
        # loss can take back the last commits. FULL would fsync each turn.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        history.use_incremental_vacuum(self.db)
        self.db.executescript(SCHEMA)
        self._check_version()
        history.add_history(self.db)
        self.db.execute("BEGIN IMMEDIATE")   # takes the write lock now, not at the first commit
        add_checksums(self.db)
        self.db.execute("INSERT OR IGNORE INTO meta VALUES (?, '0')", (COMMITS_KEY,))
        self.db.execute("COMMIT")

    def _read_positions(self, max_log_bytes: int) -> None:
        """Where the journal is: commits held (checked against those acknowledged), rows to fold, ids."""
        (held,) = self.db.execute("SELECT value FROM meta WHERE key = ?", (COMMITS_KEY,)).fetchone()
        (newest,) = self.db.execute("SELECT COALESCE(MAX(id), 0) FROM job_transitions").fetchone()
        self.commits_held = max(int(held), newest)   # commit()s this journal holds, over its whole life
        self.counter.check(self.commits_held)
        self._stored_scripts: set = set()   # sha256 of the scripts already in the journal (or pending)
        (self._unfolded,) = self.db.execute("SELECT COALESCE(SUM(count), 0) FROM job_transitions").fetchone()
        self._reply_ids: Dict[str, OrderedDict] = defaultdict(OrderedDict)   # see BufferedJournal
        for row_id, channel, rid in self.db.execute("SELECT id, channel, rid FROM replies ORDER BY id"):
            self._keep_reply(channel, rid, row_id)
        (self._next_reply_id,) = self.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM replies").fetchone()
        self._replies_since_prune = 0
        self._log_rows = LogRows.of_rows(max_log_bytes, self.db.execute(
            "SELECT id, job_id, seq, length(CAST(text AS BLOB)) FROM logs ORDER BY id"))
        self._doomed_logs: List[int] = []   # ids of log rows past the cap, until a commit deleted them
        self._forgotten_unfolded = history.ForgottenUnfolded()
        self.forget_seconds = 0.0           # spent deleting forgotten runs' rows, since opened

    def _unreadable(self, problem: Exception) -> str:
        return (f"journal {self.path} cannot be read ({problem}); the master will not start on it. "
                "Restore it from a backup, or move it away to start with an empty state.")

    def _check_integrity(self) -> None:
        with open(self.path, "rb") as handle:   # SQLite itself takes a 1-byte file for an empty database
            if handle.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                raise sqlite3.DatabaseError("it does not start with the SQLite header")
        (result,) = self.db.execute("PRAGMA quick_check").fetchone()
        if result != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {result}")

    def _check_version(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif row[0] == "1":
            self.db.executescript(UPGRADE_FROM_1)
        elif row[0] == "2":
            self.db.execute(UPGRADE_FROM_2)
        elif row[0] == "3":
            self.db.execute(UPGRADE_ADD_STORE_MEMBERS)
        elif row[0] != str(SCHEMA_VERSION):
            raise sqlite3.DatabaseError(f"schema version {row[0]}, this Titan reads version {SCHEMA_VERSION}")

    # ----------------------------------------------------------------- recording (buffered until commit)

    def _spec_row(self, run: JobRun, spec: bytes) -> tuple:
        return (run.seq, run.job_id, run.dag, spec)

    def commit(self) -> None:
        """Write everything recorded since the last commit in one transaction. If it cannot be written
        (disk full, I/O error) it raises JournalWriteError and keeps it all pending for the next try."""
        if not self.has_pending:
            return
        pruned = self._transact(self._write_pending)
        self.commits_held += 1
        self.counter.write(self.commits_held)   # acknowledged from here on
        self._replies_pruned(pruned)
        self.commits += 1
        self._doomed_logs = []
        vacuum = bool(self._forgotten)
        self._clear_pending()
        if vacuum:
            self.forget_seconds += history.vacuum_some(self.db)

    def _write_pending(self, db: sqlite3.Connection) -> Dict[str, List[int]]:
        """The whole commit; each part only when something of it is pending (a commit at S1-null is one
        or two of them, and each writer called for nothing cost as much as a small insert). Returns the
        replies pruned, for _replies_pruned once committed."""
        counted = self._write_jobs(db) if self._specs or self._states else False
        if self._dags:
            db.executemany("INSERT OR REPLACE INTO dags VALUES (?, ?, ?)", with_crc(self._dags.items()))
        if self._agent_runs:
            self._write_agent_runs(db)
        if self._logs or self._doomed_logs or self._log_rows.grew:
            self._write_logs(db)
        if self._replaced:
            self._delete_replaced(db)   # after specs and logs: a run replaced in this commit was written above
        if self._past_runs or self._dag_runs:
            history.write_past_runs(db, self._past_runs.values())
            history.write_dag_runs(db, self._dag_runs.values())
        if self._store or self._set_adds:
            self._write_store(db)
        pruned = self._write_replies(db) if self._replies else {}
        if self._deployed:
            db.executemany("INSERT OR REPLACE INTO deployed_scripts VALUES (?, ?, ?, ?)",
                           with_crc((name, script, at) for name, (script, at) in self._deployed.items()))
        if self._forgotten:
            self.forget_seconds += history.forget(db, self._forgotten, self._forgotten_unfolded)
        if self._unfolded > FORCED_COMPACT_AT:   # a master never idle still keeps the backlog bounded
            self._fold(db, FORCED_COMPACT_BATCH)
            counted = False   # the fold may have taken this commit's own row
        if not counted:
            db.execute(COUNT_COMMIT, (str(self.commits_held + 1),))
        return pruned

    @property
    def size_bytes(self) -> int:
        """The journal's file and its WAL, in bytes."""
        return sum(os.path.getsize(p) for p in (self.path, f"{self.path}-wal") if os.path.exists(p))

    def compact(self, batch: int = COMPACT_BATCH) -> bool:
        """Fold about `batch` of the oldest state changes into job_states; True if any were left to fold.
        Not needed for correctness: it bounds what a restart must fold, and the journal's size."""
        if not self._unfolded:
            return False
        self._transact(self._fold_counted, batch)
        return True

    def _fold_counted(self, db: sqlite3.Connection, batch: int) -> None:
        """_fold, and the commits held written to meta: the rows it deletes may have been counting them."""
        self._fold(db, batch)
        db.execute(COUNT_COMMIT, (str(self.commits_held),))

    def _transact(self, write: Callable[..., T], *args) -> T:
        """write(db, *args) in one transaction, returning what it returns; on any failure it is rolled
        back and the counters it moved are put back, so what was recorded can be committed again as it was."""
        unfolded, since_prune = self._unfolded, self._replies_since_prune
        self.db.execute("BEGIN")
        try:
            written = write(self.db, *args)
            self.db.execute("COMMIT")
        except BaseException as exc:
            if self.db.in_transaction:   # SQLite may have rolled back by itself (a full disk does)
                self.db.execute("ROLLBACK")
            self._forgotten_unfolded.settle(committed=False)
            self._unfolded, self._replies_since_prune = unfolded, since_prune
            if isinstance(exc, sqlite3.Error):
                raise JournalWriteError(f"journal {self.path} cannot be written ({exc})") from None
            raise
        self._forgotten_unfolded.settle(committed=True)
        return written

    def _fold(self, db: sqlite3.Connection, batch: int) -> None:
        """The oldest commits' changes, whole commits in order, until `batch` changes or none are left."""
        folded, last_id, states = 0, None, []
        oldest_first = db.execute("SELECT id, count, states FROM job_transitions ORDER BY id")
        try:
            for row_id, count, packed in oldest_first:
                if folded >= batch:
                    break
                last_id = row_id
                states += _unpack(packed)
                folded += count
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise BadRow("job_transitions", last_id, exc) from None
        finally:
            oldest_first.close()
        if last_id is None:
            self._unfolded = 0
            return
        try:
            latest = {state[0]: state for state in self._forgotten_unfolded.without(states)}
            db.executemany("INSERT OR REPLACE INTO job_states VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           with_crc(state[:history.STATE_COLUMNS] for state in latest.values()))
            history.write_run_times(db, latest.values())
        except (OverflowError, ValueError, TypeError, KeyError, sqlite3.InterfaceError,
                sqlite3.ProgrammingError) as exc:
            raise BadRow("job_transitions", first_unwritable(db, last_id), exc) from None
        db.execute("DELETE FROM job_transitions WHERE id <= ?", (last_id,))
        self._unfolded = max(0, self._unfolded - folded)
        self._forgotten_unfolded.folded(last_id)

    def _write_jobs(self, db: sqlite3.Connection) -> bool:
        """The new specs and scripts, and the state changes as one job_transitions row whose id is this
        commit's number, so it counts the commit (COUNT_COMMIT need not). True if it wrote that row."""
        _many(db, "INSERT OR IGNORE INTO scripts VALUES (?, ?, ?)", with_crc(self._scripts))
        _many(db, "INSERT OR REPLACE INTO job_specs VALUES (?, ?, ?, ?, ?)", with_crc(self._specs))
        # run.state itself, a str enum: msgpack packs it as its value, in the same bytes
        changed = [(run.job_id, run.seq, run.state, run.attempt, run.failures, run.worker_id, run.worker,
                    run.last_worker_id, run.reason, run.exit_code,   # then history.HISTORY_STATE_FIELDS:
                    run.queued_at, run.started_at, run.ended_at, run.ended_attempts)
                   for run in self._states.values() if not self._is_as_admitted(run)]
        if not changed:
            return False
        db.execute("INSERT INTO job_transitions (id, count, states, crc) VALUES (?, ?, ?, ?)",
                   (self.commits_held + 1, *with_crc([(len(changed), _pack(changed))])[0]))
        self._unfolded += len(changed)
        return True

    def _is_as_admitted(self, run: JobRun) -> bool:
        """A run admitted in this commit that was never dispatched needs no state row: loading takes a
        run without one as PENDING, and the scheduler queues it again if its parents are done."""
        return run.attempt == 0 and run.state in UNFOLDED_STATES and run.job_id in self._admitted

    def _write_logs(self, db: sqlite3.Connection) -> None:
        """The new rows, less the oldest of each job's rows past its cap (pending or already written)."""
        self._doomed_logs += self._log_rows.excess()
        doomed = set(self._doomed_logs)
        _many(db, "INSERT INTO logs (id, job_id, seq, attempt, stream, text, crc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       with_crc(row for row in self._logs if row[0] not in doomed))
        if doomed:
            pending = {row[0] for row in self._logs}
            _many(db, "DELETE FROM logs WHERE id = ?", [(row_id,) for row_id in doomed - pending])

    def _delete_replaced(self, db: sqlite3.Connection) -> None:
        _many(db, "DELETE FROM job_specs WHERE seq = ?", [(old,) for _, old, _ in self._replaced])
        _many(db, "DELETE FROM logs WHERE job_id = ? AND seq < ?", [(job, new) for job, _, new in self._replaced])
        history.forget_replaced(db, [old for _, old, _ in self._replaced])

    def _write_agent_runs(self, db: sqlite3.Connection) -> None:
        # delete, then insert: a re-submitted DAG moves to the end of its run's list
        _many(db, "DELETE FROM agent_runs WHERE dag = ?", [(dag,) for dag in self._agent_runs])
        _many(db, "INSERT INTO agent_runs VALUES (?, ?, ?)",
                       with_crc((dag, run_id) for dag, run_id in self._agent_runs.items() if run_id is not None))

    def _write_store(self, db: sqlite3.Connection) -> None:
        """Whole values first (replacing any members the key had), then the members added one by one."""
        if self._store:
            _many(db, "DELETE FROM store_members WHERE key = ?", [(key,) for key in self._store])
            _many(db, "DELETE FROM store WHERE key = ?", [(k,) for k, value in self._store.items() if value is None])
            _many(db, "INSERT OR REPLACE INTO store VALUES (?, ?, ?, ?)", with_crc(
                (key, "set", _pack([])) if isinstance(value, set) else (key, "string", _pack(value))
                for key, value in self._store.items() if value is not None))
            _many(db, "INSERT INTO store_members VALUES (?, ?, ?)", with_crc(
                (key, member) for key, value in self._store.items() if isinstance(value, set) for member in value))
        if self._set_adds:
            _many(db, "INSERT OR IGNORE INTO store VALUES (?, ?, ?, ?)",
                  with_crc((key, "set", _pack([])) for key in self._set_adds))
            _many(db, "INSERT OR IGNORE INTO store_members VALUES (?, ?, ?)",
                  with_crc((key, member) for key, members in self._set_adds.items() for member in members))

    def _write_replies(self, db: sqlite3.Connection) -> Dict[str, List[int]]:
        """Insert the new replies, and now and then delete the oldest past REPLIES_KEPT per channel;
        returns those deleted, for _replies_pruned once the commit succeeded."""
        db.executemany("INSERT INTO replies (id, channel, rid, reply, crc) VALUES (?, ?, ?, ?, ?)",
                       with_crc(self._replies))
        pruned = self._replies_to_prune()
        _many(db, "DELETE FROM replies WHERE id = ?", [(row_id,) for ids in pruned.values() for row_id in ids])
        return pruned

    # ----------------------------------------------------------------- recovery

    def load(self) -> Recovered:
        """Everything committed. One row that cannot be read (bad bytes, a number SQLite cannot hold, a
        field this Titan does not know) refuses the whole journal, naming the row: skipping it would lose
        or rewind what was acknowledged (a finished job run again), and nobody would notice."""
        try:
            verify_rows(self.db)
            while self.compact():
                pass
            history.drop_orphans(self.db)
            return self._load_all()
        except BadRow as bad:
            raise JournalCorrupt(self._bad_row(bad)) from None
        except (sqlite3.DatabaseError, ValueError, TypeError, KeyError, OverflowError, msgpack.UnpackException) as exc:
            raise JournalCorrupt(self._unreadable(exc)) from None   # a value no row check caught

    def _bad_row(self, bad: "BadRow") -> str:
        return (f"journal {self.path}: row {bad.row!r} of table {bad.table} cannot be loaded "
                f"({type(bad.problem).__name__}: {bad.problem}); the master will not start on it rather than "
                "lose or misread what it holds. Restore it from a backup, or move it away to start with an "
                "empty state.")

    def _load_all(self) -> Recovered:
        recovered = Recovered()
        recovered.runs = self._load_runs()
        recovered.past_runs = history.load_past_runs(self.db)
        recovered.dag_runs = history.load_dag_runs(self.db)
        recovered.dags = dict(_each_row("dags", self.db.execute("SELECT name, job_ids FROM dags"),
                                        lambda name, ids: (name, _unpack(ids))))
        recovered.logs = list(self.db.execute(
            "SELECT logs.job_id, logs.attempt, logs.stream, logs.text FROM logs JOIN job_specs "
            "ON logs.seq = job_specs.seq ORDER BY logs.id"))
        store_rows = self.db.execute("SELECT key, kind, value FROM store")
        recovered.store = dict(_each_row("store", store_rows, lambda key, kind, value: (
            key, set(_unpack(value)) if kind == "set" else _unpack(value))))
        for key, member in self.db.execute("SELECT key, member FROM store_members"):
            recovered.store.setdefault(key, set()).add(member)
        recovered.agent_runs = dict(self.db.execute("SELECT dag, run_id FROM agent_runs ORDER BY rowid"))
        recovered.deployed_scripts = [DeployedScript(name, script, at) for name, script, at in
                                      self.db.execute("SELECT name, script, deployed_at FROM deployed_scripts")]
        for channel, rid, reply in self.db.execute("SELECT channel, rid, reply FROM replies ORDER BY id"):
            recovered.replies.setdefault(channel, []).append((rid, reply))
        return recovered

    def _load_runs(self) -> List[JobRun]:
        rows = self.db.execute(
            "SELECT s.seq, s.dag, s.spec, j.state, j.attempt, j.failures, j.worker_id, j.worker, "
            "j.last_worker_id, j.reason, j.exit_code, t.queued_at, t.started_at, t.ended_at, t.ended_attempts "
            "FROM job_specs s LEFT JOIN job_states j ON j.seq = s.seq LEFT JOIN run_times t ON t.seq = s.seq "
            "ORDER BY s.seq")
        scripts = dict(self.db.execute("SELECT sha256, script FROM scripts"))
        self._stored_scripts = set(scripts)
        return list(_each_row("job_specs", rows, lambda *row: history.apply_times(run_from_row(row[:11], scripts),
                                                                                  row[11:])))

    def close(self) -> None:
        self._count_in_meta()
        self.db.close()
        self.counter.close()

    def _count_in_meta(self) -> None:
        """meta's count made whole, so that a Titan of before commits were counted by their rows (it reads
        meta alone) can open a journal closed cleanly. A full disk only leaves it as it was."""
        try:
            (held,) = self.db.execute("SELECT value FROM meta WHERE key = ?", (COMMITS_KEY,)).fetchone()
            if int(held) < self.commits_held:
                self.db.execute(COUNT_COMMIT, (str(self.commits_held),))
        except sqlite3.Error:
            pass


def _many(db: sqlite3.Connection, sql: str, rows: list) -> None:
    """executemany, skipped for no rows: most commits write a few of the tables, and each empty call
    costs about as much as a small insert."""
    if rows:
        db.executemany(sql, rows)


def _make_private(path: str) -> None:
    """The journal file created, or an older one tightened, owner-only; SQLite gives its WAL the same mode."""
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, PRIVATE_FILE))
    for each in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        if os.path.exists(each):
            os.chmod(each, PRIVATE_FILE)


_PACKER = msgpack.Packer(use_bin_type=True)   # packb makes a Packer per call: a few us of each commit


def _pack(value) -> bytes:
    return _PACKER.pack(value)


def _unpack(blob: bytes):
    return msgpack.unpackb(blob, raw=False)
