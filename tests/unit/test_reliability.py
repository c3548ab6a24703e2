"""Reliability: retries with backoff, timeouts, lost workers, reclaim on re-registration, restore after a
master restart. Driven like test_scheduler.py: events in, effects out, a fake clock, validate() after
every step."""

from __future__ import annotations

import pytest

from tests.unit.sim import (C, DEAD_AFTER, F, P, Q, R, X, Sim, dispatched_ids, dispatches, events,
                                       job_states_published, notes, spec)
from titan.core.effects import Dispatch, StopJob
from titan.core.errors import JobConflict
from titan.core.jobs import JobRun
from titan.core.scheduler import Scheduler


class RSim(Sim):
    """Sim with retry backoff settings, claims on registration, error strings on results, and restore."""

    def __init__(self, dead_after: float = DEAD_AFTER, backoff: float = 1.0, backoff_max: float = 60.0):
        super().__init__(dead_after)
        self.s = Scheduler(worker_dead_after=dead_after, retry_backoff=backoff, retry_backoff_max=backoff_max)

    def join(self, worker_id, caps=(), slots=1, name=None, running=()):
        return self._step(self.s.worker_joined, worker_id, name or worker_id, list(caps), slots, {},
                          running=list(running))

    def finish(self, job_id, exit_code=0, worker_id=None, attempt=None, error=None):
        run = self.s.jobs[job_id]
        worker_id = run.worker_id if worker_id is None else worker_id
        attempt = run.attempt if attempt is None else attempt
        return self._step(self.s.job_finished, worker_id, job_id, attempt, exit_code, error=error)

    def restore(self, runs, dags=None):
        return self._step(self.s.restore, list(runs), dict(dags or {}))


def stops(effects):
    return [e for e in effects if isinstance(e, StopJob)]


def job_events(effects):
    return [e for e in events(effects) if e.topic.startswith("job.")]


def count_published(effects, job_id, state):
    return job_states_published(effects, job_id).count(state.value)


def journaled(job_id, seq, state, parents=(), dag=None, attempt=0, failures=0, worker_id=None, **fields):
    """A JobRun as the journal hands it back after a restart."""
    exit_code = {C: 0, F: 1}.get(state)
    return JobRun(spec=spec(job_id, parents, **fields), dag=dag, seq=seq, state=state, attempt=attempt,
                  failures=failures, worker_id=worker_id, worker=worker_id, exit_code=exit_code,
                  reason=None if state in (C, P, Q, R) else "journaled")


def beat_and_tick(sim, to):
    """Every worker heartbeats at `to`, then the scheduler ticks there."""
    sim.now = to
    for worker_id in list(sim.s.workers):
        sim.seen(worker_id)
    return sim.tick()


def running_on_w1(retries=0, **kw) -> RSim:
    sim = RSim(**kw)
    sim.join("w1")
    sim.submit(spec("a", retries=retries))
    assert sim.state("a") == R and sim.run("a").attempt == 1
    return sim


# ================================================================= retries


def test_failed_attempt_with_retries_left_is_queued_with_a_reason_and_not_redispatched_at_once():
    sim = running_on_w1(retries=2)
    effects = sim.finish("a", 3)
    run = sim.run("a")
    assert run.state == Q and run.failures == 1 and run.attempt == 1 and run.exit_code == 3
    assert run.reason == "attempt 1 failed (exit code 3); retry 1 of 2 in 1s"
    assert job_states_published(effects, "a") == ["QUEUED"]
    assert not dispatches(effects), "w1 is free, but the backoff has not passed"
    assert sim.s.workers["w1"].running == set()


def test_retry_is_dispatched_only_once_the_backoff_has_passed():
    sim = RSim(backoff=2.0)
    sim.now = 10.0
    sim.join("w1")
    sim.submit(spec("a", retries=1))
    sim.now = 12.0
    sim.finish("a", 3)
    assert sim.s.next_deadline() == 14.0
    effects = sim.live_until(13.9, step=0.3)
    assert not dispatches(effects) and sim.state("a") == Q
    effects = sim.tick(14.0)
    assert dispatches(effects) == [Dispatch("w1", "a", 2)]
    assert sim.state("a") == R and sim.run("a").failures == 1
    assert sim.s.next_deadline() is None


