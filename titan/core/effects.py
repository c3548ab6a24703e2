"""What the scheduler asks the outside world to do. The master turns each into bytes on a socket."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Admitted:
    """A new run of a job (a gate included) was accepted: make it durable before anything is said of it."""

    job_id: str
    replaces_earlier_run: bool   # the id ran before: that run's records give way to this one


@dataclass(frozen=True)
class Dispatch:
    """Send this job run to this worker."""

    worker_id: str
    job_id: str
    attempt: int


@dataclass(frozen=True)
class StopJob:
    """Tell a worker to kill a job it runs (whole process tree)."""

    worker_id: str
    job_id: str
    attempt: int


@dataclass(frozen=True)
class Publish:
    """Broadcast a state change on the event stream."""

    topic: str
    body: dict


@dataclass(frozen=True)
class Note:
    """Something an operator should see in the master's log."""

    message: str
