"""Every message Titan puts on the wire: its fields, encode/decode (msgpack), validation and size limit.

A message is one msgpack map with an "op" naming its type. Requests also carry "rid", a request id the
caller picks: the master answers a repeated rid from its reply cache instead of acting twice, so clients
may retry freely. Anything malformed raises ProtocolError, whose message names what was wrong.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import io
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

import msgpack

from titan import defaults
from titan.core.jobs import ISOLATIONS, JOB_TYPE_ALIASES, SERVICE_JOB_TYPE, JobSpec, spec_to_dict

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
    job_id=(str,), filename=(str,), script=optional(bytes), script_sha256=optional(str), job_type=optional(str),
    args=optional(str),    parents=optional(list), port=optional(int), is_archive=optional(bool), priority=optional(int),
    delay=optional(*Number), affinity=optional(bool), requirement=optional(str),
    hitl_message=optional(str), max_wait_seconds=optional(*Number), retries=optional(int),
    timeout=optional(*Number), isolation=optional(str),
    archive=optional(str),   # sha256 of the project archive; the master fills it in from the archive's name
    deployed=optional(bool),  # the script is the one deployed on the master under the file name (deploy_script)
)

# Client ROUTER (port P): requests from the SDK, the CLI and jobs.
CLIENT_OPS = {
    "ping": _fields(),
    # Each distinct script once, in "scripts" by sha256; each job names its own with "script_sha256"
    # (or carries it inline in "script").
    "submit": _fields(dag=optional(str), jobs=(list,), scripts=optional(dict), agent_run_id=optional(str)),
    "status": _fields(job_id=(str,)),
    "states": _fields(job_ids=(list,)),
    "dag_status": _fields(dag=(str,)),
    # with `since` (characters already read) the reply is {"text": what came after, "offset", "state"}
    "logs": _fields(job_id=(str,), since=optional(int)),
    "cancel": _fields(job_id=(str,)),
    "cancel_dag": _fields(dag=(str,)),
    "stats": _fields(),
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
}
ARTIFACT_KINDS = ("file", "archive")

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
CHANGING_OPS = frozenset({"submit", "cancel", "cancel_dag", "approve", "reject", "stop_service",
                          "put", "delete", "incr", "sadd", "upload_finish", "deploy_script"})

# Master and worker send each other, per loop turn, one frame: a single message or a batch of them.
BATCH = "batch"

# Worker DEALER -> master ROUTER (port P+1).
WORKER_OPS = {
    BATCH: _fields(messages=(list,)),
    "register": _fields(name=(str,), capabilities=(list,), slots=(int,), info=optional(dict),
                        running=optional(list)),
    # running: the jobs it holds; ended: those whose result awaits the master's ack. A job the master
    # thinks it runs that is in neither was never received: the master sends its dispatch again.
    "heartbeat": _fields(running=optional(list), ended=optional(list)),
    "log": _fields(job_id=(str,), attempt=(int,), stream=(str,), data=(bytes,)),
    "finished": _fields(job_id=(str,), attempt=(int,), exit_code=(int,), error=optional(str)),
    # a dispatch named a script by hash that this worker was never sent: send the dispatch again, in full
    "missing_script": _fields(job_id=(str,), attempt=(int,)),
    # the master acknowledges every "finished"; the worker re-sends results until then
    "service_up": _fields(job_id=(str,), attempt=(int,)),
    # a service's port accepts connections; re-sent after every welcome while it stays up
    "bye": _fields(),
    # a worker lacking a dispatched job's project archive pulls it, one chunk per request
    "fetch_archive": _fields(sha256=(str,), offset=(int,)),
}

# Master -> worker.
MASTER_TO_WORKER_OPS = {
    BATCH: _fields(messages=(list,)),
    "welcome": _fields(),
    "heartbeat": _fields(),
    "reregister": _fields(reason=optional(str)),
    "dispatch": _fields(job=(dict,), attempt=(int,), dag=optional(str), agent_run_id=optional(str),
                        token=optional(str)),
    "stop": _fields(job_id=(str,), attempt=(int,), reason=optional(str)),
    "ack": _fields(job_id=(str,), attempt=(int,)),
    "archive_chunk": _fields(sha256=(str,), offset=(int,), size=(int,), data=(bytes,), error=optional(str)),
}

LOG_STREAMS = ("stdout", "stderr")
# Sent by the event socket to each new subscriber once its subscription is live (XPUB_WELCOME_MSG),
# so a client knows from when on it misses nothing.
EVENTS_WELCOME = b"titan.welcome"
MAX_FILE_NAME_BYTES = 255   # what common file systems allow for one path component
# Below this size a message unpacks into a few objects: no point pausing the garbage collector for it.
GC_PAUSE_FROM_BYTES = 64 * 1024
MAX_PORT = 65535


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
    return check_message(message, ops, needs_rid), message


def check_message(message: dict, ops: Dict[str, Dict[str, Field]], needs_rid: bool = False) -> str:
    """Check an unpacked message against the table of ops; returns its op."""
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
    return op


def decode_batch(frame: bytes, ops: Dict[str, Dict[str, Field]],
                 limit: int = defaults.MAX_MESSAGE_BYTES) -> List[Union[Tuple[str, dict], ProtocolError]]:
    """The messages one frame carries: itself, or each message of a batch. A malformed message inside a
    batch comes back as its ProtocolError, so the rest of the batch still counts."""
    op, message = decode(frame, ops, limit)
    if op != BATCH:
        return [(op, message)]
    carried: List[Union[Tuple[str, dict], ProtocolError]] = []
    for index, inner in enumerate(message["messages"]):
        try:
            if not isinstance(inner, dict) or inner.get("op") == BATCH:
                raise ProtocolError(f"message #{index} of a batch must be a map and not a batch")
            carried.append((check_message(inner, ops), inner))
        except ProtocolError as exc:
            carried.append(exc)
    return carried


def encode_batch(messages: List[dict]) -> bytes:
    """One frame for the messages a peer gets in one loop turn."""
    return encode(messages[0] if len(messages) == 1 else {"op": BATCH, "messages": messages})


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
        if len(frame) < GC_PAUSE_FROM_BYTES:
            message = msgpack.unpackb(frame, raw=False, strict_map_key=True)
        else:
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
    """A job as it travels: default values are left out, the receiver fills them in."""
    return spec_to_dict(spec)


def submission(specs) -> dict:
    """The fields of a "submit" request: the jobs, naming their scripts by hash, and each script once."""
    scripts: Dict[str, bytes] = {}
    digests: Dict[bytes, str] = {}
    jobs = []
    for spec in specs:
        wire = spec_to_dict(spec)
        script = wire.pop("script")
        digest = digests.get(script)
        if digest is None:
            digest = digests[script] = script_digest(script)
            scripts[digest] = script
        wire["script_sha256"] = digest
        jobs.append(wire)
    return {"jobs": jobs, "scripts": scripts}


def script_digest(script: bytes) -> str:
    return hashlib.sha256(script).hexdigest()


def submitted_scripts(raw) -> Dict[str, bytes]:
    """A submission's "scripts" map, checked: each key must be the sha256 of its script."""
    scripts = raw or {}
    for digest, script in scripts.items():
        if not isinstance(digest, str) or not isinstance(script, bytes):
            raise ProtocolError("'submit' message: 'scripts' must map sha256 hex strings to script bytes")
        if script_digest(script) != digest:
            raise ProtocolError(f"'submit' message: script {digest[:16]}... does not have that sha256")
    return scripts


