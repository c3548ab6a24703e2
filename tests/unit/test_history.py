"""Job history in the scheduler (titan/core/history.py), driven by the fake clock: times and attempts of
each run, DAG runs that keep their record when the pipeline runs again, and list_jobs' filters and pages."""

from __future__ import annotations

import pytest

from titan.core.errors import RequestRejected, UnknownDag
from titan.net import protocol
from tests.unit.sim import C, F, Q, R, X, Sim, spec

WALL = 1_700_000_000.0   # the offset a master would set: Unix time minus its monotonic clock


def sim_with_wall() -> Sim:
    sim = Sim()
    sim.s.wall_offset = WALL
    return sim


def test_a_job_records_when_it_was_submitted_queued_started_and_ended():
    sim = sim_with_wall()
    sim.now = 10.0
    sim.submit(spec("a"))
    info = sim.s.describe_job("a")
    assert (info["submitted_at"], info["queued_at"], info["started_at"], info["ended_at"]) == \
        (WALL + 10, WALL + 10, None, None)
    sim.now = 12.5
    sim.join("w1")
    sim.now = 20.0
    sim.finish("a")
    info = sim.s.describe_job("a")
    assert (info["started_at"], info["ended_at"]) == (WALL + 12.5, WALL + 20)
    assert info["run_seconds"] == 7.5 and info["wait_seconds"] == 2.5 and info["run"] is None
    assert info["attempts"] == [{"attempt": 1, "worker": "w1", "started_at": WALL + 12.5, "ended_at": WALL + 20,
                                 "exit_code": 0, "reason": None}]
    protocol.result_reply(protocol.CLIENT_OPS, "status", "r", info)   # the catalogue declares every field


def test_each_attempt_keeps_its_worker_times_exit_code_and_reason():
    sim = sim_with_wall()
    sim.join("w1")
    sim.submit(spec("a", retries=2))
    sim.now = 3.0
    sim.finish("a", exit_code=2)                      # attempt 1 fails on w1
    sim.leave("w1")
    sim.join("w2")
    sim.live_until(sim.s.retry_backoff + 4.0)          # the retry starts on w2 after its backoff
    assert sim.state("a") == R
    sim.now += 1.0
    sim.leave("w2", reason="it shut down")             # attempt 2 lost with its worker
    sim.join("w3")
    sim.now += 2.0
    sim.finish("a")
    attempts = sim.s.describe_job("a")["attempts"]
    assert [(a["attempt"], a["worker"], a["exit_code"]) for a in attempts] == [(1, "w1", 2), (2, "w2", None),
                                                                                 (3, "w3", 0)]
    assert attempts[0]["reason"].startswith("attempt 1 failed (exit code 2)")
    assert "lost" in attempts[1]["reason"] and attempts[2]["reason"] is None
    assert all(a["ended_at"] >= a["started_at"] >= WALL for a in attempts)
    info = sim.s.describe_job("a")
    assert info["run_seconds"] == pytest.approx(sum(a["ended_at"] - a["started_at"] for a in attempts))


def test_a_running_attempt_is_listed_without_an_end():
    sim = sim_with_wall()
    sim.join("w1")
    sim.submit(spec("a"))
    info = sim.s.describe_job("a")
    assert info["attempts"] == [{"attempt": 1, "worker": "w1", "started_at": WALL, "ended_at": None,
                                 "exit_code": None, "reason": None}]
    assert info["run_seconds"] is None and info["ended_at"] is None


def test_a_cancelled_waiting_job_ends_without_starting():
    sim = sim_with_wall()
    sim.submit(spec("a"))
    sim.now = 4.0
    sim.cancel("a")
    info = sim.s.describe_job("a")
    assert info["ended_at"] == WALL + 4 and info["started_at"] is None and info["attempts"] == []
    assert info["wait_seconds"] is None and info["run_seconds"] is None


def test_a_dag_submission_is_a_run_and_running_it_again_keeps_the_earlier_record():
    sim = sim_with_wall()
    sim.join("w1")
    sim.submit(spec("a"), spec("b", parents=["a"]), dag="pipe")
    sim.now = 1.0
    sim.finish("a", exit_code=3)                      # b is cancelled: run 1 FAILED
    assert sim.s.describe_dag("pipe")["run"] == "pipe#1"
    sim.now = 5.0
    sim.submit(spec("a"), spec("b", parents=["a"]), dag="pipe")
    sim.now = 6.0
    sim.finish("a")
    sim.now = 8.0
    sim.finish("b")
    runs = sim.s.dag_runs("pipe")
    assert [(r["run"], r["outcome"], r["jobs"]) for r in runs] == [("pipe#2", "COMPLETED", 2),
                                                                    ("pipe#1", "FAILED", 2)]
    assert runs[0]["submitted_at"] == WALL + 5 and runs[0]["duration_s"] == 3.0
    assert runs[1]["ended_at"] == WALL + 1
    first = sim.s.list_jobs(dag="pipe")["jobs"]
    by_run = {(j["run"], j["job_id"]): j["state"] for j in first}
    assert by_run == {("pipe#1", "a"): "FAILED", ("pipe#1", "b"): "CANCELLED",
                      ("pipe#2", "a"): "COMPLETED", ("pipe#2", "b"): "COMPLETED"}
    latest = sim.s.describe_dag("pipe")
    assert latest["run"] == "pipe#2" and [j["state"] for j in latest["jobs"]] == ["COMPLETED", "COMPLETED"]


