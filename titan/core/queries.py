"""The scheduler's read side: what people ask about jobs, DAGs and workers, and the invariants tests check."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Optional

from titan import defaults
from titan.core import matching, timers
from titan.core.errors import UnknownDag, UnknownJob
from titan.core.jobs import JobRun, JobState

# States in which a job waits: for its parents or delay, for a worker, for a person's decision.
WAITING_STATES = (JobState.PENDING, JobState.QUEUED, JobState.WAITING_APPROVAL)
# How the reason of a QUEUED job that no connected worker can run begins (the titan command looks for it).
NO_WORKER_REASON = "waiting for a worker with capability"


class SchedulerQueries:
    """Mixed into Scheduler; reads its state, never changes it."""

    def _dag_finished(self, dag: str) -> bool:
        return self._dag_open[dag] == 0

    def job(self, job_id: str) -> JobRun:
        run = self.jobs.get(job_id)
        if run is None:
            gone = self.forgotten_job(job_id)
            if gone is not None:
                raise UnknownJob(f"job {job_id!r} was forgotten: it ended {gone['state']} and was kept as long as "
                                 "the master's --keep-completed / --keep-failed / --keep-max-jobs say",
                                 job_id=job_id, forgotten=True, **gone)
            raise UnknownJob(f"no job {job_id!r} on this master", job_id=job_id)
        return run

    def describe_job(self, job_id: str, now: Optional[float] = None) -> dict:
        """What people see of a job; given `now`, a job held back by its delay says for how much longer."""
        run = self.job(job_id)
        info = run.describe()
        if now is not None and _delayed(run, now):
            info["reason"] = f"delayed: starts in {run.not_before - now:.1f}s (delay {run.spec.delay:g}s)"
        if run.state == JobState.QUEUED and not matching.anyone_offers(run.spec.requirement, self.workers.values()):
            offered = ", ".join(matching.offered_capabilities(self.workers.values())) if self.workers else "none"
            info["reason"] = (f"{NO_WORKER_REASON} {run.spec.requirement}; "
                              f"connected workers offer: {offered}")
        return info

    def describe_dag(self, dag: str, now: Optional[float] = None) -> dict:
        if dag not in self.dags:
            raise UnknownDag(f"no DAG {dag!r} on this master", dag=dag)
        jobs = self._latest_run_jobs(dag, now)
        if jobs is None:
            jobs = [self.describe_job(j, now) for j in self.dags[dag] if self.jobs[j].dag == dag]
        latest = self.history.latest_dag_run(dag)
        return {"dag": dag, "run": latest and latest.run_id, "finished": self._dag_finished(dag), "jobs": jobs}

    def stats(self, now: Optional[float] = None) -> dict:
        """Workers, queue depths and job counts, cheap enough to ask often: counters and the ready queues
        only, never a pass over every job. Given `now`, each worker says how long ago it was heard from."""
        ready = self._ready_by_requirement()
        waiting = {state.value: self.state_counts[state] for state in WAITING_STATES}
        return {
            "workers": [{**w.describe(now), "services": self.services_on(w.worker_id)}
                        for w in self.workers.values()],
            "jobs_by_state": {state.value: self.state_counts[state] for state in JobState},
            "queued_by_requirement": ready,
            # QUEUED jobs not in a ready queue are waiting out a retry backoff
            "queue_depths": {**waiting, "backing_off": waiting["QUEUED"] - sum(ready.values())},
            # newest first, so a watcher that starts late can show the DAGs submitted before it
            "recent_dags": list(itertools.islice(reversed(self.dags), defaults.STATS_RECENT_DAGS)),
        }

    def _ready_by_requirement(self) -> dict:
        """Jobs ready to dispatch, by the capability they need. Queue entries of jobs that moved on are
        left in place until popped, so only live ones count, each job once."""
        ready = {entry[2] for queue in self._queues.values() for entry in queue if self._is_live_entry(entry)}
        return dict(Counter(self.jobs[job_id].spec.requirement for job_id in ready))

    def validate(self) -> None:
        """Check the invariants; tests call this after every step."""
        assert sum(self.state_counts.values()) == len(self.jobs), "state counts do not add up"
        for state in JobState:
            actual = sum(1 for r in self.jobs.values() if r.state == state)
            assert self.state_counts[state] == actual, f"count of {state.value} is off"
        running_on_workers = self._validate_workers()
        for run in self.jobs.values():
            self._validate_run(run, running_on_workers)
        open_jobs = Counter(run.dag for run in self.jobs.values() if run.dag and not run.state.is_final)
        assert +self._dag_open == open_jobs, f"open jobs per DAG are off: {self._dag_open} != {open_jobs}"
        for parent_id, children in self._children.items():
            for child_id in children:
                child = self.jobs[child_id]
                assert child.state == JobState.PENDING and parent_id in child.waiting_on, \
                    f"stale link from {parent_id} to {child_id}"

    def _validate_workers(self) -> set:
        running_on_workers: set = set()
        for worker in self.workers.values():
            assert worker.free_slots >= 0, f"worker {worker.name} runs more jobs than it has slots"
            assert not (worker.running & running_on_workers), "a job runs on two workers"
            running_on_workers |= worker.running
            for job_id in worker.running:
                run = self.jobs[job_id]
                assert run.state == JobState.RUNNING and run.worker_id == worker.worker_id, job_id
        return running_on_workers

    def _validate_run(self, run: JobRun, running_on_workers: set) -> None:
        if run.state == JobState.RUNNING:
            assert run.job_id in running_on_workers or run.job_id in self._orphans, \
                f"{run.job_id} RUNNING on no worker"
        if run.state == JobState.QUEUED:
            in_queue = any(e[2] == run.job_id and e[1] == run.seq
                           for queue in self._queues.values() for e in queue)
            assert in_queue or self._deadlines.pending(timers.BACKOFF, run.job_id), \
                f"{run.job_id} QUEUED but neither in a queue nor backing off"
        if run.service_up:
            assert run.state == JobState.RUNNING and run.times_up > 0, f"{run.job_id} up but not running"
        if run.state != JobState.PENDING:
            assert not run.waiting_on, f"{run.job_id} is {run.state.value} but still waits on parents"
        if run.job_id in self._orphans:
            # Its worker may be back without claiming it: a result it re-sends may still settle it.
            assert run.state == JobState.RUNNING, run.job_id
            worker = self.workers.get(run.worker_id)
            assert worker is None or run.job_id not in worker.running, f"{run.job_id} orphan and claimed"


def _delayed(run: JobRun, now: float) -> bool:
    """Ready to queue but for its delay (PENDING, no parent left to wait for)."""
    return run.state == JobState.PENDING and not run.waiting_on and run.not_before > now
