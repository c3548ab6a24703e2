"""The scheduler driven directly: events in, effects out, a fake clock, validate() after every step."""

from __future__ import annotations

import itertools

import pytest

from titan.core.effects import Dispatch, Note, Publish, StopJob
from titan.core.errors import InvalidDag, JobConflict, UnknownDag, UnknownJob
from titan.core.retention import Retention
from titan.core.jobs import ALLOWED_TRANSITIONS, FINAL_STATES, IllegalTransition, JobState, check_transition
from tests.unit.sim import (C, F, P, Q, R, X, Sim, dispatched_ids, dispatches, events, job_states_published,
                             notes, spec)

# ================================================================= the transition table


W = JobState.WAITING_APPROVAL

EXPECTED_ALLOWED = {
    (P, Q), (P, X), (P, W),
    (Q, R), (Q, X), (Q, C),   # Q -> C: a service stopped while it waits to restart
    (R, C), (R, F), (R, Q), (R, X),
    (W, C), (W, X), (W, F),
}


@pytest.mark.parametrize("old, new", list(itertools.product(JobState, JobState)),
                         ids=lambda s: s.value)
def test_transition_table(old, new):
    if (old, new) in EXPECTED_ALLOWED:
        check_transition("j", old, new)
    else:
        with pytest.raises(IllegalTransition) as info:
            check_transition("j", old, new)
        assert info.value.job_id == "j" and info.value.old == old and info.value.new == new
        assert "'j'" in str(info.value) and old.value in str(info.value) and new.value in str(info.value)


def test_table_matches_the_architecture_and_final_states_are_final():
    assert set(ALLOWED_TRANSITIONS) == EXPECTED_ALLOWED
    assert FINAL_STATES == {C, F, X}
    assert all(old not in FINAL_STATES for old, _ in ALLOWED_TRANSITIONS)
    assert [s for s in JobState if s.is_final] == [C, F, X]


def test_scheduler_refuses_an_illegal_transition_and_changes_nothing():
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("a"))
    sim.finish("a", 0)
    run = sim.run("a")
    counts = dict(sim.s.state_counts)
    for new in (P, Q, R, F, X):
        with pytest.raises(IllegalTransition):
            sim.s._transition(run, new, "forced")   # the one door every change goes through
    assert run.state == C and dict(sim.s.state_counts) == counts
    sim.s.validate()


# ----------------------------------------------------------------- each allowed transition, driven for real


def test_pending_to_queued_when_the_parent_completes():
    sim = Sim()
    sim.submit(spec("parent"), spec("child", ["parent"]))
    assert sim.states("parent", "child") == [Q, P]
    sim.join("w1")
    effects = sim.finish("parent", 0)
    assert job_states_published(effects, "child") == ["QUEUED", "RUNNING"]


def test_pending_to_cancelled_on_cancel():
    sim = Sim()
    sim.submit(spec("parent"), spec("child", ["parent"]))
    effects = sim.cancel("child")
    assert job_states_published(effects, "child") == ["CANCELLED"]
    assert sim.state("parent") == Q


def test_queued_to_running_when_a_worker_joins():
    sim = Sim()
    sim.submit(spec("a"))
    assert sim.state("a") == Q
    effects = sim.join("w1")
    assert dispatches(effects) == [Dispatch("w1", "a", 1)]
    assert sim.state("a") == R and sim.run("a").worker == "w1"


def test_queued_to_cancelled_on_cancel():
    sim = Sim()
    sim.submit(spec("a"))
    effects = sim.cancel("a")
    assert sim.state("a") == X
    assert not [e for e in effects if isinstance(e, StopJob)], "nothing runs, so nothing to stop"
    sim.join("w1")
    assert sim.state("a") == X, "a cancelled job is never dispatched"


@pytest.mark.parametrize("code, final", [(0, C), (1, F), (2, F), (-9, F), (255, F)])
def test_running_to_completed_or_failed_by_exit_code(code, final):
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("a"))
    sim.now = 3.0
    effects = sim.finish("a", code)
    run = sim.run("a")
    assert run.state == final and run.exit_code == code and run.ended_at == 3.0
    if code == 0:
        assert run.reason is None
    else:
        assert str(code) in run.reason
    assert job_states_published(effects, "a") == [final.value]
    assert sim.s.workers["w1"].running == set()


def test_running_to_queued_when_its_worker_leaves():
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("a"))
    effects = sim.leave("w1", "it shut down")
    assert sim.state("a") == Q
    run = sim.run("a")
    assert run.worker is None and run.worker_id is None and run.attempt == 1
    assert "w1" in run.reason
    assert job_states_published(effects, "a") == ["QUEUED"]


def test_running_to_cancelled_on_cancel():
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("a"))
    effects = sim.cancel("a")
    assert effects[0] == StopJob("w1", "a", 1)
    assert sim.state("a") == X and sim.s.workers["w1"].running == set()


def test_whole_life_of_one_job_is_published_in_order():
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("a"))
    sim.finish("a", 0)
    assert job_states_published(sim.log, "a") == ["PENDING", "QUEUED", "RUNNING", "COMPLETED"]


# ================================================================= submit


