"""TitanClient: submit jobs and DAGs, watch them, read their logs, and use TitanStore.

Every request carries a request id. If no answer comes within a retry interval the same request is
sent again; the master answers a repeated id from its reply cache, so nothing is ever submitted twice.
After the client's timeout the call raises MasterUnreachable naming the address that did not answer.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
import uuid
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Union

import zmq

from titan import defaults
from titan.core.errors import MasterUnreachable, UnknownJob, error_from_reply
from titan.core.jobs import FINAL_STATES
from titan.core.names import name_problem, shown_name
from titan.core.services import SERVICE_UP_TOPIC, reported_state
from titan.net import addresses, jobwire, protocol, security
from titan_sdk.files import FileTransfers
from titan_sdk.subscription import EventStream, Subscription
from titan_sdk.job import TitanJob, local_lookup_told
from titan_sdk.pipeline import Pipeline, load_pipeline

FINAL_STATE_NAMES = frozenset(state.value for state in FINAL_STATES)
# What get_job_status answers for an id the master does not know: the original's word for it.
UNKNOWN_JOB_STATUS = "NULL"
# wait() asks for a fresh snapshot this often even when no gap was seen: a lost last event shows no gap.
SNAPSHOT_EVERY_S = 1.0
FOLLOW_LOGS_POLL_S = 0.2


class _Channel:
    """One DEALER socket to one master socket, with request ids, retries and a deadline."""

    def __init__(self, ctx: zmq.Context, address: str, envelope: bool, ops: protocol.Table,
                 identity: Optional[security.Identity] = None):
        self.ctx, self.address, self.envelope, self.identity = ctx, address, envelope, identity
        self.ops = ops   # the catalogue's table of what may be asked here
        self.lock = threading.Lock()
        self.socket: Optional[zmq.Socket] = None
        self.poller: Optional[zmq.Poller] = None
        # Request ids: a random prefix per channel and a counter (uuid4 per request costs a syscall).
        self._rid_prefix, self._rid_numbers = uuid.uuid4().hex[:16], itertools.count()

    def request(self, message: dict, timeout: float, retry_every: float,
                on_no_answer: Optional[Callable[[float], None]] = None):
        rid = f"{self._rid_prefix}-{next(self._rid_numbers)}"
        payload = protocol.encode({**message, "rid": rid})
        frames = [b"", payload] if self.envelope else [payload]  # the store speaks REQ/REP framing
        started = time.monotonic()
        deadline = started + timeout
        with self.lock:
            socket = self._socket()
            while True:
                _send_when_connected(socket, frames, min(deadline, time.monotonic() + retry_every))
                reply = self._await(socket, rid, min(deadline, time.monotonic() + retry_every))
                if reply is not None:
                    return reply
                if time.monotonic() >= deadline:
                    raise MasterUnreachable(
                        f"Titan master at {self.address} did not answer {message['op']!r} within {timeout:g}s "
                        "(is it running? check TITAN_HOST/TITAN_PORT; a master with keys answers only trusted "
                        "keys: check TITAN_KEYS)", address=self.address)
                if on_no_answer is not None:
                    on_no_answer(time.monotonic() - started)

    def _await(self, socket: zmq.Socket, rid: str, until: float) -> Optional[dict]:
        while True:
            remaining = until - time.monotonic()
            if remaining <= 0 or not self.poller.poll(int(remaining * 1000) + 1):
                return None
            reply = protocol.decode_reply(socket.recv_multipart()[-1])
            if reply.get("rid") == rid:   # anything else is a late answer to an earlier attempt
                return reply

    def _socket(self) -> zmq.Socket:
        if self.socket is None:
            self.socket = self.ctx.socket(zmq.DEALER)
            self.socket.linger = 0
            # The master keeps replies per client connection: this name stays across its restarts.
            self.socket.setsockopt(zmq.IDENTITY, f"sdk-{self._rid_prefix}".encode())
            if self.identity is not None:
                self.identity.apply(self.socket)
            addresses.connect_all(self.socket, self.address)
            self.poller = zmq.Poller()
            self.poller.register(self.socket, zmq.POLLIN)
        return self.socket

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None


def _send_when_connected(socket: zmq.Socket, frames: list, until: float) -> None:
    """Send as soon as a connection takes it (with several master addresses, ZMQ_IMMEDIATE queues nothing
    until the leader's connection is up, which takes a moment after connect); none by `until` (no master
    yet; with keys, one that refuses ours): the caller waits as for a reply, then sends again."""
    while True:
        try:
            socket.send_multipart(frames, zmq.NOBLOCK)
            return
        except zmq.Again:
            remaining = until - time.monotonic()
            if remaining <= 0 or not socket.poll(int(remaining * 1000) + 1, zmq.POLLOUT):
                return


class TitanClient(FileTransfers):
    def __init__(self, host: Optional[str] = None, port: Optional[int] = None,
                 timeout: float = defaults.CLIENT_TIMEOUT_S, keys: Optional[str] = None):
        """`host` may name several masters sharing a journal, "h1,h2" or "h1:9090,h2:9090" (as may
        TITAN_HOST): the client follows whichever leads. `keys`: a client key bundle (titan keys add-client) or, on the master's machine, the key
        directory; default TITAN_KEYS. Inside a job, TITAN_KEYS names the job's own key, from the worker."""
        assigned = _assigned_original_settings()
        self.host = host or assigned.get("TITAN_HOST") or os.environ.get("TITAN_HOST") or defaults.DEFAULT_HOST
        self.port = int(port or assigned.get("TITAN_PORT") or os.environ.get("TITAN_PORT") or defaults.DEFAULT_PORT)
        self.timeout = timeout
        self.retry_every = min(defaults.CLIENT_RETRY_INTERVAL_S, timeout)
        self._identity = security.identity_from_environment(keys, security.CLIENT)
        self._ctx = zmq.Context()
        self._requests = _Channel(self._ctx, self._address(defaults.CLIENT_PORT_OFFSET), False, protocol.CLIENT_OPS,
                                  self._identity)
        self._store = _Channel(self._ctx, self._address(defaults.STORE_PORT_OFFSET), True, protocol.STORE_OPS,
                               self._identity)
        self._per_thread = threading.local()
        self._kept_subscriptions: List["Subscription"] = []
        self.event_gaps_healed = 0   # times wait() found events lost (too slow a reader) and re-snapshotted
        # Called with the seconds waited so far each retry interval the master leaves a request (or a
        # subscription) unanswered, before the timeout: lets a command say so instead of being silent.
        self.on_no_answer: Optional[Callable[[float], None]] = None

    def _address(self, offset: int) -> str:
        return addresses.endpoints(self.host, self.port, offset)

    def _call(self, channel: _Channel, op: str, **fields):
        reply = channel.request(protocol.request(channel.ops, op, **fields), self.timeout, self.retry_every,
                                self.on_no_answer)
        if not reply.get("ok"):
            raise error_from_reply(reply.get("error") or {})
        return reply.get("result")

    def _ask(self, op: str, **fields):
        return self._call(self._requests, op, **fields)

    # ----------------------------------------------------------------- submitting

    def submit_job(self, job: TitanJob) -> str:
        """Submit one job; returns its id. Its parents may be jobs submitted earlier."""
        with local_lookup_told([job]):
            self._ask("submit", dag=None, **jobwire.submission([job.to_spec()]))
        return job.job_id

    def submit_dag(self, name: str, jobs: Sequence[TitanJob], agent_run_id: Optional[str] = None) -> List[str]:
        """Submit a whole DAG, validated before anything is queued; returns its job ids, parents first.

        Parents may also be jobs already on the master, e.g. the running job that submits this DAG: the
        new jobs wait for them. `agent_run_id` groups DAGs into one agent run (see agent_run); inside a
        job it defaults to the run the job's own DAG was submitted under (TITAN_AGENT_RUN_ID).
        """
        if name and name_problem(name):   # the master takes "" as no DAG, as it does
            raise ValueError(f"DAG name {shown_name(name)} {name_problem(name)}")
        run_id = agent_run_id if agent_run_id is not None else (os.environ.get("TITAN_AGENT_RUN_ID") or None)
        with local_lookup_told(jobs):
            result = self._ask("submit", dag=name, **jobwire.submission([job.to_spec() for job in jobs]),
                               agent_run_id=run_id)
        return result["jobs"]

    def submit_yaml(self, yaml_path: str, agent_run_id: Optional[str] = None, wait: bool = False,
                    poll_interval: float = 2, timeout: Optional[float] = 300):
        """Submit a pipeline file (original Titan YAML format, see titan_sdk.pipeline); the original's
        arguments, in its order. With `project: true` the YAML's folder is uploaded first as a project
        archive (once per content).

        Returns the job ids; with wait=True, waits (for each job to end and each service to be up) and
        returns {job_id: final state} instead, or False if `timeout` seconds (None: no limit) pass first,
        as the original did. `poll_interval` is accepted for the original's scripts and not needed:
        waiting follows the master's events.
        """
        job_ids = self.submit_pipeline(load_pipeline(yaml_path), agent_run_id=agent_run_id)
        if not wait:
            return job_ids
        try:
            return self.wait(job_ids, timeout=timeout)
        except TimeoutError:
            return False

    def submit_pipeline(self, pipeline: Pipeline, agent_run_id: Optional[str] = None) -> List[str]:
        """Submit a loaded pipeline (titan_sdk.load_pipeline) as one DAG, uploading its project folder
        first when it has `project: true`; returns the job ids."""
        if pipeline.project_folder is not None:
            _, sha256 = self._upload_project(pipeline.project_folder, pipeline.archive_name)
            for job in pipeline.jobs:
                job.archive = sha256   # exactly this content, even if the name is re-uploaded meanwhile
        return self.submit_dag(pipeline.name, pipeline.jobs, agent_run_id=agent_run_id)

    def agent_run(self, run_id: str) -> dict:
        """The DAGs submitted under an agent run, oldest first: {"run_id", "finished", "dags": [{"dag",
        "finished", "jobs": [job info, ...]}, ...]}. UnknownAgentRun if none was."""
        return self._ask("agent_run", run_id=run_id)

    # ----------------------------------------------------------------- watching

    def get_job_status(self, job_id: str) -> str:
        """The job's state name: PENDING, QUEUED, RUNNING, COMPLETED, FAILED or CANCELLED; "NULL" for an id
        the master does not know, as the original answered (job_info and the rest raise UnknownJob). A
        service that is up is COMPLETED here (deployed, as the original said); job_info says RUNNING."""
        try:
            info = self._ask("status", job_id=job_id)
        except UnknownJob:
            return UNKNOWN_JOB_STATUS
        return reported_state(info["state"], info.get("service_up", False))

    def job_info(self, job_id: str) -> dict:
        """Everything the master knows of a job: state, attempt, worker, reason, exit code, ..., and its
        history: submitted_at, queued_at, started_at, ended_at (Unix seconds, None until reached),
        run_seconds, wait_seconds, attempts [{"attempt", "worker", "started_at", "ended_at", "exit_code",
        "reason"}, ...] and run (its DAG run, None for a lone job)."""
        return self._ask("status", job_id=job_id)

    def dag_status(self, name: str) -> dict:
        """The DAG's latest run: {"dag", "run", "finished", "jobs": [job info, ...]}."""
        return self._ask("dag_status", dag=name)

    def dag_runs(self, name: str, limit: int = 20) -> List[dict]:
        """The DAG's runs, newest first: [{"run", "dag", "submitted_at", "ended_at", "jobs", "outcome",
        "duration_s"}, ...]; outcome is RUNNING until the run ends."""
        return self._ask("dag_runs", dag=name, limit=limit)

    def list_jobs(self, state: Optional[str] = None, dag: Optional[str] = None, since: Optional[float] = None,
                  until: Optional[float] = None, worker: Optional[str] = None, limit: int = 100,
                  cursor: Optional[str] = None) -> dict:
        """Jobs' runs, newest first, filtered by state, DAG, submission time (Unix seconds: since <=
        submitted_at < until) and the worker of any attempt: {"jobs": [...], "next_cursor"}; pass
        next_cursor back for the next page (None: no more). Earlier runs of a re-submitted job are listed too."""
        fields = {"state": state, "dag": dag, "since": since, "until": until, "worker": worker, "cursor": cursor}
        return self._ask("list_jobs", limit=limit, **{k: v for k, v in fields.items() if v is not None})

    def fetch_logs(self, job_id: str) -> str:
        """The job's stdout and stderr so far, in the order they were written."""
        return self._ask("logs", job_id=job_id)

    def read_logs(self, job_id: str, since: int = 0) -> dict:
        """The output after the first `since` characters: {"text", "offset": pass it as `since` next time,
        "state": the job's; once it is final, there is no more text to come}. Attempts after the first
        start with a '--- attempt N ---' line."""
        return self._ask("logs", job_id=job_id, since=since)

    def follow_logs(self, job_id: str, poll: float = FOLLOW_LOGS_POLL_S) -> Iterator[str]:
        """The job's output as it is written, piece by piece; ends, all of it given, when the job ends."""
        offset = 0
        while True:
            reply = self.read_logs(job_id, offset)
            offset = reply["offset"]
            if reply["text"]:
                yield reply["text"]
            if reply["state"] in FINAL_STATE_NAMES:
                return
            time.sleep(poll)

    def forget(self, dag: Optional[str] = None, before: Optional[float] = None) -> dict:
        """Forget on request: every ended run of DAG `dag` now, or every job that ended before `before`
        (Unix seconds), a batch at a time from now on. {"forgotten": now, "to_forget": in batches}."""
        return self._ask("forget", **({"dag": dag} if dag is not None else {}),
                         **({"before": float(before)} if before is not None else {}))

    def stats(self, reset_peaks: bool = False) -> dict:
        """Workers, queues, job counts, and what the master keeps: jobs_kept, jobs_forgotten, journal_bytes,
        last_cleaning ({"at", "forgotten", "took_ms"} or None). With reset_peaks, turn_peaks (the longest
        loop turns) start again from this answer, for a benchmark that reports them per stretch of work."""
        return self._ask("stats", reset_peaks=True) if reset_peaks else self._ask("stats")

    def ping(self) -> dict:
        return self._ask("ping")

    def wait(self, job_ids: Union[str, Iterable[str]], timeout: Optional[float] = None,
             on_final: Optional[Callable[[str, str], None]] = None):
        """Block until the jobs end (a service: until it is up, reported COMPLETED as get_job_status does).
        Returns the final state (for one id) or {job_id: state}.

        Raises TimeoutError naming the jobs still running when `timeout` seconds pass. `on_final(job_id,
        state)` is called as each job ends (e.g. to show progress). A job the master has forgotten (see
        --keep-completed) gives the state it ended in while the master remembers it was forgotten (its
        last 10,000), else UnknownJob saying it may have been forgotten.
        """
        single = isinstance(job_ids, str)
        waiting = {job_ids} if single else set(job_ids)
        final = self._wait_for(waiting, timeout, on_final or (lambda job_id, state: None))
        return final[job_ids] if single else final

    def _wait_for(self, waiting: set, timeout: Optional[float], on_final) -> Dict[str, str]:
        """Subscribed before looking: drop what is queued, take a snapshot, then apply only the events
        newer than the snapshot. When the events' numbers show some were lost (a PUB socket drops them
        for a slow reader), take a fresh snapshot at once; and one every second anyway, in case the
        events lost were the last ones (no later event shows that gap)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        final: Dict[str, str] = {}
        events = self._final_states_subscription()
        events.drain()
        while waiting:
            floor = self._record_final(self._ask("states", job_ids=sorted(waiting)), waiting, final, on_final)
            if not waiting:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"still not finished after {timeout:g}s: {', '.join(sorted(waiting))}")
            until = time.monotonic() + SNAPSHOT_EVERY_S
            self._read_events(events, waiting, final, floor, min(until, deadline or until), on_final)
        return final

    def _final_states_subscription(self) -> "Subscription":
        """One live subscription per thread, kept between waits: subscribing costs a round trip."""
        subscription = getattr(self._per_thread, "final_states", None)
        if subscription is None:
            topics = [f"job.{state}" for state in sorted(FINAL_STATE_NAMES)] + [SERVICE_UP_TOPIC]
            subscription = self._per_thread.final_states = self._subscription(topics)
            self._kept_subscriptions.append(subscription)
        return subscription

    def _record_final(self, snapshot: dict, waiting: set, final: Dict[str, str], on_final) -> tuple:
        for job_id, state in snapshot["states"].items():
            if state is None:
                raise error_from_reply({"kind": "UnknownJob", "message": f"no job {job_id!r} on this master (never "
                                        "submitted, or ended and forgotten long ago: see --keep-completed)"})
            if state in FINAL_STATE_NAMES and job_id in waiting:
                _settle(job_id, state, waiting, final, on_final)
        return snapshot["run_id"], snapshot["seq"]

    def _read_events(self, events: "Subscription", waiting: set, final: Dict[str, str], floor: tuple,
                     until: float, on_final) -> None:
        """Apply events newer than the snapshot until `until` or until all have ended; return at once
        when events were lost, for a fresh snapshot (it covers the event that showed the gap)."""
        run_id, seq = floor
        while waiting:
            event = events.get(max(0.0, until - time.monotonic()))
            if event is None:
                return
            if events.take_gap() is not None:
                self.event_gaps_healed += 1
                return
            if event.get("run_id") != run_id or event.get("seq", 0) <= seq:
                continue   # already in the snapshot
            if event.get("job_id") not in waiting:
                continue
            if event.get("topic") == SERVICE_UP_TOPIC:
                _settle(event["job_id"], reported_state(event.get("state"), True), waiting, final, on_final)
            elif event.get("state") in FINAL_STATE_NAMES:
                _settle(event["job_id"], event["state"], waiting, final, on_final)

    def events(self, topics: Optional[Iterable[str]] = None, timeout: Optional[float] = None) -> "EventStream":
        """Events (all, or those whose topic starts with one of `topics`) as dicts, in order.

        The subscription starts when this is called, not at the first `next()`. With a timeout,
        iteration stops after that many seconds without an event. Close it (or use `with`) when done.
        With keys, iteration raises AccessDenied, naming the revocation, once the master stops honouring
        the key: inside a job, when its attempt ends; a client's, when its public key file is deleted.
        """
        return EventStream(self._subscription(list(topics or [""])), timeout)

    def _subscription(self, topics: List[str]) -> "Subscription":
        for topic in topics:   # the master drops a subscriber whose prefix is longer, unanswered
            if len(topic.encode()) > defaults.MAX_EVENT_PREFIX_BYTES:
                raise ValueError(f"event topic prefix {topic[:40]!r}... is over the "
                                 f"{defaults.MAX_EVENT_PREFIX_BYTES}-byte limit (topics are short, e.g. 'job.')")
        return Subscription(self._ctx, self._address(defaults.EVENTS_PORT_OFFSET), topics, self.timeout,
                             self._identity, self.on_no_answer)

    # ----------------------------------------------------------------- control

    def cancel(self, job_id: str) -> str:
        """Cancel a waiting or running job and its descendants; returns its state after."""
        return self._ask("cancel", job_id=job_id)["state"]

    def cancel_dag(self, name: str) -> dict:
        return self._ask("cancel_dag", dag=name)

    def retry(self, job_id: str) -> str:
        """Run a FAILED or CANCELLED job again from the spec it last ran with; returns its state after
        (its children that were cancelled stay so: retry_dag runs them again too)."""
        return self._ask("retry", job_id=job_id)["state"]

    def retry_dag(self, name: str) -> dict:
        """Run every FAILED or CANCELLED job of a DAG again, in the DAG's order; returns the DAG."""
        return self._ask("retry_dag", dag=name)

    def approve(self, gate_id: str) -> str:
        """Let the jobs below a human-in-the-loop gate (hitl-gate-<job id>) run; returns its state."""
        return self._ask("approve", gate_id=gate_id)["state"]

    def reject(self, gate_id: str, reason: str = "") -> str:
        """Cancel everything below a gate; the reason becomes the gate's. Returns the gate's state."""
        return self._ask("reject", gate_id=gate_id, reason=reason)["state"]

    def stop_service(self, job_id: str) -> str:
        """Stop a service (job_type="SERVICE") for good: its process tree is killed and it is not
        restarted. Returns its state after: COMPLETED ("stopped by request"), or CANCELLED if it had
        never come up (its waiting children are cancelled too)."""
        return self._ask("stop_service", job_id=job_id)["state"]

    # ----------------------------------------------------------------- TitanStore

    def store_put(self, key: str, value) -> str:
        return self._call(self._store, "put", key=_key(key), value=_string_value(key, value))

    def store_get(self, key: str) -> Optional[str]:
        return self._call(self._store, "get", key=_key(key))

    def store_delete(self, key: str) -> int:
        return self._call(self._store, "delete", key=_key(key))

    def store_incr(self, key: str, by: int = 1) -> int:
        return self._call(self._store, "incr", key=_key(key), by=int(by))

    def store_sadd(self, key: str, member) -> int:
        return self._call(self._store, "sadd", key=_key(key), member=_string_value(key, member))

    def store_smembers(self, key: str) -> List[str]:
        return self._call(self._store, "smembers", key=_key(key))

    def store_keys(self, prefix: str = "") -> List[str]:
        return self._call(self._store, "keys", prefix=prefix)

    # ----------------------------------------------------------------- lifetime

    def close(self) -> None:
        self._requests.close()
        self._store.close()
        for subscription in self._kept_subscriptions:
            subscription.close()
        self._ctx.destroy(linger=0)

    def __enter__(self) -> "TitanClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TitanClient(host={self.host!r}, port={self.port})"


def _assigned_original_settings() -> dict:
    """TITAN_HOST / TITAN_PORT a script assigned on the original's module (titan_sdk.titan_sdk), if any."""
    module = sys.modules.get("titan_sdk.titan_sdk")
    return {name: value for name, value in vars(module).items() if name in ("TITAN_HOST", "TITAN_PORT")} \
        if module is not None else {}


def _settle(job_id: str, state: str, waiting: set, final: Dict[str, str], on_final) -> None:
    waiting.discard(job_id)
    final[job_id] = state
    on_final(job_id, state)


def _key(key) -> str:
    if not isinstance(key, str):
        raise TypeError(f"TitanStore keys are strings, got {type(key).__name__}: {key!r}")
    return key


def _string_value(key: str, value) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(f"TitanStore value for {key!r} must be a str (or a number, stored as text), "
                        f"got {type(value).__name__}")
    return value if isinstance(value, str) else str(value)