@pytest.mark.parametrize("backoff, cap, expected", [
    (1.0, 5.0, [1, 2, 4, 5, 5]),
    (0.5, 60.0, [0.5, 1, 2, 4, 8]),
    (3.0, 2.0, [2, 2, 2, 2, 2]),
])
def test_backoff_doubles_per_failure_and_is_capped(backoff, cap, expected):
    sim = running_on_w1(retries=5, backoff=backoff, backoff_max=cap)
    for failures, wait in enumerate(expected, start=1):
        sim.live_until(sim.now + 0.25)
        start = sim.now
        sim.finish("a", 1)
        run = sim.run("a")
        assert run.state == Q and run.failures == failures
        assert run.reason == f"attempt {failures} failed (exit code 1); retry {failures} of 5 in {wait:g}s"
        assert sim.s.next_deadline() == pytest.approx(start + wait)
        assert not dispatches(beat_and_tick(sim, start + wait - 0.01)), f"failure {failures}: too early"
        assert dispatches(beat_and_tick(sim, start + wait)) == [Dispatch("w1", "a", failures + 1)]
    effects = sim.finish("a", 1)
    run = sim.run("a")
    assert run.state == F and run.failures == 6 and run.attempt == 6 and run.reason == "exit code 1"
    assert job_states_published(effects, "a") == ["FAILED"]
    assert not dispatches(sim.live_until(sim.now + 200, step=10.0))


def test_last_failure_is_final_and_cancels_descendants():
    sim = RSim()
    sim.join("w1", slots=2)
    sim.submit(spec("a", retries=1), spec("b", ["a"]), spec("c", ["b"]))
    sim.finish("a", 7)
    assert sim.states("a", "b", "c") == [Q, P, P], "a retry pending leaves the children waiting"
    sim.tick(1.0)
    effects = sim.finish("a", 7)
    assert sim.states("a", "b", "c") == [F, X, X]
    assert sim.run("a").reason == "exit code 7" and sim.run("a").failures == 2
    assert sim.run("b").reason == "parent 'a' FAILED" and sim.run("c").reason == "parent 'b' CANCELLED"
    assert not dispatches(effects) and not stops(effects)
    assert not dispatches(sim.live_until(30.0))


def test_success_on_a_retry_completes_and_releases_children():
    sim = RSim()
    sim.join("w1")
    sim.submit(spec("a", retries=2), spec("b", ["a"]))
    sim.finish("a", 3)
    sim.tick(1.0)
    effects = sim.finish("a", 0)
    run = sim.run("a")
    assert run.state == C and run.attempt == 2 and run.failures == 1 and run.exit_code == 0
    assert run.reason is None
    assert dispatches(effects) == [Dispatch("w1", "b", 1)]
    assert count_published(sim.log, "a", C) == 1


@pytest.mark.parametrize("loss", ["dead", "left"])
def test_a_lost_worker_requeues_without_spending_a_retry(loss):
    sim = running_on_w1(retries=1)
    if loss == "dead":
        effects = sim.tick(DEAD_AFTER + 1)
    else:
        effects = sim.leave("w1", "it shut down")
    run = sim.run("a")
    assert run.state == Q and run.failures == 0 and run.attempt == 1 and "lost" in run.reason
    assert sim.s.next_deadline() is None, "no backoff after a lost worker"
    assert dispatches(sim.join("w2")) == [Dispatch("w2", "a", 2)]
    sim.finish("a", 3)
    assert sim.state("a") == Q and sim.run("a").reason.endswith("retry 1 of 1 in 1s"), \
        "the one retry is still there"
    sim.live_until(sim.now + 1.0)
    assert sim.run("a").attempt == 3
    sim.finish("a", 3)
    assert sim.state("a") == F and sim.run("a").failures == 2


def test_worker_lost_during_a_retry_keeps_the_failure_count_and_raises_the_attempt():
    sim = running_on_w1(retries=3)
    sim.join("w2")
    sim.finish("a", 1)
    sim.live_until(1.0)
    assert sim.run("a").attempt == 2
    on = sim.run("a").worker_id
    other = "w2" if on == "w1" else "w1"
    effects = sim.leave(on)
    assert dispatches(effects) == [Dispatch(other, "a", 3)]
    assert sim.run("a").failures == 1


def test_cancel_during_backoff_is_final_and_never_dispatched():
    sim = running_on_w1(retries=3)
    sim.finish("a", 1)
    effects = sim.cancel("a")
    assert sim.state("a") == X and not stops(effects), "nothing runs during a backoff"
    effects = sim.live_until(100.0, step=0.5)
    assert not dispatches(effects) and sim.state("a") == X and sim.run("a").attempt == 1


