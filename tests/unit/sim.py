"""The scheduler test harness: a Scheduler driven by a fake clock, validate() after every step, every event
checked against the message catalogue (titan.net.messages.EVENTS), and helpers that pick effects out of
what it returned. The scheduler's unit tests import it."""

from __future__ import annotations

from titan.core.effects import Dispatch, Note, Publish
from titan.core.jobs import JobSpec, JobState
from titan.core.scheduler import Scheduler
from titan.net import protocol

P, Q, R, C, F, X = (JobState.PENDING, JobState.QUEUED, JobState.RUNNING, JobState.COMPLETED,
                    JobState.FAILED, JobState.CANCELLED)
DEAD_AFTER = 5.0


def spec(job_id: str, parents=(), **fields) -> JobSpec:
    return JobSpec(job_id=job_id, filename=f"{job_id}.py", parents=tuple(parents), **fields)


class Sim:
    """A scheduler, a fake clock and the effects of every step; validate() runs after each call."""

    def __init__(self, dead_after: float = DEAD_AFTER):
        self.s = Scheduler(worker_dead_after=dead_after)
        self.now = 0.0
        self.log: list = []          # every effect, in order

    def _step(self, call, *args, **kwargs) -> list:
        try:
            effects = call(*args, now=self.now, **kwargs)
        finally:
            self.s.validate()
        self.log.extend(effects)
        self._check_events(effects)
        return effects

    def _check_events(self, effects):
        for e in effects:
            if isinstance(e, Publish):
                protocol.check_event_body(e.topic, e.body)   # raises, naming the topic and the field
                if e.topic.startswith("job."):
                    assert e.topic == f"job.{e.body['state']}", e

    # events
    def submit(self, *specs, dag=None):
        return self._step(self.s.submit, dag, list(specs))

    def join(self, worker_id, caps=(), slots=1, name=None):
        return self._step(self.s.worker_joined, worker_id, name or worker_id, list(caps), slots, {})

    def leave(self, worker_id, reason="it shut down", lost=False):
        return self._step(self.s.worker_left, worker_id, reason, lost=lost)

    def seen(self, worker_id):
        known = self.s.worker_seen(worker_id, self.now)
        self.s.validate()
        return known

    def finish(self, job_id, exit_code=0, worker_id=None, attempt=None):
        run = self.s.jobs[job_id]
        worker_id = run.worker_id if worker_id is None else worker_id
        attempt = run.attempt if attempt is None else attempt
        return self._step(self.s.job_finished, worker_id, job_id, attempt, exit_code)

    def cancel(self, job_id, **kwargs):
        return self._step(self.s.cancel, job_id, **kwargs)

    def cancel_dag(self, dag):
        return self._step(self.s.cancel_dag, dag)

    def tick(self, to=None):
        if to is not None:
            assert to >= self.now, "the fake clock only moves forward"
            self.now = to
        return self._step(self.s.tick)

    def live_until(self, to, step=1.0):
        """Move the clock to `to` while every worker heartbeats each `step`; tick at each step."""
        effects = []
        while self.now < to:
            self.now = min(to, self.now + step)
            for worker_id in list(self.s.workers):
                self.seen(worker_id)
            effects += self._step(self.s.tick)
        return effects

    # queries
    def state(self, job_id) -> JobState:
        return self.s.job(job_id).state

    def states(self, *job_ids):
        return [self.state(j) for j in job_ids]

    def run(self, job_id):
        return self.s.job(job_id)


def dispatches(effects):
    return [e for e in effects if isinstance(e, Dispatch)]


def dispatched_ids(effects):
    return [e.job_id for e in dispatches(effects)]


def events(effects, topic=None):
    return [e for e in effects if isinstance(e, Publish) and (topic is None or e.topic == topic)]


def job_states_published(effects, job_id):
    return [e.body["state"] for e in events(effects) if e.topic.startswith("job.") and e.body["job_id"] == job_id]


def notes(effects):
    return [e for e in effects if isinstance(e, Note)]