@pytest.mark.parametrize("bad", [
    [spec("a"), spec("b", ["c"]), spec("c", ["b"])],           # cycle
    [spec("a"), spec("b", ["ghost"])],                          # unknown parent
    [spec("a"), spec("b"), spec("a")],                          # duplicate
    [spec("a"), spec("b", ["b"])],                              # self
    [],                                                         # empty
])
def test_bad_dag_is_refused_before_anything_is_queued(bad):
    sim = Sim()
    sim.join("w1", slots=4)
    with pytest.raises(InvalidDag):
        sim.submit(*bad, dag="d")
    assert sim.s.jobs == {} and sim.s.dags == {}
    assert sum(sim.s.state_counts.values()) == 0
    assert sim.s.workers["w1"].running == set()
    # Nothing half-done leaks into the next call's effects either.
    effects = sim.submit(spec("fine"))
    assert dispatched_ids(effects) == ["fine"]
    assert not events(effects, "dag.submitted")


def test_conflict_with_an_active_job_refuses_the_whole_submission():
    sim = Sim()
    sim.submit(spec("busy"))
    with pytest.raises(JobConflict) as info:
        sim.submit(spec("new"), spec("busy"), spec("other", ["new"]), dag="d")
    assert "busy" in str(info.value) and "new" not in str(info.value)
    assert set(sim.s.jobs) == {"busy"} and "d" not in sim.s.dags


def test_submission_may_hang_jobs_under_known_jobs():
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("base"))
    sim.submit(spec("more", ["base"]))
    assert sim.state("more") == P and sim.run("more").waiting_on == {"base"}
    effects = sim.finish("base")
    assert dispatched_ids(effects) == ["more"]


def test_child_of_an_already_completed_job_is_queued_at_once():
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("base"))
    sim.finish("base")
    effects = sim.submit(spec("more", ["base"]))
    assert dispatched_ids(effects) == ["more"]


@pytest.mark.parametrize("end", ["fail", "cancel"])
def test_child_of_an_already_failed_or_cancelled_job_is_cancelled_at_once(end):
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("base"))
    if end == "fail":
        sim.finish("base", 1)
    else:
        sim.cancel("base")
    effects = sim.submit(spec("more", ["base"]), spec("leaf", ["more"]))
    assert not dispatches(effects)
    assert sim.states("more", "leaf") == [X, X]
    assert "'base'" in sim.run("more").reason
    assert sim.state("base").value in sim.run("more").reason
    assert "'more'" in sim.run("leaf").reason


# ================================================================= dependencies


def test_pending_until_every_parent_has_completed():
    sim = Sim()
    sim.join("w1", slots=3)
    sim.submit(spec("a"), spec("b"), spec("c", ["a", "b"]))
    assert sim.states("a", "b", "c") == [R, R, P]
    assert sim.run("c").waiting_on == {"a", "b"}
    effects = sim.finish("a")
    assert sim.state("c") == P and sim.run("c").waiting_on == {"b"}
    assert not dispatches(effects)
    effects = sim.finish("b")
    assert dispatched_ids(effects) == ["c"]
    assert sim.run("c").waiting_on == set()


def test_child_waits_even_when_workers_are_idle():
    sim = Sim()
    sim.join("w1", slots=4)
    sim.submit(spec("a"), spec("b", ["a"]), spec("c", ["b"]))
    for _ in range(3):
        sim.tick(sim.now + 1)
        assert sim.states("b", "c") == [P, P]
    sim.finish("a")
    assert sim.states("b", "c") == [R, P]
    sim.finish("b")
    assert sim.state("c") == R


@pytest.mark.parametrize("end", ["fail", "cancel"])
def test_ended_parent_cancels_all_descendants_naming_their_parent(end):
    #   a -> b -> c -> d      a -> e      unrelated: z
    sim = Sim()
    sim.join("w1", slots=2)
    sim.submit(spec("a"), spec("b", ["a"]), spec("c", ["b"]), spec("d", ["c"]), spec("e", ["a"]), spec("z"))
    effects = sim.finish("a", 3) if end == "fail" else sim.cancel("a")
    ended = "FAILED" if end == "fail" else "CANCELLED"
    assert sim.state("a").value == ended
    assert sim.states("b", "c", "d", "e") == [X, X, X, X]
    assert sim.run("b").reason == f"parent 'a' {ended}"
    assert sim.run("e").reason == f"parent 'a' {ended}"
    assert sim.run("c").reason == "parent 'b' CANCELLED"
    assert sim.run("d").reason == "parent 'c' CANCELLED"
    assert sim.state("z") in (R, C)
    for job_id in "bcde":
        assert job_states_published(effects, job_id) == ["CANCELLED"]
    assert not [e for e in effects if isinstance(e, StopJob) and e.job_id != "a"]
    for job_id in "bcde":
        sim.join(f"late-{job_id}")
        assert sim.state(job_id) == X, "a cancelled descendant is never dispatched"


