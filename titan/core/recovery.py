"""Rebuilding the scheduler from a journal after a restart (mixed into Scheduler)."""

from __future__ import annotations

from typing import Dict, List, Sequence

from titan.core import timers
from titan.core.jobs import JobRun, JobState


class SchedulerRecovery:
    """Mixed into Scheduler: restore() and what it needs."""

    def restore(self, runs: Sequence[JobRun], dags: Dict[str, List[str]], now: float,
                past_runs: Sequence[JobRun] = (), dag_runs: Sequence = ()) -> list:
        """Rebuild from a journal after a restart. RUNNING jobs wait `worker_dead_after` for their worker
        to re-register and claim them; then they are queued again."""
        self._at(now)
        self.dags = {name: list(ids) for name, ids in dags.items()}
        for run in sorted(runs, key=lambda r: r.seq):
            self._add_run(run)
            self._next_seq = max(self._next_seq, run.seq)
        self.history.restore([*runs, *past_runs], dag_runs)
        self._next_seq = max([self._next_seq, *(run.seq for run in past_runs)])
        self._restore_dag_runs()
        self._retention_restored([*runs, *past_runs])
        for run in sorted(runs, key=lambda r: r.seq):
            self._restore_run(run, now)
        self._schedule(now)
        return self._take_effects()

    def _restore_run(self, run: JobRun, now: float) -> None:
        if run.state == JobState.PENDING:
            run.not_before = now + max(0.0, run.spec.delay)
            self._resolve_parents(run, now)
        elif run.state == JobState.QUEUED:
            self._push_ready(run)
        elif run.state == JobState.WAITING_APPROVAL:   # the wait starts again: the restart is not the gate's fault
            self._deadlines.add(now + run.spec.max_wait_seconds, timers.GATE, run.seq, run.job_id)
        elif run.state == JobState.RUNNING:
            self._orphans.add(run.job_id)
            self._deadlines.add(now + self.worker_dead_after, timers.ORPHAN, run.seq, run.job_id)

    def _restore_dag_runs(self) -> None:
        """A DAG from a journal of before DAG runs gets one run: its jobs as they are. A run that ended
        without its end being written (a crash in between) ends when its last job did."""
        for dag, job_ids in self.dags.items():
            if dag not in self.history.dag_runs:
                dag_run = self.history.open_dag_run(dag, None)
                dag_run.seqs = [self.jobs[j].seq for j in job_ids if j in self.jobs and self.jobs[j].dag == dag]
                for seq in dag_run.seqs:
                    self.history.runs[seq].dag_run = dag_run.run_id
            latest = self.history.latest_dag_run(dag)
            if latest.ended_at is None and self._dag_finished(dag):
                ends = [self.history.runs[s].ended_at for s in latest.seqs if s in self.history.runs]
                self._close_dag_run(dag, max([e for e in ends if e is not None], default=self._wall_now))
