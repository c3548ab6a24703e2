"""The journal (titan/master/journal.py) in PostgreSQL: what any master of the cluster needs to carry on.

It keeps what the SQLite journal keeps, in the same shape (one transaction per turn of the loop, a
commit's state changes appended as one packed row and folded later; see sqlite_journal.py), and the
artifacts too (postgres_artifacts.py), so a standby on another machine needs only the URL. Every SQL
statement is in postgres_sql.py.

Only the master holding the lease (titan/master/lease.py) opens it, with the lease's epoch. Every
transaction starts with titan_fence(epoch), which renews the lease and fails once another master has
taken it: a deposed master (paused, partitioned) can never write again, and raises Deposed instead.
A lost connection is a write error like a full disk: the master refuses changes and retries.

History (history_journal.py) is kept as in SQLite, with its pure helpers: the spec row carries
submitted_at and the DAG run, state changes carry the run's times and folding writes them to
titan_run_times, earlier runs are rows of titan_past_runs and DAG runs of titan_dag_runs. Forgotten runs'
rows are deleted in the commit (`_forget`); the space they took is reclaimed by PostgreSQL's autovacuum,
which marks it free for new rows (there is no auto_vacuum mode to set, and no VACUUM is run by Titan).
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict, defaultdict
from typing import Dict, Iterator, List, Optional

from titan import defaults
from titan.core.jobs import JobRun
from titan.master import history_journal as history
from titan.master import postgres_sql as sql
from titan.master.deployed_scripts import DeployedScript
from titan.master.journal_logs import LogRows
from titan.master.journal_buffer import BufferedJournal
from titan.master.journal import COMPACT_BATCH, Deposed, JournalCorrupt, JournalWriteError, Recovered
from titan.master.journal_check import STATE_COLUMNS, BadRow, each_row as _each_row, run_from_row as _run_from_row
from titan.master.sqlite_journal import (FORCED_COMPACT_AT, FORCED_COMPACT_BATCH, UNFOLDED_STATES,
                                         _pack, _unpack)
from titan.master.postgres_connect import connect, is_deposed, psycopg, redacted

TRANSITION_ROWS_PER_READ = 256


def encode(text: Optional[str]) -> Optional[bytes]:
    return None if text is None else text.encode("utf-8", "surrogatepass")


def decode(blob) -> Optional[str]:
    return None if blob is None else bytes(blob).decode("utf-8", "surrogatepass")


class PostgresJournal(BufferedJournal):
    shared = True
    remedy = "Retry once PostgreSQL can be reached and written again"

    def __init__(self, url: str, epoch: int, max_log_bytes: int = defaults.MAX_LOG_BYTES_PER_JOB):
        self.url, self.epoch = url, epoch
        self.path = redacted(url)
        self.commits = 0
        self._db: Optional["psycopg.Connection"] = None
        self._stored_scripts: set = set()
        self._reply_ids: Dict[str, OrderedDict] = defaultdict(OrderedDict)
        self._replies_since_prune = 0
        self._doomed_logs: List[int] = []   # ids of log rows past the cap, until a commit deleted them
        self._forgotten_unfolded = history.ForgottenUnfolded()
        self.forget_seconds = 0.0           # spent deleting forgotten runs' rows, since opened
        self._size_bytes, self._size_read_at = 0, None
        self._clear_pending()
        try:
            db = self._connection()
            (self._unfolded,) = db.execute(sql.COUNT_UNFOLDED).fetchone()
            for row_id, channel, rid in db.execute(sql.REPLY_IDS):
                self._keep_reply(channel, decode(rid), row_id)
            self._next_reply_id = max((row_id for ids in self._reply_ids.values() for row_id in ids.values()),
                                      default=0) + 1
            self._log_rows = LogRows.of_rows(max_log_bytes, ((row_id, decode(job), seq, size) for row_id, job, seq, size
                                                             in db.execute(sql.LOG_ROW_SIZES)))
            self._refresh_size()
        except psycopg.Error as exc:
            raise JournalWriteError(f"journal {self.path} cannot be read ({exc})") from None

    def _connection(self) -> "psycopg.Connection":
        if self._db is None or self._db.closed or self._db.broken:
            if self._db is not None:
                self._db.close()
            self._db = connect(self.url)
        return self._db

    # ----------------------------------------------------------------- recording (buffered until commit)

    def _spec_row(self, run: JobRun, spec: bytes) -> tuple:
        return (run.seq, encode(run.dag), spec)

    @property
    def size_bytes(self) -> int:
        """What the titan_ tables take, indexes and TOAST included, as PostgreSQL last said (read by
        renew(), at most every POSTGRES_SIZE_REFRESH_S): stats() answers from memory, without a wait on
        PostgreSQL, even while it cannot be reached."""
        return self._size_bytes

    def _refresh_size(self) -> None:
        now = time.monotonic()
        if self._size_read_at is None or now - self._size_read_at >= defaults.POSTGRES_SIZE_REFRESH_S:
            self._size_read_at = now
            try:
                (self._size_bytes,) = self._connection().execute(sql.SIZE_BYTES).fetchone()
            except psycopg.Error:   # the last figure stays; the next renewal's commit says what is wrong
                pass

    # ----------------------------------------------------------------- writing

    def commit(self) -> None:
        if not self.has_pending:
            return
        if self._fits_one_statement():
            self._commit_in_one_statement()
            return
        with self.transaction() as db:
            self._write_jobs(db)
            _many(db, sql.UPSERT_DAG, [(encode(name), ids) for name, ids in self._dags.items()])
            self._write_agent_runs(db)
            self._write_logs(db)
            self._delete_replaced(db)   # after the specs and logs: a run replaced within this commit was written
            self._write_history(db)
            self._write_store(db)
            pruned = self._write_replies(db)
            _many(db, sql.UPSERT_DEPLOYED, [(encode(name), script, at)
                                                          for name, (script, at) in self._deployed.items()])
            self.forget_seconds += self._forget(db)
            if self._unfolded > FORCED_COMPACT_AT:
                self._fold(db, FORCED_COMPACT_BATCH)
        self._replies_pruned(pruned)
        self.commits += 1
        self._doomed_logs = []
        self._clear_pending()

    def _fits_one_statement(self) -> bool:
        """Nothing pending but admissions (no run replaced), state changes and replies, and neither a fold
        nor a prune of replies due."""
        return not (self._replaced or self._dags or self._logs or self._store or self._set_adds
                    or self._agent_runs or self._deployed or self._past_runs or self._dag_runs or self._forgotten
                    or self._doomed_logs or self._unfolded + len(self._states) > FORCED_COMPACT_AT
                    or self._prune_due())

    def _commit_in_one_statement(self) -> None:
        """commit() of such a turn as one statement (sql.WRITE_TURN), fenced as any."""
        changed = self._changed_states()
        replies = self._replies
        with self._written():
            self._connection().execute(sql.WRITE_TURN, {
                "epoch": self.epoch, "shas": [sha for sha, _ in self._scripts],
                "scripts": [script for _, script in self._scripts], "seqs": [seq for seq, _, _ in self._specs],
                "dags": [dag for _, dag, _ in self._specs], "specs": [spec for _, _, spec in self._specs],
                "count": len(changed), "states": _pack(changed) if changed else b"",
                "ids": [row_id for row_id, _, _, _ in replies], "channels": [channel for _, channel, _, _ in replies],
                "rids": [encode(rid) for _, _, rid, _ in replies], "replies": [reply for _, _, _, reply in replies]})
        self._unfolded += len(changed)
        self._replies_since_prune += len(replies)
        self.commits += 1
        self._clear_pending()

    def renew(self) -> None:
        """Renew the lease (a transaction of the fence alone): Deposed if another master holds it now."""
        with self.transaction():
            pass
        self._refresh_size()

    def compact(self, batch: int = COMPACT_BATCH) -> bool:
        if not self._unfolded:
            return False
        with self.transaction() as db:
            self._fold(db, batch)
        return True

    @contextlib.contextmanager
    def transaction(self) -> Iterator["psycopg.Connection"]:
        """One fenced transaction: Deposed if this master no longer holds the lease, JournalWriteError
        (with the counters it moved put back) if it could not be written."""
        with self._written():
            db = self._connection()
            # Pipelined: the turn's statements go together and their results are read at the end, where
            # the fence's failure shows (measured against pipelining BEGIN and COMMIT too, and against no
            # pipeline: this was the fastest of the three)
            with db.transaction(), db.pipeline():
                db.execute(sql.FENCE, (self.epoch,))
                yield db

    @contextlib.contextmanager
    def _written(self) -> Iterator[None]:
        """Around a fenced write: Deposed, or JournalWriteError with the counters it moved put back."""
        unfolded, since_prune = self._unfolded, self._replies_since_prune
        try:
            yield
            self._forgotten_unfolded.settle(committed=True)
        except BaseException as exc:
            self._forgotten_unfolded.settle(committed=False)
            self._unfolded, self._replies_since_prune = unfolded, since_prune
            if isinstance(exc, psycopg.Error):
                if is_deposed(exc):
                    raise Deposed(f"another master took the lease of journal {self.path} (this master's epoch "
                                  f"{self.epoch} is over); it must not write again") from None
                raise JournalWriteError(f"journal {self.path} cannot be written ({_first_line(exc)})") from None
            raise

    def _fold(self, db, batch: int) -> None:
        folded, last_id, states = 0, None, []
        try:
            for row_id, count, packed in db.execute(sql.OLDEST_TRANSITIONS, (TRANSITION_ROWS_PER_READ,)):
                if folded >= batch:
                    break
                last_id = row_id
                states += _unpack(packed)
                folded += count
        except (ValueError, TypeError) as exc:
            raise BadRow("titan_job_transitions", last_id, exc) from None
        if last_id is None:
            self._unfolded = 0
            return
        latest = {state[0]: state for state in self._forgotten_unfolded.without(states)}
        _many(db, sql.UPSERT_JOB_STATE, [(encode(job_id), state[1], _pack(state[:STATE_COLUMNS]))
                                         for job_id, state in latest.items()])
        _many(db, sql.UPSERT_RUN_TIMES, history.run_times_rows(latest.values()))
        db.execute(sql.DELETE_FOLDED, (last_id,))
        self._unfolded = max(0, self._unfolded - folded)
        self._forgotten_unfolded.folded(last_id)

    def _write_jobs(self, db) -> None:
        _many(db, sql.INSERT_SCRIPT, self._scripts)
        _many(db, sql.UPSERT_SPEC, self._specs)
        changed = self._changed_states()
        if changed:
            db.execute(sql.APPEND_TRANSITIONS, (len(changed), _pack(changed)))
            self._unfolded += len(changed)

    def _changed_states(self) -> List[tuple]:
        """The state changes to append, as one packed row holds them (runs still as admitted need none)."""
        return [(run.job_id, run.seq, run.state.value, run.attempt, run.failures, run.worker_id, run.worker,
                 run.last_worker_id, run.reason, run.exit_code,   # then history.HISTORY_STATE_FIELDS:
                 run.queued_at, run.started_at, run.ended_at, run.ended_attempts)
                for run in self._states.values() if not self._is_as_admitted(run)]

    def _is_as_admitted(self, run: JobRun) -> bool:
        return run.attempt == 0 and run.state in UNFOLDED_STATES and run.job_id in self._admitted

    def _delete_replaced(self, db) -> None:
        _many(db, sql.DELETE_SPEC, [(old,) for _, old, _ in self._replaced])
        _many(db, sql.DELETE_OLD_LOGS, [(encode(job), new) for job, _, new in self._replaced])
        _many(db, sql.DELETE_RUN_TIMES, [(old,) for _, old, _ in self._replaced])

    def _write_history(self, db) -> None:
        _many(db, sql.UPSERT_PAST_RUN, [(run.seq, encode(run.job_id), history.past_record(run))
                                        for run in self._past_runs.values()])
        _many(db, sql.UPSERT_DAG_RUN, [(encode(run), encode(dag), *rest) for run, dag, *rest
                                       in map(history.dag_run_row, self._dag_runs.values())])

    def _forget(self, db) -> float:
        """history_journal.forget in PostgreSQL: the rows of forgotten runs, their DAG runs and DAGs, and
        scripts no run uses any more; returns the CPU seconds it took. State changes of theirs still to
        be folded are noted in _forgotten_unfolded (the newest id read costs a round trip, so only here)."""
        forgotten = self._forgotten
        if not forgotten:
            return 0.0
        began = time.thread_time()
        (newest,) = db.execute(sql.NEWEST_TRANSITION).fetchone()
        if newest is not None:
            self._forgotten_unfolded.add(newest, [seq for _, seq in forgotten.runs])
        job_ids, seqs = [encode(job_id) for job_id, _ in forgotten.runs], [seq for _, seq in forgotten.runs]
        dags = [encode(dag) for dag in forgotten.dags]
        for statement, keys in ((sql.FORGET_SPECS, (seqs,)), (sql.FORGET_STATES, (job_ids, seqs)),
                                (sql.FORGET_LOGS, (job_ids, seqs)), (sql.FORGET_RUN_TIMES, (seqs,)),
                                (sql.FORGET_PAST_RUNS, (seqs,)),
                                (sql.FORGET_DAG_RUNS, ([encode(run) for run in forgotten.dag_runs],)),
                                (sql.FORGET_DAGS, (dags,)), (sql.FORGET_AGENT_RUNS, (dags,)),
                                (sql.FORGET_SCRIPTS, (forgotten.scripts,)),
                                (sql.FORGET_REPLIES, (forgotten.replies,))):
            if keys[0]:
                db.execute(statement, keys)
        return time.thread_time() - began

    def _write_agent_runs(self, db) -> None:
        _many(db, sql.DELETE_AGENT_RUN, [(encode(dag),) for dag in self._agent_runs])
        _many(db, sql.INSERT_AGENT_RUN, [(encode(dag), encode(run_id))
                                                       for dag, run_id in self._agent_runs.items() if run_id is not None])

    def _write_logs(self, db) -> None:
        """The new rows, less the oldest of each job's rows past its cap (pending or already written)."""
        self._doomed_logs += self._log_rows.excess()
        doomed = set(self._doomed_logs)
        _many(db, sql.INSERT_LOG, [(row_id, encode(job_id), seq, attempt, stream, encode(text))
                                   for row_id, job_id, seq, attempt, stream, text in self._logs if row_id not in doomed])
        pending = {row[0] for row in self._logs}
        _many(db, sql.DELETE_LOG, [(row_id,) for row_id in doomed - pending])

    def _write_store(self, db) -> None:
        """Whole values first (replacing any members the key had), then the members added one by one."""
        _many(db, sql.DELETE_MEMBERS, [(encode(key),) for key in self._store])
        _many(db, sql.DELETE_STORE_KEY, [(encode(key),) for key, value in self._store.items()
                                                       if value is None])
        kept = [(encode(key), "set", _pack([])) if isinstance(value, set)
                else (encode(key), "string", _pack(value)) for key, value in self._store.items() if value is not None]
        _many(db, sql.UPSERT_STORE_KEY, kept)
        _many(db, sql.INSERT_MEMBER, [(encode(key), encode(member)) for key, value in self._store.items()
                                      if isinstance(value, set) for member in value])
        _many(db, sql.CREATE_EMPTY_SET, [(encode(key), _pack([])) for key in self._set_adds])
        _many(db, sql.INSERT_MEMBER, [(encode(key), encode(member)) for key, members in self._set_adds.items()
                                      for member in members])

    def _write_replies(self, db) -> Dict[str, List[int]]:
        _many(db, sql.INSERT_REPLY, [(row_id, channel, encode(rid), reply) for row_id, channel, rid, reply in self._replies])
        pruned = self._replies_to_prune()
        _many(db, sql.DELETE_REPLY, [(row_id,) for ids in pruned.values() for row_id in ids])
        return pruned

    # ----------------------------------------------------------------- recovery

    def load(self) -> Recovered:
        """Everything committed (folded first); JournalCorrupt naming a row that cannot be read."""
        try:
            while self.compact():
                pass
            with self.transaction() as db:   # history_journal.drop_orphans
                db.execute(sql.DROP_ORPHAN_STATES)
                db.execute(sql.DROP_ORPHAN_RUN_TIMES)
            return self._load_all()
        except psycopg.Error as exc:   # the connection lost while loading: the master stops, saying so
            raise JournalWriteError(f"journal {self.path} cannot be read ({_first_line(exc)})") from None
        except BadRow as bad:
            raise JournalCorrupt(f"journal {self.path}: row {bad.row!r} of table {bad.table} cannot be loaded "
                                 f"({type(bad.problem).__name__}: {bad.problem}); the master will not start on "
                                 "it rather than lose or misread what it holds") from None

    def _load_all(self) -> Recovered:
        db = self._connection()
        recovered = Recovered()
        scripts = {sha: bytes(script) for sha, script in db.execute(sql.LOAD_SCRIPTS)}
        self._stored_scripts = set(scripts)
        recovered.runs = list(_each_row("titan_job_specs", db.execute(sql.LOAD_RUNS),
                                        lambda seq, dag, spec, state, *times: history.apply_times(_run_from_row(
                                            _run_row(seq, decode(dag), bytes(spec), state), scripts), times)))
        recovered.past_runs = list(_each_row("titan_past_runs", db.execute(sql.LOAD_PAST_RUNS),
                                             lambda seq, record: history.past_run(seq, bytes(record))))
        recovered.dag_runs = list(_each_row("titan_dag_runs", db.execute(sql.LOAD_DAG_RUNS),
                                            lambda run, dag, *rest: history.dag_run_from_row(
                                                decode(run), decode(dag), *rest)))
        recovered.dags = {decode(name): _unpack(ids) for name, ids in db.execute(sql.LOAD_DAGS)}
        recovered.logs = [(decode(job), attempt, stream, decode(text))
                          for job, attempt, stream, text in db.execute(sql.LOAD_LOGS)]
        recovered.store = dict(_each_row("titan_store", db.execute(sql.LOAD_STORE), lambda key, kind, value: (
            decode(key), set(_unpack(value)) if kind == "set" else _unpack(value))))
        for key, member in db.execute(sql.LOAD_MEMBERS):
            recovered.store.setdefault(decode(key), set()).add(decode(member))
        recovered.agent_runs = {decode(dag): decode(run) for dag, run in db.execute(sql.LOAD_AGENT_RUNS)}
        recovered.deployed_scripts = [DeployedScript(decode(name), bytes(script), at)
                                      for name, script, at in db.execute(sql.LOAD_DEPLOYED)]
        for channel, rid, reply in db.execute(sql.LOAD_REPLIES):
            recovered.replies.setdefault(channel, []).append((decode(rid), bytes(reply)))
        return recovered

    def read_one(self, statement: str, params: tuple):
        """One row of a read outside any transaction of the leader's (artifacts), or None."""
        return self._connection().execute(statement, params).fetchone()

    def leadership(self) -> Optional[dict]:
        from titan.master.lease import read_leadership
        return read_leadership(self._connection())

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


def _many(db, statement: str, rows) -> None:
    """executemany, skipped when there is nothing to write: most turns touch two or three tables, and
    each statement sent costs the master a wait on PostgreSQL."""
    rows = list(rows)
    if rows:
        db.cursor().executemany(statement, rows)


def _run_row(seq: int, dag: Optional[str], spec: bytes, state) -> tuple:
    """The SQLite journal's row for _run_from_row: the state's fields unpacked, or NULLs when unfolded."""
    if state is None:
        return (seq, dag, spec) + (None,) * 8
    fields = _unpack(state)
    return (seq, dag, spec, *fields[2:STATE_COLUMNS])


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
