"""A dispatch on its way to becoming a running job, mixed into Worker (loop.py): its script (sent once,
named by hash after that), its project archive (fetched first when this worker lacks it), its keys, its
service port, and its start by the executor; and a job stopped or replaced by a newer attempt.

Needs from Worker: self.config, self.identity, self.job_keys_dir, self.jobs, self.scripts, self.archives,
self.workspaces, self.work_root, self.fork_server, self.launcher, self.poller, self.registered, self._paused,
self._send, self._send_finished, self._fail_unstarted, self._fail_to_start and self._watch."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from typing import Optional

from titan import defaults
from titan.core.jobs import PORT_IN_USE_ERROR, SERVICE_JOB_TYPE
from titan.net import protocol, security
from titan.worker import executor
from titan.worker.config import NULL_EXECUTOR, PROCESS_EXECUTOR
from titan.worker.executor import JobContext, RunningJob

log = logging.getLogger("titan.worker")

TO_MASTER = protocol.WORKER_OPS


class DispatchIntake:
    def _job_keys(self, job_key) -> str:
        """A bundle holding the job's own key pair and the master's public key: the job's TITAN_KEYS."""
        if self.identity is None or not job_key:
            return ""
        folder = tempfile.mkdtemp(dir=self.job_keys_dir)
        public, secret = (part.encode() for part in job_key)
        security.write_bundle(folder, security.Identity(public, secret, self.identity.server_public))
        return folder

    def _script(self, job: dict, attempt: int) -> Optional[bytes]:
        """The job's script: sent with it the first time, named by hash after that."""
        script, digest = job.get("script"), job.get("script_sha256")
        if script is not None:
            if digest:
                self.scripts[digest] = script
            return script
        script = self.scripts.get(digest)
        if script is None:
            log.warning("dispatch of %s named a script this worker was never sent; asking again", job["job_id"])
            self._send(protocol.message(TO_MASTER, "missing_script", job_id=job["job_id"], attempt=attempt))
        return script

    def _start(self, message: dict) -> None:
        job = message["job"]
        script = self._script(job, message["attempt"])
        if script is None:
            return
        if self.config.executor == NULL_EXECUTOR:
            self._send_finished(job["job_id"], message["attempt"], 0, None)
            return
        context = JobContext(job_id=job["job_id"], dag=message.get("dag"), attempt=message["attempt"],
                             worker_name=self.config.name, master_host=self.config.master_host,
                             master_port=self.config.master_port, agent_run_id=message.get("agent_run_id"))
        previous = self.jobs.get(context.job_id)
        if previous is not None and previous.attempt == context.attempt:
            return   # a repeated dispatch of what already runs here
        if previous is not None:   # the master has moved on to a newer attempt: the old one is unwanted
            self._discard(previous)
        self.archives.drop_other_attempts(context.job_id, context.attempt)
        project_dir = None
        if job.get("archive"):
            project_dir = self.archives.ready(job["archive"])
            if project_dir is None:   # fetched first; the job starts when it is here (_on_archive_chunk)
                request = self.archives.wait_for(job["archive"], message, time.monotonic())
                if request is not None:
                    self._send(request)
                return
        port = (job.get("port") or 0) if job.get("job_type") == SERVICE_JOB_TYPE else 0
        if port and self._port_taken(context, port):
            return
        self._launch(context, message, script, project_dir, port)

    def _launch(self, context: JobContext, message: dict, script: bytes, project_dir: Optional[str],
                port: int) -> None:
        """The job's process started by the executor, and watched; or the job failed, saying why."""
        job = message["job"]
        try:
            context.dag_dir = executor.dag_dir(self.work_root, context.dag)
        except OSError as exc:
            log.warning("cannot make the DAG folder for %r: %s", context.dag, exc)
        try:
            context.keys_dir = self._job_keys(message.get("job_key"))
            isolation = job.get("isolation") or self.config.isolation
            fresh = isolation == "process" or self.config.executor == PROCESS_EXECUTOR
            running = executor.start_job(context, job["filename"], script, job.get("args") or "",
                                         self.workspaces, timeout=job.get("timeout"), fork_server=self.fork_server,
                                         project_dir=project_dir, pooled=isolation == "pool" and not fresh,
                                         fresh=fresh, launcher=self.launcher)
        except Exception as exc:   # whatever went wrong, the job fails visibly instead of hanging RUNNING
            if context.keys_dir:
                shutil.rmtree(context.keys_dir, ignore_errors=True)
            self._fail_to_start(context, exc)
            return
        running.service_port = port
        self.jobs[context.job_id] = running
        if executor.reports_its_exit(running):
            running.watch_from = running.started + defaults.WORKER_PIPES_WATCHED_AFTER_S
        else:
            self._watch(running)

    def _tend_archive_fetches(self, now: float) -> None:
        if self.registered:
            for request in self.archives.stale_requests(now):
                self._send(request)
        for outcome in self.archives.given_up(now):
            self._start_or_fail(outcome)

    def _on_archive_chunk(self, message: dict) -> None:
        request, outcome = self.archives.on_chunk(message, time.monotonic())
        if request is not None:
            self._send(request)
        if outcome is not None:
            self._start_or_fail(outcome)

    def _start_or_fail(self, outcome: tuple) -> None:
        """The jobs that waited for an archive start now, or fail with the reason it did not come."""
        dispatches, project_dir, error = outcome
        for dispatch in dispatches:
            if project_dir is not None:
                self._start(dispatch)
            else:
                job_id, attempt = dispatch["job"]["job_id"], dispatch["attempt"]
                log.warning("job %s cannot run: %s", job_id, error)
                self._fail_unstarted(job_id, attempt, f"titan worker: {error}", 127, error)

    def _port_taken(self, context: JobContext, port: int) -> bool:
        """A service whose port is taken fails at once: restarting it would not free the port."""
        if not executor.port_in_use(port):
            return False
        problem = f"titan worker: port {port} already in use on 127.0.0.1; service not started"
        self._fail_unstarted(context.job_id, context.attempt, problem, 1, PORT_IN_USE_ERROR)
        return True

    def _discard(self, running: RunningJob) -> None:
        executor.kill_tree(running)
        if running.job_id not in self._paused and running.watch_from is None:
            for fd in list(running.streams):
                self.poller.unregister(fd)
        self._paused.discard(running.job_id)
        running.streams.clear()
        executor.clean_up(running, self.workspaces)
        del self.jobs[running.job_id]

    def _stop_job(self, job_id: str, attempt: int) -> None:
        running = self.jobs.get(job_id)
        if running is not None and running.attempt == attempt:
            executor.kill_tree(running)
        elif self.archives.drop_job(job_id, attempt):   # stopped before its archive arrived
            self._send_finished(job_id, attempt, -9, "stopped while its project archive was being fetched")
