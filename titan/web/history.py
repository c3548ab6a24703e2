"""Jobs as the dashboard saw them in events, in the entry shape of `client.list_jobs` (the master's job
history, on another branch): the job table and the timelines read these entries, from one source.

An entry: {job_id, dag, run, state, requirement, worker, submitted_at, started_at, ended_at, run_seconds,
wait_seconds, exit_code, reason, attempts: [{attempt, worker, started_at, ended_at, exit_code, reason}]},
times in Unix seconds (the events' `ts`). A job that was already under way when the dashboard started
has the facts its snapshot gave and None for the times it did not see. A plain object, no lock: the Hub's.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Optional

from titan import defaults

FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
STARTING = frozenset({"PENDING", "QUEUED"})


class JobHistory:
    def __init__(self, kept: int = defaults.DASHBOARD_KEPT_HISTORY_JOBS):
        self.kept = kept
        self.entries: "OrderedDict[str, dict]" = OrderedDict()   # least recently changed first

    def seed(self, jobs: Iterable[dict]) -> None:
        """Jobs from a snapshot (dag_status descriptions) not seen in events yet: facts without times."""
        for job in jobs:
            if job["job_id"] not in self.entries:
                entry = _new_entry(job["job_id"], job.get("dag"), None)
                entry.update(state=job["state"], requirement=job.get("requirement"), worker=job.get("worker"),
                             exit_code=job.get("exit_code"), reason=job.get("reason"))
                self._keep(entry)

    def observe(self, event: dict, requirement: Optional[str] = None) -> None:
        """One job.<STATE> event, applied in order."""
        job_id, state, ts = event["job_id"], event["state"], event.get("ts")
        entry = self.entries.get(job_id)
        if entry is None or (state in STARTING and entry["state"] in FINAL):
            entry = _new_entry(job_id, event.get("dag"), ts, run=entry["run"] + 1 if entry else 1)
        if entry["submitted_at"] is None and state in STARTING and not entry["attempts"]:
            entry["submitted_at"] = ts        # seeded from the DAG's shape just before its first event
        entry.update(state=state, worker=event.get("worker"), reason=event.get("reason"),
                     exit_code=event.get("exit_code"), dag=event.get("dag"))
        if requirement:
            entry["requirement"] = requirement
        _record_attempt(entry, event, ts)
        self._keep(entry)

    def _keep(self, entry: dict) -> None:
        self.entries.pop(entry["job_id"], None)
        self.entries[entry["job_id"]] = entry
        while len(self.entries) > self.kept:
            self.entries.popitem(last=False)

    def newest_first(self) -> list:
        """Every entry, the latest submitted first (ties: by job id), for paging."""
        return sorted(self.entries.values(), key=sort_key, reverse=True)


def sort_key(entry: dict) -> tuple:
    return (entry.get("submitted_at") or 0.0, entry["job_id"])


def _new_entry(job_id: str, dag: Optional[str], ts: Optional[float], run: int = 1) -> dict:
    return {"job_id": job_id, "dag": dag, "run": run, "state": None, "requirement": None, "worker": None,
            "submitted_at": ts, "started_at": None, "ended_at": None, "run_seconds": None, "wait_seconds": None,
            "exit_code": None, "reason": None, "attempts": []}


def _record_attempt(entry: dict, event: dict, ts: Optional[float]) -> None:
    """RUNNING opens an attempt; the next state closes it (QUEUED again: a retry or a lost worker)."""
    attempts, state = entry["attempts"], event["state"]
    current = attempts[-1] if attempts and attempts[-1]["ended_at"] is None else None
    if state == "RUNNING":
        if current is not None and current["attempt"] == event.get("attempt"):
            return
        attempts.append({"attempt": event.get("attempt"), "worker": event.get("worker"), "started_at": ts,
                         "ended_at": None, "exit_code": None, "reason": None})
        entry["started_at"] = entry["started_at"] or ts
        if entry["submitted_at"] is not None and ts is not None and entry["wait_seconds"] is None:
            entry["wait_seconds"] = round(max(0.0, ts - entry["submitted_at"]), 3)
        return
    if current is not None:
        current.update(ended_at=ts, exit_code=event.get("exit_code"), reason=event.get("reason"))
    if state in FINAL:
        entry["ended_at"] = ts
        if entry["started_at"] is not None and ts is not None:
            entry["run_seconds"] = round(max(0.0, ts - entry["started_at"]), 3)
