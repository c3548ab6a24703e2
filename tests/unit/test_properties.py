"""Random sequences of events against the scheduler: its invariants hold after every step, and work drains.

The state machine keeps its own record of what the scheduler told the world (dispatches, stops, events) and
checks that record against the scheduler's state, so a wrong effect is caught even when validate() passes.
"""

from __future__ import annotations

from collections import Counter

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis import given
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from titan.core.effects import Admitted, Dispatch, Note, Publish, StopJob
from titan.core.errors import InvalidDag, JobConflict, UnknownDag, UnknownJob
from titan.core.jobs import ALLOWED_TRANSITIONS, JobSpec, JobState
from titan.core.matching import choose_worker
from titan.core.scheduler import Scheduler

JOB_IDS = [f"j{i}" for i in range(7)]
WORKER_IDS = ["w0", "w1", "w2"]
DAG_NAMES = [None, None, "d0", "d1"]
SPECIAL = ["GPU", "HIGH_MEM"]
REQUIREMENTS = ["GENERAL", "GENERAL", "GENERAL", "GPU", "HIGH_MEM"]
DEAD_AFTER = 5.0

BOUNDED = settings(max_examples=80, deadline=None, stateful_step_count=40,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def spec(job_id: str, parents=(), **fields) -> JobSpec:
    return JobSpec(job_id=job_id, filename=f"{job_id}.py", parents=tuple(parents), **fields)


def draw_specs(data, ids, outside_parents, requirements=REQUIREMENTS, delays=(0.0, 0.0, 0.0, 2.0, 7.0)):
    """A valid DAG over `ids` (in that order): parents come from earlier ids or from `outside_parents`."""
    specs = []
    for i, job_id in enumerate(ids):
        candidates = list(ids[:i]) + [p for p in outside_parents if p not in ids]
        parents = data.draw(st.lists(st.sampled_from(candidates), max_size=2, unique=True)) if candidates else []
        specs.append(spec(job_id, parents,
                          priority=data.draw(st.integers(0, 2)),
                          requirement=data.draw(st.sampled_from(requirements)),
                          delay=data.draw(st.sampled_from(delays))))
    return specs


class EffectChecker:
    """What the outside world has been told, rebuilt from effects alone."""

    def __init__(self):
        self.last_state = {}         # job id -> state of its last job.* event
        self.dispatched = {}         # job id -> (worker id, attempt) the world believes is running
        self.dag_finished = Counter()   # dag -> dag.finished events since its last dag.submitted
        self.attempt = {}            # job id -> attempt of its latest job.RUNNING event in this run
        self.admitted = set()        # runs made durable (Admitted) whose job.PENDING event is still due

    def apply(self, scheduler: Scheduler, effects: list) -> None:
        for effect in effects:
            if isinstance(effect, Dispatch):
                assert effect.job_id not in self.dispatched, f"{effect.job_id} dispatched twice"
                assert self.last_state[effect.job_id] == JobState.RUNNING, "dispatch without a job.RUNNING event"
                assert effect.attempt == self.attempt[effect.job_id], "dispatch and event disagree on attempt"
                self.dispatched[effect.job_id] = (effect.worker_id, effect.attempt)
            elif isinstance(effect, StopJob):
                assert self.dispatched.pop(effect.job_id) == (effect.worker_id, effect.attempt), effect
            elif isinstance(effect, Publish):
                self._event(effect)
            elif isinstance(effect, Admitted):
                assert (effect.replaced_seq is not None) == (effect.job_id in self.last_state), effect
                self.admitted.add(effect.job_id)
            else:
                assert isinstance(effect, Note), effect
        self._check_against(scheduler)

    def _event(self, event: Publish) -> None:
        body = event.body
        if event.topic.startswith("job."):
            job_id, new = body["job_id"], JobState(body["state"])
            assert event.topic == f"job.{new.value}"
            old = self.last_state.get(job_id)
            if new == JobState.PENDING:
                assert old is None or old.is_final, f"{job_id}: a new run while {old} (allowed only after an end)"
                assert job_id in self.admitted, f"{job_id}: announced before it was made durable (Admitted)"
                self.admitted.discard(job_id)
            else:
                assert (old, new) in ALLOWED_TRANSITIONS, f"{job_id}: published {old} -> {new}"
            if old == JobState.RUNNING and new in (JobState.COMPLETED, JobState.FAILED):
                self.dispatched.pop(job_id)
            if old == JobState.RUNNING and new == JobState.QUEUED:
                self.dispatched.pop(job_id)          # its worker left
            if new == JobState.PENDING:
                self.attempt[job_id] = 0
                assert body["attempt"] == 0
            if new == JobState.RUNNING:
                assert body["attempt"] == self.attempt[job_id] + 1, f"{job_id}: attempt must rise by one"
                self.attempt[job_id] = body["attempt"]
            self.last_state[job_id] = new
        elif event.topic == "dag.submitted":
            self.dag_finished[body["dag"]] = 0
        elif event.topic == "dag.finished":
            self.dag_finished[body["dag"]] += 1
            assert self.dag_finished[body["dag"]] == 1, f"dag.finished twice for {body['dag']}"
        else:
            assert event.topic in ("worker.joined", "worker.left", "worker.dead"), event.topic

    def _check_against(self, scheduler: Scheduler) -> None:
        for job_id, run in scheduler.jobs.items():
            published = self.last_state[job_id]
            assert published == run.state, f"{job_id}: published {published}, is {run.state}"
            if run.state == JobState.RUNNING:
                assert self.dispatched.get(job_id) == (run.worker_id, run.attempt), job_id
            else:
                assert job_id not in self.dispatched, f"{job_id} is {run.state} but the world thinks it runs"
        for dag, job_ids in scheduler.dags.items():
            mine = [j for j in job_ids if scheduler.jobs[j].dag == dag]
            if mine and all(scheduler.jobs[j].state.is_final for j in mine):
                assert self.dag_finished[dag] == 1, f"DAG {dag} ended without exactly one dag.finished"


def check_work_conserving(scheduler: Scheduler) -> None:
    """No job waits in the queue while a worker that could run it has a free slot."""
    for run in scheduler.jobs.values():
        if run.state == JobState.QUEUED:
            assert choose_worker(run.spec.requirement, scheduler.workers.values()) is None, (
                f"{run.job_id} ({run.spec.requirement}) is QUEUED beside a free capable worker")


def check_run_facts(scheduler: Scheduler) -> None:
    for run in scheduler.jobs.values():
        if run.state == JobState.COMPLETED:
            assert run.exit_code == 0 and run.attempt >= 1
        elif run.state == JobState.FAILED:
            # an exit code that says it failed, or none when no attempt ended by itself (its workers died)
            assert run.attempt >= 1 and run.exit_code != 0 and (run.exit_code is not None or run.reason)
        elif run.state == JobState.CANCELLED:
            assert run.reason
        elif run.state == JobState.PENDING:
            assert run.attempt == 0
        elif run.state == JobState.RUNNING:
            assert run.worker_id in scheduler.workers


class SchedulerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.s = Scheduler(worker_dead_after=DEAD_AFTER)
        self.now = 0.0
        self.checker = EffectChecker()

    def _apply(self, effects):
        self.s.validate()
        self.checker.apply(self.s, effects)
        return effects

    def _snapshot(self):
        return ({j: (id(r), r.state, r.attempt) for j, r in self.s.jobs.items()},
                {d: list(js) for d, js in self.s.dags.items()},
                {w: set(v.running) for w, v in self.s.workers.items()})

    # ------------------------------------------------------------- submissions

    @rule(data=st.data())
    def submit(self, data):
        ids = data.draw(st.lists(st.sampled_from(JOB_IDS), min_size=1, max_size=4, unique=True))
        specs = draw_specs(data, ids, sorted(self.s.jobs))
        dag = data.draw(st.sampled_from(DAG_NAMES))
        flaw = data.draw(st.sampled_from([None] * 6 + ["ghost", "self", "duplicate", "cycle"]))
        if flaw == "ghost":
            specs[-1] = spec(specs[-1].job_id, specs[-1].parents + ("ghost",))
        elif flaw == "self":
            specs[0] = spec(specs[0].job_id, (specs[0].job_id,))
        elif flaw == "duplicate":
            specs.append(spec(specs[0].job_id))
        elif flaw == "cycle":
            specs += [spec("cyc-a", ["cyc-b"]), spec("cyc-b", ["cyc-a"])]
        active = [j for j in ids if j in self.s.jobs and not self.s.jobs[j].state.is_final]
        dag_busy = bool(dag) and any(self.s.jobs[j].dag == dag and not self.s.jobs[j].state.is_final
                                     for j in self.s.dags.get(dag, ()))
        before = self._snapshot()
        try:
            effects = self.s.submit(dag, specs, self.now)
        except InvalidDag:
            assert flaw is not None, "a valid DAG was refused"
            assert self._snapshot() == before, "a refused submission changed state"
            self.s.validate()
            return
        except JobConflict:
            assert flaw is None and (active or dag_busy), "conflict reported without one"
            assert self._snapshot() == before, "a refused submission changed state"
            self.s.validate()
            return
        assert flaw is None, f"accepted a submission with a {flaw}"
        assert not active and not dag_busy, "accepted a submission that conflicts"
        self._apply(effects)
        for job_spec in specs:
            run = self.s.jobs[job_spec.job_id]
            assert run.spec is job_spec and run.dag == dag

    # ------------------------------------------------------------- workers

    @initialize(caps=st.lists(st.sampled_from(SPECIAL), unique=True), slots=st.integers(1, 3))
    def first_worker(self, caps, slots):
        self.join("w0", caps, slots)

    @rule(worker_id=st.sampled_from(WORKER_IDS), caps=st.lists(st.sampled_from(SPECIAL), unique=True),
          slots=st.integers(1, 3))
    def join(self, worker_id, caps, slots):
        again = worker_id in self.s.workers
        effects = self._apply(self.s.worker_joined(worker_id, worker_id, caps, slots, {}, self.now))
        if again:
            assert effects == []
        else:
            assert [e.topic for e in effects if isinstance(e, Publish)][0] == "worker.joined"

    @rule(worker_id=st.sampled_from(WORKER_IDS))
    def leave(self, worker_id):
        had = set(self.s.workers[worker_id].running) if worker_id in self.s.workers else set()
        self._apply(self.s.worker_left(worker_id, "test", self.now))
        assert worker_id not in self.s.workers
        for job_id in had:
            assert self.s.jobs[job_id].worker_id != worker_id

    @rule(worker_ids=st.lists(st.sampled_from(WORKER_IDS), unique=True))
    def heartbeat(self, worker_ids):
        for worker_id in worker_ids:
            assert self.s.worker_seen(worker_id, self.now) == (worker_id in self.s.workers)

    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 3.0, 6.0]))
    def tick(self, dt):
        self.now += dt
        silent = {w for w, v in self.s.workers.items() if self.now - v.last_seen > DEAD_AFTER}
        self._apply(self.s.tick(self.now))
        assert not (silent & set(self.s.workers)), "a silent worker survived the tick"
        deadline = self.s.next_deadline()
        assert deadline is None or deadline > self.now, "a due deadline was left after tick"

    # ------------------------------------------------------------- results

    @rule(data=st.data())
    def finish(self, data):
        running = sorted(j for j, r in self.s.jobs.items() if r.state == JobState.RUNNING)
        if not running:
            return
        job_id = data.draw(st.sampled_from(running))
        run = self.s.jobs[job_id]
        code = data.draw(st.sampled_from([0, 0, 0, 1, 2, -9]))
        stale = data.draw(st.sampled_from([None, None, None, "attempt", "worker"]))
        worker_id, attempt = run.worker_id, run.attempt
        if stale == "attempt":
            attempt += data.draw(st.sampled_from([-1, 1]))
        elif stale == "worker":
            worker_id = "someone-else"
        effects = self._apply(self.s.job_finished(worker_id, job_id, attempt, code, self.now))
        if stale:
            assert len(effects) == 1 and isinstance(effects[0], Note)
            assert self.s.jobs[job_id] is run and run.state == JobState.RUNNING
        else:
            assert run.state == (JobState.COMPLETED if code == 0 else JobState.FAILED)

    # ------------------------------------------------------------- cancel

    @rule(data=st.data())
    def cancel(self, data):
        job_id = data.draw(st.sampled_from(sorted(self.s.jobs) + ["nobody"]))
        try:
            effects = self.s.cancel(job_id, self.now)
        except UnknownJob:
            assert job_id not in self.s.jobs
            return
        self._apply(effects)
        assert self.s.jobs[job_id].state.is_final

    @rule(dag=st.sampled_from(["d0", "d1", "d9"]))
    def cancel_dag(self, dag):
        try:
            effects = self.s.cancel_dag(dag, self.now)
        except UnknownDag:
            assert dag not in self.s.dags
            return
        self._apply(effects)
        assert all(self.s.jobs[j].state.is_final for j in self.s.dags[dag] if self.s.jobs[j].dag == dag)

    # ------------------------------------------------------------- always

    @invariant()
    def holds(self):
        self.s.validate()
        check_work_conserving(self.s)
        check_run_facts(self.s)


