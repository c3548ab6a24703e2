"""The job table's and the timelines' data: `/api/jobs` and `/api/timeline`.

The one source of job entries is the master's own job history, `client.list_jobs(...)` (titan/core/history.py):
every run it keeps, with its times and attempts, whether the dashboard was running then or not. The
query string's filters are checked here and search text (`q`) is matched here, over its pages.
"""

from __future__ import annotations

from typing import Callable, Optional

from titan import defaults

STATES = ("PENDING", "QUEUED", "RUNNING", "WAITING_APPROVAL", "COMPLETED", "FAILED", "CANCELLED")
MAX_LIMIT = 500
MAX_PAGES_SEARCHED = 20           # pages read to fill one page of search results, at most
SEARCHED_FIELDS = ("job_id", "dag", "worker", "reason", "requirement")


class BadQuery(ValueError):
    """A query parameter the API cannot use; the message names it and says what it takes."""


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
    return {"dag": dag, "jobs": sorted(jobs, key=_submitted_first)}


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


def _submitted_first(entry: dict) -> tuple:
    return (entry.get("submitted_at") or 0.0, entry["job_id"])
