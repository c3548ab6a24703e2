"""Forgetting what is old (titan/core/retention.py), driven by the fake clock: each kind of retention,
the runs never forgotten early, and what a forgotten job answers."""

from __future__ import annotations

import pytest

from titan.core.effects import Forgotten
from titan.core.errors import JobConflict, UnknownJob
from titan.core.jobs import JobState
from titan.core.retention import Retention
from tests.unit.sim import C, F, R, Sim, spec

BATCH = 100


def sim_keeping(**keep) -> Sim:
    sim = Sim()
    sim.s.retention = Retention(**keep)
    sim.join("w1", slots=10)
    return sim


def forget(sim: Sim, batch: int = BATCH) -> list:
    """One cleaning pass; the job ids it forgot (current runs) or the seqs (earlier runs)."""
    effects = sim._step(sim.s.forget_old, batch=batch)
    return [run.job_id for e in effects if isinstance(e, Forgotten) for run in e.runs]


def test_a_completed_job_is_forgotten_after_keep_completed_and_a_failed_one_after_keep_failed():
    sim = sim_keeping(keep_completed=10.0, keep_failed=100.0)
    sim.submit(spec("good"), spec("bad"), spec("cut"))
    sim.finish("good")
    sim.finish("bad", exit_code=1)
    sim.cancel("cut")
    sim.now = 9.0
    assert forget(sim) == []
    sim.now = 10.0
    assert forget(sim) == ["good"]
    assert "good" not in sim.s.jobs and sim.s.list_jobs()["jobs"][0]["job_id"] != "good"
    sim.now = 99.0
    assert forget(sim) == []
    sim.now = 100.0
    assert sorted(forget(sim)) == ["bad", "cut"]
    assert sim.s.list_jobs()["jobs"] == [] and sum(sim.s.state_counts.values()) == 0


def test_keep_max_jobs_forgets_the_oldest_ended_first_whatever_the_keep_times():
    sim = sim_keeping(keep_max_jobs=3)
    for i in range(5):
        sim.now = float(i)
        sim.submit(spec(f"j{i}"))
        sim.finish(f"j{i}", exit_code=i % 2)
    assert forget(sim) == ["j0", "j1"]
    assert sorted(sim.s.jobs) == ["j2", "j3", "j4"]


def test_cleaning_goes_in_batches_of_the_size_asked():
    sim = sim_keeping(keep_completed=0.0)
    sim.submit(*[spec(f"j{i}") for i in range(25)])
    for i in range(25):
        sim.finish(f"j{i}")
    assert [len(forget(sim, batch=10)) for _ in range(4)] == [10, 10, 5, 0]


def test_a_clock_given_stops_the_batch_once_its_budget_is_spent():
    sim = sim_keeping(keep_completed=0.0)
    sim.submit(*[spec(f"j{i}") for i in range(100)])
    for i in range(100):
        sim.finish(f"j{i}")
    readings = iter(range(1_000))   # a clock that moves one second at each reading

    def forgotten_within(budget):
        effects = sim._step(sim.s.forget_old, batch=1_000, clock=lambda: float(next(readings)), budget=budget)
        return sum(len(e.runs) for e in effects if isinstance(e, Forgotten))

    # read once at the start, then after every CLOCK_EVERY (16) runs chosen
    assert forgotten_within(1.5) == 32 and forgotten_within(0.5) == 16
    assert forgotten_within(100.0) == 52 and not sim.s.history.runs


def test_a_running_service_a_waiting_gate_and_unfinished_jobs_are_never_forgotten():
    sim = sim_keeping(keep_completed=0.0, keep_failed=0.0, keep_max_jobs=0)
    sim.submit(spec("svc", job_type="SERVICE", port=8080), spec("step", hitl_message="ok?"),
               spec("slow", requirement="GPU"))
    sim.finish("step")
    sim.now = 1_000.0
    forget(sim)
    assert sim.state("svc") == R and sim.state("hitl-gate-step") == JobState.WAITING_APPROVAL
    assert sim.state("slow") == JobState.QUEUED
    assert "step" in sim.s.jobs   # the parent of the waiting gate