def test_diamond_one_parent_fails_the_other_is_still_running():
    #     a
    #   b   c
    #     d
    sim = Sim()
    sim.join("w1", slots=2)
    sim.submit(spec("a"), spec("b", ["a"]), spec("c", ["a"]), spec("d", ["b", "c"]), dag="dia")
    sim.finish("a")
    assert sim.states("b", "c", "d") == [R, R, P]
    effects = sim.finish("b", 1)
    assert sim.states("b", "c", "d") == [F, R, X]
    assert sim.run("d").reason == "parent 'b' FAILED"
    assert job_states_published(effects, "d") == ["CANCELLED"]
    assert not events(effects, "dag.finished"), "c still runs"
    # The other parent ending later changes nothing for d and publishes nothing about it.
    effects = sim.finish("c", 0)
    assert sim.state("d") == X and sim.run("d").reason == "parent 'b' FAILED"
    assert job_states_published(effects, "d") == []
    assert len(events(effects, "dag.finished")) == 1
    assert job_states_published(sim.log, "d") == ["PENDING", "CANCELLED"]


def test_diamond_both_parents_fail_child_is_cancelled_once():
    sim = Sim()
    sim.join("w1", slots=2)
    sim.submit(spec("b"), spec("c"), spec("d", ["b", "c"]))
    sim.finish("c", 2)
    assert sim.run("d").reason == "parent 'c' FAILED"
    sim.finish("b", 1)
    assert sim.run("d").reason == "parent 'c' FAILED"
    assert job_states_published(sim.log, "d") == ["PENDING", "CANCELLED"]


def test_diamond_other_parent_completed_first_then_one_fails():
    sim = Sim()
    sim.join("w1", slots=2)
    sim.submit(spec("b"), spec("c"), spec("d", ["b", "c"]))
    sim.finish("b", 0)
    assert sim.state("d") == P and sim.run("d").waiting_on == {"c"}
    sim.finish("c", 7)
    assert sim.state("d") == X and sim.run("d").reason == "parent 'c' FAILED"


def test_grandchild_with_a_completed_path_and_a_cancelled_path():
    #  a -> b -> d ;  c -> d ;  cancel c while b's branch completes
    sim = Sim()
    sim.join("w1", slots=2)
    sim.submit(spec("a"), spec("b", ["a"]), spec("c"), spec("d", ["b", "c"]))
    sim.cancel("c")
    assert sim.state("d") == X and sim.run("d").reason == "parent 'c' CANCELLED"
    sim.finish("a")
    sim.finish("b")
    assert sim.states("a", "b", "c", "d") == [C, C, X, X]


# ================================================================= priority and order


def test_higher_priority_first_and_first_come_first_served_within_a_priority():
    sim = Sim()
    submitted = [("lo1", 1), ("hi1", 5), ("lo2", 1), ("mid", 3), ("hi2", 5), ("lo3", 1), ("neg", -2)]
    for job_id, priority in submitted:
        sim.submit(spec(job_id, priority=priority))
        sim.now += 0.5
    effects = sim.join("w1", slots=1)
    order = dispatched_ids(effects)
    while len(order) < len(submitted):
        order += dispatched_ids(sim.finish(order[-1]))
    assert order == ["hi1", "hi2", "mid", "lo1", "lo2", "lo3", "neg"]


def test_priority_and_order_inside_one_submission():
    sim = Sim()
    sim.submit(spec("x", priority=1), spec("y", priority=9), spec("z", priority=1))
    order = dispatched_ids(sim.join("w1", slots=1))
    while len(order) < 3:
        order += dispatched_ids(sim.finish(order[-1]))
    assert order[0] == "y"
    assert sorted(order[1:]) == ["x", "z"]


def test_priority_holds_across_requirements():
    sim = Sim()
    sim.submit(spec("plain", priority=1))
    sim.submit(spec("gpu", priority=5, requirement="GPU"))
    # The only worker can run both; the higher priority goes first although it came later.
    effects = sim.join("g1", caps=["GPU"], slots=1)
    assert dispatched_ids(effects) == ["gpu"]
    assert dispatched_ids(sim.finish("gpu")) == ["plain"]


def test_requeued_job_keeps_its_place_in_line():
    sim = Sim()
    sim.join("w1", slots=1)
    sim.submit(spec("first"))
    sim.submit(spec("second"))
    sim.submit(spec("third"))
    effects = sim.leave("w1")
    assert not dispatches(effects)
    order = dispatched_ids(sim.join("w2", slots=1))
    while len(order) < 3:
        order += dispatched_ids(sim.finish(order[-1]))
    assert order == ["first", "second", "third"]
    assert sim.run("first").attempt == 2 and sim.run("second").attempt == 1


# ================================================================= capabilities


def test_job_nobody_can_run_stays_queued_without_blocking_others():
    sim = Sim()
    sim.join("cpu", slots=2)
    sim.join("gpu", caps=["GPU"], slots=1)
    sim.submit(spec("tpu-job", requirement="TPU", priority=100))
    effects = sim.submit(spec("after-1"), spec("after-2", priority=0), spec("gpu-job", requirement="GPU"))
    assert sorted(dispatched_ids(effects)) == ["after-1", "after-2", "gpu-job"]
    assert sim.state("tpu-job") == Q
    info = sim.s.describe_job("tpu-job")
    assert info["state"] == "QUEUED"
    assert "TPU" in info["reason"]
    assert "GENERAL" in info["reason"] and "GPU" in info["reason"]
    # Time passing changes nothing: it just waits, and later jobs still go past it.
    sim.live_until(300.0, step=2.0)
    assert sim.state("tpu-job") == Q and sim.run("tpu-job").attempt == 0
    sim.finish("after-1")
    assert dispatched_ids(sim.submit(spec("after-3", priority=0))) == ["after-3"]
    assert sim.state("tpu-job") == Q