SchedulerMachine.TestCase.settings = BOUNDED
TestSchedulerMachine = SchedulerMachine.TestCase


# ================================================================= everything drains


@BOUNDED
@given(data=st.data())
def test_every_job_ends_once_workers_keep_finishing_jobs(data):
    """Workers finish whatever they are given (random exit codes, random order, one bounce); all jobs end."""
    scheduler = Scheduler(worker_dead_after=DEAD_AFTER)
    checker = EffectChecker()
    now = 0.0

    def apply(effects):
        scheduler.validate()
        checker.apply(scheduler, effects)
        check_work_conserving(scheduler)

    worker_caps = data.draw(st.lists(st.lists(st.sampled_from(SPECIAL), unique=True), min_size=1, max_size=3))
    offered = sorted({"GENERAL", *[c for caps in worker_caps for c in caps]})
    for i, caps in enumerate(worker_caps):
        apply(scheduler.worker_joined(f"w{i}", f"w{i}", caps, data.draw(st.integers(1, 2)), {}, now))

    # Submissions use fresh ids, may hang under earlier ones, and need only capabilities someone offers.
    pending_submissions = []
    all_ids = []
    for n in range(data.draw(st.integers(1, 4))):
        size = data.draw(st.integers(1, 4))
        ids = [f"s{n}-{k}" for k in range(size)]
        earlier = data.draw(st.lists(st.sampled_from(all_ids), max_size=2, unique=True)) if all_ids else []
        pending_submissions.append((f"dag{n}" if data.draw(st.booleans()) else None,
                                    draw_specs(data, ids, earlier, requirements=offered)))
        all_ids += ids
    bounced = False

    for _ in range(500):
        running = sorted(j for j, r in scheduler.jobs.items() if r.state == JobState.RUNNING)
        choices = ["submit"] * bool(pending_submissions) + ["finish"] * bool(running)
        choices += ["wait"] * (scheduler.next_deadline() is not None) + ["bounce"] * (not bounced and bool(running))
        if not choices:
            break
        action = data.draw(st.sampled_from(choices))
        if action == "submit":
            dag, specs = pending_submissions.pop(0)
            apply(scheduler.submit(dag, specs, now))
        elif action == "finish":
            job_id = data.draw(st.sampled_from(running))
            run = scheduler.jobs[job_id]
            code = data.draw(st.sampled_from([0, 0, 0, 1]))
            apply(scheduler.job_finished(run.worker_id, job_id, run.attempt, code, now))
        elif action == "wait":
            now = max(now, scheduler.next_deadline())
            for worker_id in scheduler.workers:
                scheduler.worker_seen(worker_id, now)
            apply(scheduler.tick(now))
        else:   # a worker restarts: its jobs go back to the queue, it comes back under a new connection id
            bounced = True
            victim = scheduler.jobs[data.draw(st.sampled_from(running))].worker_id
            view = scheduler.workers[victim]
            apply(scheduler.worker_left(victim, "restart", now))
            apply(scheduler.worker_joined(victim + "-again", view.name, view.capabilities, view.slots, {}, now))
    else:
        raise AssertionError("the work did not drain in 500 steps")

    jobs = scheduler.jobs
    assert sorted(jobs) == sorted(all_ids)
    not_ended = {j: r.state for j, r in jobs.items() if not r.state.is_final}
    assert not not_ended, f"jobs left unfinished: {not_ended}"
    assert all(not w.running for w in scheduler.workers.values())
    for run in jobs.values():
        parents_done = all(jobs[p].state == JobState.COMPLETED for p in run.spec.parents)
        if parents_done:
            assert run.state in (JobState.COMPLETED, JobState.FAILED), f"{run.job_id} never ran: {run.reason}"
        else:
            assert run.state == JobState.CANCELLED, f"{run.job_id} ran although a parent did not complete"
            failed = [p for p in run.spec.parents if jobs[p].state != JobState.COMPLETED]
            assert any(f"'{p}'" in run.reason for p in failed), run.reason
    for dag in scheduler.dags:
        assert checker.dag_finished[dag] == 1
