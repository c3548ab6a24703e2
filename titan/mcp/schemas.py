"""The shapes of the tools' results. The MCP SDK publishes each as the tool's output schema and checks
every result against it, so a client gets typed fields, not JSON text to parse."""

from __future__ import annotations

from typing import Dict, List, Optional

from typing_extensions import NotRequired, TypedDict


class JobInfo(TypedDict):
    job_id: str
    state: str
    dag: NotRequired[Optional[str]]
    attempt: NotRequired[int]
    worker: NotRequired[Optional[str]]
    reason: NotRequired[Optional[str]]
    exit_code: NotRequired[Optional[int]]
    requirement: NotRequired[str]
    priority: NotRequired[int]
    parents: NotRequired[List[str]]
    retries: NotRequired[int]
    failures: NotRequired[int]
    timeout: NotRequired[Optional[float]]
    note: NotRequired[Optional[str]]
    job_type: NotRequired[str]


class Pong(TypedDict):
    ok: bool
    master: str
    run_id: Optional[str]
    round_trip_ms: float


class SubmittedJob(TypedDict):
    job_id: str
    state: str
    warnings: List[str]


class SubmittedDag(TypedDict):
    dag: str
    job_ids: List[str]
    gates: List[str]
    warnings: List[str]


class JobLogs(TypedDict):
    job_id: str
    state: str
    logs: str


class LogTail(TypedDict):
    job_id: str
    text: str
    offset: int
    state: str
    finished: bool


class GateDecision(TypedDict):
    gate_id: str
    state: str


class StoreValue(TypedDict):
    key: str
    value: Optional[str]
    found: bool


class StorePut(TypedDict):
    key: str
    stored: bool


class DeployedScript(TypedDict):
    script_name: str
    size_bytes: int


class WaitResult(TypedDict):
    finished: Dict[str, str]
    pending: Dict[str, str]
    timed_out: bool
    all_completed: bool


class CancelledJob(TypedDict):
    job_id: str
    state: str


class DagStatus(TypedDict):
    dag: str
    finished: bool
    counts: Dict[str, int]
    jobs: List[JobInfo]


class Attempt(TypedDict):
    attempt: int
    worker: Optional[str]
    started_at: Optional[float]
    ended_at: Optional[float]
    exit_code: Optional[int]
    reason: Optional[str]


class ListedJob(TypedDict):
    """One run of a job, as the master's list_jobs gives it (times in Unix seconds)."""
    job_id: str
    dag: Optional[str]
    run: Optional[str]
    state: str
    requirement: str
    worker: Optional[str]
    submitted_at: Optional[float]
    started_at: Optional[float]
    ended_at: Optional[float]
    run_seconds: Optional[float]
    wait_seconds: Optional[float]
    exit_code: Optional[int]
    reason: Optional[str]
    attempts: List[Attempt]


class JobList(TypedDict):
    jobs: List[ListedJob]
    next_cursor: Optional[str]   # pass it back as `cursor` for the next page; None: no more


class WorkerInfo(TypedDict):
    name: str
    capabilities: List[str]
    slots: int
    running: List[str]
    load: float
    last_heartbeat_s_ago: Optional[float]
    host: Optional[str]


class ClusterStatus(TypedDict):
    master: str
    workers: List[WorkerInfo]
    capabilities: List[str]
    slots: int
    busy_slots: int
    jobs_by_state: Dict[str, int]
    queued_by_requirement: Dict[str, int]
    queue_depths: Dict[str, int]
    recent_dags: List[str]
    uptime_s: Optional[float]
