"""What a job is (JobSpec), what happened to it (JobRun), and the only transitions a job may make."""

from __future__ import annotations

import enum
import operator
import shlex
from dataclasses import dataclass, field, fields
from typing import Optional

from titan import defaults


class JobState(str, enum.Enum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    WAITING_APPROVAL = "WAITING_APPROVAL"    # a human-in-the-loop gate, waiting for approve or reject

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


# How a `.py` job runs on its worker: "pool" in a warm interpreter that runs jobs one after another,
# "fork" in a child forked from a warm interpreter, "process" in a fresh interpreter. None: the worker's
# default (its --isolation flag).
ISOLATIONS = ("fork", "pool", "process")

# What a worker reports as the error of an attempt it killed for running past its timeout.
TIMEOUT_ERROR = "timeout"
# ... and of the attempts that ran when its fork server died (a job may have killed it): they died with it.
FORK_SERVER_LOST_ERROR = "the worker's fork server died (did a job kill it?); the job died with it"
# ... and when its launcher (which starts .sh jobs and isolation="process" ones) died.
LAUNCHER_LOST_ERROR = "the worker's job launcher died (did a job kill it?); the job died with it"

FINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})

# (from, to) pairs a job may take; anything else is a bug and raises IllegalTransition.
ALLOWED_TRANSITIONS = frozenset({
    (JobState.PENDING, JobState.QUEUED),
    (JobState.PENDING, JobState.CANCELLED),
    (JobState.QUEUED, JobState.RUNNING),
    (JobState.QUEUED, JobState.CANCELLED),
    (JobState.RUNNING, JobState.COMPLETED),
    (JobState.RUNNING, JobState.FAILED),
    (JobState.RUNNING, JobState.QUEUED),     # its worker died or left: run it again elsewhere
    (JobState.RUNNING, JobState.CANCELLED),
    (JobState.PENDING, JobState.WAITING_APPROVAL),      # a gate whose job completed
    (JobState.WAITING_APPROVAL, JobState.COMPLETED),    # approved
    (JobState.WAITING_APPROVAL, JobState.CANCELLED),    # rejected, or cancelled
    (JobState.WAITING_APPROVAL, JobState.FAILED),       # no decision within max_wait_seconds
    (JobState.QUEUED, JobState.COMPLETED),              # a service stopped while it waits to restart
})

# A job with a hitl_message gets a gate after it: a job of this type, named gate_id(job), that
# occupies no worker and completes only when a person approves it.
GATE_JOB_TYPE = "HITL_GATE"


def gate_id(job_id: str) -> str:
    return f"hitl-gate-{job_id}"


# A long-running process that listens on `port`. It stays RUNNING while it lives; once its port accepts
# connections it is "up" and its children start. Any exit restarts it after a backoff (see services.py).
SERVICE_JOB_TYPE = "SERVICE"
# The original's other name for a service (its wire header for one): the same thing here.
JOB_TYPE_ALIASES = {"DEPLOY_PAYLOAD": SERVICE_JOB_TYPE}
# What a worker reports as the error of a service it did not start because its port was taken.
PORT_IN_USE_ERROR = "port in use"


def split_args(args: str) -> list:
    """A job's argument string as its argv: shell words where it parses as such (quotes group), else
    split at whitespace, as the original did, so an apostrophe (args="it's") does not fail the job."""
    if not args:
        return []   # most jobs: shlex costs tens of microseconds even for an empty string
    try:
        return shlex.split(args)
    except ValueError:
        return (args or "").split()


class IllegalTransition(RuntimeError):
    def __init__(self, job_id: str, old: JobState, new: JobState):
        super().__init__(f"job {job_id!r} cannot go from {old.value} to {new.value}")
        self.job_id, self.old, self.new = job_id, old, new


def check_transition(job_id: str, old: JobState, new: JobState) -> None:
    if (old, new) not in ALLOWED_TRANSITIONS:
        raise IllegalTransition(job_id, old, new)


@dataclass(slots=True)   # not frozen: a frozen init costs 5x, and 100,000-job DAGs build one per job
class JobSpec:
    """What the user asked for. Fields mirror the original Titan SDK's TitanJob. Never changed once made."""

    job_id: str
    filename: str
    script: bytes = b""
    job_type: str = "RUN_PAYLOAD"
    args: str = ""
    parents: tuple = ()
    port: int = 0
    is_archive: bool = False
    priority: int = defaults.DEFAULT_PRIORITY
    delay: float = 0.0
    affinity: bool = False
    requirement: str = defaults.DEFAULT_REQUIREMENT
    hitl_message: Optional[str] = None
    max_wait_seconds: float = defaults.DEFAULT_MAX_WAIT_SECONDS
    retries: int = 0                          # failed attempts that are run again
    timeout: Optional[float] = None           # seconds one attempt may run before it is killed
    isolation: Optional[str] = None           # one of ISOLATIONS; None: the worker's --isolation
    archive: Optional[str] = None             # sha256 of the project archive an is_archive job runs from
    deployed: bool = False                    # runs the script deployed on the master under its file name