def test_reason_when_no_workers_at_all():
    sim = Sim()
    sim.submit(spec("a", requirement="HIGH_MEM"))
    reason = sim.s.describe_job("a")["reason"]
    assert "HIGH_MEM" in reason and "none" in reason


def test_capable_worker_arriving_picks_up_the_waiting_job():
    sim = Sim()
    sim.join("cpu", slots=4)
    sim.submit(spec("train", requirement="GPU"))
    assert sim.state("train") == Q
    effects = sim.join("gpu", caps=["GPU"])
    assert dispatches(effects) == [Dispatch("gpu", "train", 1)]
    assert sim.s.describe_job("train")["reason"] is None


def test_capability_job_never_lands_on_an_incapable_worker():
    sim = Sim()
    sim.join("cpu", slots=4)
    sim.join("gpu", caps=["GPU"], slots=1)
    effects = sim.submit(spec("g1", requirement="GPU"), spec("g2", requirement="GPU"))
    assert dispatches(effects) == [Dispatch("gpu", "g1", 1)]
    assert sim.state("g2") == Q
    # describe_job gives no "nobody offers" reason: a GPU worker exists, it is just busy.
    assert sim.s.describe_job("g2")["reason"] is None
    assert dispatches(sim.finish("g1")) == [Dispatch("gpu", "g2", 1)]


def test_general_jobs_keep_off_the_gpu_worker_while_a_plain_one_has_room():
    sim = Sim()
    sim.join("gpu", caps=["GPU"], slots=2)
    sim.join("cpu", slots=2)
    effects = sim.submit(spec("p1"), spec("p2"))
    assert {d.worker_id for d in dispatches(effects)} == {"cpu"}
    effects = sim.submit(spec("p3"))
    assert dispatches(effects) == [Dispatch("gpu", "p3", 1)]


# ================================================================= slots


def test_dispatch_only_up_to_slot_counts():
    sim = Sim()
    sim.join("w1", slots=2)
    sim.join("w2", slots=1)
    effects = sim.submit(*[spec(f"j{i}") for i in range(6)])
    assert len(dispatches(effects)) == 3
    per_worker = {w.worker_id: len(w.running) for w in sim.s.workers.values()}
    assert per_worker == {"w1": 2, "w2": 1}
    assert [s for s in sim.states(*[f"j{i}" for i in range(6)])].count(Q) == 3
    assert sim.s.stats()["jobs_by_state"]["QUEUED"] == 3
    running = [d.job_id for d in dispatches(effects) if d.worker_id == "w2"]
    effects = sim.finish(running[0])
    assert [d.worker_id for d in dispatches(effects)] == ["w2"]
    assert len(sim.s.workers["w2"].running) == 1


def test_a_new_worker_takes_queued_jobs_up_to_its_slots():
    sim = Sim()
    sim.submit(*[spec(f"j{i}") for i in range(5)])
    effects = sim.join("w1", slots=3)
    assert dispatched_ids(effects) == ["j0", "j1", "j2"]
    assert {d.worker_id for d in dispatches(effects)} == {"w1"}


# ================================================================= results


@pytest.mark.parametrize("wrong", ["attempt", "worker", "unknown-job", "twice", "not-running"])
def test_stale_results_are_ignored_with_a_note(wrong):
    sim = Sim()
    sim.join("w1", slots=2)
    sim.submit(spec("a"), spec("b", ["a"]))
    sim.join("w2", slots=1)
    assert sim.run("a").worker_id == "w1"
    before = (sim.run("a").state, sim.run("a").attempt, sim.run("a").exit_code)
    if wrong == "attempt":
        effects = sim.finish("a", 0, attempt=2)
    elif wrong == "worker":
        effects = sim.finish("a", 0, worker_id="w2")
    elif wrong == "unknown-job":
        effects = sim._step(sim.s.job_finished, "w1", "nope", 1, 0)
    elif wrong == "twice":
        sim.finish("a", 0)
        before = (C, 1, 0)
        effects = sim.finish("a", 1, worker_id="w1", attempt=1)
    else:   # a job that is PENDING
        effects = sim.finish("b", 0, worker_id="w1", attempt=1)
    assert len(effects) == 1 and isinstance(effects[0], Note)
    assert "stale" in effects[0].message
    assert (sim.run("a").state, sim.run("a").attempt, sim.run("a").exit_code) == before
    if wrong != "twice":
        assert sim.state("b") == P and sim.run("b").attempt == 0


def test_result_from_the_old_worker_after_a_requeue_is_stale():
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("a"))
    sim.leave("w1")
    sim.join("w2")
    assert sim.run("a").worker_id == "w2" and sim.run("a").attempt == 2
    effects = sim.finish("a", 0, worker_id="w1", attempt=1)
    assert notes(effects) and not events(effects)
    assert sim.state("a") == R
    sim.finish("a", 0, worker_id="w2", attempt=2)
    assert sim.state("a") == C


# ================================================================= lost workers


