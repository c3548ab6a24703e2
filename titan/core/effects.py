"""What the scheduler asks the outside world to do. The master turns each into bytes on a socket.

Plain slotted values, never changed once made (not frozen: a DAG makes several per job, and a frozen
dataclass costs five times as much to build)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(slots=True)
class Admitted:
    """A new run of a job (a gate included) was accepted: make it durable before anything is said of it."""

    job_id: str
    replaced_seq: Optional[int]   # the id ran before: that run's records give way to this one


@dataclass(slots=True)
class Dispatch:
    """Send this job run to this worker."""

    worker_id: str
    job_id: str
    attempt: int


@dataclass(slots=True)
class StopJob:
    """Tell a worker to kill a job it runs (whole process tree)."""

    worker_id: str
    job_id: str
    attempt: int


@dataclass(slots=True)
class Publish:
    """Broadcast a state change on the event stream."""

    topic: str
    body: dict


@dataclass(slots=True)
class Note:
    """Something an operator should see in the master's log."""

    message: str


@dataclass(slots=True)
class Forgotten:
    """Runs the scheduler let go of (titan.core.retention): drop their journal rows, logs and scripts.
    `current`: the job ids among them that are now unknown; `dag_runs` and `dags` that went with them."""

    runs: list
    current: list
    dag_runs: list
    dags: list
