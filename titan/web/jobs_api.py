"""The job table's and the timelines' data: `/api/jobs` and `/api/timeline`.

`list_jobs` is the one source of job entries. Today it reads what the dashboard saw in events
(history.py); a master that keeps its own job history answers `client.list_jobs(...)` with the same
entries, and then that is used instead (the first of the two to exist wins: no other change is needed).
Search text (`q`) is matched here, on whichever source's pages.
"""

from __future__ import annotations

from typing import Callable, Optional

from titan import defaults
from titan.web.history import JobHistory, sort_key

STATES = ("PENDING", "QUEUED", "RUNNING", "WAITING_APPROVAL", "COMPLETED", "FAILED", "CANCELLED")
MAX_LIMIT = 500
MAX_PAGES_SEARCHED = 20           # pages read to fill one page of search results, at most
SEARCHED_FIELDS = ("job_id", "dag", "worker", "reason", "requirement")


class BadQuery(ValueError):
    """A query parameter the API cannot use; the message names it and says what it takes."""


def list_jobs(client, read_history: Callable[[Callable[[JobHistory], object]], object], *, state=None, dag=None,
              since=None, until=None, worker=None, limit=100, cursor=None) -> dict:
    """{"jobs": [entry, ...], "next_cursor": str or None}, newest submitted first."""
    if hasattr(client, "list_jobs"):
        return client.list_jobs(state=state, dag=dag, since=since, until=until, worker=worker, limit=limit,
                                cursor=cursor)
    entries = read_history(lambda history: [_copy(entry) for entry in history.newest_first()])
    wanted = [entry for entry in entries if _matches(entry, state, dag, worker, since, until)]
    if cursor is not None:
        after = _cursor_key(cursor)
        wanted = [entry for entry in wanted if sort_key(entry) < after]
    page = wanted[:limit]
    more = len(wanted) > limit
    return {"jobs": page, "next_cursor": _make_cursor(page[-1]) if more else None}


def search(source: Callable[..., dict], query: dict) -> dict:
    """One page of the table: the source's entries that match the search text `q`, reading on through
    the source's pages (up to MAX_PAGES_SEARCHED) to fill it."""
    filters = parse_filters(query)
    text, limit = filters.pop("q"), filters["limit"]
    if not text:
        return source(**filters)
    found, cursor = [], filters.pop("cursor")
    for _ in range(MAX_PAGES_SEARCHED):
        page = source(**filters, cursor=cursor)
        for entry in page["jobs"]:
            if any(text in str(entry.get(field) or "").lower() for field in SEARCHED_FIELDS):
                found.append(entry)
        cursor = page["next_cursor"]
        if len(found) >= limit or cursor is None:
            break
    return {"jobs": found[:limit], "next_cursor": cursor}


def timeline(source: Callable[..., dict], dag: Optional[str]) -> dict:
    """Every job of one DAG with its attempts, for the page's Gantt chart."""
    if not dag:
        raise BadQuery("give ?dag=NAME")
    jobs, cursor = [], None
    for _ in range(MAX_PAGES_SEARCHED):
        page = source(dag=dag, limit=MAX_LIMIT, cursor=cursor)
        jobs += page["jobs"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return {"dag": dag, "jobs": sorted(jobs, key=sort_key)}


def parse_filters(query: dict) -> dict:
    """The query string's filters, checked: a wrong one raises BadQuery naming it."""
    state = query.get("state") or None
    if state is not None and state not in STATES:
        raise BadQuery(f"state must be one of {', '.join(STATES)}; got {state!r}")
    limit_text = query.get("limit") or str(defaults.DASHBOARD_JOBS_PAGE)
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise BadQuery(f"limit must be a whole number from 1 to {MAX_LIMIT}; got {limit_text!r}")
    return {"state": state, "dag": query.get("dag") or None, "worker": query.get("worker") or None,
            "since": _seconds(query, "since"), "until": _seconds(query, "until"), "limit": int(limit_text),
            "cursor": query.get("cursor") or None, "q": (query.get("q") or "").strip().lower()}


def _seconds(query: dict, name: str) -> Optional[float]:
    text = query.get(name)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < 1e11:          # also refuses nan and inf
        raise BadQuery(f"{name} must be a time in Unix seconds (e.g. 1767225600); got {text!r}")
    return value


def _matches(entry: dict, state, dag, worker, since, until) -> bool:
    """A job is in the time window when it was submitted before `until` and had not ended before `since`."""
    if (state and entry["state"] != state) or (dag and entry["dag"] != dag):
        return False
    if worker and worker != entry["worker"] and all(a["worker"] != worker for a in entry["attempts"]):
        return False
    if until is not None and (entry["submitted_at"] is None or entry["submitted_at"] > until):
        return False
    return since is None or entry["ended_at"] is None or entry["ended_at"] >= since


def _make_cursor(entry: dict) -> str:
    return f"{sort_key(entry)[0]!r}|{entry['job_id']}"


def _cursor_key(cursor: str) -> tuple:
    submitted, _, job_id = cursor.partition("|")
    try:
        return (float(submitted), job_id)
    except ValueError:
        raise BadQuery(f"cursor {cursor[:40]!r} is not one this dashboard gave; start again without it") from None


def _copy(entry: dict) -> dict:
    return {**entry, "attempts": [dict(attempt) for attempt in entry["attempts"]]}