def test_worker_left_requeues_its_jobs_and_they_run_elsewhere_with_attempt_raised():
    sim = Sim()
    sim.join("w1", slots=2)
    sim.submit(spec("a"), spec("b"))
    assert {sim.run(j).worker_id for j in "ab"} == {"w1"}
    sim.join("w2", slots=2)
    sim.submit(spec("c"))
    assert sim.run("c").worker_id == "w2"
    effects = sim.leave("w1", "it shut down")
    left = events(effects, "worker.left")
    assert len(left) == 1
    assert left[0].body["worker"] == "w1" and left[0].body["reason"] == "it shut down"
    assert left[0].body["running"] == ["a", "b"]
    assert dispatches(effects) == [Dispatch("w2", "a", 2)]
    assert sim.states("a", "b", "c") == [R, Q, R]
    assert "w1" not in sim.s.workers
    sim.finish("c")
    assert sim.run("b").worker_id == "w2" and sim.run("b").attempt == 2


def test_silent_worker_is_dropped_on_tick_and_its_jobs_move():
    sim = Sim(dead_after=5.0)
    sim.join("quiet", slots=1)
    sim.submit(spec("a"))
    sim.join("chatty", slots=1)
    assert sim.run("a").worker_id == "quiet"
    for t in (1.0, 2.0, 3.0, 4.0, 4.9):
        sim.now = t
        assert sim.seen("chatty")
        assert not events(sim.tick(), "worker.dead")
    sim.now = 6.0
    assert sim.seen("chatty")
    effects = sim.tick()
    assert not events(effects, "worker.left"), "a silent worker is dead, not gone by choice"
    left = events(effects, "worker.dead")
    assert [e.body["worker"] for e in left] == ["quiet"]
    assert "heartbeat" in left[0].body["reason"]
    assert dispatches(effects) == [Dispatch("chatty", "a", 2)]
    assert sim.run("a").attempt == 2
    assert job_states_published(effects, "a") == ["QUEUED", "RUNNING"]
    assert not sim.seen("quiet"), "a dropped worker must register again"


def test_heartbeats_keep_a_worker_alive_indefinitely():
    sim = Sim(dead_after=2.0)
    sim.join("w1")
    sim.submit(spec("a"))
    for t in range(1, 50):
        sim.now = float(t)
        sim.seen("w1")
        sim.tick()
    assert "w1" in sim.s.workers and sim.state("a") == R and sim.run("a").attempt == 1


def test_lost_worker_with_no_replacement_leaves_jobs_queued_until_one_comes():
    sim = Sim()
    sim.join("w1", slots=1)
    sim.submit(spec("a"))
    sim.tick(100.0)
    assert sim.s.workers == {} and sim.state("a") == Q and sim.run("a").attempt == 1
    effects = sim.join("w1", slots=1)
    assert dispatches(effects) == [Dispatch("w1", "a", 2)]


def test_unknown_worker_leaving_is_a_no_op():
    sim = Sim()
    assert sim.leave("ghost") == []


def test_repeated_registration_changes_nothing():
    sim = Sim()
    sim.join("w1", slots=1)
    sim.submit(spec("a"))
    sim.now = 3.0
    effects = sim.join("w1", caps=["GPU"], slots=5)
    assert effects == []
    worker = sim.s.workers["w1"]
    assert worker.slots == 1 and worker.running == {"a"} and worker.last_seen == 3.0


def test_gpu_job_requeued_from_lost_gpu_worker_waits_for_another_gpu_worker():
    sim = Sim()
    sim.join("cpu", slots=2)
    sim.join("gpu1", caps=["GPU"])
    sim.submit(spec("train", requirement="GPU"))
    effects = sim.leave("gpu1")
    assert not dispatches(effects) and sim.state("train") == Q
    assert "GPU" in sim.s.describe_job("train")["reason"]
    assert dispatches(sim.join("gpu2", caps=["GPU"])) == [Dispatch("gpu2", "train", 2)]


# ================================================================= re-submission


@pytest.mark.parametrize("end", ["complete", "fail", "cancel"])
def test_resubmitting_an_ended_job_starts_a_new_run(end):
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("a"))
    if end == "complete":
        sim.finish("a", 0)
    elif end == "fail":
        sim.finish("a", 4)
    else:
        sim.cancel("a")
    old = sim.run("a")
    effects = sim.submit(spec("a", args="--again"))
    new = sim.run("a")
    assert new is not old
    assert new.spec.args == "--again"
    assert new.state == R and new.attempt == 1 and new.exit_code is None and new.reason is None
    assert dispatches(effects) == [Dispatch("w1", "a", 1)]
    assert sum(sim.s.state_counts.values()) == 1
    sim.finish("a", 0)
    assert sim.state("a") == C


@pytest.mark.parametrize("active", ["pending", "queued", "running"])
def test_resubmitting_an_active_job_is_a_conflict(active):
    sim = Sim()
    sim.submit(spec("gate"))
    if active == "running":
        sim.join("w1", slots=1)
        target = "gate"
    elif active == "queued":
        target = "gate"
    else:
        sim.submit(spec("child", ["gate"]))
        target = "child"
    run = sim.run(target)
    with pytest.raises(JobConflict) as info:
        sim.submit(spec(target))
    assert target in str(info.value) and info.value.details["jobs"] == [target]
    assert sim.run(target) is run


