"""Every message Titan puts on the wire: its fields, encode/decode (msgpack), validation and size limit.

A message is one msgpack map with an "op" naming its type. Requests also carry "rid", a request id the
caller picks: the master answers a repeated rid from its reply cache instead of acting twice, so clients
may retry freely. Anything malformed raises ProtocolError, whose message names what was wrong.
"""

from __future__ import annotations

import contextlib
import gc
import io
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import msgpack

from titan import defaults
from titan.core.jobs import ISOLATIONS, JobSpec

NoneType = type(None)
Number = (int, float)


class ProtocolError(Exception):
    """A message that does not follow this module's shapes; the text says how."""

    kind = "ProtocolError"
    rid = None   # the request id, when the message got far enough to have one


@dataclass(frozen=True)
class Field:
    types: tuple
    required: bool = True


def _fields(**spec) -> Dict[str, Field]:
    return {name: field if isinstance(field, Field) else Field(field) for name, field in spec.items()}


def optional(*types) -> Field:
    return Field(tuple(types) + (NoneType,), required=False)


JOB_FIELDS = _fields(
    job_id=(str,), filename=(str,), script=(bytes,), job_type=optional(str), args=optional(str),
    parents=optional(list), port=optional(int), is_archive=optional(bool), priority=optional(int),
    delay=optional(*Number), affinity=optional(bool), requirement=optional(str),
    hitl_message=optional(str), max_wait_seconds=optional(*Number), retries=optional(int),
    timeout=optional(*Number), isolation=optional(str),
)

# Client ROUTER (port P): requests from the SDK, the CLI and jobs.
CLIENT_OPS = {
    "ping": _fields(),
    "submit": _fields(dag=optional(str), jobs=(list,)),
    "status": _fields(job_id=(str,)),
    "states": _fields(job_ids=(list,)),
    "dag_status": _fields(dag=(str,)),
    "logs": _fields(job_id=(str,)),
    "cancel": _fields(job_id=(str,)),
    "cancel_dag": _fields(dag=(str,)),
    "stats": _fields(),
    "approve": _fields(gate_id=(str,)),
    "reject": _fields(gate_id=(str,), reason=optional(str)),
}

# TitanStore REP (port P+3).
STORE_OPS = {
    "put": _fields(key=(str,), value=(str,)),
    "get": _fields(key=(str,)),
    "delete": _fields(key=(str,)),
    "incr": _fields(key=(str,), by=optional(int)),
    "sadd": _fields(key=(str,), member=(str,)),
    "smembers": _fields(key=(str,)),
    "keys": _fields(prefix=optional(str)),
}

# Requests that change state: their replies are journaled, so a retry after a restart is not re-run.
CHANGING_OPS = frozenset({"submit", "cancel", "cancel_dag", "approve", "reject", "put", "delete", "incr", "sadd"})

# Worker DEALER -> master ROUTER (port P+1).
WORKER_OPS = {
    "register": _fields(name=(str,), capabilities=(list,), slots=(int,), info=optional(dict),
                        running=optional(list)),
    "heartbeat": _fields(running=optional(list)),
    "log": _fields(job_id=(str,), attempt=(int,), stream=(str,), data=(bytes,)),
    "finished": _fields(job_id=(str,), attempt=(int,), exit_code=(int,), error=optional(str)),
    # the master acknowledges every "finished"; the worker re-sends results until then
    "bye": _fields(),
}

# Master -> worker.
MASTER_TO_WORKER_OPS = {
    "welcome": _fields(),
    "heartbeat": _fields(),
    "reregister": _fields(reason=optional(str)),
    "dispatch": _fields(job=(dict,), attempt=(int,), dag=optional(str), token=optional(str)),
    "stop": _fields(job_id=(str,), attempt=(int,), reason=optional(str)),
    "ack": _fields(job_id=(str,), attempt=(int,)),
}

LOG_STREAMS = ("stdout", "stderr")
# Sent by the event socket to each new subscriber once its subscription is live (XPUB_WELCOME_MSG),
# so a client knows from when on it misses nothing.
EVENTS_WELCOME = b"titan.welcome"
MAX_FILE_NAME_BYTES = 255   # what common file systems allow for one path component


def encode(message: dict) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


def decode(frame: bytes, ops: Dict[str, Dict[str, Field]], limit: int = defaults.MAX_MESSAGE_BYTES,
           needs_rid: bool = False) -> Tuple[str, dict]:
    """Unpack one frame and check it against the table of ops; returns (op, message)."""
    if len(frame) > limit:
        error = ProtocolError(f"message of {len(frame):,} bytes is over the {limit:,}-byte limit "
                              "(start the master with a larger --max-message-bytes if this is intended)")
        error.rid = _rid_only(frame)   # so the refusal reaches the caller instead of leaving it to retry
        raise error
    message = _unpack(frame)
    rid = message.get("rid")
    try:
        op = message.get("op")
        if not isinstance(op, str):
            raise ProtocolError("message has no 'op' string naming its type")
        if op not in ops:
            raise ProtocolError(f"unknown message type {op!r}; expected one of: {', '.join(sorted(ops))}")
        if needs_rid and not isinstance(rid, str):
            raise ProtocolError(f"{op!r} request has no 'rid' string (request id)")
        # "token": a job's proof, with its worker's key, that it runs now (see titan.net.security)
        check_fields(f"{op!r} message", message, ops[op], ignore=("op", "rid", "token"))
    except ProtocolError as exc:
        exc.rid = rid if isinstance(rid, str) else None   # so the error reply reaches the caller
        raise
    return op, message


