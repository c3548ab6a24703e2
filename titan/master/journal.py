"""What the master needs from durable storage, whatever keeps it.

The master records what one turn of its loop changed and calls `commit()` once per turn, before it
sends any reply, dispatch or event: "accepted" means "on disk". A backend buffers the `record_*` calls
and writes them in one transaction. Job state changes may be kept as an append-only log and folded
into a table later (`compact()`), when the master is idle; `backlog` says how many wait. Opening a
journal takes its lock: a second master on the same journal must get JournalInUse, never share it.

Two implementations: SQLite in the data dir (titan/master/sqlite_journal.py), the default, and
PostgreSQL (titan/master/postgres_journal.py), which several masters share, one leading at a time
(titan/master/lease.py). `open_journal` is the one place that chooses.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

from titan import defaults
from titan.core.jobs import JobRun

# How many state changes the master folds at a time: COMPACT_BATCH when idle, at most BUSY_COMPACT_BATCH
# every BUSY_COMPACT_EVERY_S while busy, and BUSY_COMPACT_BATCH every turn once more than
# FOLD_EVERY_TURN_ABOVE wait: below the backends' FORCED_COMPACT_AT (100,000), past which every commit
# folds 2,000 (about 20 ms of CPU inside one worker batch's commit); 500 take about 5-10 ms.
COMPACT_BATCH = 500
BUSY_COMPACT_BATCH = 250
BUSY_COMPACT_EVERY_S = 1.0
FOLD_EVERY_TURN_ABOVE = 75_000

StoreValue = Union[str, set, None]


class JournalCorrupt(Exception):
    """The journal exists but cannot be trusted; the master refuses to start rather than lose it."""


class JournalWriteError(Exception):
    """A commit could not be written (disk full, I/O error). Nothing of it was kept, everything recorded
    stays pending, and the next commit tries again: the master says nothing it has not written."""


class Deposed(BaseException):
    """Another master took over the journal (PostgreSQL): this one must never write or say anything again.
    A BaseException, like SystemExit, so that no handler meant for a bad message or a failed write
    (`except Exception`) can swallow it: it ends the master's loop, and the master exits saying why."""


class JournalInUse(Exception):
    """Another master has the journal open: two masters on one journal would each act on half of it."""


@dataclass
class Recovered:
    """Everything a master needs to carry on where the last one stopped."""
    runs: List[JobRun] = field(default_factory=list)
    dags: Dict[str, List[str]] = field(default_factory=dict)
    logs: List[Tuple[str, int, str, str]] = field(default_factory=list)   # job_id, attempt, stream, text
    store: Dict[str, Union[str, set]] = field(default_factory=dict)
    replies: Dict[str, List[Tuple[str, bytes]]] = field(default_factory=dict)
    agent_runs: Dict[str, str] = field(default_factory=dict)   # DAG name -> agent run id, oldest first
    deployed_scripts: list = field(default_factory=list)       # DeployedScript entries (deploy_script)
    past_runs: List[JobRun] = field(default_factory=list)      # earlier runs of jobs submitted again
    dag_runs: list = field(default_factory=list)               # titan.core.history.DagRun, every one kept


