"""What happened, kept for people to ask: every run of every job (past runs of a re-submitted job too),
each DAG submission as a run of its own, and indexes that answer list_jobs without a pass over every job.

A job id names its latest run (Scheduler.jobs); a run's `seq` names one run for ever. A re-submitted job
gets a new run and the earlier one stays here as it ended, so an earlier DAG run's record never changes.

The indexes are lists of seqs, appended as things happen (cheap on the scheduling path) and sorted only
when someone asks: all runs, each DAG's, each worker's, and each final state's (a run enters one once).
An unfinished run is always its job's current run and there are few of them, mostly the newest: a
state filter of PENDING, QUEUED, RUNNING or WAITING_APPROVAL reads all runs newest first and stops once
it has found as many as are in that state. Forgotten runs' entries are dropped from the front (forgot).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional

from titan.core.errors import RequestRejected, UnknownDag
from titan.core.jobs import FINAL_STATES, JobRun, JobState

# Enum members read once: in Python 3.11 each JobState.X is a descriptor call, and _stamp runs on every
# transition of every job.
QUEUED, RUNNING = JobState.QUEUED, JobState.RUNNING

LIST_LIMIT_MAX = 1_000   # jobs one list_jobs reply may hold
# A state index is rebuilt when it holds more than this many entries per live one, plus the slack.
STALE_FACTOR, STALE_SLACK = 2, 1_000


@dataclass(slots=True)
class DagRun:
    """One submission of a DAG: its jobs' runs (by seq), when it started and ended, and how."""
    run_id: str
    dag: str
    number: int
    submitted_at: Optional[float]
    seqs: list
    ended_at: Optional[float] = None
    outcome: Optional[str] = None   # COMPLETED, FAILED or CANCELLED once ended
    forgotten: int = 0              # of its runs (titan.core.retention): all of them, and it goes too

    def describe(self) -> dict:
        duration = None
        if self.ended_at is not None and self.submitted_at is not None:
            duration = round(self.ended_at - self.submitted_at, 6)
        return {"run": self.run_id, "dag": self.dag, "submitted_at": self.submitted_at,
                "ended_at": self.ended_at, "jobs": len(self.seqs), "outcome": self.outcome or "RUNNING",
                "duration_s": duration}


def dag_run_id(dag: str, number: int) -> str:
    return f"{dag}#{number}"


def outcome_of(states: Iterable[JobState]) -> str:
    """A DAG run failed if any job failed, was cancelled if any was (and none failed), else completed."""
    seen = set(states)
    if JobState.FAILED in seen:
        return JobState.FAILED.value
    if JobState.CANCELLED in seen:
        return JobState.CANCELLED.value
    return JobState.COMPLETED.value


class _SeqIndex:
    """Seqs of runs, appended in any order, sorted (and de-duplicated) when read."""

    __slots__ = ("seqs", "sorted")

    def __init__(self):
        self.seqs: list = []
        self.sorted = True

    def add(self, seq: int) -> None:
        if self.seqs and seq <= self.seqs[-1]:
            self.sorted = False
        self.seqs.append(seq)

    def ordered(self) -> list:
        if not self.sorted:
            self.seqs = sorted(set(self.seqs))
            self.sorted = True
        return self.seqs

    def keep(self, wanted) -> None:
        self.seqs = [seq for seq in self.ordered() if wanted(seq)]

    def trim(self, alive, live: int) -> None:
        """Drop entries of forgotten runs: those in front (runs are forgotten roughly in the order they
        were added) at once, all of them when they outnumber the live ones (`live`, at most)."""
        seqs, dropped = self.seqs, 0
        while dropped < len(seqs) and not alive(seqs[dropped]):
            dropped += 1
        if dropped:
            del seqs[:dropped]
        if len(seqs) > STALE_FACTOR * live + STALE_SLACK:
            self.keep(alive)


