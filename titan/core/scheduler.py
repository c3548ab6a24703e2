"""The scheduler: a plain object that takes events in and returns effects out.

Events are method calls (submit, worker_joined, job_finished, cancel, tick, restore, ...), each given
`now`. Effects are Dispatch / StopJob / Publish / Note values (see effects.py). No I/O happens here, so
a test drives it with a fake clock and checks `validate()` after every step.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from titan import defaults
from titan.core import matching, timers
from titan.core.dag import parents_outside, validate_dag, validation_steps
from titan.core.effects import Admitted, Dispatch, Note, Publish, StopJob
from titan.core.errors import InvalidDag, JobConflict, UnknownDag, UnknownJob
from titan.core.gates import SchedulerGates, add_gates, is_gate
from titan.core.history import History, SchedulerHistory
from titan.core.recovery import SchedulerRecovery
from titan.core.retention import SchedulerRetention
from titan.core.jobs import FINAL_STATES, TIMEOUT_ERROR, JobRun, JobSpec, JobState, check_transition, gate_id
from titan.core.matching import WorkerView
from titan.core.queries import SchedulerQueries
from titan.core.retries import SchedulerRetries, new_totals
from titan.core.services import SchedulerServices, is_service


# Ready-queue kinds: one queue per requirement, and one per worker for jobs pinned there by affinity.
BY_REQUIREMENT, PINNED = "requirement", "worker"
JOB_TOPICS = {state: f"job.{state.value}" for state in JobState}
# Enum members read once: in Python 3.11 each JobState.X (and .value) is a descriptor call, and every
# transition of every job reads them (state.value is read as state._value_, the plain attribute behind it).
PENDING, QUEUED, RUNNING, COMPLETED = JobState.PENDING, JobState.QUEUED, JobState.RUNNING, JobState.COMPLETED


class Scheduler(SchedulerQueries, SchedulerServices, SchedulerGates, SchedulerRetries, SchedulerHistory,
                SchedulerRecovery, SchedulerRetention):
    def __init__(self, worker_dead_after: float = defaults.WORKER_DEAD_AFTER_S,
                 retry_backoff: float = defaults.RETRY_BACKOFF_S,
                 retry_backoff_max: float = defaults.RETRY_BACKOFF_MAX_S,
                 max_worker_losses: int = defaults.MAX_WORKER_LOSSES):
        self.worker_dead_after = worker_dead_after
        self.max_worker_losses = max_worker_losses
        # job id -> workers lost while running one of its attempts (in memory: a restart forgives)
        self._worker_losses: Counter = Counter()
        self.retry_backoff, self.retry_backoff_max = retry_backoff, retry_backoff_max
        self.jobs: Dict[str, JobRun] = {}
        self.dags: Dict[str, List[str]] = {}
        self.workers: Dict[str, WorkerView] = {}
        self.state_counts: Counter = Counter()
        self._dag_open: Counter = Counter()           # DAG name -> its jobs not yet ended
        self._children: Dict[str, set] = {}          # parent id -> ids of jobs waiting on it
        self._queues: Dict[tuple, list] = {}         # queue key -> heap of (-priority, seq, job_id)
        self._deadlines = timers.Deadlines()
        self._orphans: set = set()                   # RUNNING jobs whose worker has not re-registered
        self._next_seq = 0
        self.totals = new_totals()                   # what /metrics counts (retries.py)
        self._effects: list = []
        self._dispatch_held = False   # see hold_dispatches
        # Runs whose journaled facts changed (state, attempt, worker...), for whoever keeps them durable.
        self.changed_runs: Dict[str, JobRun] = {}
        # Whether anyone listens to a topic: an event nobody would receive is not built (a 10,000-job
        # submission makes 20,000 job events, most of them unwatched). The master sets this.
        self.wants_event: Callable[[str], bool] = lambda topic: True
        # A gate's decision made before it opened (the master reads it from TitanStore), or None.
        self.decision_made_early: Callable[[str], Optional[str]] = lambda gate: None
        self.history = History()
        # Unix time minus the clock `now` is read from: what people are told of when things happened is
        # wall-clock time, converted here alone (wall). The master sets it; a fake clock leaves it 0.
        self.wall_offset = 0.0
        self._wall_now: Optional[float] = None   # wall(now) of the call being handled
        self._init_retention()

    def wall(self, now: float) -> float:
        return now + self.wall_offset

    def _at(self, now: float) -> None:
        self._wall_now = now + self.wall_offset

    # ----------------------------------------------------------------- submissions

    def submit(self, dag: Optional[str], specs: Sequence[JobSpec], now: float) -> list:
        """Accept a whole DAG or nothing. Raises InvalidDag or JobConflict before changing any state."""
        self._at(now)
        ordered = validate_dag(dag or "", self.with_gates(specs), self._is_known_job)
        return self.submit_ordered(dag, ordered, now)

    def with_gates(self, specs: Sequence[JobSpec]) -> list:
        """The submission with its gates (titan.core.gates.add_gates), as submit validates it."""
        return add_gates(specs, self._has_gate)

    def validation(self, dag: Optional[str], specs: Sequence[JobSpec]):
        """validation_steps of these specs (with_gates already applied) against the jobs known now."""
        return validation_steps(dag or "", specs, self._is_known_job)

    def submit_ordered(self, dag: Optional[str], ordered: Sequence[JobSpec], now: float) -> list:
        """submit, for specs already validated and ordered (possibly some turns ago): what may have changed
        since, jobs still active and parents from outside it still known, is checked again."""
        self._at(now)
        gone = sorted(p for p in parents_outside(ordered) if p not in self.jobs)
        if gone:
            raise InvalidDag(f"{'DAG ' + repr(dag) if dag else 'submission'}: parent(s) {', '.join(map(repr, gone))} "
                             "were forgotten while it was being checked", jobs=gone)
        self._check_not_active(dag, ordered)
        dag_run = None
        if dag:
            self.dags[dag] = [spec.job_id for spec in ordered]
            dag_run = self.history.open_dag_run(dag, self._wall_now)
            self._publish("dag.submitted", {"dag": dag, "jobs": len(ordered)})
        runs = [self._admit(spec, dag, now, dag_run and dag_run.run_id) for spec in ordered]
        if dag_run is not None:
            dag_run.seqs = [run.seq for run in runs]
        for run in runs:
            self._resolve_parents(run, now)
        self._schedule(now)
        return self._take_effects()

    def _is_known_job(self, job_id: str) -> bool:
        return job_id in self.jobs

    def _has_gate(self, job_id: str) -> bool:
        """The job's current run has a gate after it (admitted after it, so not an earlier run's)."""
        run, gate = self.jobs.get(job_id), self.jobs.get(gate_id(job_id))
        return (run is not None and gate is not None and bool(run.spec.hitl_message)
                and not is_gate(run.spec) and gate.seq > run.seq)

    def _check_not_active(self, dag: Optional[str], specs: Sequence[JobSpec]) -> None:
        active = [s.job_id for s in specs if s.job_id in self.jobs and not self.jobs[s.job_id].state.is_final]
        if active:
            raise JobConflict(
                f"job id(s) still active, wait for them to end or cancel them first: {', '.join(active)}",
                jobs=active)
        if dag and not self._dag_finished(dag):
            raise JobConflict(f"DAG {dag!r} is still running; pick another name or cancel it first", dag=dag)

    def _admit(self, spec: JobSpec, dag: Optional[str], now: float, dag_run: Optional[str]) -> JobRun:
        self._next_seq += 1
        run = JobRun(spec=spec, dag=dag, seq=self._next_seq, submitted_at=self._wall_now,
                     not_before=now + max(0.0, spec.delay), dag_run=dag_run)
        self.history.admitted(run)
        self._retention_admitted(run)
        earlier = self.jobs.get(run.job_id)
        self.totals["submitted"] += 1
        self._effects.append(Admitted(run.job_id, replaced_seq=None if earlier is None else earlier.seq))
        self._add_run(run)
        self._publish_job(run)
        return run

    def _add_run(self, run: JobRun) -> None:
        previous = self.jobs.get(run.job_id)
        if previous is not None:
            self.state_counts[previous.state] -= 1
        self.jobs[run.job_id] = run
        self.state_counts[run.state] += 1
        if run.dag and run.state not in FINAL_STATES:
            self._dag_open[run.dag] += 1

    def _resolve_parents(self, run: JobRun, now: float) -> None:
        for parent_id in run.spec.parents:
            parent = self.jobs[parent_id]
            if self._parent_done(parent):
                continue
            if parent.state in FINAL_STATES:
                self._cancel_tree(run, _ended_parent(parent), now)
                return
            run.waiting_on.add(parent_id)
            self._children.setdefault(parent_id, set()).add(run.job_id)
        self._release_if_ready(run, now)

    def _release_if_ready(self, run: JobRun, now: float) -> None:
        if run.state is not PENDING or run.waiting_on:
            return
        if is_gate(run.spec):
            self._open_gate(run, now)
            return
        if run.not_before > now:
            self._deadlines.add(run.not_before, timers.DELAY, run.seq, run.job_id)
            return
        self._enqueue(run, reason=None)

    def _enqueue(self, run: JobRun, reason: Optional[str]) -> None:
        self._transition(run, QUEUED, reason)
        self._push_ready(run)

    def _push_ready(self, run: JobRun) -> None:
        queue = self._queues.setdefault(self._queue_key(run), [])
        heapq.heappush(queue, (-run.spec.priority, run.seq, run.job_id))

    def _queue_key(self, run: JobRun) -> Tuple[str, str]:
        """("worker", id) for a job pinned by affinity to the worker that ran its first parent,
        else ("requirement", tag). A pinned job whose worker is gone goes to any capable worker."""
        if run.spec.affinity and run.spec.parents:
            parent = self.jobs.get(run.spec.parents[0])
            worker = self.workers.get(parent.worker_id) if parent is not None else None
            if worker is not None and worker.can_run(run.spec.requirement):
                return (PINNED, worker.worker_id)
            run.note = (f"affinity: worker {parent.worker if parent else None!r} that ran parent "
                        f"{run.spec.parents[0]!r} is gone, so any capable worker runs it")
        return (BY_REQUIREMENT, run.spec.requirement)

    # ----------------------------------------------------------------- workers

    def worker_joined(self, worker_id: str, name: str, capabilities: Iterable[str], slots: int,
                      info: dict, now: float, running: Iterable[Tuple[str, int]] = ()) -> list:
        """A worker registers, saying which (job id, attempt) it is still running."""
        self._at(now)
        worker = self.workers.get(worker_id)
        if worker is None:
            caps = frozenset(capabilities) | {defaults.DEFAULT_REQUIREMENT}
            worker = WorkerView(worker_id, name, caps, max(1, slots), last_seen=now, info=dict(info))
            self.workers[worker_id] = worker
            self._publish("worker.joined", {"worker": name, "worker_id": worker_id,
                                            "capabilities": sorted(caps), "slots": worker.slots})
        worker.last_seen = now
        for job_id, attempt in running:
            self._reclaim(worker, job_id, attempt)
        self._schedule(now)
        return self._take_effects()

    def _reclaim(self, worker: WorkerView, job_id: str, attempt: int) -> None:
        """Take back a job a (re-)registering worker still runs, or tell it to stop one no longer its own."""
        run = self.jobs.get(job_id)
        current = run is not None and run.attempt == attempt
        if current and job_id in worker.running:
            return                                     # a repeated registration: known already
        if current and run.state == JobState.RUNNING and run.worker_id == worker.worker_id:
            self._orphans.discard(job_id)              # the master restarted; its worker is back
            worker.running.add(job_id)
            return
        if (current and run.state == JobState.QUEUED and run.last_worker_id == worker.worker_id
                and worker.free_slots > 0):
            self._assign(run, worker)                  # declared dead too early: let it finish there
            if run.ended_attempts and run.ended_attempts[-1][0] == run.attempt:
                run.ended_attempts.pop()               # that attempt did not end after all
            self._transition(run, JobState.RUNNING, f"worker {worker.name!r} came back still running it")
            return
        self._effects.append(StopJob(worker.worker_id, job_id, attempt))
        self._effects.append(Note(f"worker {worker.name!r} still runs job {job_id!r} attempt {attempt}, "
                                  "which is no longer its own; told it to stop"))

    def worker_seen(self, worker_id: str, now: float) -> bool:
        """Record a sign of life. False means the worker is unknown and must register again."""
        worker = self.workers.get(worker_id)
        if worker is None:
            return False
        worker.last_seen = now
        return True

    def worker_usage(self, worker_id: str, usage: dict) -> None:
        """The worker's host figures from its heartbeat (CPU and memory), shown and never used to decide."""
        if worker_id in self.workers:
            self.workers[worker_id].usage = dict(usage)

    def master_stalled(self, seconds: float, now: float) -> None:
        """The master did not look for `seconds` (it was paused, or busy): heartbeats that waited unread
        meanwhile are not the workers' fault, so that time does not count as their silence."""
        for worker in self.workers.values():
            worker.last_seen = min(now, worker.last_seen + seconds)

    def worker_left(self, worker_id: str, reason: str, now: float, lost: bool = False) -> list:
        """A worker is gone: by choice, or `lost` (its connection vanished), which counts against the jobs
        it ran as a death does."""
        self._at(now)
        if worker_id in self.workers:
            self._drop_worker(worker_id, reason, "worker.left", lost, now)
            self._schedule(now)
        return self._take_effects()

    def _drop_worker(self, worker_id: str, reason: str, topic: str, lost: bool, now: float) -> None:
        worker = self.workers.pop(worker_id)
        self.totals["workers_lost"] += topic == "worker.dead"
        self._publish(topic, {"worker": worker.name, "worker_id": worker_id, "reason": reason,
                              "running": sorted(worker.running)})
        verdict = "declared dead" if topic == "worker.dead" else "left"
        self._effects.append(Note(f"worker {worker.name!r} {verdict} ({reason}); jobs queued to run again: "
                                  f"{', '.join(sorted(worker.running)) or 'none'}"))
        for job_id in sorted(worker.running, key=lambda j: self.jobs[j].seq):
            run = self.jobs[job_id]
            if lost and self._count_worker_loss(run, worker.name, reason, now):
                continue
            self._enqueue(run, reason=f"worker {worker.name!r} lost ({reason}); queued to run again")
        for _, _, job_id in self._queues.pop((PINNED, worker_id), []):   # jobs pinned to it go anywhere
            run = self.jobs[job_id]
            if run.state == JobState.QUEUED:
                self._push_ready(run)

    def _count_worker_loss(self, run: JobRun, worker_name: str, reason: str, now: float) -> bool:
        """A worker died while running `run`; past the limit the job is suspected of killing them and
        fails (True). Retries are not used: those are for the job's own failures."""
        self._worker_losses[run.job_id] += 1
        losses = self._worker_losses[run.job_id]
        if losses < self.max_worker_losses:
            return False
        self._release_slot(run)
        run.ended_at = now
        noun = "worker" if losses == 1 else "workers"
        self._transition(run, JobState.FAILED, f"its attempts cost {losses} {noun} (the last, {worker_name!r}: "
                                               f"{reason}); failed, not retried (--max-worker-losses)")
        self._settle_children(run, now)
        return True

    # ----------------------------------------------------------------- job results

    def job_finished(self, worker_id: str, job_id: str, attempt: int, exit_code: int, now: float,
                     error: Optional[str] = None) -> list:
        """A worker reports an attempt's end. Results for anything but the current attempt are ignored."""
        self._at(now)
        run = self.jobs.get(job_id)
        if run is None or run.state is not RUNNING or run.worker_id != worker_id or run.attempt != attempt:
            sender = self.workers[worker_id].name if worker_id in self.workers else f"connection {worker_id}"
            self._effects.append(Note(f"ignored a stale result for job {job_id!r} attempt {attempt} "
                                      f"(exit {exit_code}) from worker {sender}"))
            return self._take_effects()
        self._release_slot(run)
        run.exit_code = exit_code
        if is_service(run.spec):
            self._service_exited(run, exit_code, error, now)
        elif exit_code == 0:
            self._transition(run, COMPLETED, None)
        else:
            self._fail_attempt(run, _failure_reason(exit_code, error), now)
        if run.state in FINAL_STATES:
            self._settle_children(run, now)
        self._schedule(now)
        return self._take_effects()

    def _fail_attempt(self, run: JobRun, reason: str, now: float) -> None:
        run.failures += 1
        if run.failures > run.spec.retries:
            self._transition(run, JobState.FAILED, reason)
            return
        backoff = self._backoff(run.failures)
        self.totals["retries"] += 1
        self._transition(run, JobState.QUEUED, f"attempt {run.attempt} failed ({reason}); "
                                               f"retry {run.failures} of {run.spec.retries} in {backoff:g}s")
        run.last_worker_id = None   # that attempt has ended: no worker may claim it back
        self._deadlines.add(now + backoff, timers.BACKOFF, run.seq, run.job_id)

    def _backoff(self, failures: int) -> float:
        return min(self.retry_backoff * 2 ** (failures - 1), self.retry_backoff_max)

    def _settle_children(self, parent: JobRun, now: float) -> None:
        for child_id in sorted(self._children.pop(parent.job_id, ()), key=lambda j: self.jobs[j].seq):
            child = self.jobs[child_id]
            if self._parent_done(parent):
                child.waiting_on.discard(parent.job_id)
                self._release_if_ready(child, now)
            else:
                self._cancel_tree(child, _ended_parent(parent), now)

    # ----------------------------------------------------------------- cancel

    def cancel(self, job_id: str, now: float, reason: str = "cancelled by request") -> list:
        self._at(now)
        run = self.jobs.get(job_id)
        if run is None:
            raise UnknownJob(f"no job {job_id!r} on this master", job_id=job_id)
        if not run.state.is_final:
            self._cancel_tree(run, reason, now)
            self._schedule(now)
        return self._take_effects()

    def cancel_dag(self, dag: str, now: float) -> list:
        self._at(now)
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
        self._at(now)
        for worker in [w for w in self.workers.values() if now - w.last_seen > self.worker_dead_after]:
            self._drop_worker(worker.worker_id, f"no heartbeat for {now - worker.last_seen:.1f}s", "worker.dead",
                              True, now)
        for kind, seq, job_id in self._deadlines.due(now):
            self._on_deadline(kind, self.jobs.get(job_id), seq, now)
        self._schedule(now)
        return self._take_effects()

    def _on_deadline(self, kind: str, run: Optional[JobRun], seq: int, now: float) -> None:
        if run is None or run.seq != seq:
            return
        if kind == timers.DELAY and run.state == JobState.PENDING and not run.waiting_on:
            self._enqueue(run, reason=None)
        elif kind == timers.BACKOFF and run.state == JobState.QUEUED:
            self._push_ready(run)
        elif kind == timers.GATE and run.state == JobState.WAITING_APPROVAL:
            self._transition(run, JobState.FAILED, f"no decision within {run.spec.max_wait_seconds:g}s")
            self._settle_children(run, now)
        elif kind == timers.ORPHAN and run.job_id in self._orphans:
            self._orphans.discard(run.job_id)
            self._enqueue(run, reason=f"worker {run.worker!r} did not come back after the master restarted; "
                                      "queued to run again")

    def next_deadline(self) -> Optional[float]:
        """The earliest time something is due (a delay, a backoff, an orphan's grace), so the caller ticks."""
        return self._deadlines.next()

    # ----------------------------------------------------------------- dispatching

    def hold_dispatches(self) -> None:
        """Until release_dispatches, jobs freed or queued wait instead of being dispatched one call at a
        time: a worker's batch of results then fills the freed slots in one pass, with every slot known."""
        self._dispatch_held = True

    def release_dispatches(self, now: float) -> list:
        self._at(now)
        self._dispatch_held = False
        self._schedule(now)
        return self._take_effects()

    def _schedule(self, now: float) -> None:
        """Dispatch ready jobs, highest priority first, FCFS within a priority, across requirements."""
        if self._dispatch_held:
            return
        blocked: set = set()
        while True:
            head = self._best_queue_head(blocked)
            if head is None:
                return
            key, job_id = head
            worker = self._worker_for(key)
            if worker is None:
                blocked.add(key)
                continue
            heapq.heappop(self._queues[key])
            self._start(self.jobs[job_id], worker, now)

    def _worker_for(self, key: Tuple[str, str]) -> Optional[WorkerView]:
        kind, name = key
        if kind == BY_REQUIREMENT:
            return matching.choose_worker(name, self.workers.values())
        worker = self.workers.get(name)
        return worker if worker is not None and worker.free_slots > 0 else None

    def _best_queue_head(self, blocked: set):
        best = None
        for key, queue in self._queues.items():
            if key in blocked:
                continue
            while queue and not self._is_live_entry(queue[0]):
                heapq.heappop(queue)
            if queue and (best is None or queue[0] < best[0]):
                best = (queue[0], key)
        return None if best is None else (best[1], best[0][2])

    def _is_live_entry(self, entry) -> bool:
        run = self.jobs.get(entry[2])
        return run is not None and run.seq == entry[1] and run.state is QUEUED

    def _start(self, run: JobRun, worker: WorkerView, now: float) -> None:
        run.attempt += 1
        run.started_at, run.exit_code = self._wall_now, None
        self._assign(run, worker)
        self.history.started(run)
        self._transition(run, RUNNING, None)
        self._effects.append(Dispatch(worker.worker_id, run.job_id, run.attempt))

    def _assign(self, run: JobRun, worker: WorkerView) -> None:
        run.worker_id, run.worker = worker.worker_id, worker.name
        worker.running.add(run.job_id)

    def _release_slot(self, run: JobRun) -> None:
        worker = self.workers.get(run.worker_id)
        if worker is not None:
            worker.running.discard(run.job_id)
        self._orphans.discard(run.job_id)

    # ----------------------------------------------------------------- transitions and events

    def _transition(self, run: JobRun, new: JobState, reason: Optional[str]) -> None:
        old = run.state
        check_transition(run.job_id, old, new)
        self.state_counts[old] -= 1
        self.state_counts[new] += 1
        run.state, run.reason = new, reason
        self._stamp(run, old, new)
        if new is not RUNNING:
            run.service_up = False
        if new is QUEUED:
            run.last_worker_id, run.worker_id, run.worker = run.worker_id, None, None
        final = new in FINAL_STATES
        if final:
            self._worker_losses.pop(run.job_id, None)
        self._publish_job(run)
        if final:
            self.totals["ended"][new._value_] += 1
            if run.dag:
                self._dag_open[run.dag] -= 1
                if self._dag_finished(run.dag):
                    self._close_dag_run(run.dag, self._wall_now)
                    self._publish_dag_finished(run.dag)

    def _publish_job(self, run: JobRun) -> None:
        self.changed_runs[run.spec.job_id] = run
        topic = JOB_TOPICS[run.state]
        if self.wants_event(topic):
            self._publish(topic, {
                "job_id": run.spec.job_id, "dag": run.dag, "state": run.state._value_, "worker": run.worker,
                "attempt": run.attempt, "reason": run.reason, "exit_code": run.exit_code})

    def take_changed_runs(self) -> Dict[str, JobRun]:
        changed, self.changed_runs = self.changed_runs, {}
        return changed

    def _publish_dag_finished(self, dag: str) -> None:
        counts = Counter(self.jobs[j].state.value for j in self.dags[dag] if self.jobs[j].dag == dag)
        self._publish("dag.finished", {"dag": dag, "counts": dict(counts)})

    def _publish(self, topic: str, body: dict) -> None:
        self._effects.append(Publish(topic, body))

    def _take_effects(self) -> list:
        effects, self._effects = self._effects, []
        return effects


def _ended_parent(parent: JobRun) -> str:
    """Why a child of an ended parent is cancelled; for a gate, with the person's decision (or its
    deadline), so the whole subtree says why without a look at the gate."""
    reason = f"parent {parent.job_id!r} {parent.state.value}"
    return f"{reason} ({parent.reason})" if is_gate(parent.spec) and parent.reason else reason


def _failure_reason(exit_code: int, error: Optional[str]) -> str:
    if error == TIMEOUT_ERROR:
        return TIMEOUT_ERROR
    reason = f"exit code {exit_code}"
    return f"{reason}: {error}" if error else reason