_JOB_FIELD_TYPES = {name: field.types for name, field in JOB_FIELDS.items()}


def job_from_wire(raw, index: int = 0, same_script=lambda script: script,
                  scripts: Optional[Dict[str, bytes]] = None) -> JobSpec:
    """A JobSpec from its wire form, its script inline or named by hash from `scripts`. `same_script`
    may return an equal script already held, so many jobs of one script share one copy in memory."""
    if not isinstance(raw, dict):
        raise ProtocolError(f"job #{index} must be a map, got {type(raw).__name__}")
    if not _has_plain_job_fields(raw):   # the exact check, for its message (and the rare subclass)
        check_fields(_job_label(raw, index), raw, JOB_FIELDS)
    if not raw["job_id"].strip():
        raise ProtocolError(f"job #{index} has an empty job_id")
    _use_canonical_job_type(raw)
    problem = _filename_problem(raw["filename"])
    if problem:
        raise ProtocolError(f"{_job_label(raw, index)}: {problem}")
    if raw.get("is_archive"):
        _check_archive_filename(_job_label(raw, index), raw["filename"])
    if raw.get("archive") is not None and not is_sha256(raw["archive"]):
        raise ProtocolError(f"{_job_label(raw, index)}: archive must be a sha256 in hex, got {raw['archive'][:80]!r}")
    parents = raw.get("parents") or []
    if not all(isinstance(p, str) for p in parents):
        raise ProtocolError(f"{_job_label(raw, index)}: every parent must be a job id string")
    if (raw.get("retries") or 0) < 0 or (raw.get("timeout") is not None and raw["timeout"] <= 0):
        raise ProtocolError(f"{_job_label(raw, index)}: retries must be >= 0 and timeout > 0 seconds")
    problem = _port_problem(raw)
    if problem:
        raise ProtocolError(f"{_job_label(raw, index)}: {problem}")
    if raw.get("isolation", "fork") not in (None, *ISOLATIONS):
        raise ProtocolError(f"{_job_label(raw, index)}: isolation must be one of {', '.join(ISOLATIONS)}, "
                            f"got {raw['isolation']!r}")
    present = {k: v for k, v in raw.items() if v is not None and k != "parents" and k != "script_sha256"}
    present["script"] = same_script(_job_script(raw, index, scripts))
    return JobSpec(parents=tuple(parents), **present)