def test_a_parent_of_an_active_job_is_kept_until_its_child_ends():
    sim = sim_keeping(keep_completed=0.0, keep_failed=0.0)
    sim.submit(spec("parent"), spec("other", requirement="GPU"))
    sim.finish("parent")
    sim.submit(spec("child", parents=["parent", "other"]))   # waits on 'other', which cannot run yet
    assert forget(sim) == []
    sim.cancel("other")                                       # the child is cancelled with it
    assert sim.state("child") == JobState.CANCELLED
    assert sorted(forget(sim)) == ["child", "other", "parent"]


def test_the_latest_run_of_a_dag_is_kept_and_earlier_runs_are_forgotten():
    sim = sim_keeping(keep_completed=0.0, keep_failed=0.0)
    sim.submit(spec("a"), dag="pipe")
    sim.finish("a", exit_code=1)
    assert forget(sim) == []
    sim.submit(spec("a"), dag="pipe")
    sim.finish("a")
    assert len(forget(sim)) == 1                               # run 1's 'a', an earlier run
    assert [r["run"] for r in sim.s.dag_runs("pipe")] == ["pipe#2"]
    assert [(j["run"], j["state"]) for j in sim.s.list_jobs()["jobs"]] == [("pipe#2", "COMPLETED")]
    assert sim.s.describe_dag("pipe")["jobs"][0]["state"] == "COMPLETED"


def test_a_forgotten_job_is_unknown_but_says_it_was_forgotten():
    sim = sim_keeping(keep_completed=0.0)
    sim.submit(spec("a"))
    sim.finish("a")
    forget(sim)
    with pytest.raises(UnknownJob, match="job 'a' was forgotten: it ended COMPLETED") as caught:
        sim.s.describe_job("a")
    assert caught.value.details["forgotten"] is True
    with pytest.raises(UnknownJob, match="no job 'zzz'"):
        sim.s.describe_job("zzz")
    sim.submit(spec("a"))                                      # its id can be used again
    assert sim.state("a") == R


def test_forget_dag_on_request_and_not_while_it_runs():
    sim = sim_keeping()
    sim.submit(spec("a"), spec("b", parents=["a"]), dag="pipe")
    with pytest.raises(JobConflict, match="still running"):
        sim.s.forget_dag("pipe", sim.now)
    sim.finish("a")
    sim.finish("b")
    (forgotten,) = sim.s.forget_dag("pipe", sim.now)
    assert [r.job_id for r in forgotten.runs] == ["a", "b"] and forgotten.dags == ["pipe"]
    sim.s.validate()
    assert "pipe" not in sim.s.dags and sim.s.list_jobs()["jobs"] == []
    assert sim.s.stats()["recent_dags"] == []


def test_forget_before_a_date_goes_through_the_queue_in_batches():
    sim = sim_keeping()
    for i in range(6):
        sim.now = float(i)
        sim.submit(spec(f"j{i}"))
        sim.finish(f"j{i}", exit_code=i % 2)
    assert sim.s.forget_ended_before(3.0) == 3
    assert sorted(forget(sim)) == ["j0", "j1", "j2"]
    assert sorted(sim.s.jobs) == ["j3", "j4", "j5"]


def test_a_long_soak_keeps_the_scheduler_the_same_size():
    sim = sim_keeping(keep_completed=10.0)
    sizes = []
    for wave in range(30):
        sim.now = wave * 5.0
        sim.submit(*[spec(f"w{wave}-{i}") for i in range(10)], dag="soak")
        for i in range(10):
            sim.finish(f"w{wave}-{i}")
        forget(sim)
        history = sim.s.history
        sizes.append((len(sim.s.jobs), len(history.runs), len(history._all.seqs),
                      len(history._by_state[C].seqs), len(sim.s.history.dag_runs["soak"]),
                      sum(len(index.seqs) for index in history._by_worker.values())))
    assert sizes[-1] == sizes[10], sizes
    assert sim.s.forgotten_total == 300 - sizes[-1][1]
    assert not sim.s.state_counts[F]


def test_cleaning_lag_says_how_long_past_its_keep_time_the_oldest_ended_run_waits():
    sim = sim_keeping(keep_completed=10.0, keep_failed=None)
    sim.submit(spec("a"), spec("b"))
    sim.finish("a")
    sim.finish("b", exit_code=1)   # kept for ever: never late
    sim.now = 15.0
    assert sim.s.cleaning_lag(sim.now) == 5.0
    assert forget(sim) == ["a"] and sim.s.cleaning_lag(sim.now) == 0.0