def test_cancelled_runs_backoff_does_not_release_a_resubmitted_runs_retry():
    sim = running_on_w1(retries=1, backoff=2.0)
    sim.finish("a", 1)                  # old run's backoff ends at 2.0
    sim.cancel("a")
    sim.now = 1.0
    sim.submit(spec("a", retries=1))
    sim.finish("a", 1)                  # new run's backoff ends at 3.0
    assert not dispatches(sim.tick(2.5))
    assert dispatches(sim.tick(3.0)) == [Dispatch("w1", "a", 2)]


# ================================================================= timeouts and error strings


def test_timeout_without_retries_fails_with_reason_timeout():
    sim = running_on_w1()
    effects = sim.finish("a", -9, error="timeout")
    run = sim.run("a")
    assert run.state == F and run.reason == "timeout" and run.exit_code == -9
    assert events(effects, "job.FAILED")[0].body["reason"] == "timeout"


def test_timeout_with_retries_left_says_timeout_in_the_requeue_reason():
    sim = running_on_w1(retries=1)
    sim.finish("a", -9, error="timeout")
    run = sim.run("a")
    assert run.state == Q and "timeout" in run.reason
    assert run.reason == "attempt 1 failed (timeout); retry 1 of 1 in 1s"


@pytest.mark.parametrize("retries, expected", [
    (0, "exit code 137: out of memory"),
    (1, "attempt 1 failed (exit code 137: out of memory); retry 1 of 1 in 1s"),
])
def test_other_errors_follow_the_exit_code(retries, expected):
    sim = running_on_w1(retries=retries)
    sim.finish("a", 137, error="out of memory")
    assert sim.run("a").reason == expected


# ================================================================= worker topics


def test_silent_worker_is_published_as_dead_naming_the_heartbeat():
    sim = running_on_w1()
    sim.join("w2")
    sim.now = DEAD_AFTER + 1
    sim.seen("w2")
    effects = sim.tick()
    dead = events(effects, "worker.dead")
    assert [e.body["worker_id"] for e in dead] == ["w1"] and not events(effects, "worker.left")
    assert "heartbeat" in dead[0].body["reason"] and dead[0].body["running"] == ["a"]


def test_a_master_stall_is_not_counted_against_its_workers():
    """The master paused past dead_after: heartbeats waited unread, so no worker is dead for it."""
    sim = running_on_w1()
    sim.now = DEAD_AFTER + 2
    sim.s.master_stalled(DEAD_AFTER + 1.5, sim.now)
    assert not events(sim.tick(), "worker.dead") and sim.state("a") == R
    sim.now += DEAD_AFTER / 2
    assert not events(sim.tick(), "worker.dead"), "the excused time runs from the end of the stall"
    sim.now += DEAD_AFTER
    assert [e.body["worker_id"] for e in events(sim.tick(), "worker.dead")] == ["w1"], \
        "a worker silent after the stall is still declared dead"


def test_the_same_silence_without_a_master_stall_declares_the_worker_dead():
    sim = running_on_w1()
    sim.now = DEAD_AFTER + 2
    assert [e.body["worker_id"] for e in events(sim.tick(), "worker.dead")] == ["w1"]


def test_worker_leaving_is_published_as_left():
    sim = running_on_w1()
    effects = sim.leave("w1", "it shut down")
    left = events(effects, "worker.left")
    assert [e.body["reason"] for e in left] == ["it shut down"] and not events(effects, "worker.dead")


# ================================================================= reclaim on (re-)registration


def test_claim_of_its_own_running_job_changes_nothing():
    sim = running_on_w1()
    sim.now = 2.0
    before = sim.run("a").describe()
    effects = sim.join("w1", running=[("a", 1)])
    assert effects == []
    assert sim.run("a").describe() == before and sim.s.workers["w1"].running == {"a"}


def _running_elsewhere(sim):
    sim.join("w2")
    sim.submit(spec("a"))
    return "a", 1


def _other_attempt(sim):
    sim.join("w1")
    sim.submit(spec("a", retries=1))
    sim.finish("a", 1)
    sim.tick(1.0)
    assert sim.run("a").attempt == 2 and sim.run("a").worker_id == "w1"
    return "a", 1


