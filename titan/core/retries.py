"""Retry by request: a FAILED or CANCELLED job (or every such job of a DAG) runs again from its last spec,
and the running totals behind the /metrics counters. Mixed into Scheduler."""

from __future__ import annotations

from collections import Counter
from typing import List, Sequence

from titan.core.errors import JobConflict, UnknownDag
from titan.core.jobs import JobRun, JobState

RETRYABLE_STATES = (JobState.FAILED, JobState.CANCELLED)


def new_totals() -> dict:
    """Counts since this master started (Prometheus counters: they start again at 0 with the master)."""
    return {"submitted": 0, "ended": Counter(), "retries": 0, "workers_lost": 0}


class SchedulerRetries:
    """Needs the Scheduler's jobs, dags, _admit, _resolve_parents, _schedule and _take_effects."""

    def retry(self, job_id: str, now: float) -> list:
        run = self.job(job_id)
        if run.state not in RETRYABLE_STATES:
            raise JobConflict(f"job {job_id!r} is {run.state.value}; only a FAILED or CANCELLED job can be "
                              "retried", jobs=[job_id])
        self._run_again([run], now)
        return self._take_effects()

    def retry_dag(self, dag: str, now: float) -> list:
        """Every FAILED or CANCELLED job of the DAG runs again, in the DAG's order, so a retried parent's
        children wait for it instead of being cancelled by its old end."""
        if dag not in self.dags:
            raise UnknownDag(f"no DAG {dag!r} on this master", dag=dag)
        runs = [self.jobs[job_id] for job_id in self.dags[dag]
                if self.jobs[job_id].dag == dag and self.jobs[job_id].state in RETRYABLE_STATES]
        if not runs:
            raise JobConflict(f"DAG {dag!r} has no FAILED or CANCELLED job to retry", dag=dag)
        self._run_again(runs, now)
        return self._take_effects()

    def _run_again(self, runs: Sequence[JobRun], now: float) -> None:
        """New runs from the runs' specs, each in its DAG run (which is open again until they end)."""
        fresh: List[JobRun] = []
        for run in runs:
            fresh.append(self._admit(run.spec, run.dag, now, run.dag_run))
            self._rejoin_dag_run(run, fresh[-1])
        self.totals["retries"] += len(fresh)
        for run in fresh:
            self._resolve_parents(run, now)
        self._schedule(now)

    def totals_report(self) -> dict:
        totals = self.totals
        return {"submitted": totals["submitted"], "ended": dict(totals["ended"]), "retries": totals["retries"],
                "workers_lost": totals["workers_lost"]}
