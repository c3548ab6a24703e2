"""The SQLite journal's own checks (titan/master/sqlite_journal.py): row checksums, lost commits, rows decoded.

Every row of the tables the master loads carries `crc`, a CRC-32 of its values as msgpack, computed
when it is written and checked when the journal is loaded: SQLite's own checks (quick_check) find a
broken B-tree, not a flipped byte inside a value, which would start the master with a wrong store
value or job. Tables made before checksums get the column and their rows' checksums on first open.

SQLite replays its WAL up to the first frame that fails its checksum and silently drops the rest, so a
damaged WAL loses acknowledged commits without an error. The journal therefore numbers its commits
and writes the number of each acknowledged commit beside it, in `titan.db-commits` (12 bytes, rewritten
in place, not synced: a syscall per commit). A commit's number is the id of the `job_transitions` row it
appends, or, when it appends none (or folds, which deletes such rows), the `commits` value in `meta`:
the journal holds the greater of the two. (Counting in `meta` alone wrote one more page per commit.)
A clean close writes the count to `meta` too, for a Titan of before that, which reads `meta` alone.
On open, a journal holding fewer commits than were acknowledged is refused. After an OS crash or power loss, SQLite's synchronous=NORMAL may itself
take back the last commits; the refusal then says so, and moving the counter file away accepts it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import struct
import zlib
from typing import Dict, Iterable, Optional, Tuple

import msgpack

from titan.core.jobs import JobRun, JobSpec, JobState

# table -> the columns its checksum covers, in the table's order (job_transitions' id is SQLite's).
CHECKED_TABLES: Dict[str, Tuple[str, ...]] = {
    "job_specs": ("seq", "job_id", "dag", "spec"),
    "job_states": ("job_id", "seq", "state", "attempt", "failures", "worker_id", "worker", "last_worker_id",
                   "reason", "exit_code"),
    "job_transitions": ("count", "states"),
    "scripts": ("sha256", "script"),
    "dags": ("name", "job_ids"),
    "agent_runs": ("dag", "run_id"),
    "logs": ("id", "job_id", "seq", "attempt", "stream", "text"),
    "store": ("key", "kind", "value"),
    "store_members": ("key", "member"),
    "replies": ("id", "channel", "rid", "reply"),
    "deployed_scripts": ("name", "script", "deployed_at"),
    # history_journal's
    "run_times": ("seq", "queued_at", "started_at", "ended_at", "ended_attempts"),
    "past_runs": ("seq", "job_id", "record"),
    "dag_runs": ("run", "dag", "number", "submitted_at", "ended_at", "outcome", "seqs"),
}
WITHOUT_ROWID_KEYS = {"store": ("key",), "store_members": ("key", "member")}
COMMITS_KEY = "commits"          # in meta: how many commits the journal holds (see the module's docstring)
COUNTER_SUFFIX = "-commits"      # beside the journal: how many commits were acknowledged
_COUNTER = struct.Struct("<QI")  # the count, and a CRC-32 of it
_PACKER = msgpack.Packer(use_bin_type=True)   # one for all rows: packb would make one per row


class BadRow(Exception):
    """One row of the journal that cannot be read back; `row` is its key (or None when unknown)."""

    def __init__(self, table: str, row, problem: Exception):
        super().__init__(f"{table} row {row!r}: {problem}")
        self.table, self.row, self.problem = table, row, problem


class ChecksumMismatch(ValueError):
    """A row whose values are not those it was written with."""


class LostCommits(Exception):
    """The journal holds fewer commits than were acknowledged."""


def each_row(table: str, rows, convert):
    """convert(*row) for each row; a row that fails to convert raises BadRow naming it by its first column."""
    row = None
    try:
        for row in rows:
            yield convert(*row)
    except (ValueError, TypeError, KeyError, OverflowError, msgpack.UnpackException) as exc:
        raise BadRow(table, row[0] if row else None, exc) from None


def row_crc(values) -> int:
    """Over the values as SQLite gives them back: the journal writes each in its column's own type (a
    float in a REAL column, an int in an INTEGER one), so they come back as written."""
    return zlib.crc32(_PACKER.pack(values))


def with_crc(rows: Iterable[tuple]) -> list:
    """The rows to insert, each with its checksum as its last value (the crc column is last)."""
    return [(*row, row_crc(row)) for row in rows]


def verify_rows(db: sqlite3.Connection) -> int:
    """Check every row's checksum; BadRow names the first that fails. Returns how many were checked."""
    checked = 0
    for table, columns in CHECKED_TABLES.items():
        for row in db.execute(f"SELECT {', '.join(columns)}, crc FROM {table}"):
            if row[-1] is None or row[-1] != row_crc(row[:-1]):
                raise BadRow(table, row[0], ChecksumMismatch(
                    "its checksum does not match its values: it was damaged after it was written"))
            checked += 1
    return checked


