"""A running job's output on its way to the master, mixed into Worker (loop.py): when its pipes are
polled, reading them, holding back a job whose output the master has not taken yet (back-pressure), and
saying what was dropped while the master was unreachable.

Needs from Worker: self.jobs, self.poller, self.outbox, self.registered, self._paused, self._dropped_output
and self._send_log."""

from __future__ import annotations

import zmq

from titan import defaults
from titan.worker import executor
from titan.worker.executor import RunningJob


class JobOutput:
    def _watch(self, running: RunningJob) -> None:
        running.watch_from = None
        for fd in running.streams:
            self.poller.register(fd, zmq.POLLIN)

    def _watch_grown_jobs(self, now: float) -> None:
        """A young job's pipes are not polled: its exit comes as a message, and what a short job wrote is
        read once then, with its result (one loop turn per job, where each write would wake the loop). A
        job still running after WORKER_PIPES_WATCHED_AFTER_S has its output streamed from then on."""
        for running in self.jobs.values():
            if running.watch_from is not None and now >= running.watch_from:
                self._watch(running)

    def _read_job_output(self, fd: int) -> None:
        for running in self.jobs.values():
            if fd in running.streams:
                stream, data = executor.read_output(running, fd)
                if data:
                    self._queue_output(running, stream, data)
                elif data == b"":
                    self.poller.unregister(fd)
                return

    def _queue_output(self, running: RunningJob, stream: str, data: bytes) -> None:
        """Output waits for the master; past the bound the job's pipes are no longer read, so it blocks on
        its writes. While the master is unreachable the job keeps running and newer output is dropped,
        counted, and a marker line says so once output flows again."""
        over = self.outbox.backlog(running.job_id) >= defaults.WORKER_OUTPUT_BACKLOG_BYTES
        if over and not self.registered:
            key = (running.job_id, stream)
            self._dropped_output[key] = self._dropped_output.get(key, 0) + len(data)
            return
        self._queue_output_marker(running.job_id, running.attempt, stream)
        self._send_log(running.job_id, running.attempt, stream, data)
        if over and running.job_id not in self._paused:
            self._paused.add(running.job_id)
            for fd in running.streams:
                self.poller.unregister(fd)

    def _queue_output_marker(self, job_id: str, attempt: int, stream: str) -> None:
        dropped = self._dropped_output.pop((job_id, stream), 0)
        if dropped:
            self._send_log(job_id, attempt, stream, f"\n[titan worker: {dropped:,} bytes of this job's {stream} "
                                                    "were dropped while the master was unreachable]\n".encode())

    def _resume_paused_output(self) -> None:
        """Read a paused job again once half its backlog has gone, or at once when the master is away (a
        job keeps running then; what it writes past the bound is dropped and counted)."""
        for job_id in list(self._paused):
            running = self.jobs.get(job_id)
            if running is None:
                self._paused.discard(job_id)
            elif not self.registered or self.outbox.backlog(job_id) < defaults.WORKER_OUTPUT_BACKLOG_BYTES // 2:
                self._paused.discard(job_id)
                for fd in running.streams:
                    self.poller.register(fd, zmq.POLLIN)

    def _read_after_exit(self, running: RunningJob) -> None:
        """A job that ended before its pipes were watched: what it wrote (at most a pipe's capacity) is
        read now; pipes something outside its tree still holds are watched, as for any job."""
        for fd in list(running.streams):
            while True:
                stream, data = executor.read_output(running, fd)
                if not data:
                    break
                self._queue_output_marker(running.job_id, running.attempt, stream)
                self._send_log(running.job_id, running.attempt, stream, data)
        self._watch(running)

    def _close_streams(self, running: RunningJob) -> None:
        """Pipes still held open past the grace by something outside the job's tree: what is in them is
        sent, the rest is not waited for."""
        for fd in list(running.streams):
            stream, data = executor.read_output(running, fd)
            if data:
                self._send_log(running.job_id, running.attempt, stream, data)
            self.poller.unregister(fd)
        running.streams.clear()
