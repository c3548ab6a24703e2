"""Services: long-running jobs (job_type SERVICE, with a port) that other jobs talk to.

How a service moves through the ordinary job states:

- It is dispatched like any job and stays RUNNING while its process lives, holding one worker slot.
- The worker probes its port; once 127.0.0.1:port accepts a connection it sends `service_up`. The
  scheduler marks the run up, publishes `service.up`, and treats it as a COMPLETED parent from then on:
  its children start while it keeps running.
- Any exit (whatever the code) is a crash: `service.crashed` is published and it is queued again after
  the retry backoff (1 s, doubling, capped). `retries=0` (the default) means restart without limit; a
  positive `retries` allows that many restarts in a row, then it FAILS. A service that had been up for
  SERVICE_STEADY_S when it exited starts the count over: its backoff is 1 s again, and a crash a week
  does not use up its retries.
- A port found taken by the worker before starting fails it at once ("port N already in use"), no retry.
- `stop_service` ends it for good: COMPLETED, "stopped by request", its process tree killed. A service
  that never came up is CANCELLED instead, and so are the children still waiting for it.
- What the original's calls see (reported_state): get_job_status and wait() report a service that is up
  as COMPLETED, as the original reported a deployed service; job_info keeps RUNNING with service_up.
"""

from __future__ import annotations

from typing import Optional

from titan import defaults
from titan.core import timers
from titan.core.effects import Note, StopJob
from titan.core.errors import ServiceError
from titan.core.jobs import PORT_IN_USE_ERROR, SERVICE_JOB_TYPE, JobRun, JobSpec, JobState

STOPPED_REASON = "stopped by request"
# The event a service's coming up publishes; get_job_status and wait() take it as the service deployed.
SERVICE_UP_TOPIC = "service.up"


def reported_state(state: str, service_up: bool) -> str:
    """The state the original's calls report (get_job_status, wait): a service that is up has been
    deployed, which the original called COMPLETED. Its own state stays RUNNING while its process runs."""
    return JobState.COMPLETED.value if service_up and state == JobState.RUNNING.value else state


def is_service(spec: JobSpec) -> bool:
    return spec.job_type == SERVICE_JOB_TYPE


class SchedulerServices:
    """Mixed into Scheduler: the events that only services have."""

    def service_up(self, worker_id: str, job_id: str, attempt: int, now: float) -> list:
        """A worker reports that the service's port accepts connections. Repeats are harmless."""
        self._at(now)
        run = self.jobs.get(job_id)
        if (run is None or not is_service(run.spec) or run.state != JobState.RUNNING
                or run.worker_id != worker_id or run.attempt != attempt):
            self._effects.append(Note(f"ignored a stale 'service up' for {job_id!r} attempt {attempt}"))
            return self._take_effects()
        if not run.service_up:
            run.service_up = True
            run.up_since = now
            run.times_up += 1
            up = f"port {run.spec.port} accepts connections"
            self._publish(SERVICE_UP_TOPIC, self._service_event(run, reason=up))
            self._settle_children(run, now)
            self._schedule(now)
        return self._take_effects()

    def stop_service(self, job_id: str, now: float) -> list:
        """End a service for good. Stopping one that has already ended changes nothing."""
        self._at(now)
        run = self.job(job_id)
        if not is_service(run.spec):
            raise ServiceError(f"job {job_id!r} is not a service (job_type {run.spec.job_type}); "
                               "use cancel to stop it", job_id=job_id)
        if run.state.is_final:
            return self._take_effects()
        if run.times_up == 0:
            self._cancel_tree(run, f"{STOPPED_REASON} before it was up", now)
        else:
            if run.state == JobState.RUNNING:
                self._effects.append(StopJob(run.worker_id, run.job_id, run.attempt))
                self._release_slot(run)
            self._publish("service.stopped", self._service_event(run, reason=STOPPED_REASON))
            self._transition(run, JobState.COMPLETED, STOPPED_REASON)
            self._settle_children(run, now)
        self._schedule(now)
        return self._take_effects()

    def _service_exited(self, run: JobRun, exit_code: int, error: Optional[str], now: float) -> None:
        """Its process ended without being asked to: restart it after a backoff, unless it cannot be."""
        if error == PORT_IN_USE_ERROR:
            self._transition(run, JobState.FAILED, f"port {run.spec.port} already in use")
            return
        if run.service_up and now - run.up_since >= defaults.SERVICE_STEADY_S:
            run.failures = 0   # it had been running well: this crash is the first of a new series
        run.failures += 1
        crash = f"exited with code {exit_code}" + (f" ({error})" if error else "")
        if run.spec.retries and run.failures > run.spec.retries:
            self._publish("service.crashed", self._service_event(run, reason=crash, restart_in=None))
            self._transition(run, JobState.FAILED, f"service {crash}; all {run.spec.retries} restarts used")
            return
        backoff = self._backoff(run.failures)
        self._publish("service.crashed", self._service_event(run, reason=crash, restart_in=backoff))
        self._transition(run, JobState.QUEUED, f"service {crash} (attempt {run.attempt}); "
                                               f"restart {run.failures} in {backoff:g}s")
        run.last_worker_id = None   # that attempt has ended: no worker may claim it back
        self._deadlines.add(now + backoff, timers.BACKOFF, run.seq, run.job_id)

    def _parent_done(self, parent: JobRun) -> bool:
        """A parent its children no longer wait for: COMPLETED, or a service that is up."""
        return parent.state == JobState.COMPLETED or parent.service_up

    def _service_event(self, run: JobRun, **fields) -> dict:
        return {"job_id": run.job_id, "dag": run.dag, "worker": run.worker, "attempt": run.attempt,
                "port": run.spec.port, "state": run.state.value, **fields}

    def services_on(self, worker_id: str) -> list:
        """The services a worker runs, with their ports, for stats and `titan workers`."""
        worker = self.workers[worker_id]
        runs = sorted((self.jobs[j] for j in worker.running if is_service(self.jobs[j].spec)),
                      key=lambda r: r.seq)
        return [{"job_id": r.job_id, "port": r.spec.port, "up": r.service_up} for r in runs]
