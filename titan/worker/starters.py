"""The worker's two starters of job processes, mixed into Worker (loop.py): the fork server (.py jobs)
and the launcher (new programs), and what happens when one of them dies (a job may have killed it):
its jobs fail with that reason, what they left is killed, and a new one takes its place.

Needs from Worker: self.config, self.jobs, self.poller, self.fork_server, self.launcher, self._discard and
self._fail_unstarted."""

from __future__ import annotations

import logging

import zmq

from titan.core.jobs import FORK_SERVER_LOST_ERROR, LAUNCHER_LOST_ERROR
from titan.worker import reaper
from titan.worker.executor import JobContext, LaunchError
from titan.worker.forkserver import StartError, start_fork_server, start_launcher

log = logging.getLogger("titan.worker")


class Starters:
    def _server_on(self, fd: int):
        """The fork server or launcher whose channel is `fd`, if either."""
        return next((server for server in (self.fork_server, self.launcher)
                     if server is not None and server.fileno() == fd), None)

    def _pump_server(self, server) -> None:
        try:
            server.pump()
        except ConnectionError:
            self._replace_server(server)
            return
        if server.preload_error:   # a replacement, started without waiting, could not get ready
            self._give_up(server, server.preload_error)

    def _kill_leftovers(self) -> None:
        """Children of this worker it did not start (it is a subreaper): left by jobs whose fork server or
        launcher died. Its own are those two and, without them, the jobs' processes."""
        own = {running.process.pid for running in self.jobs.values()}
        own |= {server.pid for server in (self.fork_server, self.launcher) if server is not None}
        reaper.kill_leftovers(spare=own)

    def _lost_error(self, lost) -> str:
        return LAUNCHER_LOST_ERROR if lost is self.launcher else FORK_SERVER_LOST_ERROR

    def _replace_server(self, lost) -> None:
        """The fork server or the launcher died (a job may have killed it), and its jobs with it: they fail
        with that reason, and a new one (a fresh interpreter: this process holds a ZeroMQ context) takes
        its place. The loop does not wait for it to be ready (a --preload may take seconds): heartbeats and
        results go on meanwhile, and a job sent to it before then waits in its socket."""
        is_launcher, error = lost is self.launcher, self._lost_error(lost)
        log.warning("%s exited unasked (did a job kill it?); failing its jobs, starting a new one", lost.ROLE)
        self.poller.unregister(lost.fileno())
        self._fail_jobs_of(lost, error)
        lost.close()
        try:
            replacement = (start_launcher(self.config, wait=False) if is_launcher
                           else start_fork_server(self.config, fresh=True, wait=False))
        except (StartError, OSError) as exc:
            log.error("%s could not be replaced (%s): its jobs start as new processes from now on", lost.ROLE, exc)
            replacement = None
        self._set_server(is_launcher, replacement)
        self._kill_leftovers()   # what those jobs started, back here now
        if replacement is not None:
            self.poller.register(replacement.fileno(), zmq.POLLIN)

    def _fail_jobs_of(self, server, error: str) -> None:
        for running in list(self.jobs.values()):
            if getattr(running.process, "server", None) is server:
                self._discard(running)
                self._fail_unstarted(running.job_id, running.attempt, f"titan worker: {error}", -9, error)

    def _give_up(self, server, problem: str) -> None:
        log.error("%s could not be replaced (%s): its jobs start as new processes from now on", server.ROLE, problem)
        self.poller.unregister(server.fileno())
        self._fail_jobs_of(server, f"{server.ROLE} could not be replaced: {problem}")
        self._set_server(server is self.launcher, None)
        server.close()

    def _set_server(self, is_launcher: bool, server) -> None:
        if is_launcher:
            self.launcher = server
        else:
            self.fork_server = server

    def _fail_to_start(self, context: JobContext, exc: Exception) -> None:
        """The job's process could not be started: it fails at once, saying why (its fork server's or
        launcher's loss, if that was it: the job may have killed it as soon as it ran)."""
        problem = str(exc) if isinstance(exc, LaunchError) else f"titan worker: cannot start the job: {exc!r}"
        code, reason = 127, problem
        if not isinstance(exc, LaunchError):
            log.exception("starting job %s failed", context.job_id)
        lost = next((server for server in (self.fork_server, self.launcher) if server and server.lost), None)
        if lost is not None:
            code, reason = -9, self._lost_error(lost)
            problem = f"titan worker: {reason}"
        self._fail_unstarted(context.job_id, context.attempt, problem, code, reason)
