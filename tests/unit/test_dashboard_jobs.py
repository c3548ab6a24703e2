"""The job table's query (jobs_api.py): its filters checked before the master is asked, search text
matched over the master's pages, and the timeline reading a DAG's jobs page by page. The source is a
stand-in for `client.list_jobs` that pages a fixed list of entries as the master does (newest first);
tests/integration/test_dashboard_actions.py runs the same API against a real master."""

from __future__ import annotations

import pytest

from titan.web import jobs_api
from titan.web.jobs_api import BadQuery


def entry(job_id: str, submitted_at: float, dag=None, worker=None, reason=None) -> dict:
    return {"job_id": job_id, "dag": dag, "run": None, "state": "COMPLETED", "requirement": "GENERAL",
            "worker": worker, "submitted_at": submitted_at, "started_at": submitted_at + 1,
            "ended_at": submitted_at + 2, "run_seconds": 1.0, "wait_seconds": 1.0, "exit_code": 0,
            "reason": reason, "attempts": []}


class PagedSource:
    """Pages `entries` (newest first) `limit` at a time, the cursor an index; records what it was asked."""

    def __init__(self, entries):
        self.entries, self.asked = entries, []

    def __call__(self, state=None, dag=None, since=None, until=None, worker=None, limit=100, cursor=None):
        self.asked.append({"state": state, "dag": dag, "since": since, "until": until, "worker": worker,
                           "limit": limit, "cursor": cursor})
        chosen = [e for e in self.entries if dag is None or e["dag"] == dag]
        start = int(cursor or 0)
        more = start + limit < len(chosen)
        return {"jobs": chosen[start:start + limit], "next_cursor": str(start + limit) if more else None}


def test_filters_are_checked_and_passed_to_the_master_as_it_takes_them():
    source = PagedSource([entry("a", 10.0)])
    jobs_api.search(source, {"state": "FAILED", "dag": "d", "worker": "w1", "since": "1767225600", "limit": "7"})
    assert source.asked == [{"state": "FAILED", "dag": "d", "since": 1767225600.0, "until": None, "worker": "w1",
                             "limit": 7, "cursor": None}]


def test_search_text_reads_on_through_pages_to_fill_one():
    entries = [entry(f"j{i}", 100.0 - i, worker="w2" if i % 3 == 0 else "w1") for i in range(30)]
    source = PagedSource(entries)
    found = jobs_api.search(source, {"q": "W2", "limit": "4"})
    assert [job["job_id"] for job in found["jobs"]] == ["j0", "j3", "j6", "j9"]
    assert len(source.asked) > 1 and found["next_cursor"] is not None
    assert jobs_api.search(PagedSource(entries), {"q": "nowhere"})["jobs"] == []


def test_the_timeline_reads_every_page_of_the_dag_oldest_first():
    entries = [entry(f"j{i}", 1000.0 - i, dag="d") for i in range(jobs_api.MAX_LIMIT + 20)] + [entry("x", 1.0)]
    timeline = jobs_api.timeline(PagedSource(entries), "d")
    assert len(timeline["jobs"]) == jobs_api.MAX_LIMIT + 20
    assert [job["submitted_at"] for job in timeline["jobs"]] == sorted(job["submitted_at"] for job in timeline["jobs"])
    with pytest.raises(BadQuery, match="give"):
        jobs_api.timeline(PagedSource(entries), None)


@pytest.mark.parametrize("query, named", [({"state": "DONE"}, "state must be one of"),
                                          ({"limit": "0"}, "limit must be"), ({"limit": "x"}, "limit must be"),
                                          ({"since": "yesterday"}, "since must be"), ({"until": "nan"}, "until must be")])
def test_a_bad_query_names_the_parameter_and_asks_nothing(query, named):
    source = PagedSource([])
    with pytest.raises(BadQuery, match=named):
        jobs_api.search(source, query)
    assert source.asked == []