def _ended(how):
    def setup(sim):
        sim.join("w1")
        sim.submit(spec("a"))
        if how == "cancelled":
            sim.cancel("a")
        else:
            sim.finish("a", 0 if how == "completed" else 1)
        return "a", 1
    return setup


def _unknown(sim):
    return "ghost", 1


def _queued_never_dispatched(sim):
    sim.submit(spec("a", requirement="GPU"))
    return "a", 0


@pytest.mark.parametrize("setup", [_running_elsewhere, _other_attempt, _ended("cancelled"), _ended("completed"),
                                   _ended("failed"), _unknown, _queued_never_dispatched],
                         ids=["elsewhere", "other-attempt", "cancelled", "completed", "failed", "unknown",
                              "queued-never-ran"])
def test_claims_no_longer_its_own_are_told_to_stop(setup):
    sim = RSim()
    job_id, attempt = setup(sim)
    sim.now = 2.0
    before = sim.run(job_id).describe() if job_id in sim.s.jobs else None
    running_before = set(sim.s.workers["w1"].running) if "w1" in sim.s.workers else set()
    effects = sim.join("w1", running=[(job_id, attempt)])
    assert stops(effects) == [StopJob("w1", job_id, attempt)]
    assert len(notes(effects)) == 1 and repr(job_id) in notes(effects)[0].message
    assert not dispatches(effects) and not job_events(effects)
    if before is not None:
        assert sim.run(job_id).describe() == before
    assert sim.s.workers["w1"].running == running_before


@pytest.mark.parametrize("loss", ["dead", "left"])
def test_worker_back_before_its_job_moved_takes_it_back_with_the_same_attempt(loss):
    sim = running_on_w1()
    if loss == "dead":
        sim.tick(DEAD_AFTER + 1)
    else:
        sim.leave("w1", "unreachable")
    assert sim.state("a") == Q and "w1" not in sim.s.workers
    effects = sim.join("w1", running=[("a", 1)])
    run = sim.run("a")
    assert not dispatches(effects) and not stops(effects)
    assert run.state == R and run.attempt == 1 and run.worker_id == "w1" and run.failures == 0
    assert job_states_published(effects, "a") == ["RUNNING"] and "came back" in run.reason
    assert sim.s.workers["w1"].running == {"a"}
    effects = sim.finish("a", 0, worker_id="w1", attempt=1)
    assert sim.state("a") == C and not notes(effects)
    sim.live_until(sim.now + 20)
    assert count_published(sim.log, "a", C) == 1 and len(dispatched_ids(sim.log)) == 1


def test_worker_back_after_its_job_moved_is_told_to_stop_and_its_late_result_is_ignored():
    sim = running_on_w1()
    sim.join("w2")
    sim.now = DEAD_AFTER + 1
    sim.seen("w2")
    assert dispatches(sim.tick()) == [Dispatch("w2", "a", 2)]
    effects = sim.join("w1", running=[("a", 1)])
    assert stops(effects) == [StopJob("w1", "a", 1)] and notes(effects)
    assert not dispatches(effects) and sim.run("a").worker_id == "w2" and sim.run("a").attempt == 2
    assert sim.s.workers["w1"].running == set()
    effects = sim.finish("a", 0, worker_id="w1", attempt=1)
    assert notes(effects) and not job_events(effects) and sim.state("a") == R
    sim.finish("a", 0, worker_id="w2", attempt=2)
    assert sim.state("a") == C and count_published(sim.log, "a", C) == 1


def test_claim_of_an_attempt_that_already_failed_is_refused():
    sim = running_on_w1(retries=1)
    sim.finish("a", 3)                          # attempt 1 has ended; a is backing off
    effects = sim.join("w1", running=[("a", 1)])
    assert stops(effects) == [StopJob("w1", "a", 1)]
    assert sim.state("a") == Q and sim.s.workers["w1"].running == set()
    assert dispatches(sim.tick(1.0)) == [Dispatch("w1", "a", 2)]


# ================================================================= restore after a master restart


def test_restored_final_jobs_stay_final():
    sim = RSim()
    sim.restore([journaled("ok", 1, C, attempt=1), journaled("bad", 2, F, attempt=2, failures=2),
                 journaled("gone", 3, X)])
    sim.join("w1", slots=3)
    effects = sim.live_until(30.0)
    assert sim.states("ok", "bad", "gone") == [C, F, X]
    assert not dispatches(sim.log) and not job_events(sim.log) and not effects