def _rid_only(frame: bytes) -> Optional[str]:
    """The request id of a message too big to unpack, found by skipping every other value unbuilt."""
    unpacker = msgpack.Unpacker(io.BytesIO(frame), raw=False)
    try:
        for _ in range(unpacker.read_map_header()):
            if unpacker.unpack() == "rid":
                rid = unpacker.unpack()
                return rid if isinstance(rid, str) else None
            unpacker.skip()
    except Exception:  # not a well-formed map: there is no rid to answer
        return None
    return None


def _unpack(frame: bytes) -> dict:
    try:
        with _no_cyclic_gc():   # a 100,000-job DAG is millions of new objects: GC passes would dominate
            message = msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises many types for bad bytes; all mean the same to the sender
        detail = str(exc) or "the bytes do not form one msgpack value"
        raise ProtocolError(f"message is not valid msgpack ({type(exc).__name__}: {detail})") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"message must be a msgpack map, got {type(message).__name__}")
    return message


@contextlib.contextmanager
def _no_cyclic_gc():
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def check_fields(what: str, message: dict, fields: Dict[str, Field], ignore: tuple = ()) -> None:
    unknown = sorted(str(k) for k in message if k not in fields and k not in ignore)
    if unknown:
        raise ProtocolError(f"{what} has unknown field(s): {', '.join(unknown)}")
    for name, field in fields.items():
        if name not in message:
            if field.required:
                raise ProtocolError(f"{what} is missing field {name!r}")
            continue
        value = message[name]
        if not is_of_type(value, field.types):
            expected = " or ".join(t.__name__ for t in field.types)
            raise ProtocolError(f"{what}: field {name!r} must be {expected}, got {type(value).__name__}")


def is_of_type(value, types: tuple) -> bool:
    """isinstance, except that a bool is not taken for an int unless bool is among the types."""
    if isinstance(value, bool) and bool not in types:
        return False  # True is an int to Python, but never a priority or a port
    return isinstance(value, types)


def job_to_wire(spec: JobSpec) -> dict:
    return {
        "job_id": spec.job_id, "filename": spec.filename, "script": spec.script, "job_type": spec.job_type,
        "args": spec.args, "parents": list(spec.parents), "port": spec.port, "is_archive": spec.is_archive,
        "priority": spec.priority, "delay": spec.delay, "affinity": spec.affinity,
        "requirement": spec.requirement, "hitl_message": spec.hitl_message,
        "max_wait_seconds": spec.max_wait_seconds, "retries": spec.retries, "timeout": spec.timeout,
        "isolation": spec.isolation,
    }


def job_from_wire(raw, index: int = 0, same_script=lambda script: script) -> JobSpec:
    """A JobSpec from its wire form. `same_script` may return an equal script already held, so many
    jobs of one script share one copy in memory."""
    if not isinstance(raw, dict):
        raise ProtocolError(f"job #{index} must be a map, got {type(raw).__name__}")
    label = f"job {raw.get('job_id')!r}" if isinstance(raw.get("job_id"), str) else f"job #{index}"
    check_fields(label, raw, JOB_FIELDS)
    if not raw["job_id"].strip():
        raise ProtocolError(f"job #{index} has an empty job_id")
    _check_filename(label, raw["filename"])
    parents = raw.get("parents") or []
    if not all(isinstance(p, str) for p in parents):
        raise ProtocolError(f"{label}: every parent must be a job id string")
    if (raw.get("retries") or 0) < 0 or (raw.get("timeout") is not None and raw["timeout"] <= 0):
        raise ProtocolError(f"{label}: retries must be >= 0 and timeout > 0 seconds")
    if raw.get("isolation", "fork") not in (None, *ISOLATIONS):
        raise ProtocolError(f"{label}: isolation must be one of {', '.join(ISOLATIONS)}, "
                            f"got {raw['isolation']!r}")
    present = {k: v for k, v in raw.items() if v is not None and k != "parents"}
    present["script"] = same_script(present["script"])
    return JobSpec(parents=tuple(parents), **present)


def _check_filename(label: str, filename: str) -> None:
    """The worker saves the script under the last part of this name, so that part must be a file name."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    if name in ("", ".", "..") or "\0" in filename:
        raise ProtocolError(f"{label}: filename {filename!r} does not end in a usable file name")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_FILE_NAME_BYTES:
        raise ProtocolError(f"{label}: filename {name[:40]!r}... is longer than {MAX_FILE_NAME_BYTES} bytes")


def ok_reply(rid: Optional[str], result=None) -> dict:
    return {"rid": rid, "ok": True, "result": result}


def error_reply(rid: Optional[str], kind: str, message: str, details: Optional[dict] = None) -> dict:
    return {"rid": rid, "ok": False, "error": {"kind": kind, "message": message, "details": details or {}}}


def job_claims(raw) -> list:
    """A registering worker's [[job_id, attempt], ...]; malformed entries are refused whole."""
    claims = raw or []
    if not all(isinstance(c, list) and len(c) == 2 and isinstance(c[0], str) and is_of_type(c[1], (int,))
               for c in claims):
        raise ProtocolError("'register' message: 'running' must be a list of [job_id, attempt] pairs")
    return [(job_id, attempt) for job_id, attempt in claims]


def decode_reply(frame: bytes) -> dict:
    return _unpack(frame)


def encode_event(topic: str, body: dict) -> list:
    return [topic.encode(), encode(body)]


def decode_event(frames: list) -> dict:
    body = _unpack(frames[1])
    body.setdefault("topic", frames[0].decode())
    return body
