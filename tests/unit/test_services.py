"""Services in the pure scheduler: up means children start, any exit restarts, stop ends for good."""

from __future__ import annotations

import pytest

from tests.unit.sim import Sim, dispatched_ids, events, notes, spec

from titan.core.effects import StopJob
from titan.defaults import SERVICE_STEADY_S
from titan.core.errors import ServiceError
from titan.core.jobs import PORT_IN_USE_ERROR, SERVICE_JOB_TYPE, JobState
from titan.net import jobwire
from titan.net.protocol import ProtocolError

P, Q, R, C, F, X = (JobState.PENDING, JobState.QUEUED, JobState.RUNNING, JobState.COMPLETED,
                    JobState.FAILED, JobState.CANCELLED)


def service(job_id: str = "api", port: int = 8080, **fields):
    return spec(job_id, job_type=SERVICE_JOB_TYPE, port=port, **fields)


def up(sim: Sim, job_id: str = "api", attempt=None, worker_id=None):
    run = sim.run(job_id)
    return sim._step(sim.s.service_up, worker_id or run.worker_id, job_id,
                     run.attempt if attempt is None else attempt)


def stop(sim: Sim, job_id: str = "api"):
    return sim._step(sim.s.stop_service, job_id)


def started_service() -> Sim:
    """A service running on w1 (not up yet) with a child that calls it, on a 2-slot worker."""
    sim = Sim()
    sim.join("w1", slots=2)
    sim.submit(service(), spec("caller", ["api"]), dag="svc")
    assert sim.states("api", "caller") == [R, P]
    return sim


def test_children_wait_until_the_service_is_up_then_start_while_it_runs():
    sim = started_service()
    sim.live_until(30.0)
    assert sim.state("caller") == P, "a child must not start before its service accepts connections"
    effects = up(sim)
    assert dispatched_ids(effects) == ["caller"]
    assert sim.states("api", "caller") == [R, R] and sim.run("api").service_up
    [event] = events(effects, "service.up")
    assert event.body["job_id"] == "api" and event.body["port"] == 8080 and event.body["worker"] == "w1"
    sim.finish("caller", 0)
    assert sim.state("api") == R, "the service keeps running after its child ended"
    assert not sim.s._dag_finished("svc"), "a DAG with a running service is not finished"


def test_a_repeated_up_changes_nothing_and_a_stale_one_is_ignored():
    sim = started_service()
    up(sim)
    assert events(up(sim), "service.up") == []
    effects = up(sim, attempt=7)
    assert notes(effects) and events(effects) == []


def test_a_child_submitted_after_the_service_is_up_starts_at_once():
    sim = started_service()
    up(sim)
    effects = sim.submit(spec("late", ["api"]))
    assert dispatched_ids(effects) == [] and sim.state("late") == Q, "no free slot: queued, not waiting"
    sim.finish("caller", 0)
    assert sim.state("late") == R


@pytest.mark.parametrize("exit_code", [1, 0, -9])
def test_any_exit_is_a_crash_restarted_after_the_backoff(exit_code):
    sim = started_service()
    effects = sim.finish("api", exit_code)
    assert sim.state("api") == Q and sim.state("caller") == P
    [crash] = events(effects, "service.crashed")
    assert crash.body["restart_in"] == 1.0 and crash.body["worker"] == "w1"
    assert f"exited with code {exit_code}" in crash.body["reason"]
    assert dispatched_ids(sim.tick(to=0.9)) == []
    assert dispatched_ids(sim.tick(to=1.0)) == ["api"] and sim.run("api").attempt == 2
    assert dispatched_ids(up(sim)) == ["caller"]


def test_restarts_are_unlimited_by_default_with_a_doubling_capped_backoff():
    sim = started_service()
    up(sim)
    backoffs = []
    for _ in range(9):
        [crash] = events(sim.finish("api", 1), "service.crashed")
        backoffs.append(crash.body["restart_in"])
        sim.live_until(sim.now + crash.body["restart_in"])
        assert sim.state("api") == R
    assert backoffs == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert sim.state("caller") == R, "a child already started is not touched by its service's restarts"


def test_retries_limit_the_restarts_and_then_it_fails_and_cancels_waiting_children():
    sim = Sim()
    sim.join("w1")
    sim.submit(service(retries=2), spec("caller", ["api"]))
    for attempt in (1, 2):
        sim.finish("api", 1)
        sim.live_until(sim.now + 10)
        assert sim.state("api") == R and sim.run("api").attempt == attempt + 1
    effects = sim.finish("api", 1)
    assert sim.states("api", "caller") == [F, X]
    assert "all 2 restarts used" in sim.run("api").reason
    assert events(effects, "service.crashed")[0].body["restart_in"] is None