class Journal(abc.ABC):
    """The interface the master uses; `path` names the journal in messages, `commits` counts commit()s."""

    path: str
    commits: int
    shared = False   # True when several masters share it, one leading (PostgreSQL): it holds the artifacts too
    remedy = "Free space on its disk and retry"   # what a client refused while it cannot be written should do

    # ----------------------------------------------------------------- recording (buffered until commit)

    @abc.abstractmethod
    def record_submission(self, run: JobRun, replaced_seq: Optional[int], script_sha256: str) -> None:
        """A new run of a job; the run it replaces (`replaced_seq`) loses its spec and logs."""

    @abc.abstractmethod
    def record_states(self, runs: Dict[str, JobRun]) -> None:
        """These runs' states changed; what is written is each run as it is at commit."""

    @abc.abstractmethod
    def record_dag(self, name: str, job_ids: List[str]) -> None: ...

    @abc.abstractmethod
    def record_agent_run(self, dag: str, run_id: Optional[str]) -> None:
        """The agent run the DAG was last submitted under; None when it was submitted under none."""

    @abc.abstractmethod
    def record_past_run(self, run: JobRun) -> None:
        """An ended run of a job that was just submitted again: kept as history (its times, attempts, how
        it ended, its DAG run) after its spec, logs and state make way for the new run's. `run.seq` names it;
        load() returns it in `past_runs`."""

    @abc.abstractmethod
    def record_dag_run(self, dag_run) -> None:
        """A DAG run (titan.core.history.DagRun) started or ended; written as it is at commit, keyed by
        `dag_run.run_id`. load() returns every one in `dag_runs`. Its `seqs` name its jobs' runs."""

    @abc.abstractmethod
    def record_forgotten(self, runs: List[JobRun], dag_runs: List[str], dags: List[str], scripts: List[str]) -> None:
        """Runs the master let go of (titan.core.retention), each named by (`run.job_id`, `run.seq`): their
        spec, state, times, logs and past-run record go; so do these DAG runs (ids), DAGs (names, with
        their agent-run link) and scripts (sha256) that nothing uses any more. State changes of these runs
        not yet folded must not bring a state row back. Give the freed space back to the file a little
        at a time (SQLite: auto_vacuum=INCREMENTAL; PostgreSQL has none: its autovacuum reclaims it)."""

    @abc.abstractmethod
    def record_replies_forgotten(self, channel: str, rids: List[str]) -> None:
        """Replies (by request id, as record_reply named them) that go with the runs they named, which
        were forgotten: deleted in the commit, as record_forgotten's rows are."""

    @abc.abstractmethod
    def record_log(self, job_id: str, seq: int, attempt: int, stream: str, text: str) -> None:
        """Output of the job's run `seq`. The journal keeps about the newest `max_log_bytes` (given to
        open_journal, the master's --max-log-bytes) of each job's output, as the master's memory does,
        deleting older output of that job as newer comes: a chatty job must not fill the disk."""

    @abc.abstractmethod
    def record_store(self, key: str, value: StoreValue) -> None:
        """The key's value now; None when it was deleted."""

    @abc.abstractmethod
    def record_set_add(self, key: str, member: str) -> None:
        """A member added to the set at `key` (which it creates if absent): written as that one member,
        not the whole set, so adding to a big set costs what adding to a small one does."""

    @abc.abstractmethod
    def record_deployed_script(self, name: str, script: bytes, deployed_at: float) -> None:
        """A script deployed under `name`, replacing any earlier one of that name."""

    @abc.abstractmethod
    def record_reply(self, channel: str, rid: str, reply: bytes) -> None:
        """The reply to a request that changed state, so a retry after a restart is answered, not re-run."""

    # ----------------------------------------------------------------- writing

    @property
    @abc.abstractmethod
    def has_pending(self) -> bool:
        """Something was recorded since the last commit."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Write everything recorded since the last commit, all or nothing; JournalWriteError if it
        could not, with everything still pending."""

    @property
    @abc.abstractmethod
    def backlog(self) -> int:
        """State changes committed but not yet folded (what a restart would fold)."""

    @property
    @abc.abstractmethod
    def size_bytes(self) -> int:
        """How much disk the journal takes now (stats() reports it)."""

    @abc.abstractmethod
    def compact(self, batch: int = ...) -> bool:
        """Fold about `batch` of the oldest state changes; True if any were left to fold."""

    # ----------------------------------------------------------------- recovery and the lock

    @abc.abstractmethod
    def load(self) -> Recovered:
        """Everything committed, folded first; raises JournalCorrupt rather than return a partial state."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the lock."""

    # ----------------------------------------------------------------- shared journals (PostgreSQL)

    def renew(self) -> None:
        """Keep this master's lease on a shared journal; Deposed once it has lost it. Nothing to do on
        a journal only one master can open."""

    def leadership(self) -> Optional[dict]:
        """Who leads a shared journal, since when, and who waits (see lease.read_leadership); None here."""
        return None


def open_journal(data_dir: Optional[str] = None, url: Optional[str] = None, epoch: Optional[int] = None,
                 max_log_bytes: int = defaults.MAX_LOG_BYTES_PER_JOB) -> Journal:
    """The journal at the PostgreSQL `url`, written under the lease `epoch` this master holds, else the one
    in `data_dir`, locked for this master; JournalInUse or JournalCorrupt if it cannot be. It keeps about
    the last `max_log_bytes` of each job's output (see record_log)."""
    if url is not None:
        from titan.master.postgres_journal import PostgresJournal
        return PostgresJournal(url, epoch, max_log_bytes)
    from titan.master.sqlite_journal import SqliteJournal
    return SqliteJournal(data_dir, max_log_bytes)
