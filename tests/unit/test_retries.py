"""Retry by request (a job, a DAG), the totals /metrics counts, and the host figures of a heartbeat."""

from __future__ import annotations

import math

import pytest

from titan.core.errors import JobConflict, UnknownDag, UnknownJob
from titan.net import protocol
from tests.unit.sim import C, F, P, Q, R, X, Sim, dispatched_ids, spec


def test_a_failed_job_runs_again_from_its_last_spec():
    sim = Sim()
    sim.join("w1", slots=2)
    sim.submit(spec("train", retries=0, priority=7))
    sim.finish("train", exit_code=2)
    assert sim.state("train") == F
    effects = sim._step(sim.s.retry, "train")
    assert dispatched_ids(effects) == ["train"]
    run = sim.run("train")
    assert run.state == R and run.spec.priority == 7 and run.attempt == 1 and run.exit_code is None
    sim.finish("train")
    assert sim.state("train") == C


@pytest.mark.parametrize("state_of", ["running", "completed"])
def test_only_a_failed_or_cancelled_job_can_be_retried(state_of):
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("busy"))
    if state_of == "completed":
        sim.finish("busy")
    with pytest.raises(JobConflict, match=r"job 'busy' is (RUNNING|COMPLETED); only a FAILED or CANCELLED"):
        sim._step(sim.s.retry, "busy")
    with pytest.raises(UnknownJob):
        sim._step(sim.s.retry, "nobody")


def test_retrying_a_dag_runs_its_failed_job_and_the_children_it_cancelled_in_order():
    sim = Sim()
    sim.join("w1", slots=4)
    sim.submit(spec("a"), spec("b", parents=["a"]), spec("c", parents=["b"]), spec("side"), dag="d")
    sim.finish("a")
    sim.finish("side")
    sim.finish("b", exit_code=1)
    assert sim.states("a", "b", "c", "side") == [C, F, X, C]
    sim._step(sim.s.retry_dag, "d")
    assert sim.states("a", "b", "c", "side") == [C, R, P, C], "c waits for the new b, not its old end"
    assert sim.s.describe_dag("d")["finished"] is False
    assert sorted(j["job_id"] for j in sim.s.describe_dag("d")["jobs"]) == ["a", "b", "c", "side"]
    sim.finish("b")
    sim.finish("c")
    assert sim.s.describe_dag("d")["finished"] is True
    with pytest.raises(JobConflict, match="DAG 'd' has no FAILED or CANCELLED job"):
        sim._step(sim.s.retry_dag, "d")
    with pytest.raises(UnknownDag):
        sim._step(sim.s.retry_dag, "nope")


def test_totals_count_submissions_ends_retries_and_lost_workers():
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("ok"), spec("flaky", retries=1), spec("gone"))
    sim.finish("ok")
    sim.finish("flaky", exit_code=1)        # retried automatically after a backoff
    sim.cancel("gone")
    sim.tick(to=sim.now + 1000)              # w1 is silent: declared dead, flaky queued again
    totals = sim.s.totals_report()
    assert totals == {"submitted": 3, "ended": {"COMPLETED": 1, "CANCELLED": 1}, "retries": 1, "workers_lost": 1}
    sim.join("w2")
    sim.tick()
    sim.finish("flaky", exit_code=1)
    assert sim.state("flaky") == F
    sim._step(sim.s.retry, "flaky")
    assert sim.s.totals_report()["retries"] == 2 and sim.s.totals_report()["submitted"] == 4
    assert sim.state("flaky") in (Q, R)


def test_host_usage_keeps_figures_in_range_and_drops_the_rest():
    good = {"cpu_percent": 12.345, "memory_percent": 50, "memory_used_bytes": 1 << 30, "memory_total_bytes": 1 << 32}
    assert protocol.host_usage(good) == {"cpu_percent": 12.3, "memory_percent": 50.0,
                                         "memory_used_bytes": 1 << 30, "memory_total_bytes": 1 << 32}
    for wrong in ({"cpu_percent": 101}, {"cpu_percent": -1}, {"memory_percent": math.nan},
                  {"memory_percent": math.inf}, {"memory_used_bytes": (1 << 32) + 1}, {"memory_used_bytes": -1},
                  {"cpu_percent": True}, {"memory_total_bytes": 1.5}, {"cpu_percent": "5"}):
        assert protocol.host_usage({**good, **wrong}) is None, wrong
    assert protocol.host_usage(None) is None and protocol.host_usage([1]) is None
    assert protocol.host_usage({"cpu_percent": 1}) is None


def test_a_workers_usage_shows_in_the_stats():
    sim = Sim()
    sim.join("w1")
    assert sim.s.stats(sim.now)["workers"][0]["usage"] is None
    sim.s.worker_usage("w1", {"cpu_percent": 5.0})
    sim.s.worker_usage("ghost", {"cpu_percent": 5.0})     # a worker that left meanwhile: ignored
    assert sim.s.stats(sim.now)["workers"][0]["usage"] == {"cpu_percent": 5.0}


def test_a_retried_dag_stays_one_run_reopened_and_closed_again_by_its_new_end():
    sim = Sim()
    sim.join("w1", slots=4)
    sim.submit(spec("a"), spec("b", parents=["a"]), dag="d")
    sim.finish("a")
    sim.finish("b", exit_code=1)
    (failed_run,) = sim.s.dag_runs("d")
    assert failed_run["outcome"] == "FAILED" and failed_run["jobs"] == 2
    sim._step(sim.s.retry_dag, "d")
    (reopened,) = sim.s.dag_runs("d")
    assert reopened["run"] == failed_run["run"] and reopened["outcome"] == "RUNNING"
    sim.finish("b")
    (done,) = sim.s.dag_runs("d")
    assert done["outcome"] == "COMPLETED" and done["jobs"] == 2
    assert sim.run("b").dag_run == done["run"]
    b_runs = [job for job in sim.s.list_jobs(dag="d")["jobs"] if job["job_id"] == "b"]
    assert [job["state"] for job in b_runs] == ["COMPLETED", "FAILED"], "the failed run stays in the history"