def test_restored_pending_jobs_wait_for_parents_and_are_released():
    sim = RSim()
    sim.restore([journaled("done", 1, C, attempt=1), journaled("p", 2, Q),
                 journaled("c", 3, P, ["p"]), journaled("d", 4, P, ["done"])])
    assert sim.states("p", "c", "d") == [Q, P, Q], "d's only parent had completed before the crash"
    effects = sim.join("w1", slots=2)
    assert dispatched_ids(effects) == ["p", "d"] and sim.state("c") == P
    sim.finish("d")
    assert sim.state("c") == P
    assert dispatches(sim.finish("p")) == [Dispatch("w1", "c", 1)]


def test_restored_pending_job_under_a_failed_parent_is_cancelled():
    sim = RSim()
    sim.restore([journaled("bad", 1, F, attempt=1), journaled("ok", 2, Q),
                 journaled("c", 3, P, ["bad", "ok"]), journaled("g", 4, P, ["c"])])
    assert sim.states("c", "g") == [X, X]
    assert sim.run("c").reason == "parent 'bad' FAILED" and sim.run("g").reason == "parent 'c' CANCELLED"
    sim.join("w1")
    sim.finish("ok")
    assert sim.states("c", "g") == [X, X] and dispatched_ids(sim.log) == ["ok"]


def test_restored_queued_jobs_dispatch_in_priority_order():
    sim = RSim()
    sim.restore([journaled("q1", 1, Q), journaled("q2", 2, Q, priority=5), journaled("q3", 3, Q, priority=5),
                 journaled("q4", 4, Q, priority=9, attempt=1)])
    assert not dispatches(sim.log)
    order = dispatches(sim.join("w1"))
    for _ in range(3):
        order += dispatches(sim.finish(order[-1].job_id))
    assert order == [Dispatch("w1", "q4", 2), Dispatch("w1", "q2", 1), Dispatch("w1", "q3", 1),
                     Dispatch("w1", "q1", 1)]


def test_restored_running_job_is_an_orphan_its_worker_can_claim():
    sim = RSim()
    sim.now = 100.0
    effects = sim.restore([journaled("a", 1, R, attempt=1, worker_id="w1")])
    assert not effects and sim.state("a") == R
    assert sim.s.next_deadline() == 100.0 + DEAD_AFTER
    sim.now = 102.0
    effects = sim.join("w1", running=[("a", 1)])
    assert not dispatches(effects) and not stops(effects) and not job_events(effects)
    assert sim.s.workers["w1"].running == {"a"}
    effects = sim.live_until(100.0 + 3 * DEAD_AFTER)
    assert not dispatches(effects) and sim.state("a") == R and sim.run("a").attempt == 1
    effects = sim.finish("a", 0, worker_id="w1", attempt=1)
    assert sim.state("a") == C and job_states_published(effects, "a") == ["COMPLETED"]


def test_unclaimed_orphan_is_requeued_after_the_grace_and_runs_with_the_next_attempt():
    sim = RSim()
    sim.now = 100.0
    sim.restore([journaled("a", 1, R, attempt=1, worker_id="old")])
    assert not dispatches(sim.join("w2")), "a still belongs to its worker during the grace"
    effects = sim.live_until(100.0 + DEAD_AFTER - 0.5, step=0.5)
    assert not dispatches(effects) and sim.state("a") == R
    effects = sim.live_until(100.0 + DEAD_AFTER + 0.5, step=0.5)
    assert job_states_published(effects, "a") == ["QUEUED", "RUNNING"]
    queued = events(effects, "job.QUEUED")[0].body
    assert "restart" in queued["reason"] and "'old'" in queued["reason"]
    assert dispatches(effects) == [Dispatch("w2", "a", 2)] and sim.run("a").failures == 0
    sim.finish("a", 0)
    assert sim.state("a") == C


def test_orphans_worker_claiming_after_the_grace_but_before_a_redispatch_takes_it_back():
    sim = RSim()
    sim.restore([journaled("a", 1, R, attempt=1, worker_id="w1")])
    sim.tick(DEAD_AFTER + 1)
    assert sim.state("a") == Q
    effects = sim.join("w1", running=[("a", 1)])
    assert not dispatches(effects) and sim.state("a") == R and sim.run("a").attempt == 1
    sim.finish("a", 0, worker_id="w1", attempt=1)
    assert sim.state("a") == C


