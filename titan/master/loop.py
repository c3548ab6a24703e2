"""The master: binds the four sockets, runs one poll loop, feeds the scheduler, sends effects.

The loop only moves bytes: every decision is made by titan.core.scheduler.Scheduler. Each turn reads
what arrived, lets the scheduler act, commits what changed to the journal (one transaction), and only
then sends replies, dispatches and events, so nothing said to the outside world can be lost in a crash.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Dict, List, Optional

import zmq

from titan import defaults
from titan.core.effects import Admitted, Dispatch, Forgotten, Note, Publish, StopJob
from titan.core.errors import JournalUnavailable, TitanError
from titan.core.jobs import JobState
from titan.core.limits import RateLimiter
from titan.core.logs import JobLogs
from titan.core.scheduler import Scheduler
from titan.core.store import Store
from titan.master.deployed_scripts import DeployedScripts
from titan.master.artifacts import open_artifacts
from titan.master.cleaning import Cleaning
from titan.master.collector import Collector
from titan.master.committer import Committer
from titan.master.config import MasterConfig
from titan.master.gatekeeper import Gatekeeper
from titan.master.intake import DEFERRED, Intake
from titan.master.metrics_port import MetricsPort
from titan.master.publishing import Publishing
from titan.master.journal import (BUSY_COMPACT_BATCH, BUSY_COMPACT_EVERY_S, COMPACT_BATCH, FOLD_EVERY_TURN_ABOVE,
                                  open_journal)
from titan.master.replies import ReplyCache
from titan.master.requests import RequestHandlers
from titan.master.workforce import TO_WORKER, Workforce
from titan.net import protocol
from titan.net.protocol import ProtocolError

log = logging.getLogger("titan.master")

WORKER_GONE_TOPICS = frozenset({"worker.left", "worker.dead"})
DAG_RUN_TOPICS = frozenset({"dag.submitted", "dag.finished"})   # a DAG run began or ended: journal it
# How many messages one socket may hand the loop per turn (and for how long: defaults.DRAIN_SLICE_S), so
# one busy peer cannot starve the others.
BATCH_PER_SOCKET = 256


class Master(RequestHandlers, Intake, Workforce, Cleaning, Publishing):
    def __init__(self, config: MasterConfig, epoch: Optional[int] = None):
        """`epoch`: with a PostgreSQL journal, the lease this master took (see lease.py)."""
        self.config = config
        self.scheduler = Scheduler(worker_dead_after=config.worker_dead_after, retry_backoff=config.retry_backoff,
                                   retry_backoff_max=config.retry_backoff_max,
                                   max_worker_losses=config.max_worker_losses)
        self.scheduler.wall_offset = time.time() - time.monotonic()
        self.scheduler.decision_made_early = self._decision_made_early
        self.store = Store(config.limits.store_value_bytes, config.limits.store_keys)
        self.deployed_scripts = DeployedScripts()
        self.logs = JobLogs(config.limits.log_bytes)
        self.limits = config.limits
        self.submit_rate = RateLimiter(config.limits.submits_per_second, "submissions",
                                       "--max-submits-per-second")
        self._scripts: dict = {}          # one copy of each distinct script, shared by its jobs
        self._script_digests: Dict[bytes, str] = {}
        self._scripts_sent: Dict[str, set] = {}   # worker id -> digests of the scripts it has been sent
        self._held_results: Dict[str, set] = {}   # worker id -> RUNNING jobs its last heartbeat said ended
        self.replies = {"client": ReplyCache(), "store": ReplyCache()}
        self.run_id = uuid.uuid4().hex[:12]
        self.started_at = time.time()
        self._running = False
        self._outbox: List[tuple] = []    # (socket, frames) held until the journal has committed
        self._last_fold = float("-inf")   # when the journal last folded state changes (monotonic)
        self._last_tick = time.monotonic()  # when the scheduler last acted on time (see _tick)
        self._commits_seen = 0            # the journal's commit count when _fold_journal last looked
        self._to_workers: Dict[str, List[dict]] = {}   # worker id -> this turn's messages, sent as one frame
        self.journal = open_journal(config.data_dir, config.journal, epoch, config.limits.log_bytes) \
            if config.data_dir or config.journal else None
        self.committer = Committer(self.journal)
        self.artifacts = open_artifacts(config.data_dir, self.journal)
        self.leadership: Optional[dict] = None   # who leads a shared journal (stats); refreshed each renewal
        self._last_renewal = float("-inf")
        self.dag_agent_run: Dict[str, str] = {}
        self.guard = Gatekeeper(config.keys) if config.keys else None
        self.collector: Optional[Collector] = None   # the process's garbage collection policy, set by serve()
        self._init_cleaning()
        self._init_intake()
        self._init_publishing()
        self.ctx = zmq.Context()
        self.ctx.linger = 0
        if self.guard is not None:
            self.guard.start(self.ctx)
        self.metrics_port: Optional[MetricsPort] = None
        try:
            self._bind_sockets()
            if config.metrics_port is not None:
                self.metrics_port = MetricsPort(config.metrics_host, config.metrics_port)
        except (zmq.ZMQError, OSError):   # e.g. a port in use: leave no temporary artifact folder behind
            self.close()
            raise
        self.recovered = self._recover() if self.journal else None
        self.committer.last_written = time.monotonic()

    def _bind_sockets(self) -> None:
        # A client that reconnects under its own identity (the SDK's, see _reply_scope) takes it over.
        self.clients = self._bind(zmq.ROUTER, defaults.CLIENT_PORT_OFFSET, "clients", {zmq.ROUTER_HANDOVER: 1})
        self.workers = self._bind(zmq.ROUTER, defaults.WORKER_PORT_OFFSET, "workers",
                                  {zmq.ROUTER_MANDATORY: 1, zmq.RCVHWM: defaults.MASTER_RECEIVE_HWM_FRAMES})
        self.events = self._bind(zmq.XPUB, defaults.EVENTS_PORT_OFFSET, "events", self._event_socket_options())
        # A ROUTER, not a REP, so store replies can wait for the turn's commit; REQ clients work unchanged.
        self.store_socket = self._bind(zmq.ROUTER, defaults.STORE_PORT_OFFSET, "store", {zmq.ROUTER_HANDOVER: 1})

    def _bind(self, kind: int, offset: int, domain: str, options: Optional[dict] = None) -> zmq.Socket:
        socket = self.ctx.socket(kind)
        if self.guard is not None:
            self.guard.secure(socket, domain)
        # Messages over the limit get an error reply; only absurd ones (16x) make libzmq drop the peer
        # unanswered, so one bad sender cannot make the master buffer gigabytes.
        socket.setsockopt(zmq.MAXMSGSIZE, self.config.max_message_bytes * 16 + 1024)
        for option, value in (options or {}).items():
            socket.setsockopt(option, value)
        socket.bind(f"tcp://{self.config.host}:{defaults.port_for(self.config.port, offset)}")
        return socket

    def describe_endpoints(self) -> str:
        host, port = self.config.host, self.config.port
        if self.journal is None:
            durability = "state in memory only (no --data-dir: a restart forgets every job)"
        else:
            durability = f"journal {self.journal.path}" + (f" ({self.recovered})" if self.recovered else "")
        access = (f"CURVE keys from {self.config.keys}" if self.guard is not None
                  else "no keys: unauthenticated and unencrypted")
        metrics = "" if self.metrics_port is None else \
            f"; metrics at http://{self.config.metrics_host}:{self.metrics_port.port}/metrics"
        return (f"Titan master listening on {host}: clients {port}, workers {port + 1}, "
                f"events {port + 2}, store {port + 3}; {durability}; {access}{metrics}")

    def _recover(self) -> str:
        recovered = self.journal.load()
        self.store.restore(recovered.store)
        self.deployed_scripts.restore(recovered.deployed_scripts)
        for run in [*recovered.runs, *recovered.past_runs]:   # a past run pins the archive it ran from
            self._run_kept(run)
        for job_id, attempt, stream, text in recovered.logs:
            self.logs.append(job_id, attempt, stream, text)
        self.dag_agent_run.update(recovered.agent_runs)
        self._apply(self.scheduler.restore(recovered.runs, recovered.dags, time.monotonic(),
                                           recovered.past_runs, recovered.dag_runs))
        for channel, replies in recovered.replies.items():   # after the runs they name are known again
            for rid, reply in replies:
                self.replies[channel].put(rid, reply, self._runs_named(protocol.decode_reply(reply).get("result")))
        if self.guard is not None:   # jobs still running keep their keys across the restart
            for run in recovered.runs:
                if run.state == JobState.RUNNING:
                    self.guard.job_key(run.job_id, run.seq, run.attempt)
        unfinished = sum(1 for run in recovered.runs if not run.state.is_final)
        return (f"recovered {len(recovered.runs)} jobs, {unfinished} unfinished, "
                f"{len(recovered.store)} store keys")

    # ----------------------------------------------------------------- the loop

    def serve_forever(self) -> None:
        poller = zmq.Poller()
        # Subscriptions first: a subscriber confirmed by the welcome message must get what follows.
        handlers = {self.events: self._on_subscription, self.clients: self._on_client,
                    self.workers: self._on_worker, self.store_socket: self._on_store}
        for socket in handlers:
            poller.register(socket, zmq.POLLIN)
        self._running = True
        if self.metrics_port is not None:
            self.metrics_port.start()
        self._end_turn()   # what recovery decided (re-queues, cancellations) goes out first
        while self._running:
            ready = dict(poller.poll(self._poll_timeout_ms()))
            self._keep_lease()   # first: a master paused past its lease must learn it before it says anything
            began = time.perf_counter()
            self._fold_journal(idle=not ready)
            for socket, handler in handlers.items():
                if socket in ready:
                    self._drain(socket, handler)
            self._take_in()
            self._tick()
            self._clean()
            if self.metrics_port is not None:
                self.metrics_port.renew(lambda: self._client_request("stats", {}))
            if self.guard is not None:
                self._drop_revoked_workers(time.monotonic())
                self._check_subscribers_keys(time.monotonic())
            self._end_turn()
            if self.collector is not None:   # after the turn's sends: its pause delays no answer
                busy = (bool(ready) or self._cleaned or self._admitted_large or self._intake_waiting()
                        or self._cleaning_behind())
                self.collector.after_turn(time.monotonic(), idle=not busy, admitted=self._admitted_large)
            self._timed_turn(began)

    def stop(self) -> None:
        self._running = False

    def _keep_lease(self) -> None:
        """Renew the lease on a shared journal about every LEASE_RENEW_S (Deposed if it was lost), and
        note who leads and who waits, for stats."""
        now = time.monotonic()
        if not self.config.journal or now - self._last_renewal < defaults.LEASE_RENEW_S:
            return
        self._last_renewal = now
        if self.committer.renew(now):
            try:
                self.leadership = self.journal.leadership()
            except Exception as exc:   # only for stats: the next renewal reads it again
                log.warning("could not read who leads the journal: %s", exc)

    def _may_speak(self) -> bool:
        """False once a master on a shared journal has not renewed its lease for --lease-timeout: another
        may lead by now, so it answers nothing (not even heartbeats) until it has renewed the lease."""
        return (not self.config.journal or self.committer.failure is None
                or time.monotonic() - self.committer.last_written <= self.config.lease_timeout)

    def _tick(self) -> None:
        """Let the scheduler act on time; first excuse the workers for any time the master itself lost
        (its heartbeats waited unread), so a paused master does not declare live workers dead."""
        now = time.monotonic()
        self.scheduler.wall_offset = time.time() - now   # follows the wall clock if it is set
        stalled = now - self._last_tick
        if stalled > defaults.MASTER_STALL_S:
            log.warning("the master did not look at its clock for %.1fs (paused or overloaded); "
                        "that time is not counted against its workers' heartbeats", stalled)
            self.scheduler.master_stalled(stalled, now)
        self._last_tick = now
        self._apply(self.scheduler.tick(now))

    def close(self) -> None:
        self.gc_pauses.remove()
        if self.metrics_port is not None:
            self.metrics_port.stop()
        if self.journal is not None:
            self.journal.close()
        self.artifacts.close()
        if self.guard is not None:
            self.guard.stop()
        self.ctx.destroy(linger=0)

    def _fold_journal(self, idle: bool) -> None:
        """Fold the journal's state changes now rather than at the next restart: a batch when idle, and a
        small one at most every second in a quiet turn, one after a turn that committed nothing
        (heartbeats and dashboards can keep a master from ever being idle); a small one every turn once
        the backlog nears the point where each commit would fold a large batch itself."""
        if self.journal is None or not self.journal.backlog or self.committer.failure is not None:
            return
        quiet, self._commits_seen = self.journal.commits == self._commits_seen, self.journal.commits
        now = time.monotonic()
        if idle:
            self.committer.compact(COMPACT_BATCH, now)
        elif self.journal.backlog > FOLD_EVERY_TURN_ABOVE or (quiet and now - self._last_fold >= BUSY_COMPACT_EVERY_S):
            self.committer.compact(BUSY_COMPACT_BATCH, now)
        else:
            return
        self._last_fold = now

    def _poll_timeout_ms(self) -> int:
        if self._intake_waiting() or self._cleaning_behind():   # the next slice: only a look at the sockets first
            return 0
        timeout = min(defaults.POLL_INTERVAL_S, self.config.heartbeat_interval)
        deadline = self.scheduler.next_deadline()
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - time.monotonic()))
        return int(timeout * 1000)

    def _drain(self, socket: zmq.Socket, handler) -> None:
        """Handle what waits on `socket`, for at most DRAIN_SLICE_S: the rest waits for the next turn, which
        comes at once (poll finds the socket still readable), so no turn grows with the backlog."""
        deadline = time.perf_counter() + defaults.DRAIN_SLICE_S
        for _ in range(BATCH_PER_SOCKET):
            if time.perf_counter() >= deadline:
                return
            try:
                frames, user = self._receive(socket)
            except zmq.Again:
                return
            try:
                handler(frames, user)
            except Exception:  # the master never dies from a message; the operator sees why
                log.exception("internal error while handling a message")

    def _receive(self, socket: zmq.Socket) -> tuple:
        """The frames of one message, and with keys, who sent it ("client:NAME", "worker:NAME"), which the
        authenticator attached to the connection (only readable from a zmq.Frame, hence copy=False)."""
        if self.guard is None:
            return socket.recv_multipart(zmq.NOBLOCK), None
        frames = socket.recv_multipart(zmq.NOBLOCK, copy=False)
        try:
            user = frames[-1].get("User-Id")
        except zmq.ZMQError:   # no connection metadata: the XPUB's unsubscriptions for a closed connection
            user = None
        return [frame.bytes for frame in frames], user

    def _end_turn(self) -> None:
        """Commit what this turn changed, then say it. Sending can fail (a vanished worker) and cause
        more changes, so repeat until nothing is left."""
        while self._take_changes() or self._outbox or self._to_workers:
            if not self.committer.commit(time.monotonic()):
                self._send_liveness_only()
                return   # said once the journal can be written again
            outbox, self._outbox = self._outbox, []
            to_workers, self._to_workers = self._to_workers, {}
            # Workers first: their next jobs should not wait behind the turn's events (one send each).
            for worker_id, messages in to_workers.items():
                self._send_now(self.workers, [bytes.fromhex(worker_id), protocol.encode_batch(messages)])
            for socket, frames in outbox:
                self._send_now(socket, frames)

    def _send_liveness_only(self) -> None:
        """While the journal cannot be written, workers still get their heartbeat replies (they promise
        nothing), so they do not take the master for dead; everything else waits for the commit."""
        if not self._may_speak():
            return
        for worker_id, messages in list(self._to_workers.items()):
            beats = [m for m in messages if m["op"] == "heartbeat"]
            if beats:
                self._to_workers[worker_id] = [m for m in messages if m["op"] != "heartbeat"]
                if not self._to_workers[worker_id]:
                    del self._to_workers[worker_id]
                self._send_now(self.workers, [bytes.fromhex(worker_id), protocol.encode_batch(beats[:1])])

    def _take_changes(self) -> bool:
        """Hand the runs the scheduler changed to the journal; True if it has anything to commit."""
        changed = self.scheduler.take_changed_runs()
        if self.guard is not None:
            self._end_revoked_subscriptions(self.guard.forget_ended(changed.values()))
        if self.journal is None:
            return False
        self.journal.record_states(changed)
        return self.journal.has_pending

    def _send_now(self, socket: zmq.Socket, frames: list) -> None:
        if socket is not self.workers:
            socket.send_multipart(frames)
            return
        try:
            socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # EHOSTUNREACH (gone) or EAGAIN (not reading): either way, not ours now
            worker_id = frames[0].hex()
            log.warning("worker %s unreachable (%s)", worker_id, exc.strerror)
            self._apply(self.scheduler.worker_left(worker_id, f"unreachable: {exc.strerror}", time.monotonic(),
                                                   lost=True))

    # ----------------------------------------------------------------- requests (clients P, store P+3)

    def _on_client(self, frames: list, user: Optional[str]) -> None:
        self._drain(self.events, self._on_subscription)   # a request may follow a subscription closely
        identity, body = frames[0], frames[1:]
        reply = self._answer(body, protocol.CLIENT_OPS, self._client_request, "client", user or identity,
                             _reply_scope(user, identity), (self.clients, [identity]))
        self._reply(self.clients, [identity], reply)

    def _on_store(self, frames: list, user: Optional[str]) -> None:
        # REQ peers put an empty delimiter before the request; answer in the shape that was asked.
        identity, body = frames[0], frames[1:]
        envelope = [b""] if body and body[0] == b"" else []
        reply = self._answer(body[len(envelope):], protocol.STORE_OPS, self._store_request, "store",
                             user or identity, _reply_scope(user, identity))
        self._reply(self.store_socket, [identity, *envelope], reply)

    def _reply(self, socket: zmq.Socket, envelope: list, reply: Optional[bytes]) -> None:
        """A reply goes out after the turn's commit; while the journal cannot be written, a read or a
        refusal (which promise nothing) goes out at once, and None (a repeat of a change not yet
        written) gets no answer until the change is written."""
        if reply is None:
            return
        if self.committer.failure is None:
            self._outbox.append((socket, [*envelope, reply]))
        elif self._may_speak():
            self._send_now(socket, [*envelope, reply])

    def _answer(self, body: list, ops: dict, act, channel: str, sender, scope: str,
                reply_to: Optional[tuple] = None) -> Optional[bytes]:
        """Decode, check the sender may ask it, act (a change at most once per request id of one client:
        `scope`), and return the encoded reply; bad input gets an error reply. `sender` is the key's user
        with keys, else the connection's identity; `reply_to` (socket, envelope) lets an answer come in a
        later turn (a large submission, titan/master/intake.py): None is returned now."""
        rid = None
        replies = self.replies[channel]
        try:
            if len(body) != 1:
                raise ProtocolError(f"expected a single-frame request, got {len(body)} frames")
            op, message = protocol.decode(body[0], ops, self.config.max_message_bytes, needs_rid=True)
            rid = message["rid"]
            changes_state = op in protocol.CHANGING_OPS
            cached = replies.get(f"{scope}/{rid}") if changes_state else None
            if cached is not None:
                return None if self.committer.failure is not None else cached
            if changes_state and self.committer.failure is not None:
                raise JournalUnavailable(f"the master cannot write its journal ({self.committer.failure}); "
                                         "it refuses changes until it can, and did not do this one. "
                                         f"{self.journal.remedy}; reads still work.")
            self._check_allowed(op, message, sender)
            self._asking = None if reply_to is None else (*reply_to, f"{scope}/{rid}", rid)
            try:
                result = act(op, message)
            finally:
                self._asking = None
            if result is DEFERRED:
                return None
            reply = protocol.encode(protocol.result_reply(ops, op, rid, result))
        except (ProtocolError, TitanError) as exc:
            rid = rid or getattr(exc, "rid", None)
            log.info("refused a request: %s", exc)
            return protocol.encode(protocol.error_reply(rid, exc.kind, str(exc), getattr(exc, "details", None)))
        except Exception as exc:
            log.exception("internal error answering a request")
            return protocol.encode(protocol.error_reply(rid, "InternalError", f"master error: {exc!r}"))
        if changes_state:   # a repeated read is simply answered again; only changes must not repeat
            self._remember_reply(channel, f"{scope}/{rid}", reply, result)
        return reply

    def _remember_reply(self, channel: str, key: str, reply: bytes, result) -> None:
        """The reply to a change, kept (with the runs it names) to answer a repeat of its request."""
        self.replies[channel].put(key, reply, self._runs_named(result))
        if self.journal is not None:
            self.journal.record_reply(channel, key, reply)

    def _check_allowed(self, op: str, message: dict, sender) -> None:
        """Raise AccessDenied or LimitExceeded unless this request may go ahead."""
        if self.guard is not None:
            self.guard.check_request(sender, self.scheduler.jobs)
        if op == "submit":   # with keys each job attempt has a key, so each counts on its own
            self.submit_rate.take(sender, time.monotonic())

    # ----------------------------------------------------------------- effects

    def _apply(self, effects: list) -> None:
        for effect in effects:
            if isinstance(effect, Publish):
                self._publish(effect.topic, effect.body)
                if effect.topic in WORKER_GONE_TOPICS:
                    self._scripts_sent.pop(effect.body["worker_id"], None)
                elif effect.topic in DAG_RUN_TOPICS:
                    self._journal_dag_run(effect.body["dag"])
            elif isinstance(effect, Dispatch):
                self._dispatch(effect)
            elif isinstance(effect, StopJob):
                self._send_worker(effect.worker_id, protocol.message(TO_WORKER, "stop", job_id=effect.job_id,
                                                                     attempt=effect.attempt, reason="cancelled"))
            elif isinstance(effect, Admitted):
                self._admit(effect)
            elif isinstance(effect, Note):
                log.warning(effect.message)
            elif isinstance(effect, Forgotten):
                self._let_go(effect)

    def _admit(self, effect: Admitted) -> None:
        self.logs.reset(effect.job_id)
        run = self.scheduler.jobs[effect.job_id]
        self._run_kept(run)
        if self.journal is not None:
            if effect.replaced_seq is not None:
                self.journal.record_past_run(self.scheduler.history.runs[effect.replaced_seq])
            self.journal.record_submission(run, effect.replaced_seq, self._script_digest(run.spec.script))



def _reply_scope(user: Optional[str], identity: bytes) -> str:
    """Whose request ids these are: two clients may pick the same id. The SDK names its connection (a
    random ZeroMQ identity kept across reconnects), so a retry after a master restart is still its own."""
    return f"{user or ''}|{identity.hex()}"