def test_dag_name_in_use_is_a_conflict_until_the_dag_has_finished():
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("a"), dag="nightly")
    with pytest.raises(JobConflict, match="nightly"):
        sim.submit(spec("other"), dag="nightly")
    assert "other" not in sim.s.jobs
    sim.finish("a")
    effects = sim.submit(spec("a"), spec("b", ["a"]), dag="nightly")
    assert sim.s.dags["nightly"] == ["a", "b"]
    assert len(events(effects, "dag.submitted")) == 1


# ================================================================= cancel


def test_cancel_running_job_stops_it_frees_the_slot_and_cancels_descendants():
    sim = Sim()
    sim.join("w1", slots=1)
    sim.submit(spec("a"), spec("b", ["a"]), spec("c", ["b"]))
    sim.submit(spec("other"))
    assert sim.state("a") == R and sim.state("other") == Q
    effects = sim.cancel("a", reason="user hit ctrl-c")
    assert [e for e in effects if isinstance(e, StopJob)] == [StopJob("w1", "a", 1)]
    assert sim.run("a").reason == "user hit ctrl-c"
    assert sim.states("a", "b", "c") == [X, X, X]
    assert sim.run("b").reason == "parent 'a' CANCELLED"
    assert dispatches(effects) == [Dispatch("w1", "other", 1)]
    # The stopped process's report comes in later and changes nothing.
    late = sim.finish("a", -15, worker_id="w1", attempt=1)
    assert notes(late) and sim.state("a") == X


def test_cancel_unknown_job_raises():
    sim = Sim()
    with pytest.raises(UnknownJob, match="'nope'"):
        sim.cancel("nope")


def test_cancel_of_an_ended_job_changes_nothing():
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("a"))
    sim.finish("a", 0)
    assert sim.cancel("a") == []
    assert sim.state("a") == C


def test_cancel_dag_cancels_its_active_jobs_only():
    sim = Sim()
    sim.join("w1", slots=2)
    sim.submit(spec("a"), spec("b"), spec("c", ["a"]), spec("d", ["c"]), dag="d1")
    sim.submit(spec("outside"), dag="d2")
    sim.submit(spec("hanger", ["d"]))           # not in the DAG, but hangs under it
    sim.finish("b", 0)                          # b done; a and outside run
    assert sim.states("a", "b", "c", "d", "outside") == [R, C, P, P, R]
    effects = sim.cancel_dag("d1")
    assert [e for e in effects if isinstance(e, StopJob)] == [StopJob("w1", "a", 1)]
    assert sim.states("a", "b", "c", "d") == [X, C, X, X]
    assert sim.state("hanger") == X and "'d'" in sim.run("hanger").reason
    assert sim.state("outside") == R
    finished = events(effects, "dag.finished")
    assert len(finished) == 1 and finished[0].body == {"dag": "d1", "counts": {"CANCELLED": 3, "COMPLETED": 1}}
    assert sim.s.describe_dag("d1")["finished"] is True
    assert sim.cancel_dag("d1") == []


def test_cancel_dag_unknown_raises():
    sim = Sim()
    with pytest.raises(UnknownDag, match="'nope'"):
        sim.cancel_dag("nope")
    with pytest.raises(UnknownDag):
        sim.s.describe_dag("nope")


# ================================================================= delay


def test_delay_is_honoured_through_tick_and_next_deadline():
    sim = Sim()
    sim.now = 100.0
    sim.join("w1")
    effects = sim.submit(spec("later", delay=30.0))
    assert sim.state("later") == P and not dispatches(effects)
    assert sim.s.next_deadline() == 130.0
    effects = sim.live_until(129.9, step=0.5)
    assert sim.state("later") == P and not dispatches(effects)
    assert sim.s.next_deadline() == 130.0
    effects = sim.live_until(130.0)
    assert dispatches(effects) == [Dispatch("w1", "later", 1)]
    assert sim.s.next_deadline() is None


def test_next_deadline_is_the_earliest_delay():
    sim = Sim()
    assert sim.s.next_deadline() is None
    sim.submit(spec("c", delay=30))
    sim.submit(spec("a", delay=10))
    sim.submit(spec("b", delay=20))
    assert sim.s.next_deadline() == 10.0
    sim.tick(10.0)
    assert sim.states("a", "b", "c") == [Q, P, P]
    assert sim.s.next_deadline() == 20.0
    sim.tick(25.0)
    assert sim.states("b", "c") == [Q, P]
    assert sim.s.next_deadline() == 30.0


def test_delay_counts_from_submission_not_from_the_parent_finishing():
    sim = Sim()
    sim.join("w1", slots=2)
    sim.submit(spec("p"), spec("soon", ["p"], delay=5), spec("late", ["p"], delay=50))
    sim.live_until(8.0)
    assert sim.states("soon", "late") == [P, P], "parents first, whatever the delay"
    effects = sim.finish("p")          # soon's delay is over, late's is not
    assert dispatched_ids(effects) == ["soon"]
    assert sim.state("late") == P and sim.s.next_deadline() == 50.0
    assert dispatched_ids(sim.live_until(50.0)) == ["late"]


