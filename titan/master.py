"""`python -m titan.master`: binds the four sockets, runs one poll loop, feeds the scheduler, sends effects.

The loop only moves bytes: every decision is made by titan.core.scheduler.Scheduler.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
import traceback
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

import zmq

from titan import defaults
from titan.core.effects import Dispatch, Note, Publish, StopJob
from titan.core.errors import TitanError
from titan.core.logs import JobLogs
from titan.core.scheduler import Scheduler
from titan.core.store import Store
from titan.net import protocol
from titan.net.protocol import ProtocolError

log = logging.getLogger("titan.master")

# How many messages one socket may hand the loop per turn, so one busy peer cannot starve the others.
BATCH_PER_SOCKET = 256


@dataclass
class MasterConfig:
    host: str = defaults.DEFAULT_BIND_HOST
    port: int = defaults.DEFAULT_PORT
    data_dir: Optional[str] = None
    max_message_bytes: int = defaults.MAX_MESSAGE_BYTES
    heartbeat_interval: float = defaults.HEARTBEAT_INTERVAL_S
    worker_dead_after: float = defaults.WORKER_DEAD_AFTER_S


class ReplyCache:
    """Recent replies by request id, so a retried request gets the first answer instead of a second action."""

    def __init__(self, size: int = defaults.REPLY_CACHE_SIZE):
        self.size = size
        self._replies: "OrderedDict[str, bytes]" = OrderedDict()

    def get(self, rid: str) -> Optional[bytes]:
        return self._replies.get(rid)

    def put(self, rid: str, reply: bytes) -> None:
        self._replies[rid] = reply
        if len(self._replies) > self.size:
            self._replies.popitem(last=False)


class Master:
    def __init__(self, config: MasterConfig):
        self.config = config
        self.scheduler = Scheduler(worker_dead_after=config.worker_dead_after)
        self.store = Store()
        self.logs = JobLogs()
        self.client_replies = ReplyCache()
        self.store_replies = ReplyCache()
        self.run_id = uuid.uuid4().hex[:12]
        self.event_seq = 0
        self.started_at = time.time()
        self._running = False
        self.ctx = zmq.Context()
        self.ctx.linger = 0
        self.clients = self._bind(zmq.ROUTER, defaults.CLIENT_PORT_OFFSET)
        self.workers = self._bind(zmq.ROUTER, defaults.WORKER_PORT_OFFSET)
        self.workers.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.events = self._bind(zmq.XPUB, defaults.EVENTS_PORT_OFFSET, options={
            zmq.XPUB_WELCOME_MSG: protocol.EVENTS_WELCOME})
        self.store_socket = self._bind(zmq.REP, defaults.STORE_PORT_OFFSET)

    def _bind(self, kind: int, offset: int, options: Optional[dict] = None) -> zmq.Socket:
        socket = self.ctx.socket(kind)
        for option, value in (options or {}).items():
            socket.setsockopt(option, value)
        # Messages over the limit get an error reply; only absurd ones (16x) make libzmq drop the peer
        # unanswered, so one bad sender cannot make the master buffer gigabytes.
        socket.setsockopt(zmq.MAXMSGSIZE, self.config.max_message_bytes * 16 + 1024)
        socket.bind(f"tcp://{self.config.host}:{defaults.port_for(self.config.port, offset)}")
        return socket

    def describe_endpoints(self) -> str:
        host, port = self.config.host, self.config.port
        # The SQLite journal is the reliability issue's work; until it lands, say plainly what we keep.
        durability = "state in memory only"
        if self.config.data_dir:
            durability += f" (--data-dir {self.config.data_dir} noted; the durable journal is not built yet)"
        return (f"Titan master listening on {host}: clients {port}, workers {port + 1}, "
                f"events {port + 2}, store {port + 3}; {durability}")

    # ----------------------------------------------------------------- the loop

    def serve_forever(self) -> None:
        poller = zmq.Poller()
        handlers = {self.clients: self._on_client, self.workers: self._on_worker,
                    self.store_socket: self._on_store, self.events: self._on_subscription}
        for socket in handlers:
            poller.register(socket, zmq.POLLIN)
        self._running = True
        while self._running:
            ready = dict(poller.poll(self._poll_timeout_ms()))
            for socket, handler in handlers.items():
                if socket in ready:
                    self._drain(socket, handler)
            self._apply(self.scheduler.tick(time.monotonic()))

    def stop(self) -> None:
        self._running = False

    def close(self) -> None:
        self.ctx.destroy(linger=0)

    def _poll_timeout_ms(self) -> int:
        timeout = min(defaults.POLL_INTERVAL_S, self.config.heartbeat_interval)
        deadline = self.scheduler.next_deadline()
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - time.monotonic()))
        return int(timeout * 1000)

    def _drain(self, socket: zmq.Socket, handler) -> None:
        for _ in range(BATCH_PER_SOCKET):
            try:
                frames = socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                handler(frames)
            except Exception:  # the master never dies from a message; the operator sees why
                log.error("internal error while handling a message:\n%s", traceback.format_exc())

    # ----------------------------------------------------------------- clients (ROUTER, port P)

    def _on_subscription(self, frames: list) -> None:
        """The event socket is an XPUB only so it can welcome subscribers; their (un)subscriptions
        need no action."""

    def _on_client(self, frames: list) -> None:
        identity, body = frames[0], frames[1:]
        reply = self._answer(body, protocol.CLIENT_OPS, self._client_request, self.client_replies)
        self.clients.send_multipart([identity, reply])

    def _on_store(self, frames: list) -> None:
        self.store_socket.send(self._answer(frames, protocol.STORE_OPS, self._store_request, self.store_replies))

    def _answer(self, body: list, ops: dict, act, replies: ReplyCache) -> bytes:
        """Decode, act once per request id, and return the encoded reply (an error reply for bad input)."""
        rid = None
        try:
            if len(body) != 1:
                raise ProtocolError(f"expected a single-frame request, got {len(body)} frames")
            op, message = protocol.decode(body[0], ops, self.config.max_message_bytes, needs_rid=True)
            rid = message["rid"]
            cached = replies.get(rid)
            if cached is not None:
                return cached
            reply = protocol.encode(protocol.ok_reply(rid, act(op, message)))
        except (ProtocolError, TitanError) as exc:
            rid = rid or getattr(exc, "rid", None)
            kind = getattr(exc, "kind", type(exc).__name__)
            details = getattr(exc, "details", None)
            log.info("refused a request: %s", exc)
            return protocol.encode(protocol.error_reply(rid, kind, str(exc), details))
        except Exception as exc:
            log.error("internal error answering a request:\n%s", traceback.format_exc())
            return protocol.encode(protocol.error_reply(rid, "InternalError", f"master error: {exc!r}"))
        replies.put(rid, reply)
        return reply

    def _client_request(self, op: str, message: dict):
        now = time.monotonic()
        if op == "ping":
            return {"run_id": self.run_id, "seq": self.event_seq}
        if op == "submit":
            return self._submit(message.get("dag"), message["jobs"], now)
        if op == "status":
            return self.scheduler.describe_job(self._job_id(message["job_id"]))
        if op == "states":
            return self._states(message["job_ids"])
        if op == "dag_status":
            return self.scheduler.describe_dag(message["dag"])
        if op == "logs":
            job_id = self._job_id(message["job_id"])
            self.scheduler.job(job_id)
            return self.logs.text(job_id)
        if op == "cancel":
            self._apply(self.scheduler.cancel(self._job_id(message["job_id"]), now))
            return self.scheduler.describe_job(self._job_id(message["job_id"]))
        if op == "cancel_dag":
            self._apply(self.scheduler.cancel_dag(message["dag"], now))
            return self.scheduler.describe_dag(message["dag"])
        if op == "stats":
            return {**self.scheduler.stats(), "run_id": self.run_id, "seq": self.event_seq,
                    "uptime_s": round(time.time() - self.started_at, 3), "store_keys": len(self.store)}
        raise ProtocolError(f"unhandled op {op!r}")

    def _states(self, job_ids: list) -> dict:
        jobs = self.scheduler.jobs
        return {job_id: jobs[self._job_id(job_id)].state.value if self._job_id(job_id) in jobs else None
                for job_id in job_ids if isinstance(job_id, str)}

    def _job_id(self, requested: str) -> str:
        """The original SDK sometimes spelled ids 'DAG-<id>'; accept that unless a job has that very id."""
        if requested.startswith("DAG-") and requested not in self.scheduler.jobs:
            return requested[4:]
        return requested

    def _submit(self, dag: Optional[str], raw_jobs: list, now: float) -> dict:
        specs = [protocol.job_from_wire(raw, i) for i, raw in enumerate(raw_jobs)]
        effects = self.scheduler.submit(dag, specs, now)
        for spec in specs:
            self.logs.reset(spec.job_id)
        self._apply(effects)
        return {"dag": dag, "jobs": [spec.job_id for spec in specs]}

    def _store_request(self, op: str, message: dict):
        key = message.get("key")
        if op == "put":
            return self.store.put(key, message["value"])
        if op == "get":
            return self.store.get(key)
        if op == "delete":
            return self.store.delete(key)
        if op == "incr":
            by = message.get("by")
            return self.store.incr(key, 1 if by is None else by)
        if op == "sadd":
            return self.store.sadd(key, message["member"])
        if op == "smembers":
            return self.store.smembers(key)
        if op == "keys":
            return self.store.keys(message.get("prefix") or "")
        raise ProtocolError(f"unhandled store op {op!r}")

    # ----------------------------------------------------------------- workers (ROUTER, port P+1)

    def _on_worker(self, frames: list) -> None:
        identity = frames[0]
        worker_id = identity.hex()
        try:
            if len(frames) != 2:
                raise ProtocolError(f"expected a single-frame message, got {len(frames) - 1} frames")
            op, message = protocol.decode(frames[1], protocol.WORKER_OPS, self.config.max_message_bytes)
        except ProtocolError as exc:
            log.warning("dropped a malformed message from worker connection %s: %s", worker_id, exc)
            return
        now = time.monotonic()
        if op == "register":
            self._register_worker(worker_id, message, now)
        elif not self.scheduler.worker_seen(worker_id, now):
            self._send_worker(worker_id, {"op": "reregister", "reason": "this master does not know you"})
        elif op == "heartbeat":
            self._send_worker(worker_id, {"op": "heartbeat"})
        elif op == "log":
            self._record_log(message)
        elif op == "finished":
            self._apply(self.scheduler.job_finished(worker_id, message["job_id"], message["attempt"],
                                                    message["exit_code"], now))
        elif op == "bye":
            self._apply(self.scheduler.worker_left(worker_id, "it shut down", now))

    def _register_worker(self, worker_id: str, message: dict, now: float) -> None:
        if message["slots"] < 1:
            log.warning("refused worker %r: it offers %d slots", message["name"], message["slots"])
            return
        capabilities = [c for c in message["capabilities"] if isinstance(c, str) and c]
        info = message.get("info") or {}
        effects = self.scheduler.worker_joined(worker_id, message["name"], capabilities,
                                               message["slots"], info, now)
        log.info("worker %s joined with %s, %d slots", message["name"], capabilities, message["slots"])
        self._send_worker(worker_id, {"op": "welcome"})
        self._apply(effects)

    def _record_log(self, message: dict) -> None:
        run = self.scheduler.jobs.get(message["job_id"])
        if run is None or run.attempt != message["attempt"]:
            return
        text = message["data"].decode("utf-8", errors="replace")
        self.logs.append(run.job_id, message["attempt"], message["stream"], text)

    def _send_worker(self, worker_id: str, message: dict) -> bool:
        try:
            self.workers.send_multipart([bytes.fromhex(worker_id), protocol.encode(message)], zmq.NOBLOCK)
            return True
        except zmq.ZMQError as exc:  # EHOSTUNREACH (gone) or EAGAIN (not reading): either way, not ours now
            log.warning("worker %s unreachable (%s)", worker_id, exc.strerror)
            self._apply(self.scheduler.worker_left(worker_id, f"unreachable: {exc.strerror}", time.monotonic()))
            return False

    # ----------------------------------------------------------------- effects

    def _apply(self, effects: list) -> None:
        for effect in effects:
            if isinstance(effect, Publish):
                self._publish(effect.topic, effect.body)
            elif isinstance(effect, Dispatch):
                self._dispatch(effect)
            elif isinstance(effect, StopJob):
                self._send_worker(effect.worker_id, {"op": "stop", "job_id": effect.job_id,
                                                     "attempt": effect.attempt, "reason": "cancelled"})
            elif isinstance(effect, Note):
                log.warning(effect.message)

    def _dispatch(self, effect: Dispatch) -> None:
        run = self.scheduler.jobs[effect.job_id]
        self._send_worker(effect.worker_id, {"op": "dispatch", "job": protocol.job_to_wire(run.spec),
                                             "attempt": effect.attempt, "dag": run.dag})

    def _publish(self, topic: str, body: dict) -> None:
        self.event_seq += 1
        event = {**body, "topic": topic, "seq": self.event_seq, "run_id": self.run_id, "ts": time.time()}
        self.events.send_multipart(protocol.encode_event(topic, event))




def parse_args(argv=None) -> MasterConfig:
    parser = argparse.ArgumentParser(prog="python -m titan.master", description="Run a Titan master.")
    parser.add_argument("--host", default=defaults.DEFAULT_BIND_HOST, help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=defaults.DEFAULT_PORT,
                        help="base port: clients P, workers P+1, events P+2, store P+3 (default %(default)s)")
    parser.add_argument("--data-dir", default=None, help="directory for the durable journal")
    parser.add_argument("--max-message-bytes", type=int, default=defaults.MAX_MESSAGE_BYTES)
    parser.add_argument("--heartbeat-interval", type=float, default=defaults.HEARTBEAT_INTERVAL_S)
    parser.add_argument("--worker-dead-after", type=float, default=defaults.WORKER_DEAD_AFTER_S,
                        help="seconds of silence after which a worker is declared dead")
    args = parser.parse_args(argv)
    return MasterConfig(host=args.host, port=args.port, data_dir=args.data_dir,
                        max_message_bytes=args.max_message_bytes, heartbeat_interval=args.heartbeat_interval,
                        worker_dead_after=args.worker_dead_after)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s master %(levelname)s %(message)s")
    config = parse_args(argv)
    try:
        master = Master(config)
    except zmq.ZMQError as exc:
        print(f"titan master: cannot bind {config.host}:{config.port}-{config.port + 3}: {exc}", file=sys.stderr)
        return 1
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: master.stop())
    print(master.describe_endpoints(), flush=True)
    try:
        master.serve_forever()
    finally:
        master.close()
    print("Titan master stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
