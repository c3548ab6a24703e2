"""The scheduler: a plain object that takes events in and returns effects out.

Events are method calls (submit, worker_joined, job_finished, cancel, tick, ...), each given `now`.
Effects are Dispatch / StopJob / Publish / Note values (see effects.py). No I/O happens here, so a test
drives it with a fake clock and checks `validate()` after every step.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Dict, Iterable, List, Optional, Sequence

from titan import defaults
from titan.core import matching
from titan.core.dag import validate_dag
from titan.core.effects import Dispatch, Note, Publish, StopJob
from titan.core.errors import JobConflict, UnknownDag, UnknownJob
from titan.core.jobs import FINAL_STATES, JobRun, JobSpec, JobState, check_transition
from titan.core.matching import WorkerView


class Scheduler:
    def __init__(self, worker_dead_after: float = defaults.WORKER_DEAD_AFTER_S):
        self.worker_dead_after = worker_dead_after
        self.jobs: Dict[str, JobRun] = {}
        self.dags: Dict[str, List[str]] = {}
        self.workers: Dict[str, WorkerView] = {}
        self.state_counts: Counter = Counter()
        self._children: Dict[str, set] = {}          # parent id -> ids of jobs waiting on it
        self._queues: Dict[str, list] = {}           # requirement -> heap of (-priority, seq, job_id)
        self._delayed: list = []                     # heap of (not_before, seq, job_id)
        self._next_seq = 0
        self._effects: list = []

    # ----------------------------------------------------------------- submissions

    def submit(self, dag: Optional[str], specs: Sequence[JobSpec], now: float) -> list:
        """Accept a whole DAG or nothing. Raises InvalidDag or JobConflict before changing any state."""
        ordered = validate_dag(dag or "", specs, self._is_known_job)
        self._check_not_active(dag, ordered)
        if dag:
            self.dags[dag] = [spec.job_id for spec in ordered]
            self._publish("dag.submitted", {"dag": dag, "jobs": len(ordered)})
        runs = [self._admit(spec, dag, now) for spec in ordered]
        for run in runs:
            self._resolve_parents(run, now)
        self._schedule(now)
        return self._take_effects()

    def _is_known_job(self, job_id: str) -> bool:
        return job_id in self.jobs

    def _check_not_active(self, dag: Optional[str], specs: Sequence[JobSpec]) -> None:
        active = [s.job_id for s in specs if s.job_id in self.jobs and not self.jobs[s.job_id].state.is_final]
        if active:
            raise JobConflict(
                f"job id(s) still active, wait for them to end or cancel them first: {', '.join(active)}",
                jobs=active)
        if dag and not self._dag_finished(dag):
            raise JobConflict(f"DAG {dag!r} is still running; pick another name or cancel it first", dag=dag)

    def _admit(self, spec: JobSpec, dag: Optional[str], now: float) -> JobRun:
        self._next_seq += 1
        previous = self.jobs.get(spec.job_id)
        if previous is not None:
            self.state_counts[previous.state] -= 1
        run = JobRun(spec=spec, dag=dag, seq=self._next_seq, submitted_at=now,
                     not_before=now + max(0.0, spec.delay))
        self.jobs[spec.job_id] = run
        self.state_counts[JobState.PENDING] += 1
        self._publish_job(run)
        return run

    def _resolve_parents(self, run: JobRun, now: float) -> None:
        for parent_id in run.spec.parents:
            parent = self.jobs[parent_id]
            if parent.state == JobState.COMPLETED:
                continue
            if parent.state in FINAL_STATES:
                self._cancel_tree(run, f"parent {parent_id!r} {parent.state.value}", now)
                return
            run.waiting_on.add(parent_id)
            self._children.setdefault(parent_id, set()).add(run.job_id)
        self._release_if_ready(run, now)

    def _release_if_ready(self, run: JobRun, now: float) -> None:
        if run.state != JobState.PENDING or run.waiting_on:
            return
        if run.not_before > now:
            heapq.heappush(self._delayed, (run.not_before, run.seq, run.job_id))
            return
        self._enqueue(run, reason=None)

    def _enqueue(self, run: JobRun, reason: Optional[str]) -> None:
        self._transition(run, JobState.QUEUED, reason)
        queue = self._queues.setdefault(run.spec.requirement, [])
        heapq.heappush(queue, (-run.spec.priority, run.seq, run.job_id))

    # ----------------------------------------------------------------- workers

    def worker_joined(self, worker_id: str, name: str, capabilities: Iterable[str], slots: int,
                      info: dict, now: float) -> list:
        if worker_id in self.workers:   # a repeated registration (its welcome was slow): nothing new
            self.workers[worker_id].last_seen = now
            return self._take_effects()
        caps = frozenset(capabilities) | {defaults.DEFAULT_REQUIREMENT}
        worker = WorkerView(worker_id, name, caps, max(1, slots), last_seen=now, info=dict(info))
        self.workers[worker_id] = worker
        self._publish("worker.joined", {"worker": name, "worker_id": worker_id,
                                        "capabilities": sorted(caps), "slots": worker.slots})
        self._schedule(now)
        return self._take_effects()

    def worker_seen(self, worker_id: str, now: float) -> bool:
        """Record a sign of life. False means the worker is unknown and must register again."""
        worker = self.workers.get(worker_id)
        if worker is None:
            return False
        worker.last_seen = now
        return True

    def worker_left(self, worker_id: str, reason: str, now: float) -> list:
        if worker_id in self.workers:
            self._drop_worker(worker_id, reason, now)
            self._schedule(now)
        return self._take_effects()

    def _drop_worker(self, worker_id: str, reason: str, now: float) -> None:
        worker = self.workers.pop(worker_id)
        self._publish("worker.left", {"worker": worker.name, "worker_id": worker_id, "reason": reason,
                                      "running": sorted(worker.running)})
        for job_id in sorted(worker.running, key=lambda j: self.jobs[j].seq):
            run = self.jobs[job_id]
            self._enqueue(run, reason=f"worker {worker.name!r} left ({reason}); queued to run again")

    # ----------------------------------------------------------------- job results

    def job_finished(self, worker_id: str, job_id: str, attempt: int, exit_code: int, now: float) -> list:
        run = self.jobs.get(job_id)
        if run is None or run.state != JobState.RUNNING or run.worker_id != worker_id or run.attempt != attempt:
            self._effects.append(Note(f"ignored a stale result for job {job_id!r} attempt {attempt} "
                                      f"(exit {exit_code}) from worker {worker_id!r}"))
            return self._take_effects()
        self._release_slot(run)
        run.exit_code, run.ended_at = exit_code, now
        if exit_code == 0:
            self._transition(run, JobState.COMPLETED, None)
        else:
            self._transition(run, JobState.FAILED, f"exit code {exit_code}")
        self._settle_children(run, now)
        self._schedule(now)
        return self._take_effects()

    def _settle_children(self, parent: JobRun, now: float) -> None:
        for child_id in sorted(self._children.pop(parent.job_id, ()), key=lambda j: self.jobs[j].seq):
            child = self.jobs[child_id]
            if parent.state == JobState.COMPLETED:
                child.waiting_on.discard(parent.job_id)
                self._release_if_ready(child, now)
            else:
                self._cancel_tree(child, f"parent {parent.job_id!r} {parent.state.value}", now)

    # ----------------------------------------------------------------- cancel

    def cancel(self, job_id: str, now: float, reason: str = "cancelled by request") -> list:
        run = self.jobs.get(job_id)
        if run is None:
            raise UnknownJob(f"no job {job_id!r} on this master", job_id=job_id)
        if not run.state.is_final:
            self._cancel_tree(run, reason, now)
            self._schedule(now)
        return self._take_effects()

    def cancel_dag(self, dag: str, now: float) -> list:
        if dag not in self.dags:
            raise UnknownDag(f"no DAG {dag!r} on this master", dag=dag)
        for job_id in self.dags[dag]:
            run = self.jobs[job_id]
            if run.dag == dag and not run.state.is_final:
                self._cancel_tree(run, f"DAG {dag!r} cancelled by request", now)
        self._schedule(now)
        return self._take_effects()

    def _cancel_tree(self, run: JobRun, reason: str, now: float) -> None:
        if run.state.is_final:      # already ended through another parent
            return
        if run.state == JobState.RUNNING:
            self._effects.append(StopJob(run.worker_id, run.job_id, run.attempt))
            self._release_slot(run)
        run.ended_at = now
        self._forget_parents(run)
        self._transition(run, JobState.CANCELLED, reason)
        self._settle_children(run, now)

    def _forget_parents(self, run: JobRun) -> None:
        """A cancelled job stops listening to parents still running, so they cannot touch a later run."""
        for parent_id in run.waiting_on:
            self._children.get(parent_id, set()).discard(run.job_id)
        run.waiting_on.clear()

    # ----------------------------------------------------------------- time

    def tick(self, now: float) -> list:
        for worker in [w for w in self.workers.values() if now - w.last_seen > self.worker_dead_after]:
            self._drop_worker(worker.worker_id, f"no heartbeat for {now - worker.last_seen:.1f}s", now)
        while self._delayed and self._delayed[0][0] <= now:
            _, seq, job_id = heapq.heappop(self._delayed)
            run = self.jobs.get(job_id)
            if run is not None and run.seq == seq and run.state == JobState.PENDING:
                self._enqueue(run, reason=None)
        self._schedule(now)
        return self._take_effects()

    def next_deadline(self) -> Optional[float]:
        """The earliest time a delayed job becomes ready, so the caller knows when to tick."""
        return self._delayed[0][0] if self._delayed else None

    # ----------------------------------------------------------------- dispatching

    def _schedule(self, now: float) -> None:
        """Dispatch ready jobs, highest priority first, FCFS within a priority, across requirements."""
        blocked: set = set()
        while True:
            head = self._best_queue_head(blocked)
            if head is None:
                return
            requirement, job_id = head
            worker = matching.choose_worker(requirement, self.workers.values())
            if worker is None:
                blocked.add(requirement)
                continue
            heapq.heappop(self._queues[requirement])
            self._start(self.jobs[job_id], worker, now)

    def _best_queue_head(self, blocked: set):
        best = None
        for requirement, queue in self._queues.items():
            if requirement in blocked:
                continue
            while queue and not self._is_live_entry(queue[0]):
                heapq.heappop(queue)
            if queue and (best is None or queue[0] < best[0]):
                best = (queue[0], requirement)
        return None if best is None else (best[1], best[0][2])

    def _is_live_entry(self, entry) -> bool:
        run = self.jobs.get(entry[2])
        return run is not None and run.seq == entry[1] and run.state == JobState.QUEUED

    def _start(self, run: JobRun, worker: WorkerView, now: float) -> None:
        run.attempt += 1
        run.worker_id, run.worker, run.started_at = worker.worker_id, worker.name, now
        worker.running.add(run.job_id)
        self._transition(run, JobState.RUNNING, None)
        self._effects.append(Dispatch(worker.worker_id, run.job_id, run.attempt))

    def _release_slot(self, run: JobRun) -> None:
        worker = self.workers.get(run.worker_id)
        if worker is not None:
            worker.running.discard(run.job_id)

    # ----------------------------------------------------------------- transitions and events

    def _transition(self, run: JobRun, new: JobState, reason: Optional[str]) -> None:
        check_transition(run.job_id, run.state, new)
        self.state_counts[run.state] -= 1
        self.state_counts[new] += 1
        run.state, run.reason = new, reason
        if new == JobState.QUEUED:
            run.worker_id = run.worker = None
        self._publish_job(run)
        if run.dag and new.is_final and self._dag_finished(run.dag):
            self._publish_dag_finished(run.dag)

    def _publish_job(self, run: JobRun) -> None:
        self._publish(f"job.{run.state.value}", {
            "job_id": run.job_id, "dag": run.dag, "state": run.state.value, "worker": run.worker,
            "attempt": run.attempt, "reason": run.reason, "exit_code": run.exit_code})

    def _publish_dag_finished(self, dag: str) -> None:
        counts = Counter(self.jobs[j].state.value for j in self.dags[dag] if self.jobs[j].dag == dag)
        self._publish("dag.finished", {"dag": dag, "counts": dict(counts)})

    def _publish(self, topic: str, body: dict) -> None:
        self._effects.append(Publish(topic, body))

    def _take_effects(self) -> list:
        effects, self._effects = self._effects, []
        return effects

    # ----------------------------------------------------------------- queries

    def _dag_finished(self, dag: str) -> bool:
        return all(self.jobs[j].state.is_final or self.jobs[j].dag != dag for j in self.dags.get(dag, ()))

    def job(self, job_id: str) -> JobRun:
        run = self.jobs.get(job_id)
        if run is None:
            raise UnknownJob(f"no job {job_id!r} on this master", job_id=job_id)
        return run

    def describe_job(self, job_id: str) -> dict:
        run = self.job(job_id)
        info = run.describe()
        if run.state == JobState.QUEUED and not matching.anyone_offers(run.spec.requirement, self.workers.values()):
            offered = ", ".join(matching.offered_capabilities(self.workers.values())) if self.workers else "none"
            info["reason"] = (f"waiting for a worker with capability {run.spec.requirement}; "
                              f"connected workers offer: {offered}")
        return info

    def describe_dag(self, dag: str) -> dict:
        if dag not in self.dags:
            raise UnknownDag(f"no DAG {dag!r} on this master", dag=dag)
        jobs = [self.describe_job(j) for j in self.dags[dag] if self.jobs[j].dag == dag]
        return {"dag": dag, "finished": self._dag_finished(dag), "jobs": jobs}

    def stats(self) -> dict:
        queued_by_requirement = Counter(run.spec.requirement for run in self.jobs.values()
                                        if run.state == JobState.QUEUED)
        return {
            "workers": [w.describe() for w in self.workers.values()],
            "jobs_by_state": {state.value: self.state_counts[state] for state in JobState},
            "queued_by_requirement": dict(queued_by_requirement),
        }

    # ----------------------------------------------------------------- invariants

    def validate(self) -> None:
        """Check the invariants; tests call this after every step."""
        assert sum(self.state_counts.values()) == len(self.jobs), "state counts do not add up"
        for state in JobState:
            actual = sum(1 for r in self.jobs.values() if r.state == state)
            assert self.state_counts[state] == actual, f"count of {state.value} is off"
        running_on_workers = set()
        for worker in self.workers.values():
            assert worker.free_slots >= 0, f"worker {worker.name} runs more jobs than it has slots"
            assert not (worker.running & running_on_workers), "a job runs on two workers"
            running_on_workers |= worker.running
            for job_id in worker.running:
                run = self.jobs[job_id]
                assert run.state == JobState.RUNNING and run.worker_id == worker.worker_id, job_id
        for run in self.jobs.values():
            if run.state == JobState.RUNNING:
                assert run.job_id in running_on_workers, f"{run.job_id} RUNNING on no worker"
            if run.state == JobState.QUEUED:
                assert any(e[2] == run.job_id and e[1] == run.seq
                           for e in self._queues.get(run.spec.requirement, ())), f"{run.job_id} not in queue"
            if run.state != JobState.PENDING:
                assert not run.waiting_on, f"{run.job_id} is {run.state.value} but still waits on parents"
        for parent_id, children in self._children.items():
            for child_id in children:
                child = self.jobs[child_id]
                assert child.state == JobState.PENDING and parent_id in child.waiting_on, \
                    f"stale link from {parent_id} to {child_id}"