def test_delayed_job_cancelled_before_its_time_never_runs():
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("later", delay=10))
    sim.cancel("later")
    effects = sim.live_until(11.0)
    assert not dispatches(effects) and sim.state("later") == X


def test_delayed_job_resubmitted_uses_the_new_delay():
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("j", delay=10))
    sim.cancel("j")
    sim.submit(spec("j", delay=20))
    effects = sim.live_until(19.5, step=0.5)
    assert not dispatches(effects) and sim.state("j") == P, "the cancelled run's deadline must not start it"
    assert dispatched_ids(sim.live_until(20.0)) == ["j"]


# ================================================================= events


def test_job_events_carry_every_field():
    sim = Sim()
    sim.join("w1", name="box-1")
    sim.submit(spec("a"), dag="d")
    sim.finish("a", 5)
    bodies = {e.body["state"]: e.body for e in events(sim.log) if e.topic.startswith("job.")}
    assert set(bodies) == {"PENDING", "QUEUED", "RUNNING", "FAILED"}
    assert bodies["PENDING"] == {"job_id": "a", "dag": "d", "state": "PENDING", "worker": None, "attempt": 0,
                                 "reason": None, "exit_code": None}
    assert bodies["RUNNING"]["worker"] == "box-1" and bodies["RUNNING"]["attempt"] == 1
    assert bodies["FAILED"] == {"job_id": "a", "dag": "d", "state": "FAILED", "worker": "box-1", "attempt": 1,
                                "reason": "exit code 5", "exit_code": 5}


def test_requeue_event_says_why():
    sim = Sim()
    sim.join("w1", name="box-1")
    sim.submit(spec("a"))
    effects = sim.leave("w1", "unreachable")
    body = events(effects, "job.QUEUED")[0].body
    assert body["worker"] is None and body["attempt"] == 1
    assert "box-1" in body["reason"] and "unreachable" in body["reason"]


def test_worker_events():
    sim = Sim()
    effects = sim.join("id-1", caps=["GPU", "HIGH_MEM"], slots=3, name="box-1")
    joined = events(effects, "worker.joined")
    assert len(joined) == 1
    assert joined[0].body == {"worker": "box-1", "worker_id": "id-1",
                              "capabilities": ["GENERAL", "GPU", "HIGH_MEM"], "slots": 3}
    sim.submit(spec("a"))
    left = events(sim.leave("id-1", "bye"), "worker.left")
    assert left[0].body == {"worker": "box-1", "worker_id": "id-1", "reason": "bye", "running": ["a"]}


def test_dag_events_submitted_then_finished_once():
    sim = Sim()
    sim.join("w1", slots=2)
    effects = sim.submit(spec("a"), spec("b", ["a"]), spec("c", ["a"]), dag="pipe")
    submitted = events(effects, "dag.submitted")
    assert [e.body for e in submitted] == [{"dag": "pipe", "jobs": 3}]
    assert effects.index(submitted[0]) < min(effects.index(e) for e in events(effects) if e.topic.startswith("job."))
    assert not events(sim.finish("a"), "dag.finished")
    assert not events(sim.finish("b", 1), "dag.finished")
    effects = sim.finish("c")
    finished = events(effects, "dag.finished")
    assert [e.body for e in finished] == [{"dag": "pipe", "counts": {"COMPLETED": 2, "FAILED": 1}}]
    assert effects.index(finished[0]) > effects.index(events(effects, "job.COMPLETED")[0])
    assert len(events(sim.log, "dag.finished")) == 1


def test_dag_cancelled_at_submission_still_reports_finished_once():
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("base"))
    sim.finish("base", 1)
    effects = sim.submit(spec("x", ["base"]), spec("y", ["x"]), dag="doomed")
    assert [e.body for e in events(effects, "dag.finished")] == [{"dag": "doomed", "counts": {"CANCELLED": 2}}]


def test_jobs_outside_a_dag_publish_no_dag_events():
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("a"))
    sim.finish("a")
    assert not [e for e in sim.log if isinstance(e, Publish) and e.topic.startswith("dag.")]
    assert all(e.body["dag"] is None for e in events(sim.log) if e.topic.startswith("job."))


# ================================================================= queries


def test_job_and_describe_unknown_raise():
    sim = Sim()
    with pytest.raises(UnknownJob):
        sim.s.job("x")
    with pytest.raises(UnknownJob):
        sim.s.describe_job("x")


def test_describe_dag_lists_its_jobs_in_order():
    sim = Sim()
    sim.submit(spec("b", ["a"]), spec("a"), dag="d")
    info = sim.s.describe_dag("d")
    assert info["finished"] is False
    assert [j["job_id"] for j in info["jobs"]] == ["a", "b"]
    assert info["jobs"][1]["parents"] == ["a"] and info["jobs"][1]["state"] == "PENDING"


def test_stats_counts_jobs_and_queued_by_requirement():
    sim = Sim()
    sim.join("w1", slots=1)
    sim.submit(spec("a"), spec("b"), spec("g", requirement="GPU"), spec("c", ["a"]))
    stats = sim.s.stats()
    assert stats["jobs_by_state"] == {"PENDING": 1, "QUEUED": 2, "RUNNING": 1, "COMPLETED": 0, "FAILED": 0,
                                      "CANCELLED": 0, "WAITING_APPROVAL": 0}
    assert stats["queued_by_requirement"] == {"GENERAL": 1, "GPU": 1}
    assert [w["name"] for w in stats["workers"]] == ["w1"]
    assert stats["workers"][0]["running"] == ["a"]