def test_a_dag_run_is_running_until_its_last_job_ends():
    sim = sim_with_wall()
    sim.submit(spec("a"), dag="d")
    (only,) = sim.s.dag_runs("d")
    assert only["outcome"] == "RUNNING" and only["ended_at"] is None and only["duration_s"] is None
    with pytest.raises(UnknownDag):
        sim.s.dag_runs("nope")


def test_the_latest_run_shows_a_job_resubmitted_alone_as_it_ended_in_that_run():
    sim = sim_with_wall()
    sim.join("w1")
    sim.submit(spec("a"), dag="d")
    sim.finish("a", exit_code=1)
    sim.submit(spec("a"))                              # the same id again, outside the DAG
    (job,) = sim.s.describe_dag("d")["jobs"]
    assert job["state"] == "FAILED" and job["run"] == "d#1"


def _finished_jobs(sim: Sim, count: int, dag=None, exit_code=0):
    for i in range(count):
        sim.now += 1.0
        job_id = f"{dag or 'j'}-{i}"
        sim.submit(spec(job_id), dag=f"{dag}-{i}" if dag else None)
        sim.finish(job_id, exit_code=exit_code)


def test_list_jobs_is_newest_first_and_pages_with_a_cursor():
    sim = sim_with_wall()
    sim.join("w1")
    _finished_jobs(sim, 25)
    pages, cursor = [], None
    while True:
        page = sim.s.list_jobs(limit=10, cursor=cursor)
        pages.append([j["job_id"] for j in page["jobs"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [10, 10, 5]
    assert sum(pages, []) == [f"j-{i}" for i in reversed(range(25))]


def test_list_jobs_filters_by_state_dag_worker_and_time():
    sim = sim_with_wall()
    sim.join("w1")
    _finished_jobs(sim, 3)                                   # j-0..2 COMPLETED on w1 at 1..3
    sim.leave("w1")
    sim.join("w2")
    _finished_jobs(sim, 2, dag="bad", exit_code=1)           # bad-0, bad-1 FAILED on w2 at 4, 5
    sim.submit(spec("waiting", requirement="GPU"))           # QUEUED, no worker offers GPU
    ids = lambda **filters: [j["job_id"] for j in sim.s.list_jobs(**filters)["jobs"]]
    assert ids(state="FAILED") == ["bad-1", "bad-0"]
    assert ids(state="queued") == ["waiting"]
    assert ids(dag="bad-0") == ["bad-0"]
    assert ids(worker="w1") == ["j-2", "j-1", "j-0"]
    assert ids(since=WALL + 3, until=WALL + 5) == ["bad-0", "j-2"]
    assert ids(state="COMPLETED", since=WALL + 2) == ["j-2", "j-1"]
    entry = sim.s.list_jobs(state="FAILED", limit=1)["jobs"][0]
    assert set(entry) == {"job_id", "dag", "run", "state", "requirement", "worker", "submitted_at", "started_at",
                          "ended_at", "run_seconds", "wait_seconds", "exit_code", "reason", "attempts"}
    assert (entry["worker"], entry["exit_code"], entry["run"]) == ("w2", 1, "bad-1#1")
    protocol.result_reply(protocol.CLIENT_OPS, "list_jobs", "r", sim.s.list_jobs())


def test_list_jobs_refuses_what_it_cannot_answer():
    sim = sim_with_wall()
    with pytest.raises(RequestRejected, match="unknown state 'DONE'"):
        sim.s.list_jobs(state="DONE")
    with pytest.raises(RequestRejected, match="limit must be 1 to"):
        sim.s.list_jobs(limit=0)
    with pytest.raises(RequestRejected, match="cursor 'x' is not one"):
        sim.s.list_jobs(cursor="x")


def test_unfinished_states_are_listed_from_the_newest_runs():
    sim = sim_with_wall()
    sim.join("w1", slots=2)
    _finished_jobs(sim, 50)
    sim.submit(spec("old-running"))                          # the oldest unfinished run, far down
    _finished_jobs(sim, 50)
    sim.submit(spec("r2"), spec("q1"), spec("q2"))           # r2 takes the second slot
    ids = lambda **filters: [j["job_id"] for j in sim.s.list_jobs(**filters)["jobs"]]
    assert ids(state="RUNNING") == ["r2", "old-running"]
    assert ids(state="QUEUED") == ["q2", "q1"]
    assert ids(state="PENDING") == []
    first = sim.s.list_jobs(state="QUEUED", limit=1)
    assert [j["job_id"] for j in first["jobs"]] == ["q2"]
    assert ids(state="QUEUED", cursor=first["next_cursor"]) == ["q1"]
    assert len(sim.s.list_jobs(state="COMPLETED", limit=1_000)["jobs"]) == 100   # 50 ids, each run twice
    assert sim.s.state_counts[C] == 50 and not sim.s.state_counts[F] and not sim.s.state_counts[X]