@pytest.mark.parametrize("claims", [[], [("other", 1)]], ids=["no-claim", "claims-something-else"])
def test_orphans_worker_registering_without_claiming_it(claims):
    sim = RSim()
    sim.restore([journaled("a", 1, R, attempt=1, worker_id="w1")])
    sim.now = 1.0
    effects = sim.join("w1", running=claims)
    effects += sim.live_until(DEAD_AFTER + 0.5, step=0.5)
    assert Dispatch("w1", "a", 2) in dispatches(effects)
    assert sim.state("a") == R and sim.run("a").attempt == 2


def test_orphan_that_ended_while_the_master_was_down_completes_from_the_resent_result():
    # What worker.py does: the job exits while the master is down, so it registers with running=[]
    # and, once welcomed, re-sends the unacknowledged result.
    sim = RSim()
    sim.restore([journaled("a", 1, R, attempt=1, worker_id="w1")])
    sim.now = 1.0
    effects = sim.join("w1", running=[])
    effects += sim.finish("a", 0, worker_id="w1", attempt=1)
    assert sim.state("a") == C and not dispatches(effects) and not notes(effects)


@pytest.mark.parametrize("claimed", [True, False], ids=["claimed", "not-claimed"])
def test_restored_chain_keeps_its_order(claimed):
    sim = RSim()
    sim.restore([journaled("a", 1, C, attempt=1), journaled("b", 2, R, ["a"], attempt=1, worker_id="w1"),
                 journaled("c", 3, P, ["b"])])
    assert not dispatches(sim.join("w2", slots=2)) and sim.state("c") == P
    if claimed:
        sim.now = 1.0
        sim.join("w1", running=[("b", 1)])
    effects = sim.live_until(DEAD_AFTER + 2)
    assert sim.state("c") == P
    assert dispatches(effects) == ([] if claimed else [Dispatch("w2", "b", 2)])
    effects = sim.finish("b")
    assert sim.states("b", "c") == [C, R] and dispatched_ids(effects) == ["c"]
    sim.finish("c")
    assert sim.states("a", "b", "c") == [C, C, C]


def test_new_submissions_continue_the_restored_sequence():
    sim = RSim()
    sim.restore([journaled("x", 7, Q), journaled("y", 3, C, attempt=1), journaled("z", 5, P, ["x"])])
    sim.submit(spec("n"))
    assert sim.run("n").seq == 8
    assert dispatched_ids(sim.join("w1")) == ["x"], "first come, first served across the restart"
    assert dispatched_ids(sim.finish("x")) == ["z"]
    assert dispatched_ids(sim.finish("z")) == ["n"]


def test_restored_dags_can_be_described_and_finish_once():
    sim = RSim()
    sim.restore([journaled("a", 1, C, dag="d", attempt=1), journaled("b", 2, R, ["a"], dag="d", attempt=1,
                                                                       worker_id="w1")],
                {"d": ["a", "b"]})
    info = sim.s.describe_dag("d")
    assert info["finished"] is False
    assert [(j["job_id"], j["state"]) for j in info["jobs"]] == [("a", "COMPLETED"), ("b", "RUNNING")]
    with pytest.raises(JobConflict):
        sim.submit(spec("other"), dag="d")
    sim.join("w1", running=[("b", 1)])
    effects = sim.finish("b")
    assert len(events(effects, "dag.finished")) == 1
    assert sim.s.describe_dag("d")["finished"] is True


@pytest.mark.parametrize("state", [C, F, X], ids=lambda s: s.value)
def test_resubmitting_a_restored_final_job_works(state):
    sim = RSim()
    sim.restore([journaled("a", 4, state, attempt=1)])
    sim.join("w1")
    effects = sim.submit(spec("a", args="--again"))
    run = sim.run("a")
    assert run.seq == 5 and run.spec.args == "--again" and run.failures == 0
    assert dispatches(effects) == [Dispatch("w1", "a", 1)]


@pytest.mark.parametrize("state", [P, Q, R], ids=lambda s: s.value)
def test_resubmitting_a_restored_active_job_is_a_conflict(state):
    sim = RSim()
    runs = [journaled("gate", 1, Q), journaled("a", 2, state, ["gate"] if state == P else (),
                                               attempt=1 if state == R else 0,
                                               worker_id="w1" if state == R else None)]
    sim.restore(runs)
    run = sim.run("a")
    with pytest.raises(JobConflict) as info:
        sim.submit(spec("a"))
    assert info.value.details["jobs"] == ["a"] and sim.run("a") is run and run.state == state
    sim.s.validate()
