"""The dashboard's job entries (history.py) from hand-made events, and the job table's query, filters and
paging (jobs_api.py) over them; then the same API over a client that has list_jobs."""

from __future__ import annotations

import pytest

from titan.web import jobs_api
from titan.web.history import JobHistory
from titan.web.jobs_api import BadQuery


def event(job_id: str, state: str, ts: float, dag=None, worker=None, attempt=1, exit_code=None, reason=None) -> dict:
    return {"topic": f"job.{state}", "job_id": job_id, "dag": dag, "state": state, "ts": ts, "worker": worker,
            "attempt": attempt, "exit_code": exit_code, "reason": reason}


def flaky_history() -> JobHistory:
    """'flaky' fails its first attempt on w1, is retried and completes on w2; 'plain' completes on w1."""
    history = JobHistory()
    for e in (event("flaky", "PENDING", 100.0, dag="d"), event("flaky", "QUEUED", 100.5, dag="d"),
              event("flaky", "RUNNING", 101.0, dag="d", worker="w1"),
              event("flaky", "QUEUED", 103.0, dag="d", exit_code=1, reason="attempt 1 failed (exit code 1)"),
              event("flaky", "RUNNING", 105.0, dag="d", worker="w2", attempt=2),
              event("flaky", "COMPLETED", 108.0, dag="d", worker="w2", attempt=2, exit_code=0),
              event("plain", "QUEUED", 110.0), event("plain", "RUNNING", 111.0, worker="w1"),
              event("plain", "COMPLETED", 112.5, worker="w1", exit_code=0)):
        history.observe(e, requirement="GENERAL")
    return history


def test_an_entry_has_each_attempt_with_its_times_and_the_waits():
    flaky = flaky_history().entries["flaky"]
    assert flaky["submitted_at"] == 100.0 and flaky["started_at"] == 101.0 and flaky["ended_at"] == 108.0
    assert flaky["wait_seconds"] == 1.0 and flaky["run_seconds"] == 7.0 and flaky["state"] == "COMPLETED"
    assert flaky["attempts"] == [
        {"attempt": 1, "worker": "w1", "started_at": 101.0, "ended_at": 103.0, "exit_code": 1,
         "reason": "attempt 1 failed (exit code 1)"},
        {"attempt": 2, "worker": "w2", "started_at": 105.0, "ended_at": 108.0, "exit_code": 0, "reason": None}]
    assert flaky["run"] == 1 and flaky["requirement"] == "GENERAL" and flaky["dag"] == "d"


def test_a_job_submitted_again_after_it_ended_is_a_new_run():
    history = flaky_history()
    history.observe(event("plain", "QUEUED", 200.0))
    plain = history.entries["plain"]
    assert plain["run"] == 2 and plain["attempts"] == [] and plain["submitted_at"] == 200.0 and plain["ended_at"] is None


def test_seeded_jobs_keep_their_facts_and_take_times_from_their_first_event():
    history = JobHistory()
    history.seed([{"job_id": "a", "dag": "d", "state": "PENDING", "requirement": "GPU"}])
    assert history.entries["a"]["submitted_at"] is None and history.entries["a"]["requirement"] == "GPU"
    history.observe(event("a", "PENDING", 50.0, dag="d"))
    assert history.entries["a"]["submitted_at"] == 50.0 and history.entries["a"]["requirement"] == "GPU"


def test_history_keeps_the_most_recently_changed_jobs():
    history = JobHistory(kept=2)
    for i, job_id in enumerate(("a", "b", "c")):
        history.observe(event(job_id, "QUEUED", float(i)))
    history.observe(event("b", "RUNNING", 5.0, worker="w"))
    history.observe(event("d", "QUEUED", 6.0))
    assert list(history.entries) == ["b", "d"]


def source_over(history: JobHistory):
    return lambda **filters: jobs_api.list_jobs(object(), lambda read: read(history), **filters)


def page(history: JobHistory, **query) -> dict:
    return jobs_api.search(source_over(history), {name: str(value) for name, value in query.items()})


def test_filters_by_state_dag_worker_and_time_window():
    history = flaky_history()
    ids = lambda answer: [job["job_id"] for job in answer["jobs"]]
    assert ids(page(history)) == ["plain", "flaky"], "newest submitted first"
    assert ids(page(history, dag="d")) == ["flaky"]
    assert ids(page(history, worker="w1")) == ["plain", "flaky"], "flaky's first attempt ran on w1"
    assert ids(page(history, worker="w2")) == ["flaky"]
    assert ids(page(history, state="COMPLETED", worker="w9")) == []
    assert ids(page(history, since=109)) == ["plain"], "flaky had ended before 109"
    assert ids(page(history, until=105)) == ["flaky"], "plain was submitted after 105"
    assert ids(page(history, q="W2")) == ["flaky"] and ids(page(history, q="exit code 1")) == []


def test_pages_follow_the_cursor_to_the_end_without_repeats():
    history = JobHistory()
    for i in range(7):
        history.observe(event(f"j{i}", "QUEUED", float(i)))
    seen, cursor = [], None
    while True:
        answer = page(history, limit=3, **({"cursor": cursor} if cursor else {}))
        seen += [job["job_id"] for job in answer["jobs"]]
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"j{i}" for i in reversed(range(7))]
    searched = page(history, q="j", limit=4)
    assert len(searched["jobs"]) == 4 and searched["next_cursor"] is not None


@pytest.mark.parametrize("query, named", [({"state": "DONE"}, "state must be one of"),
                                          ({"limit": "0"}, "limit must be"), ({"limit": "x"}, "limit must be"),
                                          ({"since": "yesterday"}, "since must be"), ({"until": "nan"}, "until must be"),
                                          ({"cursor": "garbage"}, "cursor 'garbage' is not one")])
def test_a_bad_query_names_the_parameter(query, named):
    with pytest.raises(BadQuery, match=named):
        jobs_api.search(source_over(flaky_history()), query)


def test_a_client_with_list_jobs_is_the_source():
    class HistoryClient:
        def __init__(self):
            self.asked = []

        def list_jobs(self, **filters):
            self.asked.append(filters)
            return {"jobs": [{"job_id": "from-master", "dag": "d", "attempts": []}], "next_cursor": None}

    client = HistoryClient()
    answer = jobs_api.search(lambda **filters: jobs_api.list_jobs(client, None, **filters), {"dag": "d", "state": "FAILED"})
    assert answer["jobs"][0]["job_id"] == "from-master"
    assert client.asked == [{"state": "FAILED", "dag": "d", "since": None, "until": None, "worker": None,
                             "limit": 50, "cursor": None}]
    timeline = jobs_api.timeline(lambda **filters: jobs_api.list_jobs(client, None, **filters), "d")
    assert timeline["jobs"][0]["job_id"] == "from-master" and client.asked[-1]["dag"] == "d"