# Fields every spec states; the others are left out of its compact form when they hold their default.
ESSENTIAL_SPEC_FIELDS = ("job_id", "filename", "script")
_SPEC_DEFAULTS = tuple((f.name, f.default) for f in fields(JobSpec) if f.name not in ESSENTIAL_SPEC_FIELDS)
_essential_values = operator.attrgetter(*ESSENTIAL_SPEC_FIELDS)
_defaultable_values = operator.attrgetter(*(name for name, _ in _SPEC_DEFAULTS))
_DEFAULT_VALUES = tuple(default for _, default in _SPEC_DEFAULTS)


def spec_to_dict(spec: JobSpec) -> dict:
    """The spec as a plain dict without its default values: most jobs set only a few fields, and
    100,000-job DAGs are packed and unpacked field by field (wire and journal)."""
    compact = dict(zip(ESSENTIAL_SPEC_FIELDS, _essential_values(spec)))
    values = _defaultable_values(spec)
    if values == _DEFAULT_VALUES:   # all of them at their defaults: one comparison for the common job
        return compact
    for (name, default), value in zip(_SPEC_DEFAULTS, values):
        if value != default:
            compact[name] = list(value) if name == "parents" else value
    return compact


@dataclass(slots=True)
class JobRun:
    """One run of a job on this master: its state and the facts of its latest attempt."""

    spec: JobSpec
    dag: Optional[str]
    seq: int                                  # submission order, for first-come-first-served
    state: JobState = JobState.PENDING
    attempt: int = 0                          # 1 for the first dispatch, raised on each re-dispatch
    failures: int = 0                         # attempts that ended in failure (what retries count)
    worker: Optional[str] = None             # the worker's name, as people see it
    worker_id: Optional[str] = None          # the worker's connection id, as the master addresses it
    last_worker_id: Optional[str] = None     # who ran the attempt before it was queued again
    reason: Optional[str] = None
    exit_code: Optional[int] = None
    not_before: float = 0.0                   # when its delay is over
    waiting_on: set = field(default_factory=set)   # parents not yet COMPLETED
    note: Optional[str] = None               # something about this run worth showing, e.g. lost affinity
    service_up: bool = False                  # a service whose current attempt accepts connections
    times_up: int = 0                         # how often a service came up (0: its children never ran)
    up_since: Optional[float] = None          # when the service's current attempt came up
    # When things happened, in Unix seconds (the scheduler converts its clock in one place, Scheduler.wall);
    # None until reached. started_at is the current (or last) attempt's start.
    submitted_at: Optional[float] = None
    queued_at: Optional[float] = None        # first queued
    started_at: Optional[float] = None
    ended_at: Optional[float] = None
    dag_run: Optional[str] = None            # the DAG run it belongs to (titan.core.history), None alone
    # Each attempt that was followed by another: [attempt, worker, started_at, ended_at, exit_code,
    # reason]. None until one was: the last attempt is told by the run's own fields (attempts()).
    ended_attempts: Optional[list] = None

    @property
    def job_id(self) -> str:
        return self.spec.job_id

    def describe(self) -> dict:
        return {
            "job_id": self.job_id, "dag": self.dag, "state": self.state.value,
            "attempt": self.attempt, "worker": self.worker, "reason": self.reason,
            "exit_code": self.exit_code, "requirement": self.spec.requirement,
            "priority": self.spec.priority, "parents": list(self.spec.parents),
            "retries": self.spec.retries, "failures": self.failures, "timeout": self.spec.timeout,
            "affinity": self.spec.affinity, "note": self.note, "job_type": self.spec.job_type,
            "port": self.spec.port, "service_up": self.service_up, "run": self.dag_run,
            **self.times(),
        }

    def times(self) -> dict:
        """When it was submitted, queued, started and ended, how long it ran and waited, and each attempt."""
        attempts = self.attempts()
        return {
            "submitted_at": self.submitted_at, "queued_at": self.queued_at, "started_at": self.started_at,
            "ended_at": self.ended_at, "run_seconds": _run_seconds(attempts),
            "wait_seconds": _wait_seconds(self.queued_at, attempts), "attempts": attempts,
        }

    def attempts(self) -> list:
        """Every attempt, oldest first, the one running included (its ended_at None)."""
        ended = [dict(zip(ATTEMPT_FIELDS, entry)) for entry in self.ended_attempts or ()]
        if self.attempt and not (self.ended_attempts and self.ended_attempts[-1][0] == self.attempt):
            if self.state == JobState.RUNNING:
                last = (self.attempt, self.worker, self.started_at, None, None, None)
            else:
                last = (self.attempt, self.worker, self.started_at, self.ended_at, self.exit_code, self.reason)
            ended.append(dict(zip(ATTEMPT_FIELDS, last)))
        return ended


ATTEMPT_FIELDS = ("attempt", "worker", "started_at", "ended_at", "exit_code", "reason")


def _run_seconds(attempts: list) -> Optional[float]:
    """Time spent running, all attempts together; None if it never started. A running attempt counts
    up to its last known end (none yet): it is left out until it ends."""
    spans = [a["ended_at"] - a["started_at"] for a in attempts
             if a["started_at"] is not None and a["ended_at"] is not None]
    return round(sum(spans), 6) if spans else None


def _wait_seconds(queued_at: Optional[float], attempts: list) -> Optional[float]:
    """From first queued to the first attempt's start: how long it waited for a worker."""
    if queued_at is None or not attempts or attempts[0]["started_at"] is None:
        return None
    return round(max(0.0, attempts[0]["started_at"] - queued_at), 6)