# ================================================================= known bugs


def test_resubmitted_child_is_not_cancelled_by_a_parent_of_its_old_run():
    sim = Sim()
    sim.join("w1", slots=2)
    sim.submit(spec("p"))
    sim.submit(spec("c", ["p"]))
    sim.cancel("c")                    # c's old run ends while p still runs
    sim.submit(spec("c"))              # a new run of c, with no parents at all
    assert sim.state("c") == R
    effects = sim.finish("p", 1)
    assert not [e for e in effects if isinstance(e, StopJob)], "nothing should stop the new run of c"
    assert sim.state("c") == R


def test_diamond_child_resubmitted_is_not_cancelled_by_its_old_other_parent():
    sim = Sim()
    sim.join("w1", slots=3)
    sim.submit(spec("b"), spec("c"), spec("d", ["b", "c"]))
    sim.finish("b", 1)                 # d cancelled through b; c still running
    assert sim.state("d") == X
    sim.submit(spec("d"))              # re-run d on its own
    assert sim.state("d") == R
    sim.cancel("c")
    assert sim.state("d") == R, sim.run("d").reason


def test_held_dispatches_fill_every_freed_slot_in_one_pass_in_queue_order():
    """A worker's batch of results is handled with dispatches held, then its freed slots are filled."""
    sim = Sim()
    sim.join("w1", slots=2)
    sim.join("w2", slots=2)
    sim.submit(*[spec(f"j{n}") for n in range(4)])
    sim.submit(*[spec(f"j{n}", priority=9 if n == 7 else 5) for n in range(4, 8)])
    assert sim.states("j0", "j1", "j2", "j3") == [R, R, R, R]
    ran_on_w1 = [job_id for job_id, run in sim.s.jobs.items() if run.worker_id == "w1"]
    sim.s.hold_dispatches()
    held = [effect for job_id in ran_on_w1 for effect in sim.finish(job_id)]
    assert dispatches(held) == [] and len(events(held, "job.COMPLETED")) == 2
    assert sim.states("j4", "j5", "j6", "j7") == [Q, Q, Q, Q]
    released = sim.s.release_dispatches(sim.now)
    sim.s.validate()
    assert [(e.job_id, e.worker_id) for e in dispatches(released)] == [("j7", "w1"), ("j4", "w1")]
    assert sim.states("j5", "j6") == [Q, Q]
    assert dispatched_ids(sim.finish("j7")) == ["j5"]   # released: a result dispatches at once again


def test_events_nobody_watches_are_not_built_but_every_change_is_reported_for_the_journal():
    sim = Sim()
    sim.s.wants_event = lambda topic: topic == "job.COMPLETED"
    sim.join("w1")
    sim.s.take_changed_runs()
    admitted = sim.submit(spec("a"), spec("b", parents=["a"]))
    assert events(admitted) == []   # PENDING, QUEUED, RUNNING: nobody listens
    assert {job_id: run.state for job_id, run in sim.s.take_changed_runs().items()} == {"a": R, "b": P}
    done = sim.finish("a")
    assert [(e.topic, e.body["job_id"]) for e in events(done)] == [("job.COMPLETED", "a")]
    assert {job_id: run.state for job_id, run in sim.s.take_changed_runs().items()} == {"a": C, "b": R}


def _ordered(sim, dag, *specs):
    """What a submission taken in over several turns (titan/master/intake.py) hands submit_ordered."""
    steps = sim.s.validation(dag, sim.s.with_gates(list(specs)))
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def test_a_submission_validated_turns_ago_is_refused_whole_if_what_it_relied_on_changed():
    sim = Sim()
    sim.join("w1", slots=4)
    sim.submit(spec("base"))
    ordered = _ordered(sim, "d", spec("child", ["base"]), spec("mine"))
    sim.finish("base")
    sim.s.retention = Retention(keep_completed=0.0, keep_failed=0.0, keep_max_jobs=None)
    sim.now += 1
    sim._step(lambda now: sim.s.forget_old(now, 100))   # forgotten between its validation and its admission
    assert "base" not in sim.s.jobs
    with pytest.raises(InvalidDag, match="parent\\(s\\) 'base' were forgotten while it was being checked"):
        sim.s.submit_ordered("d", ordered, sim.now)
    assert "child" not in sim.s.jobs and "mine" not in sim.s.jobs and "d" not in sim.s.dags
    again = _ordered(sim, "e", spec("mine"), spec("other"))
    sim.submit(spec("mine"))   # submitted by someone else meanwhile, and still active
    with pytest.raises(JobConflict, match="mine"):
        sim.s.submit_ordered("e", again, sim.now)
    assert "other" not in sim.s.jobs and "e" not in sim.s.dags
    effects = sim._step(sim.s.submit_ordered, "f", _ordered(sim, "f", spec("x"), spec("y", ["x"])))
    assert dispatched_ids(effects) == ["x"] and sim.state("y") == P
