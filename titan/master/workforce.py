"""What the master hears from its workers and says to them: their batches of messages (results, output,
heartbeats, registrations), dispatches (a script once per worker, then by hash) and what is sent again when
a dispatch or a result was lost on the way. Mixed into Master (titan/master/loop.py)."""

from __future__ import annotations

import logging
import time
from typing import Optional

from titan import defaults
from titan.core.effects import Dispatch
from titan.core.jobs import JobState
from titan.net import jobwire, protocol
from titan.net.protocol import ProtocolError

log = logging.getLogger("titan.master")

TO_WORKER = protocol.MASTER_TO_WORKER_OPS


class Workforce:
    """Needs self.scheduler, self.journal, self.committer, self.logs, self.guard, self.config, self._apply,
    self._clean, self._end_turn, self._serve_archive and the script maps of Master (_scripts_sent,
    _script_digests, _held_results, _to_workers)."""

    def _on_worker(self, frames: list, user: Optional[str]) -> None:
        worker_id = frames[0].hex()
        try:
            if len(frames) != 2:
                raise ProtocolError(f"expected a single-frame message, got {len(frames) - 1} frames")
            carried = protocol.decode_batch(frames[1], protocol.WORKER_OPS, self.config.max_message_bytes)
        except ProtocolError as exc:
            log.warning("dropped a malformed message from worker connection %s: %s", worker_id, exc)
            return
        self.scheduler.hold_dispatches()
        try:
            for item in carried:
                if isinstance(item, ProtocolError):
                    log.warning("dropped a malformed message from worker connection %s: %s", worker_id, item)
                else:
                    self._on_worker_message(worker_id, user, *item)
        finally:
            self._apply(self.scheduler.release_dispatches(time.monotonic()))
        self._clean()   # keeps pace with the results coming in, each batch a little
        # Commit and send now rather than after every worker's batch of this turn: this worker gets its
        # next jobs while the master reads the next one's results (S1: 8,200 -> 9,400 jobs/s).
        self._end_turn()

    def _on_worker_message(self, worker_id: str, user: Optional[str], op: str, message: dict) -> None:
        now = time.monotonic()
        if op == "register":
            try:
                claims = protocol.job_claims(message.get("running"))
            except ProtocolError as exc:
                log.warning("dropped a malformed message from worker connection %s: %s", worker_id, exc)
                return
            if self.guard is None or self.guard.admit_worker(worker_id, user):
                self._register_worker(worker_id, message, claims, now)
        elif not self.scheduler.worker_seen(worker_id, now):
            self._send_worker(worker_id, protocol.message(TO_WORKER, "reregister",
                                                          reason="this master does not know you"))
        elif op == "heartbeat":
            self._send_worker(worker_id, protocol.message(TO_WORKER, "heartbeat"))
            self.scheduler.worker_usage(worker_id, protocol.host_usage(message.get("usage")) or {})
            self._resend_lost_dispatches(worker_id, message, now)
            self._ask_for_held_results(worker_id, message)
        elif op == "log":
            self._record_log(message)
        elif op == "finished":
            self._apply(self.scheduler.job_finished(worker_id, message["job_id"], message["attempt"],
                                                    message["exit_code"], now, message.get("error")))
            self._send_worker(worker_id, protocol.message(TO_WORKER, "ack", job_id=message["job_id"],
                                                          attempt=message["attempt"]))
        elif op == "missing_script":
            log.warning("worker %s lacks the script of job %s; sending it again", worker_id, message["job_id"])
            self._resend_dispatch(worker_id, message["job_id"], message["attempt"])
        elif op == "fetch_archive":
            self._serve_archive(worker_id, message)
        elif op == "service_up":
            self._apply(self.scheduler.service_up(worker_id, message["job_id"], message["attempt"], now))
        elif op == "bye":
            self._apply(self.scheduler.worker_left(worker_id, "it shut down", now))

    def _register_worker(self, worker_id: str, message: dict, claims: list, now: float) -> None:
        try:
            name, capabilities, slots, info = protocol.worker_registration(message)
        except ProtocolError as exc:
            log.warning("refused a worker registration from connection %s: %s", worker_id, exc)
            return
        self._scripts_sent.pop(worker_id, None)   # a worker that registers again may have restarted
        self._send_worker(worker_id, protocol.message(TO_WORKER, "welcome", run_id=self.run_id))
        self._apply(self.scheduler.worker_joined(worker_id, name, capabilities, slots, info, now, running=claims))
        log.info("worker %s registered with %s, %d slots, running %s", name, capabilities, slots,
                 [job_id for job_id, _ in claims])

    def _record_log(self, message: dict) -> None:
        run = self.scheduler.jobs.get(message["job_id"])
        if run is None or run.attempt != message["attempt"]:
            return
        text = message["data"].decode("utf-8", errors="replace")
        self.logs.append(run.job_id, message["attempt"], message["stream"], text)
        if self.journal is not None and self.committer.hold(len(text)):
            self.journal.record_log(run.job_id, run.seq, message["attempt"], message["stream"], text)

    def _drop_revoked_workers(self, now: float) -> None:
        for worker_id in self.guard.revoked_workers(now, self.scheduler.workers):
            log.warning("worker connection %s: its key %s was revoked", worker_id, self.guard.worker_users[worker_id])
            self._apply(self.scheduler.worker_left(worker_id, "its key was revoked", now))
            self._send_worker(worker_id, protocol.message(TO_WORKER, "reregister", reason="its key was revoked"))

    def _send_worker(self, worker_id: str, message: dict) -> None:
        self._to_workers.setdefault(worker_id, []).append(message)

    def _dispatch(self, effect: Dispatch) -> None:
        """A worker gets each script once; later dispatches of it name it by hash."""
        run = self.scheduler.jobs[effect.job_id]
        job = jobwire.job_to_wire(run.spec)
        digest = job["script_sha256"] = self._script_digest(run.spec.script)
        sent = self._scripts_sent.setdefault(effect.worker_id, set())
        if digest in sent:
            del job["script"]
        else:
            sent.add(digest)
        key = {}
        if self.guard is not None:   # the job's own key, honoured only while this attempt runs
            key["job_key"] = list(self.guard.job_key(effect.job_id, run.seq, effect.attempt))
        self._send_worker(effect.worker_id, protocol.message(TO_WORKER, "dispatch", job=job, attempt=effect.attempt,
                                                             dag=run.dag, agent_run_id=self.dag_agent_run.get(run.dag),
                                                             **key))

    def _script_digest(self, script: bytes) -> str:
        """sha256 of a script, computed once per distinct script for the journal and the dispatches."""
        digest = self._script_digests.get(script)
        if digest is None:
            digest = self._script_digests[script] = jobwire.script_digest(script)
        return digest

    def _resend_lost_dispatches(self, worker_id: str, heartbeat: dict, now: float) -> None:
        """A job this master gave the worker a while ago that it neither holds nor has ended never
        arrived (a dispatch lost while the link was down): send it again. A worker ignores a repeat."""
        if not isinstance(heartbeat.get("ended"), list) or not isinstance(heartbeat.get("running"), list):
            return   # a worker that does not say what it has ended: a resend could run a job twice
        held = {job_id for job_id in heartbeat["running"] + heartbeat["ended"] if isinstance(job_id, str)}
        grace = defaults.LOST_DISPATCH_HEARTBEATS * self.config.heartbeat_interval
        for job_id in sorted(self.scheduler.workers[worker_id].running - held):
            run = self.scheduler.jobs[job_id]
            if run.started_at is not None and self.scheduler.wall(now) - run.started_at > grace:
                log.warning("worker %s never received job %s attempt %d; sending it again",
                            run.worker, job_id, run.attempt)
                self._resend_dispatch(worker_id, job_id, run.attempt)

    def _ask_for_held_results(self, worker_id: str, heartbeat: dict) -> None:
        """Results the worker says it holds (`ended`) for jobs still RUNNING here: one named by two
        heartbeats running was lost on the way (one named once may be in the same batch): ask for it."""
        ended = heartbeat.get("ended") if isinstance(heartbeat.get("ended"), list) else []
        lacking = {job_id for job_id in ended if job_id in self.scheduler.workers[worker_id].running}
        wanted = sorted(lacking & self._held_results.get(worker_id, set()))
        self._held_results[worker_id] = lacking
        if len(self._held_results) > 2 * len(self.scheduler.workers) + 16:   # forget workers that left
            self._held_results = {w: held for w, held in self._held_results.items() if w in self.scheduler.workers}
        if wanted:
            log.warning("worker %s holds results the master lacks (%s); asking for them", worker_id, ", ".join(wanted))
            self._send_worker(worker_id, protocol.message(TO_WORKER, "send_results", job_ids=wanted))

    def _resend_dispatch(self, worker_id: str, job_id: str, attempt: int) -> None:
        run = self.scheduler.jobs.get(job_id)
        if run is None or run.state != JobState.RUNNING or run.worker_id != worker_id or run.attempt != attempt:
            return   # no longer its job: the worker will be told (or has been) to stop it
        self._scripts_sent.pop(worker_id, None)
        self._dispatch(Dispatch(worker_id, job_id, attempt))
