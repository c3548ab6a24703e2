"""The dashboard's model of the cluster and its job timings, driven by hand-made events (no processes)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from titan.web.metrics import JobTimings
from titan.web.view import ALREADY_SEEN, NEXT, RESYNC, ClusterView

STATS = {"run_id": "run-1", "seq": 10, "workers": [], "jobs_by_state": {}, "queued_by_requirement": {}}


def job_event(seq: int, job_id: str, state: str, dag=None, run_id: str = "run-1", ts: float = 0.0) -> dict:
    return {"topic": f"job.{state}", "seq": seq, "run_id": run_id, "ts": ts, "job_id": job_id, "dag": dag,
            "state": state, "worker": "w1" if state == "RUNNING" else None, "attempt": 1, "reason": None,
            "exit_code": None}


def test_events_are_placed_against_the_snapshot():
    view = ClusterView()
    view.reset(STATS, [])
    assert view.place(job_event(9, "a", "QUEUED")) == ALREADY_SEEN
    assert view.place(job_event(10, "a", "QUEUED")) == ALREADY_SEEN
    assert view.place(job_event(11, "a", "QUEUED")) == NEXT
    assert view.place(job_event(12, "a", "QUEUED")) == RESYNC, "event 11 was missed"
    assert view.place(job_event(11, "a", "QUEUED", run_id="run-2")) == RESYNC, "the master restarted"


def test_job_events_move_jobs_of_known_dags_and_single_jobs():
    view = ClusterView()
    dag = {"dag": "d", "finished": False, "jobs": [
        {"job_id": "a", "dag": "d", "state": "QUEUED", "parents": [], "requirement": "GENERAL"},
        {"job_id": "b", "dag": "d", "state": "PENDING", "parents": ["a"], "requirement": "GPU"}]}
    view.reset(STATS, [dag])
    assert view.needs_dag(job_event(11, "a", "RUNNING", dag="d")) is None
    assert view.needs_dag(job_event(11, "x", "QUEUED", dag="other")) == "other"
    view.apply(job_event(11, "a", "RUNNING", dag="d"))
    view.apply(job_event(12, "solo", "QUEUED"))
    assert view.job("a")["state"] == "RUNNING" and view.job("a")["worker"] == "w1"
    assert view.job("b")["parents"] == ["a"] and view.job("b")["requirement"] == "GPU"
    assert view.job("solo")["state"] == "QUEUED" and view.seq == 12
    view.apply({"topic": "dag.finished", "seq": 13, "run_id": "run-1", "dag": "d", "counts": {}})
    snapshot = view.snapshot()
    assert snapshot["dags"][0]["finished"] is True
    assert [job["job_id"] for job in snapshot["single_jobs"]] == ["solo"]


def test_only_the_newest_finished_dags_are_kept():
    view = ClusterView(kept_dags=2)
    view.reset(STATS, [])
    for name, finished in (("old", True), ("running", False), ("new", True), ("newest", True)):
        view.set_dag({"dag": name, "finished": finished, "jobs": []})
    assert view.dag_names() == ["running", "newest"], "the oldest finished go first; a running DAG stays"


def test_timings_measure_each_attempt_and_forget_half_seen_ones():
    registry = CollectorRegistry()
    timings = JobTimings(registry)
    for event in (job_event(1, "a", "QUEUED", ts=100.0), job_event(2, "a", "RUNNING", ts=100.5),
                  job_event(3, "a", "QUEUED", ts=103.0),      # the attempt failed; retried
                  job_event(4, "a", "RUNNING", ts=104.0), job_event(5, "a", "COMPLETED", ts=110.0),
                  job_event(6, "b", "RUNNING", ts=200.0)):
        timings.observe(event)
    timings.forget_pending()                                   # events were missed: b's start is doubtful
    timings.observe(job_event(9, "b", "FAILED", ts=205.0))
    value = registry.get_sample_value
    assert value("titan_job_dispatch_latency_seconds_count") == 2
    assert value("titan_job_dispatch_latency_seconds_sum") == 1.5
    assert value("titan_job_run_seconds_count") == 1 and value("titan_job_run_seconds_sum") == 6.0
