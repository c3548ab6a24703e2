"""The catalogue: every message Titan sends or receives and every event it publishes, with their fields.

    JOB_FIELDS                        a job as it travels, derived from titan.core.jobs.JobSpec
    CLIENT_OPS -> CLIENT_RESULTS      client requests (SDK, CLI, jobs) to the client ROUTER (port P),
                                      and the "result" of each op's ok reply (OK_REPLY / ERROR_REPLY)
    STORE_OPS -> STORE_RESULTS        TitanStore requests to the store ROUTER (port P+3), and their results
    WORKER_OPS                        worker DEALER -> master ROUTER (port P+1)
    MASTER_TO_WORKER_OPS              master ROUTER -> worker DEALER (port P+1)
    EVENTS                            master XPUB (port P+2): topic -> body, each with EVENT_ENVELOPE added

A table maps an op to its fields; a Field names the types a value may have, whether it must be there, and
(for maps and lists) the shape of what it holds, which the strict checks of titan.net.protocol walk into.
How messages are encoded, decoded, built and checked: titan.net.protocol.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Dict, Union

from titan.core.jobs import JobSpec, JobState

NoneType = type(None)
Number = (int, float)
ANY = (object, bool)   # bool named too: fields.is_of_type refuses a bool unless it is listed


@dataclass(frozen=True)
class Field:
    types: tuple
    required: bool = True
    # a map's own fields (a dict of Field), or the Field each item of a list must match: strict checks only
    shape: Union[Dict[str, "Field"], "Field", None] = dataclasses.field(default=None, compare=False)


def _fields(**spec) -> Dict[str, Field]:
    return {name: field if isinstance(field, Field) else Field(field) for name, field in spec.items()}


def optional(*types) -> Field:
    """May be left out, or None."""
    return Field(tuple(types) + (NoneType,), required=False)


def nullable(*types) -> Field:
    """Always there, but may be None."""
    return Field(tuple(types) + (NoneType,))


def map_of(**spec) -> Field:
    return Field((dict,), shape=_fields(**spec))


def list_of(*types, shape=None) -> Field:
    return Field((list,), shape=Field(tuple(types), shape=shape))


# Every message's "op" (its type) and a request's "rid" (its request id), beside the fields of its op.
MESSAGE_ENVELOPE_TYPES = dict.fromkeys(("op", "rid"), (str,))


class Table(dict):
    """op -> its fields, with what the builders check cheaply: (the names allowed, those required) by op."""

    def __init__(self, what: str, ops: Dict[str, Dict[str, Field]]):
        super().__init__(ops)
        self.what = what
        self.results: Dict[str, Field] = {}   # request tables: op -> the "result" of its ok reply
        self.names = {op: (frozenset(fields), frozenset(name for name, field in fields.items() if field.required))
                      for op, fields in ops.items()}
        # op -> {name: types} for protocol's one-pass check of a well-formed message, "op" and "rid" included
        self.plain_types = {op: {**MESSAGE_ENVELOPE_TYPES, **{name: field.types for name, field in fields.items()}}
                            for op, fields in ops.items()}
        # op -> {name: (types, required)} of its fields that hold a map declared field by field (is_plain's `maps`)
        self.plain_maps = {op: {name: _plain_map(field.shape) for name, field in fields.items()
                                if isinstance(field.shape, dict)} for op, fields in ops.items()}


def _plain_map(fields: Dict[str, Field]) -> tuple:
    return ({name: field.types for name, field in fields.items()},
            frozenset(name for name, field in fields.items() if field.required))


# ----------------------------------------------------------------- jobs

# A JobSpec field's Python type -> the types its value may have on the wire.
_WIRE_TYPES = {str: (str,), bytes: (bytes,), int: (int,), float: Number, bool: (bool,), tuple: (list,)}


def _wire_types(name: str, hint) -> tuple:
    if typing.get_origin(hint) is Union:
        return tuple(t for arg in typing.get_args(hint) if arg is not NoneType for t in _wire_types(name, arg))
    if hint not in _WIRE_TYPES:
        raise TypeError(f"JobSpec field {name!r} has type {hint!r}, which has no wire form in titan.net.messages")
    return _WIRE_TYPES[hint]


def _job_fields() -> Dict[str, Field]:
    """One wire field per JobSpec field: required when the spec has no default, else optional (or None)."""
    hints = typing.get_type_hints(JobSpec)
    wire = {}
    for spec_field in dataclasses.fields(JobSpec):
        types = _wire_types(spec_field.name, hints[spec_field.name])
        has_default = spec_field.default is not dataclasses.MISSING
        wire[spec_field.name] = optional(*types) if has_default else Field(types)
        if spec_field.name == "script":   # or, instead of the bytes, their sha256 (see jobwire.submission)
            wire["script_sha256"] = optional(str)
    return wire


# A job on the wire: its JobSpec fields, default values left out. "archive" (sha256 of the project archive)
# is filled in by the master from the archive's name.
JOB_FIELDS = _job_fields()
SUBMITTED_JOB = Field((dict,), shape=JOB_FIELDS)

# One attempt of a job (titan.core.jobs.ATTEMPT_FIELDS); ended_at None while it runs.
ATTEMPT = _fields(attempt=(int,), worker=nullable(str), started_at=nullable(*Number), ended_at=nullable(*Number),
                  exit_code=nullable(int), reason=nullable(str))
# What the master says of a job (titan.core.jobs.JobRun.describe, with the scheduler's reason).
JOB_INFO = _fields(
    job_id=(str,), dag=nullable(str), state=(str,), attempt=(int,), worker=nullable(str),
    reason=nullable(str), exit_code=nullable(int), requirement=(str,), priority=(int,),
    parents=list_of(str), retries=(int,), failures=(int,), timeout=nullable(*Number), affinity=(bool,),
    note=nullable(str), job_type=(str,), port=(int,), service_up=(bool,),
    # Its history (titan.core.jobs.JobRun.times): Unix seconds, None until reached; `run` its DAG run.
    run=nullable(str), submitted_at=nullable(*Number), queued_at=nullable(*Number),
    started_at=nullable(*Number), ended_at=nullable(*Number), run_seconds=nullable(*Number),
    wait_seconds=nullable(*Number), attempts=list_of(dict, shape=ATTEMPT),
)
DAG_INFO = _fields(dag=(str,), run=optional(str), finished=(bool,), jobs=list_of(dict, shape=JOB_INFO))
# One run of a DAG (titan.core.history.DagRun.describe); outcome RUNNING until it ends.
DAG_RUN = _fields(run=(str,), dag=(str,), submitted_at=nullable(*Number), ended_at=nullable(*Number),
                  jobs=(int,), outcome=(str,), duration_s=nullable(*Number))
# One job in list_jobs (titan.core.history.job_entry): the dashboard and MCP helpers read this shape.
JOB_ENTRY = _fields(
    job_id=(str,), dag=nullable(str), run=nullable(str), state=(str,), requirement=(str,),
    worker=nullable(str), submitted_at=nullable(*Number), started_at=nullable(*Number),
    ended_at=nullable(*Number), run_seconds=nullable(*Number), wait_seconds=nullable(*Number),
    exit_code=nullable(int), reason=nullable(str), attempts=list_of(dict, shape=ATTEMPT),
)
ARTIFACT_ENTRY = _fields(name=(str,), sha256=(str,), size=(int,), kind=(str,))

# ----------------------------------------------------------------- client ROUTER (port P)

CLIENT_OPS = Table("client request", {
    "ping": _fields(),
    # Each distinct script once, in "scripts" by sha256; each job names its own with "script_sha256"
    # (or carries it inline in "script").
    "submit": _fields(dag=optional(str), jobs=Field((list,), shape=SUBMITTED_JOB), scripts=optional(dict),
                      agent_run_id=optional(str)),
    "status": _fields(job_id=(str,)),
    "states": _fields(job_ids=(list,)),
    "dag_status": _fields(dag=(str,)),
    # with `since` (characters already read) the reply is {"text": what came after, "offset", "state"}
    "logs": _fields(job_id=(str,), since=optional(int)),
    "cancel": _fields(job_id=(str,)),
    "cancel_dag": _fields(dag=(str,)),
    # a FAILED or CANCELLED job runs again from its last spec; retry_dag: every such job of the DAG
    "retry": _fields(job_id=(str,)),
    "retry_dag": _fields(dag=(str,)),
    "stats": _fields(reset_peaks=optional(bool)),   # turn_peaks start again after this answer
    "approve": _fields(gate_id=(str,)),
    "reject": _fields(gate_id=(str,), reason=optional(str)),
    "agent_run": _fields(run_id=(str,)),
    # Files (artifacts and project archives), stored by content hash and named; moved in chunks.
    "has_blob": _fields(sha256=(str,)),
    "upload_chunk": _fields(upload_id=(str,), offset=(int,), data=(bytes,)),
    "upload_finish": _fields(upload_id=optional(str), sha256=(str,), name=(str,), kind=(str,)),
    "artifact_info": _fields(name=(str,)),
    "read_blob": _fields(sha256=(str,), offset=(int,)),
    "stop_service": _fields(job_id=(str,)),
    # Scripts kept on the master under their file name, for jobs whose script is not where they are built.
    "deploy_script": _fields(name=(str,), script=(bytes,)),
    "deployed_scripts": _fields(),
    # History: a DAG's runs, newest first; jobs by state, DAG, submission time (Unix seconds) and worker,
    # newest first, `limit` at a time, from `cursor` (a reply's next_cursor).
    "dag_runs": _fields(dag=(str,), limit=optional(int)),
    # Forget on request: every ended run of a DAG now, or every run ended before a time, batch by batch.
    "forget": _fields(dag=optional(str), before=optional(*Number)),
    "list_jobs": _fields(state=optional(str), dag=optional(str), since=optional(*Number), until=optional(*Number),
                         worker=optional(str), limit=optional(int), cursor=optional(str)),
})
ARTIFACT_KINDS = ("file", "archive")

_JOB_RESULT = Field((dict,), shape=JOB_INFO)
_DAG_RESULT = Field((dict,), shape=DAG_INFO)
_GC_GENERATION = map_of(collections=(int,), total_cpu_ms=Number, collected=(int,), longest_ms=Number, longest_cpu_ms=Number)
_DEPLOYED_SCRIPT = map_of(name=(str,), sha256=(str,), size=(int,), deployed_at=Number)

# op -> the "result" of its ok reply.
CLIENT_RESULTS = {
    "ping": map_of(run_id=(str,), seq=(int,)),
    "submit": map_of(dag=nullable(str), jobs=list_of(str)),
    "status": _JOB_RESULT,
    # job id -> its state (a forgotten job's final one while the master remembers it), or None for an
    # unknown job; `seq`: the last event the snapshot reflects
    "states": map_of(states=(dict,), seq=(int,), run_id=(str,)),
    "dag_status": _DAG_RESULT,
    "logs": Field((str, dict), shape=_fields(text=(str,), offset=(int,), state=(str,))),   # dict: with `since`
    "cancel": _JOB_RESULT,
    "cancel_dag": _DAG_RESULT,
    "retry": _JOB_RESULT,
    "retry_dag": _DAG_RESULT,
    "stats": map_of(workers=list_of(dict), jobs_by_state=(dict,), queued_by_requirement=(dict,),
                    queue_depths=(dict,), recent_dags=list_of(str), run_id=(str,), seq=(int,),
                    artifacts=map_of(bytes_received=(int,), bytes_sent_to_workers=(int,),
                                     archive_fetches=(int,), root=nullable(str),
                                     # blobs held now, and removed as garbage since start (--artifact-grace)
                                     blobs_kept=(int,), blobs_removed=(int,)),
                    uptime_s=Number, store_keys=(int,), journal=nullable(str), journal_backlog=(int,),
                    # counts since this master started: what /metrics serves as counters
                    totals=map_of(submitted=(int,), ended=(dict,), retries=(int,), workers_lost=(int,)),
                    # with a PostgreSQL journal: who leads (lease.read_leadership), else None
                    leadership=Field((dict, type(None)), shape=_fields(
                        epoch=(int,), leader=(str,), address=(str,), since=Number, renewed_seconds_ago=Number,
                        standbys=list_of(dict, shape=_fields(name=(str,), address=(str,), waiting_since=Number)))),
                    jobs_kept=(int,), jobs_forgotten=(int,), journal_bytes=(int,), longest_turn_ms=Number,
                    longest_cleaning_ms=Number, longest_cleaning_step_ms=Number, forget_batch=(int,),
                    longest_trim_ms=Number,   # malloc_trim after every TRIM_AFTER_FORGOTTEN runs forgotten
                    cleaning_lag_s=Number,
                    intake=map_of(submissions=(int,), jobs=(int,)),   # large submissions being taken in
                    # the longest loop turns (wall ms, and CPU ms) since start or the last
                    # stats(reset_peaks=True): those that admitted a large submission, those that forgot
                    # something, the others; and the longest slice (wall) of a large submission being
                    # taken in (titan/master/intake.py)
                    turn_peaks=map_of(admission_ms=Number, cleaning_ms=Number, other_ms=Number,
                                      admission_cpu_ms=Number, cleaning_cpu_ms=Number, other_cpu_ms=Number,
                                      intake_slice_ms=Number),
                    last_cleaning=Field((dict, NoneType), shape=_fields(at=Number, forgotten=(int,), took_ms=Number)),
                    # the garbage collector's pauses per generation (titan/master/gc_pauses.py): the
                    # longest since start or the last reset_peaks, the count and CPU total since start
                    gc=map_of(**{f"gen{generation}": _GC_GENERATION for generation in (0, 1, 2)})),
    "forget": map_of(forgotten=(int,), to_forget=(int,)),   # to_forget: ended before `before`, going in batches
    "approve": _JOB_RESULT,
    "reject": _JOB_RESULT,
    "agent_run": map_of(run_id=(str,), dags=list_of(dict, shape=DAG_INFO), finished=(bool,)),
    "has_blob": Field((bool,)),
    "upload_chunk": Field((int,)),   # the upload's size so far: the offset of the next chunk
    "upload_finish": Field((dict,), shape=ARTIFACT_ENTRY),
    "artifact_info": Field((dict,), shape=ARTIFACT_ENTRY),
    "read_blob": map_of(data=(bytes,), size=(int,)),   # `size`: the whole blob's
    "stop_service": _JOB_RESULT,
    "deploy_script": _DEPLOYED_SCRIPT,
    "deployed_scripts": list_of(dict, shape=_DEPLOYED_SCRIPT.shape),
    "dag_runs": list_of(dict, shape=DAG_RUN),
    "list_jobs": map_of(jobs=list_of(dict, shape=JOB_ENTRY), next_cursor=nullable(str)),
}
CLIENT_OPS.results = CLIENT_RESULTS

# Every request carries, besides its op's fields, its request id; "token" is sent by SDKs of before job keys
# (see titan.net.security) and ignored.
REQUEST_ENVELOPE = _fields(rid=(str,), token=optional(str))
# Every reply, to a client or a store request: {"rid", "ok": True, "result"} or {"rid", "ok": False, "error"}.
OK_REPLY = _fields(rid=nullable(str), ok=(bool,), result=ANY)
ERROR_REPLY = _fields(rid=nullable(str), ok=(bool,), error=map_of(kind=(str,), message=(str,), details=(dict,)))

# ----------------------------------------------------------------- TitanStore ROUTER (port P+3)

STORE_OPS = Table("store request", {
    "put": _fields(key=(str,), value=(str,)),
    "get": _fields(key=(str,)),
    "delete": _fields(key=(str,)),
    "incr": _fields(key=(str,), by=optional(int)),
    "sadd": _fields(key=(str,), member=(str,)),
    "smembers": _fields(key=(str,)),
    "keys": _fields(prefix=optional(str)),
})

STORE_RESULTS = {
    "put": Field((str,)),            # "OK"
    "get": nullable(str),            # None: no such key
    "delete": Field((int,)),         # keys removed: 1 or 0
    "incr": Field((int,)),           # the new value
    "sadd": Field((int,)),           # members added: 1 or 0
    "smembers": list_of(str),
    "keys": list_of(str),
}
STORE_OPS.results = STORE_RESULTS

# Requests that change state: their replies are journaled, so a retry after a restart is not re-run.
CHANGING_OPS = frozenset({"submit", "cancel", "cancel_dag", "retry", "retry_dag", "approve", "reject",
                          "stop_service", "forget",
                          "put", "delete", "incr", "sadd", "upload_finish", "deploy_script"})

# ----------------------------------------------------------------- worker <-> master (port P+1)

# What a worker says of its host in each heartbeat: percentages of the whole host, memory in bytes.
HOST_USAGE = _fields(cpu_percent=Number, memory_percent=Number, memory_used_bytes=(int,),
                     memory_total_bytes=(int,))

# Master and worker send each other, per loop turn, one frame: a single message or a batch of them.
BATCH = "batch"

WORKER_OPS = Table("worker message", {
    BATCH: _fields(messages=(list,)),
    "register": _fields(name=(str,), capabilities=list_of(str), slots=(int,),
                        info=Field((dict, NoneType), required=False,
                                   shape=_fields(host=(str,), pid=(int,), cpus=(int,), memory_mb=(int,))),
                        running=Field((list, NoneType), required=False, shape=Field((list,)))),
    # running: the jobs it holds; ended: those whose result awaits the master's ack. A job the master
    # thinks it runs that is in neither was never received: the master sends its dispatch again.
    # usage: the host's CPU and memory use now (titan.net.protocol.host_usage checks the ranges)
    "heartbeat": _fields(running=Field((list, NoneType), required=False, shape=Field((str,))),
                         ended=Field((list, NoneType), required=False, shape=Field((str,))),
                         usage=Field((dict, NoneType), required=False, shape=HOST_USAGE)),
    "log": _fields(job_id=(str,), attempt=(int,), stream=(str,), data=(bytes,)),
    # the master acknowledges every "finished"; the worker re-sends results until then
    "finished": _fields(job_id=(str,), attempt=(int,), exit_code=(int,), error=optional(str)),
    # a dispatch named a script by hash that this worker was never sent: send the dispatch again, in full
    "missing_script": _fields(job_id=(str,), attempt=(int,)),
    # a service's port accepts connections; re-sent after every welcome while it stays up
    "service_up": _fields(job_id=(str,), attempt=(int,)),
    "bye": _fields(),
    # a worker lacking a dispatched job's project archive pulls it, one chunk per request
    "fetch_archive": _fields(sha256=(str,), offset=(int,)),
})

MASTER_TO_WORKER_OPS = Table("master-to-worker message", {
    BATCH: _fields(messages=(list,)),
    # registered: heartbeat from now on, re-send results. `run_id`: the master's run; a second welcome of
    # the same run answers a registration that crossed the first, and asks for nothing to be sent again.
    "welcome": _fields(run_id=optional(str)),
    "heartbeat": _fields(),                        # the answer to each worker heartbeat
    "reregister": _fields(reason=optional(str)),   # unknown to this master (or its key revoked)
    # the job's script inline the first time this worker gets it, later by "script_sha256" alone;
    # job_key: with keys, the job's own [public, secret] key pair (z85), valid while this attempt runs
    "dispatch": _fields(job=Field((dict,), shape=JOB_FIELDS), attempt=(int,), dag=optional(str),
                        agent_run_id=optional(str),
                        job_key=Field((list, NoneType), required=False, shape=Field((str,)))),
    "stop": _fields(job_id=(str,), attempt=(int,), reason=optional(str)),
    "ack": _fields(job_id=(str,), attempt=(int,)),   # a "finished" arrived: stop re-sending it
    # results a heartbeat's `ended` named in two heartbeats running and that never arrived: send them now
    "send_results": _fields(job_ids=list_of(str)),
    # the answer to fetch_archive: `size` is the whole archive's; `error` says why there is no data
    "archive_chunk": _fields(sha256=(str,), offset=(int,), size=(int,), data=(bytes,), error=optional(str)),
})

LOG_STREAMS = ("stdout", "stderr")

# ----------------------------------------------------------------- events (XPUB, port P+2)

# Sent by the event socket to each new subscriber once its subscription is live (XPUB_WELCOME_MSG),
# so a client knows from when on it misses nothing.
EVENTS_WELCOME = b"titan.welcome"

# With keys, every subscription is scoped by the subscriber's public key: the SUB subscribes to
# SCOPE_MARK + its z85 public key (40 characters) + SCOPE_MARK + topic prefix, and the master publishes
# to each scope that wants an event under that scope's prefix. A revoked key's scope gets nothing more
# but one notice, EVENTS_REVOKED under its prefix (its body REVOKED_NOTICE), which ends the SDK's
# iteration with AccessDenied. "~" is not in z85's alphabet, so the prefix is never ambiguous.
SCOPE_MARK = b"~"
SCOPE_KEY_BYTES = 40
SCOPE_BYTES = SCOPE_KEY_BYTES + 2 * len(SCOPE_MARK)
EVENTS_REVOKED = b"titan.revoked"
REVOKED_NOTICE = _fields(topic=(str,), reason=(str,))

# What the master adds to every body: numbered in all (seq) and per topic (topic_seq, to tell a lost event
# from one not subscribed to), within one run of the master (run_id); ts: wall-clock seconds.
EVENT_ENVELOPE = _fields(topic=(str,), seq=(int,), topic_seq=(int,), run_id=(str,), ts=(float,))

# job.<STATE>: a job (a gate included) entered that state
JOB_EVENT = _fields(job_id=(str,), dag=nullable(str), state=(str,), worker=nullable(str), attempt=(int,),
                    reason=nullable(str), exit_code=nullable(int))
WORKER_GONE_EVENT = _fields(worker=(str,), worker_id=(str,), reason=(str,), running=list_of(str))
SERVICE_EVENT = _fields(job_id=(str,), dag=nullable(str), worker=nullable(str), attempt=(int,), port=(int,),
                        state=(str,), reason=(str,))

# topic -> its body, as titan.core.scheduler publishes it (Publish effects)
EVENTS: Dict[str, Dict[str, Field]] = {
    **{f"job.{state.value}": JOB_EVENT for state in JobState},
    "dag.submitted": _fields(dag=(str,), jobs=(int,)),            # jobs: how many, gates included
    "dag.finished": _fields(dag=(str,), counts=(dict,)),          # counts: final state -> jobs
    "worker.joined": _fields(worker=(str,), worker_id=(str,), capabilities=list_of(str), slots=(int,)),
    "worker.left": WORKER_GONE_EVENT,                             # said bye, unreachable, or key revoked
    "worker.dead": WORKER_GONE_EVENT,                             # silent past worker_dead_after
    "service.up": SERVICE_EVENT,
    "service.stopped": SERVICE_EVENT,
    "service.crashed": {**SERVICE_EVENT, "restart_in": nullable(*Number)},   # None: restarts used up
}
