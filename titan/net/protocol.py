"""How messages travel: encode/decode (msgpack), validation, size limit, and the builders of outgoing ones.
Checking a map's fields is titan.net.fields; a job's own fields, titan.net.jobwire.

What each message holds is declared once, in titan.net.messages (re-exported here: protocol.CLIENT_OPS ...).
A message is one msgpack map with an "op" naming its type. Requests also carry "rid", a request id the
caller picks: the master answers a rid repeated by the same client (its connection's ZeroMQ identity, and
its key's user with keys) from its reply cache instead of acting twice, so clients may retry freely; a
client that retries from a new connection sets the same identity (the SDK does). Anything malformed
raises ProtocolError, whose message names what was wrong.

Outgoing messages are built by `message` (a client's by `request`), replies by `result_reply`, and events
are checked by `check_event`: a field name that is not declared, or a required one left out, raises
MisbuiltMessage naming the op and the field. With TITAN_STRICT_MESSAGES=1 (the test suite sets it) every
value is also checked against its declared type and shape, into nested maps and lists; except a client's
request values, which are the user's and which the master checks (every incoming message is, always).
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
from typing import Dict, List, Optional, Tuple, Union

import msgpack

from titan import defaults
from titan.net.fields import (MisbuiltMessage, ProtocolError, check_fields, check_strictly,  # noqa: F401
                              check_value, is_of_type, is_plain)
from titan.net.messages import (ANY, ARTIFACT_KINDS, BATCH, CHANGING_OPS, CLIENT_OPS, CLIENT_RESULTS,  # noqa: F401
                                ERROR_REPLY, EVENT_ENVELOPE, EVENTS, EVENTS_REVOKED, EVENTS_WELCOME, JOB_FIELDS,
                                LOG_STREAMS, MASTER_TO_WORKER_OPS, OK_REPLY, REVOKED_NOTICE, SCOPE_BYTES,
                                SCOPE_KEY_BYTES, SCOPE_MARK, STORE_OPS, STORE_RESULTS, WORKER_OPS, Field,
                                NoneType, Number, Table, optional)

# Full type and shape checks of everything built here, on top of the names (see the module's docstring).
STRICT_ENV = "TITAN_STRICT_MESSAGES"
STRICT = os.environ.get(STRICT_ENV) == "1"

# Below this size a message unpacks into a few objects: no point pausing the garbage collector for it.
GC_PAUSE_FROM_BYTES = 64 * 1024


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
    rid, op = message.get("rid"), message.get("op")
    plain_types = ops.plain_types.get(op) if type(op) is str else None
    if plain_types is not None and (type(rid) is str or not needs_rid) \
            and is_plain(message, plain_types, ops.names[op][1], ops.plain_maps[op]):
        return op
    try:
        if not isinstance(op, str):
            raise ProtocolError("message has no 'op' string naming its type")
        if op not in ops:
            raise ProtocolError(f"unknown message type {op!r}; expected one of: {', '.join(sorted(ops))}")
        if needs_rid and not isinstance(rid, str):
            raise ProtocolError(f"{op!r} request has no 'rid' string (request id)")
        # "token": sent by SDKs of before job keys (see titan.net.security); ignored
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

def ok_reply(rid: Optional[str], result=None) -> dict:
    return {"rid": rid, "ok": True, "result": result}


def error_reply(rid: Optional[str], kind: str, message: str, details: Optional[dict] = None) -> dict:
    return {"rid": rid, "ok": False, "error": {"kind": kind, "message": message, "details": details or {}}}


# What a registering worker may say of itself, and how: anything else it sends is left out.
WORKER_INFO_TYPES = {"host": str, "pid": int, "cpus": int, "memory_mb": int}
MAX_WORKER_NAME_CHARS = 128
MAX_CAPABILITY_CHARS = 64
MAX_CAPABILITIES = 64
MAX_WORKER_SLOTS = 10_000


def worker_registration(message: dict) -> Tuple[str, List[str], int, dict]:
    """(name, capabilities, slots, info) of a "register" message, each checked: names and tags are shown
    to people and written to logs, so they must be short printable text."""
    name, capabilities, slots = message["name"], message["capabilities"], message["slots"]
    if not is_printable_name(name, MAX_WORKER_NAME_CHARS):
        raise ProtocolError(f"'register' message: name must be 1 to {MAX_WORKER_NAME_CHARS} printable characters, "
                            f"got {name[:40]!r}")
    if len(capabilities) > MAX_CAPABILITIES or not all(is_printable_name(tag, MAX_CAPABILITY_CHARS)
                                                       for tag in capabilities):
        raise ProtocolError(f"'register' message: capabilities must be at most {MAX_CAPABILITIES} tags of 1 to "
                            f"{MAX_CAPABILITY_CHARS} printable characters")
    if not 1 <= slots <= MAX_WORKER_SLOTS:
        raise ProtocolError(f"'register' message: slots must be 1 to {MAX_WORKER_SLOTS}, got {slots}")
    info = {key: value for key, value in (message.get("info") or {}).items()
            if key in WORKER_INFO_TYPES and is_of_type(value, (WORKER_INFO_TYPES[key],))
            and (not isinstance(value, str) or is_printable_name(value, 255))}
    return name, list(capabilities), slots, info


def host_usage(raw) -> Optional[dict]:
    """A heartbeat's host figures, or None when it sent none or any is out of range (a worker on another
    platform may not know one; the figures are only shown, so leaving them out is the safe answer)."""
    if not isinstance(raw, dict):
        return None
    cpu, memory = raw.get("cpu_percent"), raw.get("memory_percent")
    used, total = raw.get("memory_used_bytes"), raw.get("memory_total_bytes")
    if not (all(is_of_type(v, Number) and 0 <= v <= 100 for v in (cpu, memory))
            and all(is_of_type(v, (int,)) for v in (used, total)) and 0 <= used <= total):
        return None
    return {"cpu_percent": round(float(cpu), 1), "memory_percent": round(float(memory), 1),
            "memory_used_bytes": used, "memory_total_bytes": total}


def is_printable_name(text, limit: int) -> bool:
    return isinstance(text, str) and 0 < len(text) <= limit and text.isprintable() and text.strip() == text


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


def subscription_scope(public_key: bytes) -> bytes:
    """The prefix a subscriber with this z85 public key subscribes and receives under (with keys)."""
    if len(public_key) != SCOPE_KEY_BYTES:
        raise ValueError(f"a z85 public key is {SCOPE_KEY_BYTES} characters, got {len(public_key)}")
    return SCOPE_MARK + public_key + SCOPE_MARK


def scope_of(subscription: bytes) -> Optional[bytes]:
    """The scope prefix a subscription (without its first byte, 1 or 0) starts with; None if unscoped."""
    if subscription[:1] == SCOPE_MARK and subscription[SCOPE_BYTES - 1:SCOPE_BYTES] == SCOPE_MARK:
        return subscription[:SCOPE_BYTES]
    return None


def scope_key(scope: bytes) -> bytes:
    """The z85 public key a scope prefix names."""
    return scope[len(SCOPE_MARK):-len(SCOPE_MARK)]


def revocation_notice(scope: bytes, reason: str) -> list:
    """The frames that tell a scope's subscribers its key was revoked and nothing more will come."""
    notice = {"topic": EVENTS_REVOKED.decode(), "reason": reason}
    if STRICT:
        _as_misbuilt(check_strictly, "subscription revocation notice", notice, REVOKED_NOTICE)
    return [scope + EVENTS_REVOKED, encode(notice)]