def _use_canonical_job_type(raw: dict) -> None:
    """job_type="DEPLOY_PAYLOAD" (the original's) is a SERVICE."""
    if raw.get("job_type") in JOB_TYPE_ALIASES:
        raw["job_type"] = JOB_TYPE_ALIASES[raw["job_type"]]


def _job_script(raw: dict, index: int, scripts: Optional[Dict[str, bytes]]) -> bytes:
    digest, script = raw.get("script_sha256"), raw.get("script")
    if (digest is None) == (script is None):
        raise ProtocolError(f"{_job_label(raw, index)} must carry either 'script' or 'script_sha256'")
    if script is not None:
        return script
    found = (scripts or {}).get(digest)
    if found is None:
        raise ProtocolError(f"{_job_label(raw, index)}: script_sha256 {digest[:16]}... is not among the "
                            "submission's scripts")
    return found


def _port_problem(raw: dict) -> Optional[str]:
    port = raw.get("port") or 0
    if not 0 <= port <= MAX_PORT:
        return f"port must be between 1 and {MAX_PORT} (0: none), got {port}"
    if raw.get("job_type") == SERVICE_JOB_TYPE and not port:
        return f"a {SERVICE_JOB_TYPE} job needs the port it listens on (port=...)"
    return None


def _has_plain_job_fields(raw: dict) -> bool:
    """True when every field is known and of exactly an allowed type, and none required is missing:
    the common case, checked in one pass without building messages."""
    for name, value in raw.items():
        types = _JOB_FIELD_TYPES.get(name)
        if types is None or type(value) not in types:
            return False
    return "job_id" in raw and "filename" in raw


def _job_label(raw: dict, index: int) -> str:
    return f"job {raw.get('job_id')!r}" if isinstance(raw.get("job_id"), str) else f"job #{index}"


@functools.lru_cache(maxsize=1024)   # many jobs share a file name
def _filename_problem(filename: str) -> Optional[str]:
    """Why the worker could not save the script under the last part of this name, or None."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    if name in ("", ".", "..") or "\0" in filename:
        return f"filename {filename!r} does not end in a usable file name"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_FILE_NAME_BYTES:
        return f"filename {name[:40]!r}... is longer than {MAX_FILE_NAME_BYTES} bytes"
    return None


def split_archive_filename(filename: str) -> Tuple[str, str]:
    """'project.zip/src/step.py' -> ('project.zip', 'src/step.py'): the archive is named by everything up to
    the first path component ending in '.zip'. Raises ValueError saying what is wrong."""
    parts = filename.replace("\\", "/").split("/")
    ends = [i for i, part in enumerate(parts[:-1]) if part.endswith(".zip")]
    if not ends:
        raise ValueError(f"filename {filename!r} of an archive job must be '<archive>.zip/<path in it>'")
    archive, inner = "/".join(parts[:ends[0] + 1]), [p for p in parts[ends[0] + 1:] if p not in ("", ".")]
    if not inner or ".." in inner:
        raise ValueError(f"filename {filename!r}: the path inside archive {archive!r} must be relative "
                         "and stay inside it (no '..')")
    return archive, "/".join(inner)


def _check_archive_filename(label: str, filename: str) -> None:
    try:
        split_archive_filename(filename)
    except ValueError as exc:
        raise ProtocolError(f"{label}: {exc}") from None


def is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


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