def add_checksums(db: sqlite3.Connection) -> None:
    """UPGRADE_ADD_CHECKSUMS: give every checked table its crc column, and the rows of one made before it
    their checksums (once per table; a new table's is empty)."""
    for table, columns in CHECKED_TABLES.items():
        if "crc" in {info[1] for info in db.execute(f"PRAGMA table_info({table})")}:
            continue
        db.execute(f"ALTER TABLE {table} ADD COLUMN crc INTEGER")
        keys = WITHOUT_ROWID_KEYS.get(table, ("rowid",))
        rows = db.execute(f"SELECT {', '.join(keys + columns)} FROM {table}").fetchall()
        where = " AND ".join(f"{key} = ?" for key in keys)
        db.executemany(f"UPDATE {table} SET crc = ? WHERE {where}",
                       [(row_crc(row[len(keys):]), *row[:len(keys)]) for row in rows])


SECONDS_FIELDS = ("delay", "max_wait_seconds", "timeout")
STATE_COLUMNS = 10   # of a packed state change, as job_states holds them; history's fields follow them
# Run fields a spec row carries beside the spec (history_journal writes them): known at admission.
SPEC_EXTRAS = ("submitted_at", "dag_run")


def run_from_row(row: tuple, scripts: Dict[str, bytes]) -> JobRun:
    seq, dag, spec, state, attempt, failures, worker_id, worker, last_worker_id, reason, code = row
    fields = msgpack.unpackb(spec, raw=False)
    extras = {name: fields.pop(name, None) for name in SPEC_EXTRAS}
    if "script_sha256" in fields:   # journals before scripts were kept once hold them inline
        fields["script"] = scripts[fields.pop("script_sha256")]
    fields["parents"] = tuple(fields.get("parents") or ())
    for name in SECONDS_FIELDS:   # older masters took a NaN, and every timer froze at each restart
        value = fields.get(name)
        if value is not None and value - value != 0:
            raise ValueError(f"job {fields.get('job_id')!r}: {name} is {value}, not a finite number of seconds")
    if state is None:   # never dispatched since it was admitted
        state, attempt, failures = JobState.PENDING.value, 0, 0
    return JobRun(spec=JobSpec(**fields), dag=dag, seq=seq, state=JobState(state), attempt=attempt,
                  failures=failures, worker_id=worker_id, worker=worker, last_worker_id=last_worker_id,
                  reason=reason, exit_code=code, **extras)


def first_unwritable(db: sqlite3.Connection, up_to_id: int):
    """The id of the oldest job_transitions row holding a value SQLite cannot store (found only after an
    insert failed, so folding pays nothing for the check)."""
    for row_id, packed in db.execute("SELECT id, states FROM job_transitions WHERE id <= ? ORDER BY id", (up_to_id,)):
        for state in msgpack.unpackb(packed, raw=False):
            if not isinstance(state, list) or len(state) < STATE_COLUMNS or any(
                    isinstance(v, int) and not -2 ** 63 <= v < 2 ** 63 for v in state):
                return row_id
    return up_to_id


class CommitCounter:
    """The count of acknowledged commits, beside the journal; see the module's docstring."""

    def __init__(self, journal_path: str):
        self.path = journal_path + COUNTER_SUFFIX
        self._fd: Optional[int] = None

    def read(self) -> Optional[int]:
        """The count written last, None when there is no counter file (a new or older journal)."""
        try:
            with open(self.path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        if len(data) != _COUNTER.size:
            raise LostCommits(f"{self.path} is {len(data)} bytes long, not {_COUNTER.size}: it is damaged")
        count, crc = _COUNTER.unpack(data)
        if crc != zlib.crc32(count.to_bytes(8, "little")):
            raise LostCommits(f"{self.path} fails its checksum: it is damaged")
        return count

    def check(self, held: int) -> None:
        """LostCommits if the journal holds fewer commits than the counter says were acknowledged."""
        acknowledged = self.read()
        if acknowledged is not None and held < acknowledged:
            raise LostCommits(
                f"it holds {held} commits but {acknowledged} were acknowledged ({self.path}): its WAL lost "
                f"the last {acknowledged - held}. If the machine crashed or lost power, SQLite may have "
                f"taken them back itself: move {os.path.basename(self.path)} away to start with what it holds")

    def write(self, count: int) -> None:
        """Not synced: it must survive the master's death, as the commit does, not the machine's."""
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.pwrite(self._fd, _COUNTER.pack(count, zlib.crc32(count.to_bytes(8, "little"))), 0)
        except OSError:
            pass   # 12 bytes in place need no new block; if even that fails, only the detection is weaker

    def forget(self) -> None:
        """A new journal: a counter left from one moved away counts nothing of it."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