class History:
    """Every run kept (seq -> run), DAG runs per DAG, and the indexes list_jobs reads."""

    def __init__(self):
        self.runs: Dict[int, JobRun] = {}
        self.dag_runs: Dict[str, List[DagRun]] = {}
        self._all = _SeqIndex()
        self._by_dag: Dict[str, _SeqIndex] = {}
        self._by_worker: Dict[str, _SeqIndex] = {}
        self._by_state: Dict[JobState, _SeqIndex] = {state: _SeqIndex() for state in JobState}

    # ----------------------------------------------------------------- as things happen

    def admitted(self, run: JobRun) -> None:
        self.runs[run.seq] = run
        self._all.seqs.append(run.seq)   # seqs only grow: it stays sorted
        if run.dag:
            index = self._by_dag.get(run.dag)
            if index is None:
                index = self._by_dag[run.dag] = _SeqIndex()
            index.add(run.seq)

    def ended(self, run: JobRun) -> None:
        self._by_state[run.state].add(run.seq)

    def forgot(self, runs: List[JobRun]) -> None:
        """These runs were forgotten (already out of self.runs): trim the indexes that named them."""
        alive, live = self.runs.__contains__, len(self.runs)
        self._all.trim(alive, live)
        for state in {run.state for run in runs}:
            self._by_state[state].trim(alive, live)
        for dag in {run.dag for run in runs if run.dag}:
            if dag not in self.dag_runs:
                self._by_dag.pop(dag, None)
            elif dag in self._by_dag:
                self._by_dag[dag].trim(alive, live)
        for worker in {worker for run in runs for worker in _workers_of(run)}:
            index = self._by_worker.get(worker)
            if index is not None:
                index.trim(alive, live)
                if not index.seqs:
                    del self._by_worker[worker]

    def started(self, run: JobRun) -> None:
        index = self._by_worker.get(run.worker)
        if index is None:
            index = self._by_worker[run.worker] = _SeqIndex()
        index.add(run.seq)

    def open_dag_run(self, dag: str, submitted_at: Optional[float]) -> DagRun:
        runs = self.dag_runs.setdefault(dag, [])
        number = runs[-1].number + 1 if runs else 1
        dag_run = DagRun(dag_run_id(dag, number), dag, number, submitted_at, [])
        runs.append(dag_run)
        return dag_run

    def latest_dag_run(self, dag: str) -> Optional[DagRun]:
        runs = self.dag_runs.get(dag)
        return runs[-1] if runs else None

    # ----------------------------------------------------------------- after a restart

    def restore(self, runs: Iterable[JobRun], dag_runs: Iterable[DagRun]) -> None:
        """Runs (current and past) and DAG runs from a journal, in any order."""
        for run in sorted(runs, key=lambda r: r.seq):
            self.admitted(run)
            for worker in _workers_of(run):
                self._by_worker.setdefault(worker, _SeqIndex()).add(run.seq)
        for dag_run in sorted(dag_runs, key=lambda d: d.number):
            self.dag_runs.setdefault(dag_run.dag, []).append(dag_run)

    # ----------------------------------------------------------------- reading

    def list_runs(self, state: Optional[JobState], dag: Optional[str], worker: Optional[str],
                  since: Optional[float], until: Optional[float], limit: int, before: Optional[int],
                  live: int = -1, running: Optional[list] = None) -> tuple:
        """Runs matching every filter given, newest (highest seq) first, at most `limit`, below seq
        `before`; and the seq to continue from (None when there are no more). `live`: how many runs
        are in `state` if it is not final (they are all current runs), else -1; `running`: the seqs of
        the RUNNING runs, sorted, when that is the state asked for (the workers know them)."""
        if live == 0:
            return [], None   # no run is in that (unfinished) state
        candidates = running if running is not None else self._smallest_index(state, dag, worker)
        position = len(candidates) if before is None else bisect_left(candidates, before)
        found: list = []
        for i in range(position - 1, -1, -1):
            run = self.runs.get(candidates[i])
            if run is None or not _matches(run, state, dag, worker, until):
                continue
            if since is not None and (run.submitted_at is None or run.submitted_at < since):
                break   # runs are submitted in seq order: every one further down is older still
            if len(found) == limit:
                return found, found[-1].seq
            found.append(run)
            if len(found) == live and before is None:
                break   # every unfinished run in that state found
        return found, None

    def _smallest_index(self, state: Optional[JobState], dag: Optional[str], worker: Optional[str]) -> list:
        choices = [self._all]
        if state is not None and state.is_final:
            choices.append(self._by_state[state])
        if dag is not None:
            choices.append(self._by_dag.get(dag, _SeqIndex()))
        if worker is not None:
            choices.append(self._by_worker.get(worker, _SeqIndex()))
        return min(choices, key=lambda index: len(index.seqs)).ordered()


def _workers_of(run: JobRun) -> set:
    """The workers a run's attempts ran on: each earlier attempt's, and its last (run.worker)."""
    workers = {attempt[1] for attempt in run.ended_attempts or ()}
    if run.worker:
        workers.add(run.worker)
    return workers


def _matches(run: JobRun, state: Optional[JobState], dag: Optional[str], worker: Optional[str],
             until: Optional[float]) -> bool:
    if state is not None and run.state != state:
        return False
    if dag is not None and run.dag != dag:
        return False
    if until is not None and (run.submitted_at is None or run.submitted_at >= until):
        return False
    return worker is None or run.worker == worker or any(a[1] == worker for a in run.ended_attempts or ())


