"""The worker: connects to a master, registers, heartbeats, runs jobs.

One thread, one poll loop: the DEALER socket and every running job's stdout/stderr pipes are polled
together, so output reaches the master as it is written and an exit is reported as soon as it happens.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket as host_socket
import tempfile
import time
import uuid
from typing import Dict, List, Optional

import psutil
import zmq
from zmq.utils.monitor import recv_monitor_message

from titan import defaults
from titan.core.jobs import TIMEOUT_ERROR
from titan.net import addresses, protocol, security
from titan.net.protocol import ProtocolError
from titan.worker import executor, reaper
from titan.worker.archive_cache import ArchiveCache
from titan.worker.config import FORK_EXECUTOR, NULL_EXECUTOR, WorkerConfig
from titan.worker.executor import RunningJob
from titan.worker.forkserver import start_fork_server, start_launcher
from titan.worker.intake import DispatchIntake
from titan.worker.job_output import JobOutput
from titan.worker.outbox import Outbox, results_held_until
from titan.worker.starters import Starters
from titan.worker.sweeper import SWEEPER
from titan.worker.workspaces import Workspaces

log = logging.getLogger("titan.worker")

TO_MASTER = protocol.WORKER_OPS

HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


class Worker(DispatchIntake, Starters, JobOutput):
    def __init__(self, config: WorkerConfig):
        self.config = config
        self.identity = security.identity_from_environment(config.keys, security.WORKER)   # fails early
        self.jobs: Dict[str, RunningJob] = {}
        self._ended: List[RunningJob] = []     # jobs reported ended, put away after the next send
        self.unacked: Dict[tuple, dict] = {}   # (job_id, attempt) -> its "finished" message, until acked
        self._unacked_sent: Dict[tuple, float] = {}   # (job_id, attempt) -> when its result was last sent
        self.scripts: Dict[str, bytes] = {}    # sha256 -> script, as the master sent them (each once)
        self.outbox = Outbox()                 # messages to the master, until its socket takes them
        self._paused: set = set()              # jobs whose pipes are not read while their output waits
        self._hold_until: Optional[float] = None   # output held until then (see _flush)
        self._results_since: Optional[float] = None   # when the first result now waiting was queued
        self._dropped_output: Dict[tuple, int] = {}   # (job_id, stream) -> bytes dropped, master unreachable
        self.registered = False
        self._welcomed_by: Optional[str] = None   # the run of the master that welcomed it last
        self._running = False
        self._last_register = float("-inf")
        self._last_heartbeat = float("-inf")
        self._last_from_master = time.monotonic()
        self.owns_work_root = not config.work_dir
        self.work_root = config.work_dir or tempfile.mkdtemp(prefix=f"titan-worker-{os.getpid()}-")
        os.makedirs(self.work_root, exist_ok=True)
        self.archives = ArchiveCache(os.path.join(self.work_root, "archives"))
        self.workspaces = Workspaces(self.work_root)
        # What a job leaves behind when its fork server or launcher is gone comes back here, and is killed.
        reaper.become_subreaper()
        # Every job starts from the fork server or the launcher (reaper.py says why). The server is forked
        # before the ZeroMQ context exists (a process holding one must not fork), and before the launcher
        # (so it holds no copy of the launcher's channel, whose closing tells the launcher to leave).
        self.fork_server = start_fork_server(config) if config.executor == FORK_EXECUTOR else None
        self.launcher = start_launcher(config) if config.executor != NULL_EXECUTOR else None
        self.ctx = zmq.Context()
        self.ctx.linger = 0
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.IDENTITY, f"{config.name}/{uuid.uuid4().hex[:8]}".encode())
        self.dealer.setsockopt(zmq.RECONNECT_IVL_MAX, int(defaults.WORKER_RECONNECT_MAX_S * 1000))
        # Queue nothing while the master is away: heartbeats and registrations would pile up and arrive
        # all at once; results are kept in `unacked` and re-sent after the next welcome instead.
        self.dealer.setsockopt(zmq.IMMEDIATE, 1)
        self.dealer.setsockopt(zmq.SNDHWM, defaults.WORKER_SEND_HWM_FRAMES)   # back-pressure, not gigabytes
        self.job_keys_dir = self._secure(self.dealer)
        addresses.connect_all(self.dealer, addresses.endpoints(config.master_host, config.master_port,
                                                               defaults.WORKER_PORT_OFFSET))
        self.poller = zmq.Poller()
        self.poller.register(self.dealer, zmq.POLLIN)
        # Without this a refused handshake (wrong or missing keys) looks like a master that is not there.
        self.handshakes = self.dealer.get_monitor_socket(HANDSHAKE_EVENTS)
        self.poller.register(self.handshakes, zmq.POLLIN)
        self._handshake_failed = False
        for server in (self.fork_server, self.launcher):
            if server is not None:
                self.poller.register(server.fileno(), zmq.POLLIN)

    def _secure(self, dealer: zmq.Socket) -> str:
        """With keys: make the connection CURVE, and make a private folder for the key bundles of the
        jobs (each its own key pair, from its dispatch; never this worker's)."""
        if self.identity is None:
            return ""
        self.identity.apply(dealer)
        return tempfile.mkdtemp(prefix=".titan-keys-", dir=self.work_root)   # workers may share a work dir

    # ----------------------------------------------------------------- the loop

    def run(self) -> None:
        self._running = True
        while self._running:
            now = time.monotonic()
            self._keep_in_touch(now)
            self._watch_grown_jobs(now)
            self._flush()
            self._clean_up_ended()
            for target, _ in self.poller.poll(self._poll_timeout_ms()):
                if target is self.dealer:
                    self._drain_master()
                elif target is self.handshakes:
                    self._on_handshake()
                elif (server := self._server_on(target)) is not None:
                    self._pump_server(server)
                else:
                    self._read_job_output(target)
            self._enforce_timeouts(time.monotonic())
            self._report_exits()
            self._tend_archive_fetches(time.monotonic())
            self._probe_services(time.monotonic())
        self._shut_down()

    def stop(self) -> None:
        self._running = False

    def _on_handshake(self) -> None:
        event = recv_monitor_message(self.handshakes)["event"]
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:   # a (new) master is there: say so now, not next heartbeat
            self._last_heartbeat = self._last_register = float("-inf")
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED or self._handshake_failed:
            self._handshake_failed = event != zmq.EVENT_HANDSHAKE_SUCCEEDED
            return   # one warning per run of failures, not one per reconnect
        self._handshake_failed = True
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            log.warning("the master refused this worker's key: is its public key in the master's workers/ "
                        "folder (a client key cannot register as a worker)? Still trying.")
        else:
            log.warning("no secure handshake with the master: %s. Still trying.",
                        "check that --keys names this master's key" if self.identity
                        else "the master may require keys (--keys / TITAN_KEYS)")

    def _poll_timeout_ms(self) -> int:
        if self._hold_until is not None:   # output held for a moment (_flush)
            return max(0, int((self._hold_until - time.monotonic()) * 1000) + 1)
        interval = self.config.heartbeat_interval if self.registered else min(0.5, self.config.heartbeat_interval)
        now = time.monotonic()
        for job in self.jobs.values():   # one pass: this runs every loop turn
            if not job.streams or job.exited_at is not None:
                return 5  # its output is closed and its exit is moments away: look again soon
            if job.watch_from is not None:
                interval = max(0.0, min(interval, job.watch_from - now + 0.001))
            if job.service_port and not job.service_up:
                interval = min(interval, defaults.SERVICE_PROBE_INTERVAL_S)
            if job.deadline is not None and not job.timed_out:
                interval = max(0.0, min(interval, job.deadline - now))
        return int(interval * 1000)

    def _keep_in_touch(self, now: float) -> None:
        """Register until welcomed, heartbeat after; a silent master means it restarted or is gone."""
        if self.registered and now - self._last_from_master > self.config.master_dead_after:
            log.warning("no word from the master for %.1fs; registering again", now - self._last_from_master)
            self.registered = False
        if not self.registered and now - self._last_register >= self.config.heartbeat_interval:
            self._send(self._registration())
            self._last_register = now
        elif self.registered and now - self._last_heartbeat >= self.config.heartbeat_interval:
            self._send(protocol.message(TO_MASTER, "heartbeat", running=sorted(self.jobs)
                                        + sorted(job_id for job_id, _ in self.archives.waiting_jobs()),
                                        ended=sorted({job_id for job_id, _ in self.unacked}),
                                        usage=host_usage()))
            self._last_heartbeat = now
            self._resend_unacked(now)
            self._kill_leftovers()

    def _resend_unacked(self, now: float) -> None:
        """A result the master has not acknowledged after a few heartbeats was lost (or its ack was): send
        it again, without waiting for a re-registration. The master acks a repeat and acts on it once."""
        after = defaults.RESULT_RESEND_HEARTBEATS * self.config.heartbeat_interval
        for key, result in self.unacked.items():
            if now - self._unacked_sent.get(key, now) >= after:
                self._unacked_sent[key] = now
                self._send(result)

    def _registration(self) -> dict:
        memory = psutil.virtual_memory()
        running = [[job_id, job.attempt] for job_id, job in sorted(self.jobs.items())]
        running += [[job_id, attempt] for job_id, attempt in self.archives.waiting_jobs()]   # RUNNING to the master
        return protocol.message(TO_MASTER, "register", name=self.config.name, capabilities=self.config.capabilities,
                                slots=self.config.slots, running=running,
                                info={"host": host_socket.gethostname(), "pid": os.getpid(),
                                      "cpus": psutil.cpu_count() or 1, "memory_mb": memory.total // (1024 * 1024)})

    def _send(self, message: dict) -> None:
        """Queued for the end of this loop turn, when everything the turn produced leaves as one frame."""
        self.outbox.add(message)

    def _flush(self) -> None:
        """Send what waits, frame by frame, until the socket would block; the rest waits (nothing is
        dropped) and the poll wakes when the socket takes more. A young job's output alone waits a little
        (_output_held_until)."""
        self._hold_until = self._output_held_until(time.monotonic())
        while self.outbox and self._hold_until is None:
            messages = self.outbox.take_frame()
            try:
                self.dealer.send(protocol.encode_batch(messages), zmq.NOBLOCK)
            except zmq.Again:
                self.outbox.give_back(messages)
                break
        sending = self.outbox and self._hold_until is None
        self.poller.modify(self.dealer, zmq.POLLIN | zmq.POLLOUT if sending else zmq.POLLIN)
        self._resume_paused_output()

    def _output_held_until(self, now: float) -> Optional[float]:
        """When only output waits, all of it from jobs started less than WORKER_OUTPUT_HOLD_S ago, it waits
        until the oldest of them reaches that age or anything else is to be sent, so a short job's output
        and its result leave in one frame (one master turn and journal commit, not two). Results wait a
        little while other short jobs are about to end (outbox.results_held_until). None: send now."""
        if self._results_since is not None and self.outbox.results_and_output_only():
            starts = (job.started for job in self.jobs.values() if job.watch_from is not None)
            return results_held_until(self._results_since, now, starts)
        waiting = self.outbox.output_only_of()
        starts = [self.jobs[job_id].started for job_id in waiting if job_id in self.jobs]
        if not waiting or len(starts) < len(waiting):
            return None
        until = min(starts) + defaults.WORKER_OUTPUT_HOLD_S
        return until if until > now else None

    # ----------------------------------------------------------------- messages from the master

    def _drain_master(self) -> None:
        while True:
            try:
                frame = self.dealer.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._last_from_master = time.monotonic()
            try:
                carried = protocol.decode_batch(frame, protocol.MASTER_TO_WORKER_OPS)
            except ProtocolError as exc:
                carried = [exc]
            for item in carried:
                if isinstance(item, ProtocolError):
                    log.warning("ignored a malformed message from the master: %s", item)
                    continue
                try:
                    self._on_master(*item)
                except Exception:  # a worker never dies from a message either
                    log.exception("error handling %r from the master", item[0])

    def _on_master(self, op: str, message: dict) -> None:
        if op == "welcome":
            if self.registered and message.get("run_id") is not None and message.get("run_id") == self._welcomed_by:
                return   # its registration crossed the first welcome (a slow start): that master knows all
            self.registered, self._welcomed_by = True, message.get("run_id")
            log.info("registered with master %s:%s", self.config.master_host, self.config.master_port)
            for key, result in list(self.unacked.items()):   # results the master may not have received
                self._unacked_sent[key] = time.monotonic()
                self._send(result)
            for request in self.archives.stale_requests(time.monotonic(), force=True):
                self._send(request)
            for running in self.jobs.values():           # a restarted master forgot which services are up
                if running.service_up:
                    self._send_service_up(running)
        elif op == "ack":
            self.unacked.pop((message["job_id"], message["attempt"]), None)
            self._unacked_sent.pop((message["job_id"], message["attempt"]), None)
        elif op == "send_results":   # the master lacks these: lost on the way (a result still waiting is not doubled)
            for key, result in self.unacked.items():
                if key[0] in message["job_ids"]:
                    self._unacked_sent[key] = time.monotonic()
                    self._send(result)
        elif op == "reregister":
            self.registered = False
            self._last_register = float("-inf")
        elif op == "dispatch":
            self._start(message)
        elif op == "stop":
            self._stop_job(message["job_id"], message["attempt"])
        elif op == "archive_chunk":
            self._on_archive_chunk(message)

    def _fail_unstarted(self, job_id: str, attempt: int, told: str, exit_code: int, error: str) -> None:
        """A job that could not start ends at once: `told` is the line its logs show, `error` the reason."""
        self._send_log(job_id, attempt, "stderr", f"{told}\n".encode())
        self._send_finished(job_id, attempt, exit_code, error)

    # ----------------------------------------------------------------- job output and exits

    def _report_exits(self) -> None:
        now = time.monotonic()
        for job_id, running in list(self.jobs.items()):
            if job_id in self._paused:
                continue   # its output waits in its pipes: read first
            if running.watch_from is not None and running.process.poll() is not None:
                self._read_after_exit(running)
            code = executor.exit_code(running, now)
            if code is None:
                continue
            self._close_streams(running)
            del self.jobs[job_id]
            self._ended.append(running)
            self._send_finished(job_id, running.attempt, code, TIMEOUT_ERROR if running.timed_out else None)

    def _clean_up_ended(self) -> None:
        """After the turn's send: a short job's result (and the next dispatch) waits for no file system."""
        ended, self._ended = self._ended, []
        for running in ended:
            executor.clean_up(running, self.workspaces)

    def _probe_services(self, now: float) -> None:
        """Tell the master once a starting service's port accepts connections: its children may start."""
        for running in self.jobs.values():
            if not running.service_port or running.service_up or now < running.next_probe:
                continue
            running.next_probe = now + defaults.SERVICE_PROBE_INTERVAL_S
            if executor.port_accepts(running.service_port):
                running.service_up = True
                log.info("service %s is up on port %d", running.job_id, running.service_port)
                self._send_service_up(running)

    def _send_service_up(self, running: RunningJob) -> None:
        self._send(protocol.message(TO_MASTER, "service_up", job_id=running.job_id, attempt=running.attempt))

    def _send_log(self, job_id: str, attempt: int, stream: str, data: bytes) -> None:
        self._send(protocol.message(TO_MASTER, "log", job_id=job_id, attempt=attempt, stream=stream, data=data))

    def _send_finished(self, job_id: str, attempt: int, code: int, error: Optional[str]) -> None:
        result = protocol.message(TO_MASTER, "finished", job_id=job_id, attempt=attempt, exit_code=code, error=error)
        for stream in protocol.LOG_STREAMS:   # what was dropped at the end is said before the result
            self._queue_output_marker(job_id, attempt, stream)
        self.unacked[(job_id, attempt)] = result
        self._unacked_sent[(job_id, attempt)] = now = time.monotonic()
        if not self.outbox.results_and_output_only():   # the first of the results waiting (a hold's start)
            self._results_since = now
        self._send(result)

    def _enforce_timeouts(self, now: float) -> None:
        for running in self.jobs.values():
            if running.deadline is not None and now >= running.deadline and not running.timed_out:
                log.warning("job %s ran past its timeout; killing its process tree", running.job_id)
                running.timed_out = True
                executor.kill_tree(running)

    def _shut_down(self) -> None:
        self._clean_up_ended()
        for running in self.jobs.values():
            executor.kill_tree(running)
            executor.clean_up(running, self.workspaces)
        self._send(protocol.message(TO_MASTER, "bye"))
        self._flush()
        time.sleep(0.05)  # let the goodbye leave before the context closes
        self.ctx.destroy(linger=100)
        for server in (self.fork_server, self.launcher):
            if server is not None:
                server.close()
        self.workspaces.remove_spares()
        SWEEPER.finish()
        if self.owns_work_root:
            shutil.rmtree(self.work_root, ignore_errors=True)
        elif self.job_keys_dir:
            shutil.rmtree(self.job_keys_dir, ignore_errors=True)


def host_usage() -> dict:
    """This host's CPU use since the last call (psutil keeps the previous reading: no wait here) and its
    memory use, for the dashboard's worker list."""
    memory = psutil.virtual_memory()
    return {"cpu_percent": psutil.cpu_percent(interval=None), "memory_percent": memory.percent,
            "memory_used_bytes": memory.total - memory.available, "memory_total_bytes": memory.total}
