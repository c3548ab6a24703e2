"""Forgetting what is old, a little at a time, so a master that runs for months stays the same size.

A run that ends joins the back of one of two queues (COMPLETED; FAILED or CANCELLED), in the order runs
end. forget_old() looks at the fronts: a run kept longer than its queue's keep time, or any run while more
than keep_max_jobs have ended, is forgotten, at most `batch` per call (the master calls it every turn, so
cleaning never stops the master for long). Never forgotten early: a run that is still the parent of an
active job, and a run of the latest run of its DAG; those go to the back of their queue and are looked at
again later. Waiting gates, running services and every other unfinished job are not in the queues at all.

A forgotten run leaves the history, its job id (if it was the job's current run) becomes unknown, and a
bounded memory of forgotten ids lets job_info say what became of one. The Forgotten effect tells the
master to drop its journal rows, logs and scripts nothing uses any more.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional

from titan.core.effects import Forgotten
from titan.core.errors import JobConflict, UnknownDag
from titan.core.jobs import JobRun, JobState

FORGOTTEN_REMEMBERED = 10_000   # forgotten job ids job_info can still say something about
CLOCK_EVERY = 16                # runs chosen between two readings of forget_old's clock
COMPLETED_QUEUE, FAILED_QUEUE = "completed", "failed"
COMPLETED = JobState.COMPLETED   # read once: a descriptor call each time in Python 3.11


@dataclass
class Retention:
    """How long ended runs are kept (seconds; None: for ever), and how many at most (None: no bound)."""
    keep_completed: Optional[float] = None
    keep_failed: Optional[float] = None
    keep_max_jobs: Optional[int] = None


class SchedulerRetention:
    """Mixed into Scheduler: what ended, in which order, and letting go of it."""

    def _init_retention(self) -> None:
        self.retention = Retention()
        self._ended = {COMPLETED_QUEUE: deque(), FAILED_QUEUE: deque()}   # (ended_at, seq), oldest first
        self._active_children: Counter = Counter()   # job id -> unfinished current runs naming it a parent
        self.forgotten: "OrderedDict[str, tuple]" = OrderedDict()   # job id -> (state, ended_at, its DAG run)
        self.forgotten_total = 0
        self._forget_ended_before: Optional[float] = None   # titan forget --before

    # ----------------------------------------------------------------- as runs come and go

    def _retention_admitted(self, run: JobRun) -> None:
        for parent in run.spec.parents:   # most jobs have none
            self._active_children[parent] += 1

    def _retention_ended(self, run: JobRun) -> None:
        self._ended[COMPLETED_QUEUE if run.state is COMPLETED else FAILED_QUEUE].append((run.ended_at, run.seq))
        for parent in run.spec.parents:
            left = self._active_children[parent] - 1
            if left > 0:
                self._active_children[parent] = left
            else:
                del self._active_children[parent]

    def _retention_restored(self, runs: Iterable[JobRun]) -> None:
        """Queue restored runs by when they ended; one of a journal without times counts as ended now,
        so upgrading a journal does not forget all of it at once."""
        ended = []
        for run in runs:
            if run.state.is_final:
                ended.append((self._wall_now if run.ended_at is None else run.ended_at, run.seq, run.state))
            elif self.jobs.get(run.job_id) is run:
                self._retention_admitted(run)
        for ended_at, seq, state in sorted(ended, key=lambda e: e[:2]):
            queue = COMPLETED_QUEUE if state == JobState.COMPLETED else FAILED_QUEUE
            self._ended[queue].append((ended_at, seq))

    # ----------------------------------------------------------------- forgetting

    def forget_old(self, now: float, batch: int, clock: Optional[Callable[[], float]] = None,
                   budget: float = 0.0) -> list:
        """Forget at most `batch` runs that are due; returns the effects (one Forgotten if any were).
        Given a `clock` (seconds; the core reads none of its own), it stops choosing once `budget` seconds
        have passed since the call began, whatever `batch` says."""
        self._at(now)
        chosen, held = [], []
        deadline = None if clock is None else clock() + budget
        while len(chosen) + len(held) < batch:
            looked = len(chosen) + len(held)
            if deadline is not None and looked and looked % CLOCK_EVERY == 0 and clock() >= deadline:
                break
            queue = self._due_queue()
            if queue is None:
                break
            ended_at, seq = entry = queue.popleft()
            run = self.history.runs.get(seq)
            if run is None:
                continue            # forgotten already (titan forget --dag)
            if self._must_keep(run):
                held.append((queue, entry))
            else:
                chosen.append(run)
        for queue, entry in held:
            queue.append(entry)
        self._forget(chosen)
        return self._take_effects()

    def forgetting_due(self, now: float) -> bool:
        """Whether forget_old may find something to forget: cheap, for the master to ask every turn."""
        self._at(now)
        return self._due_queue() is not None

    def _due_queue(self):
        completed, failed = self._ended[COMPLETED_QUEUE], self._ended[FAILED_QUEUE]
        keep_max = self.retention.keep_max_jobs
        if keep_max is not None and len(completed) + len(failed) > keep_max:
            fronts = [q for q in (completed, failed) if q]
            return min(fronts, key=lambda q: q[0][0])
        for queue, keep in ((completed, self.retention.keep_completed), (failed, self.retention.keep_failed)):
            if queue and self._is_due(queue[0][0], keep):
                return queue
        return None

    def _is_due(self, ended_at: float, keep: Optional[float]) -> bool:
        if self._forget_ended_before is not None and ended_at < self._forget_ended_before:
            return True
        return keep is not None and ended_at <= self._wall_now - keep

    def _must_keep(self, run: JobRun) -> bool:
        current = self.jobs.get(run.job_id) is run
        if current and self._active_children.get(run.job_id):
            return True
        latest = self.history.latest_dag_run(run.dag) if run.dag else None
        return latest is not None and latest.run_id == run.dag_run

    def forget_dag(self, dag: str, now: float) -> list:
        """Forget every run of a DAG that has ended (JobConflict while it runs); returns the effects."""
        self._at(now)
        if dag not in self.history.dag_runs:
            raise UnknownDag(f"no DAG {dag!r} on this master", dag=dag)
        if not self._dag_finished(dag):
            raise JobConflict(f"DAG {dag!r} is still running; cancel it or wait for it to end first", dag=dag)
        runs = [self.history.runs[seq] for dag_run in self.history.dag_runs[dag] for seq in dag_run.seqs
                if seq in self.history.runs]
        chosen = [run for run in runs if run.state.is_final and not (
            self.jobs.get(run.job_id) is run and self._active_children.get(run.job_id))]
        self._forget(chosen)
        return self._take_effects()

    def forget_ended_before(self, before: float) -> int:
        """From now on, runs that ended before `before` are due whatever the keep times say; forget_old
        lets go of them batch by batch. Returns how many ended runs that covers today."""
        self._forget_ended_before = max(before, self._forget_ended_before or before)
        return sum(1 for queue in self._ended.values() for ended_at, seq in queue
                   if ended_at < before and seq in self.history.runs)

    def _forget(self, runs: List[JobRun]) -> None:
        if not runs:
            return
        current, dag_runs, dags = [], [], []
        for run in runs:
            if self._let_go(run):
                current.append(run.job_id)
            dag_run = self._dag_run_emptied(run)
            if dag_run is not None:
                dag_runs.append(dag_run.run_id)
                if not self.history.dag_runs.get(dag_run.dag):
                    dags.append(dag_run.dag)
                    self._drop_dag(dag_run.dag)
        self.history.forgot(runs)
        self.forgotten_total += len(runs)
        self._effects.append(Forgotten(runs, current, dag_runs, dags))

    def _let_go(self, run: JobRun) -> bool:
        """Remove the run; True if it was its job's current run (the job id is then unknown)."""
        del self.history.runs[run.seq]
        if self.jobs.get(run.job_id) is not run:
            return False
        del self.jobs[run.job_id]
        self.state_counts[run.state] -= 1
        self.forgotten[run.job_id] = (run.state.value, run.ended_at, run.dag_run)
        self.forgotten.move_to_end(run.job_id)
        if len(self.forgotten) > FORGOTTEN_REMEMBERED:
            self.forgotten.popitem(last=False)
        return True

    def _dag_run_emptied(self, run: JobRun):
        """The run's DAG run, if this was the last of its runs kept (it is then dropped too)."""
        if run.dag_run is None:
            return None
        runs = self.history.dag_runs.get(run.dag, [])
        dag_run = next((d for d in runs if d.run_id == run.dag_run), None)
        if dag_run is None:
            return None
        dag_run.forgotten += 1
        if dag_run.forgotten < len(dag_run.seqs):
            return None
        runs.remove(dag_run)
        return dag_run

    def _drop_dag(self, dag: str) -> None:
        self.history.dag_runs.pop(dag, None)
        self.dags.pop(dag, None)
        self._dag_open.pop(dag, None)

    def cleaning_lag(self, now: float) -> float:
        """How long past its keep time the oldest ended run waits to be forgotten (0: cleaning keeps up)."""
        self._at(now)
        lag = 0.0
        for queue, keep in ((self._ended[COMPLETED_QUEUE], self.retention.keep_completed),
                            (self._ended[FAILED_QUEUE], self.retention.keep_failed)):
            if queue and keep is not None:
                lag = max(lag, self._wall_now - keep - queue[0][0])
        return round(lag, 3)

    def forgotten_job(self, job_id: str) -> Optional[dict]:
        """What became of a job this master has forgotten, while it remembers that; else None."""
        gone = self.forgotten.get(job_id)
        return None if gone is None else dict(zip(("state", "ended_at", "run"), gone))