def test_a_service_up_for_a_steady_while_starts_its_restart_count_over():
    """retries counts restarts in a row: a crash after a long healthy run restarts after 1 s again."""
    sim = Sim()
    sim.join("w1")
    sim.submit(service(retries=2))
    for restart_in in (1.0, 2.0):   # two quick crashes use both retries
        up(sim)
        [crash] = events(sim.finish("api", 1), "service.crashed")
        assert crash.body["restart_in"] == restart_in
        sim.live_until(sim.now + restart_in)
    up(sim)
    sim.live_until(sim.now + SERVICE_STEADY_S)
    [crash] = events(sim.finish("api", 1), "service.crashed")
    assert crash.body["restart_in"] == 1.0 and sim.state("api") == Q and sim.run("api").failures == 1
    sim.live_until(sim.now + 1.0)
    up(sim)
    sim.live_until(sim.now + SERVICE_STEADY_S - 1)   # not steady long enough: the count goes on
    [crash] = events(sim.finish("api", 1), "service.crashed")
    assert crash.body["restart_in"] == 2.0 and sim.run("api").failures == 2
    sim.live_until(sim.now + 2.0)
    sim.finish("api", 1)   # never came up: a third crash in a row
    assert sim.state("api") == F and "all 2 restarts used" in sim.run("api").reason

def test_a_port_in_use_fails_at_once_without_retries():
    sim = Sim()
    sim.join("w1")
    sim.submit(service(port=9999, retries=5), spec("caller", ["api"]))
    effects = sim._step(sim.s.job_finished, "w1", "api", 1, 1, error=PORT_IN_USE_ERROR)
    assert sim.states("api", "caller") == [F, X]
    assert sim.run("api").reason == "port 9999 already in use"
    assert events(effects, "service.crashed") == []
    assert dispatched_ids(sim.live_until(30.0)) == []


def test_stop_service_completes_it_kills_it_and_frees_the_slot():
    sim = started_service()
    up(sim)
    effects = stop(sim)
    assert sim.state("api") == C and sim.run("api").reason == "stopped by request"
    assert StopJob("w1", "api", 1) in effects
    assert [e.body["job_id"] for e in events(effects, "service.stopped")] == ["api"]
    assert "api" not in sim.s.workers["w1"].running
    effects = sim.finish("api", -9, worker_id="w1", attempt=1)    # the killed process's exit arrives late
    assert sim.state("api") == C and notes(effects)
    assert stop(sim) == [], "stopping a stopped service changes nothing"


def test_stop_while_waiting_to_restart_means_no_restart():
    sim = started_service()
    up(sim)
    sim.finish("api", 1)
    assert sim.state("api") == Q
    effects = stop(sim)
    assert sim.state("api") == C and not [e for e in effects if isinstance(e, StopJob)]
    assert dispatched_ids(sim.live_until(10.0)) == []


def test_stopping_a_service_that_never_came_up_cancels_it_and_its_children():
    sim = started_service()
    effects = stop(sim)
    assert sim.states("api", "caller") == [X, X]
    assert sim.run("api").reason == "stopped by request before it was up"
    assert StopJob("w1", "api", 1) in effects


def test_stop_service_refuses_a_job_that_is_not_a_service():
    sim = Sim()
    sim.join("w1")
    sim.submit(spec("plain"))
    with pytest.raises(ServiceError, match="'plain' is not a service"):
        stop(sim, "plain")
    assert sim.state("plain") == R


def test_a_lost_worker_requeues_the_service_as_not_up_and_it_comes_up_elsewhere():
    sim = started_service()
    up(sim)
    sim.leave("w1")
    assert sim.state("api") == Q and not sim.run("api").service_up
    sim.join("w2")
    assert sim.run("api").worker == "w2"
    assert events(up(sim), "service.up")


def test_stats_list_each_workers_services_with_their_ports():
    sim = started_service()
    sim.join("w2")
    sim.submit(service("cache", port=6379))
    workers = {w["name"]: w for w in sim.s.stats()["workers"]}
    assert workers["w1"]["services"] == [{"job_id": "api", "port": 8080, "up": False}]
    assert workers["w2"]["services"] == [{"job_id": "cache", "port": 6379, "up": False}]
    up(sim)
    workers = {w["name"]: w for w in sim.s.stats()["workers"]}
    assert workers["w1"]["services"] == [{"job_id": "api", "port": 8080, "up": True}]
    assert sim.s.describe_job("api")["service_up"] is True


@pytest.mark.parametrize("fields, problem", [
    ({"job_type": SERVICE_JOB_TYPE}, "needs the port it listens on"),
    ({"job_type": SERVICE_JOB_TYPE, "port": 70000}, "port must be between 1 and 65535"),
    ({"port": -1}, "port must be between 1 and 65535"),
])
def test_the_wire_refuses_a_service_without_a_usable_port(fields, problem):
    raw = {"job_id": "api", "filename": "api.py", "script": b"", **fields}
    with pytest.raises(ProtocolError, match=problem):
        jobwire.job_from_wire(raw)


def test_the_wire_accepts_a_service_with_a_port():
    raw = jobwire.job_to_wire(service(port=8080))
    assert jobwire.job_from_wire(raw).port == 8080
