"""affinity=True: a job runs on the worker that ran its first parent, or anywhere once that worker is gone."""

from __future__ import annotations

from tests.unit.sim import Sim, dispatched_ids, spec

from titan.core.jobs import JobState


def test_pinned_job_runs_where_its_parent_ran_even_if_that_worker_is_busier():
    sim = Sim()
    sim.join("w1", slots=3)
    sim.join("w2", slots=3)
    sim.submit(spec("parent"), spec("busy1"), spec("busy2"))
    parent_worker = sim.s.jobs["parent"].worker_id
    sim.submit(spec("child", ["parent"], affinity=True), spec("plain", ["parent"]))
    sim.finish("parent")
    assert sim.s.jobs["child"].worker_id == parent_worker
    assert sim.s.jobs["child"].note is None


def test_pinned_job_waits_for_its_worker_without_blocking_others():
    sim = Sim()
    sim.join("w1", slots=1)
    sim.submit(spec("parent"))
    sim.join("w2", slots=1)
    sim.submit(spec("filler"))                      # takes w2
    sim.submit(spec("child", ["parent"], affinity=True, priority=9), spec("other", ["filler"]))
    effects = sim.finish("parent")                  # w1 free: the pinned child goes there
    assert dispatched_ids(effects) == ["child"] and sim.s.jobs["child"].worker_id == "w1"
    sim.submit(spec("child2", ["child"], affinity=True, priority=9))
    effects = sim.finish("filler")                  # w2 free: 'other' runs; child2 is not eligible yet
    assert dispatched_ids(effects) == ["other"]
    effects = sim.finish("child")
    assert dispatched_ids(effects) == ["child2"] and sim.s.jobs["child2"].worker_id == "w1"


def parent_ran_on_w1_which_is_busy_again() -> Sim:
    """'parent' completed on w1, which now runs 'hog'; w2 has joined."""
    sim = Sim()
    sim.join("w1", slots=1)
    sim.submit(spec("parent"))
    sim.finish("parent")
    sim.submit(spec("hog"))
    sim.join("w2", slots=1)
    return sim


def test_pinned_job_busy_worker_does_not_hold_up_jobs_behind_it():
    sim = parent_ran_on_w1_which_is_busy_again()
    sim.submit(spec("pinned", ["parent"], affinity=True, priority=9), spec("low", priority=1))
    assert sim.s.jobs["pinned"].state == JobState.QUEUED
    assert sim.s.jobs["low"].worker_id == "w2", "a pinned job waiting for w1 must not block w2"
    effects = sim.finish("hog")
    assert dispatched_ids(effects) == ["pinned"] and sim.s.jobs["pinned"].worker_id == "w1"


def test_gone_worker_releases_its_pinned_jobs_with_a_note():
    sim = parent_ran_on_w1_which_is_busy_again()
    sim.submit(spec("hog2"))
    sim.submit(spec("pinned", ["parent"], affinity=True))
    assert sim.s.jobs["pinned"].state == JobState.QUEUED
    sim.leave("w1")                                  # hog is re-queued; pinned may now go anywhere
    assert dispatched_ids(sim.finish("hog2")) == ["hog"], "first come, first served among equals"
    assert dispatched_ids(sim.finish("hog")) == ["pinned"]
    run = sim.s.jobs["pinned"]
    assert run.state == JobState.RUNNING and run.worker_id == "w2"
    assert "affinity" in run.note and "'parent'" in run.note and "gone" in run.note


def test_parent_worker_already_gone_at_release_time():
    sim = Sim()
    sim.join("w1", slots=1)
    sim.submit(spec("parent"), spec("child", ["parent"], affinity=True))
    sim.join("w2", slots=1)
    sim.finish("parent")                 # child goes to w1 as pinned
    assert sim.s.jobs["child"].worker_id == "w1"
    sim.submit(spec("grandchild", ["child"], affinity=True))
    sim.leave("w1")                      # child re-queued (no affinity possible: parent's worker gone)
    assert sim.s.jobs["child"].worker_id == "w2" and "gone" in sim.s.jobs["child"].note


def test_pinned_worker_without_the_requirement_means_any_capable_worker():
    sim = Sim()
    sim.join("w1", slots=2)
    sim.submit(spec("parent"))
    sim.join("gpu", caps=["GPU"], slots=1)
    sim.submit(spec("train", ["parent"], affinity=True, requirement="GPU"))
    sim.finish("parent")
    assert sim.s.jobs["train"].worker_id == "gpu" and "any capable worker" in sim.s.jobs["train"].note