# ----------------------------------------------------------------- building what is sent


def message(ops: Table, op: str, **fields) -> dict:
    """An outgoing message of table `ops` (see titan.net.messages), its fields in the order given. A field
    the table does not declare, or a required one left out, raises MisbuiltMessage naming the op and the
    field; in strict mode so does a value of the wrong type or shape."""
    _check_names(ops, op, fields)
    if STRICT:
        _as_misbuilt(check_strictly, f"{ops.what} {op!r}", fields, ops[op])
    return {"op": op, **fields}


def request(ops: Table, op: str, **fields) -> dict:
    """A client's request: like `message`, but its values are never type-checked here, strict or not. They
    are the caller's (a user's) to get right, and the master's answer to a wrong one names the field."""
    _check_names(ops, op, fields)
    return {"op": op, **fields}


def _check_names(ops: Table, op: str, fields: dict) -> None:
    try:
        allowed, required = ops.names[op]
    except KeyError:
        raise MisbuiltMessage(f"unknown {ops.what} {op!r}; expected one of: {', '.join(sorted(ops))}") from None
    names = fields.keys()
    if not (names <= allowed and required <= names):   # cheap enough for every message
        _as_misbuilt(check_fields, f"{ops.what} {op!r}", fields, ops[op])   # raises, naming the field


def result_reply(ops: Table, op: str, rid: Optional[str], result) -> dict:
    """The ok reply to request `op` of CLIENT_OPS or STORE_OPS; in strict mode its result is checked
    against the op's declared result (messages.CLIENT_RESULTS, STORE_RESULTS)."""
    if STRICT:
        _as_misbuilt(check_value, f"result of {ops.what} {op!r}", result, ops.results[op])
    return ok_reply(rid, result)


def check_event_body(topic: str, body: dict) -> None:
    """A body the scheduler published (a Publish effect) against messages.EVENTS."""
    fields = EVENTS.get(topic)
    if fields is None:
        raise MisbuiltMessage(f"event topic {topic!r} is not declared in EVENTS")
    _as_misbuilt(check_strictly, f"event {topic!r}", body, fields)


def check_event(topic: str, event: dict) -> None:
    """An event as published on the wire: its body, and the envelope the master adds."""
    check_event_body(topic, {name: value for name, value in event.items() if name not in EVENT_ENVELOPE})
    envelope = {name: event[name] for name in EVENT_ENVELOPE if name in event}
    _as_misbuilt(check_strictly, f"event {topic!r}", envelope, EVENT_ENVELOPE)


def _as_misbuilt(check, what: str, *args) -> None:
    try:
        check(what, *args)
    except MisbuiltMessage:
        raise
    except ProtocolError as exc:
        raise MisbuiltMessage(str(exc)) from None