def job_entry(run: JobRun) -> dict:
    """One run as list_jobs shows it."""
    times = run.times()
    worker = run.worker or (times["attempts"][-1]["worker"] if times["attempts"] else None)
    return {"job_id": run.job_id, "dag": run.dag, "run": run.dag_run, "state": run.state.value,
            "requirement": run.spec.requirement, "worker": worker, "submitted_at": run.submitted_at,
            "started_at": run.started_at, "ended_at": run.ended_at, "run_seconds": times["run_seconds"],
            "wait_seconds": times["wait_seconds"], "exit_code": run.exit_code, "reason": run.reason,
            "attempts": times["attempts"]}


class SchedulerHistory:
    """Mixed into Scheduler: list_jobs, dag_runs and the latest run of a DAG."""

    def list_jobs(self, state: Optional[str] = None, dag: Optional[str] = None, since: Optional[float] = None,
                  until: Optional[float] = None, worker: Optional[str] = None, limit: int = 100,
                  cursor: Optional[str] = None) -> dict:
        wanted = _state_named(state)
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise RequestRejected(f"limit must be 1 to {LIST_LIMIT_MAX}, got {limit}")
        live = -1 if wanted is None or wanted.is_final else self.state_counts[wanted]
        running = None
        if wanted is RUNNING:   # on a worker, or waiting for its worker to come back after a restart
            ids = set(self._orphans).union(*(w.running for w in self.workers.values()))
            running = sorted(self.jobs[job_id].seq for job_id in ids)
        runs, next_seq = self.history.list_runs(wanted, dag, worker, since, until, limit, _cursor_seq(cursor), live,
                                                running)
        return {"jobs": [job_entry(run) for run in runs],
                "next_cursor": None if next_seq is None else str(next_seq)}

    def dag_runs(self, dag: str, limit: int = 20) -> list:
        runs = self.history.dag_runs.get(dag)
        if not runs:
            raise UnknownDag(f"no DAG {dag!r} on this master", dag=dag)
        if limit < 1:
            raise RequestRejected(f"limit must be at least 1, got {limit}")
        return [dag_run.describe() for dag_run in reversed(runs[-limit:])]

    def _stamp(self, run: JobRun, old: JobState, new: JobState) -> None:
        """The run's times and attempts; an ended run joins the indexes and the retention queues. The
        last attempt of an ended run is told by the run's own fields (JobRun.attempts): only an attempt
        followed by another is kept in ended_attempts, so most jobs never allocate it."""
        if new is QUEUED:
            if old is RUNNING:
                if run.ended_attempts is None:
                    run.ended_attempts = []
                run.ended_attempts.append([run.attempt, run.worker, run.started_at, self._wall_now, run.exit_code,
                                           run.reason])
            elif run.queued_at is None:
                run.queued_at = self._wall_now
        elif new in FINAL_STATES:
            run.ended_at = self._wall_now
            self.history.ended(run)
            self._retention_ended(run)

    def _rejoin_dag_run(self, old: JobRun, new: JobRun) -> None:
        """A retried run takes its earlier run's place in its DAG run, if that is the DAG's latest (an
        older DAG run's record never changes), and the DAG run is open again until it ends anew."""
        latest = self.history.latest_dag_run(old.dag) if old.dag else None
        if latest is None or latest.run_id != old.dag_run:
            new.dag_run = None
            return
        if old.seq in latest.seqs:
            latest.seqs[latest.seqs.index(old.seq)] = new.seq
        latest.ended_at = latest.outcome = None

    def _close_dag_run(self, dag: str, ended_at: Optional[float]) -> None:
        latest = self.history.latest_dag_run(dag)
        if latest is not None and latest.ended_at is None:
            runs = self.history.runs
            latest.ended_at = ended_at
            latest.outcome = outcome_of(runs[seq].state for seq in latest.seqs if seq in runs)

    def _latest_run_jobs(self, dag: str, now: Optional[float]) -> Optional[list]:
        """What the DAG's latest run's jobs say: a job's current run with its live reason, an earlier run
        (the job was submitted again since) as it ended."""
        latest = self.history.latest_dag_run(dag)
        if latest is None:
            return None
        described = []
        for seq in latest.seqs:
            run = self.history.runs.get(seq)
            if run is None:
                continue
            current = self.jobs.get(run.job_id)
            described.append(self.describe_job(run.job_id, now) if current is run else run.describe())
        return described


def _state_named(state: Optional[str]) -> Optional[JobState]:
    if state is None:
        return None
    try:
        return JobState(state.upper())
    except ValueError:
        raise RequestRejected(f"unknown state {state!r}; one of {', '.join(s.value for s in JobState)}",
                              state=state) from None


def _cursor_seq(cursor: Optional[str]) -> Optional[int]:
    if cursor is None:
        return None
    try:
        return int(cursor)
    except ValueError:
        raise RequestRejected(f"cursor {cursor!r} is not one this master gave (pass next_cursor back as "
                              "it came)") from None
