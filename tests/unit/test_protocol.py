"""titan.net.protocol: every incoming frame is checked, and every complaint names what was wrong."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from titan.core.jobs import JobSpec
from titan.net import protocol
from titan.net.jobwire import job_from_wire, job_to_wire
from titan.net.protocol import (CLIENT_OPS, MASTER_TO_WORKER_OPS, STORE_OPS, WORKER_OPS, ProtocolError, decode,
                                encode)


def spec(job_id: str, parents=(), **fields) -> JobSpec:
    fields.setdefault("filename", f"{job_id}.py")
    return JobSpec(job_id=job_id, parents=tuple(parents), **fields)


def wire_job(**overrides) -> dict:
    job = {"job_id": "j", "filename": "j.py", "script": b"print(1)\n"}
    job.update(overrides)
    return job


def frame(**message) -> bytes:
    return encode(message)


# ----------------------------------------------------------------- valid messages


@pytest.mark.parametrize("ops, message", [
    (CLIENT_OPS, {"op": "ping", "rid": "r1"}),
    (CLIENT_OPS, {"op": "submit", "rid": "r2", "dag": "d", "jobs": [wire_job()]}),
    (CLIENT_OPS, {"op": "submit", "rid": "r3", "dag": None, "jobs": []}),
    (CLIENT_OPS, {"op": "submit", "rid": "r4", "jobs": [wire_job()]}),          # optional field left out
    (CLIENT_OPS, {"op": "states", "rid": "r5", "job_ids": ["a", "b"]}),
    (CLIENT_OPS, {"op": "cancel_dag", "rid": "r6", "dag": "nightly"}),
    (STORE_OPS, {"op": "put", "rid": "s1", "key": "a|b", "value": "ü"}),
    (STORE_OPS, {"op": "incr", "rid": "s2", "key": "n", "by": -3}),
    (STORE_OPS, {"op": "incr", "rid": "s3", "key": "n", "by": None}),
    (STORE_OPS, {"op": "keys", "rid": "s4"}),
    (WORKER_OPS, {"op": "register", "name": "w1", "capabilities": ["GPU"], "slots": 2,
                  "info": {"host": "h", "cpus": 4}, "running": []}),
    (WORKER_OPS, {"op": "heartbeat", "running": ["a"]}),
    (WORKER_OPS, {"op": "log", "job_id": "a", "attempt": 1, "stream": "stdout", "data": b"\xff\x00"}),
    (WORKER_OPS, {"op": "finished", "job_id": "a", "attempt": 2, "exit_code": -9, "error": None}),
    (WORKER_OPS, {"op": "bye"}),
    (MASTER_TO_WORKER_OPS, {"op": "dispatch", "job": wire_job(), "attempt": 1, "dag": None}),
    (MASTER_TO_WORKER_OPS, {"op": "stop", "job_id": "a", "attempt": 1}),
])
def test_valid_messages_decode_to_what_was_sent(ops, message):
    op, decoded = decode(encode(message), ops)
    assert op == message["op"]
    assert decoded == message


def test_needs_rid_requires_a_string_rid():
    assert decode(frame(op="ping", rid="x"), CLIENT_OPS, needs_rid=True)[0] == "ping"
    with pytest.raises(ProtocolError, match="'ping'.*'rid'"):
        decode(frame(op="ping"), CLIENT_OPS, needs_rid=True)
    with pytest.raises(ProtocolError, match="rid"):
        decode(frame(op="ping", rid=7), CLIENT_OPS, needs_rid=True)


def test_without_needs_rid_a_missing_rid_is_fine():
    assert decode(frame(op="bye"), WORKER_OPS) == ("bye", {"op": "bye"})


# ----------------------------------------------------------------- op


def test_unknown_op_is_named_with_the_known_ones():
    with pytest.raises(ProtocolError) as info:
        decode(frame(op="launch_missiles"), CLIENT_OPS)
    message = str(info.value)
    assert "'launch_missiles'" in message
    for op in CLIENT_OPS:
        assert op in message


def test_op_valid_for_another_socket_is_unknown_here():
    with pytest.raises(ProtocolError, match="'put'"):
        decode(frame(op="put", key="k", value="v"), WORKER_OPS)


@pytest.mark.parametrize("message", [{}, {"op": 3}, {"op": None}, {"op": b"ping"}])
def test_missing_or_non_string_op(message):
    with pytest.raises(ProtocolError, match="'op'"):
        decode(encode(message), CLIENT_OPS)


# ----------------------------------------------------------------- fields


@pytest.mark.parametrize("ops, message, field", [
    (CLIENT_OPS, {"op": "status"}, "job_id"),
    (CLIENT_OPS, {"op": "submit", "dag": "d"}, "jobs"),
    (STORE_OPS, {"op": "put", "key": "k"}, "value"),
    (WORKER_OPS, {"op": "register", "name": "w", "capabilities": []}, "slots"),
    (WORKER_OPS, {"op": "finished", "job_id": "a", "attempt": 1}, "exit_code"),
])
def test_missing_field_is_named(ops, message, field):
    with pytest.raises(ProtocolError) as info:
        decode(encode(message), ops)
    assert f"missing field '{field}'" in str(info.value)
    assert repr(message["op"]) in str(info.value)


@pytest.mark.parametrize("ops, message, field, got", [
    (CLIENT_OPS, {"op": "status", "job_id": 5}, "job_id", "int"),
    (CLIENT_OPS, {"op": "submit", "jobs": {"a": 1}}, "jobs", "dict"),
    (CLIENT_OPS, {"op": "submit", "jobs": [], "dag": 1}, "dag", "int"),
    (STORE_OPS, {"op": "put", "key": "k", "value": b"bytes"}, "value", "bytes"),
    (STORE_OPS, {"op": "incr", "key": "k", "by": 1.5}, "by", "float"),
    (WORKER_OPS, {"op": "register", "name": "w", "capabilities": "GPU", "slots": 1}, "capabilities", "str"),
    (WORKER_OPS, {"op": "register", "name": "w", "capabilities": [], "slots": 2.0}, "slots", "float"),
    (WORKER_OPS, {"op": "log", "job_id": "a", "attempt": 1, "stream": "stdout", "data": "text"}, "data", "str"),
])
def test_wrong_typed_field_is_named_with_expected_and_actual_type(ops, message, field, got):
    with pytest.raises(ProtocolError) as info:
        decode(encode(message), ops)
    text = str(info.value)
    assert f"field '{field}'" in text
    assert f"got {got}" in text


def test_unknown_fields_are_all_named():
    with pytest.raises(ProtocolError) as info:
        decode(frame(op="get", key="k", colour="red", size=3), STORE_OPS)
    text = str(info.value)
    assert "unknown field" in text and "colour" in text and "size" in text
    assert "key" not in text.split(":")[-1]


@pytest.mark.parametrize("ops, message, field", [
    (WORKER_OPS, {"op": "register", "name": "w", "capabilities": [], "slots": True}, "slots"),
    (WORKER_OPS, {"op": "finished", "job_id": "a", "attempt": True, "exit_code": 0}, "attempt"),
    (WORKER_OPS, {"op": "finished", "job_id": "a", "attempt": 1, "exit_code": False}, "exit_code"),
    (STORE_OPS, {"op": "incr", "key": "n", "by": True}, "by"),
])
def test_bool_is_not_accepted_where_an_int_is_expected(ops, message, field):
    with pytest.raises(ProtocolError) as info:
        decode(encode(message), ops)
    assert f"field '{field}'" in str(info.value) and "got bool" in str(info.value)


def test_optional_field_may_be_none_or_absent_but_not_another_type():
    decode(frame(op="stop", job_id="a", attempt=1, reason=None), MASTER_TO_WORKER_OPS)
    decode(frame(op="stop", job_id="a", attempt=1), MASTER_TO_WORKER_OPS)
    with pytest.raises(ProtocolError, match="'reason'"):
        decode(frame(op="stop", job_id="a", attempt=1, reason=["x"]), MASTER_TO_WORKER_OPS)


def test_required_field_may_not_be_none():
    with pytest.raises(ProtocolError, match="'job_id'.*NoneType"):
        decode(frame(op="status", job_id=None), CLIENT_OPS)


# ----------------------------------------------------------------- frame level


def test_oversize_frame_is_refused_before_unpacking():
    big = frame(op="put", key="k", value="x" * 1000)
    with pytest.raises(ProtocolError) as info:
        decode(big, STORE_OPS, limit=100)
    assert "limit" in str(info.value) and "100" in str(info.value)
    # Garbage over the limit is reported as too big, not as bad msgpack: size is checked first.
    with pytest.raises(ProtocolError, match="limit"):
        decode(b"\xc1" * 101, STORE_OPS, limit=100)


def test_frame_exactly_at_the_limit_is_accepted():
    ok = frame(op="get", key="k")
    assert decode(ok, STORE_OPS, limit=len(ok))[0] == "get"
    with pytest.raises(ProtocolError, match="limit"):
        decode(ok, STORE_OPS, limit=len(ok) - 1)


@pytest.mark.parametrize("raw", [
    b"\xc1",                                  # a byte msgpack never uses
    b"\x82\xa2op",                            # a map cut short
    b"",                                      # nothing at all
    encode({"op": "ping"}) + b"\x00",          # trailing bytes after one message
    b"not msgpack at all, just text \xff\xfe",
])
def test_bytes_that_are_not_one_msgpack_value_are_refused(raw):
    with pytest.raises(ProtocolError, match="msgpack"):
        decode(raw, CLIENT_OPS)


def test_map_with_non_string_keys_is_refused():
    raw = msgpack.packb({1: "x", "op": "ping"}, use_bin_type=True)
    with pytest.raises(ProtocolError, match="msgpack"):
        decode(raw, CLIENT_OPS)


@pytest.mark.parametrize("payload, kind", [([1, 2], "list"), ("ping", "str"), (7, "int"), (None, "NoneType"),
                                           (b"op", "bytes")])
def test_payload_that_is_not_a_map_is_refused(payload, kind):
    with pytest.raises(ProtocolError) as info:
        decode(encode(payload), CLIENT_OPS)
    assert "map" in str(info.value) and kind in str(info.value)


def test_decode_reply_and_events_round_trip():
    reply = protocol.error_reply("r9", "UnknownJob", "no job 'x'", {"job_id": "x"})
    assert protocol.decode_reply(encode(reply)) == reply
    assert protocol.decode_reply(encode(protocol.ok_reply("r1", [1, "a"]))) == {"rid": "r1", "ok": True,
                                                                                 "result": [1, "a"]}
    frames = protocol.encode_event("job.COMPLETED", {"job_id": "a", "seq": 4})
    assert frames[0] == b"job.COMPLETED"
    assert protocol.decode_event(frames) == {"job_id": "a", "seq": 4, "topic": "job.COMPLETED"}


# ----------------------------------------------------------------- jobs on the wire


def test_job_round_trip_with_every_field_set():
    original = spec("train", parents=["prep", "fetch"], script=b"\x00\xffbinary", job_type="RUN_ARCHIVE",
                    args="--lr 0.1 ü", port=8080, is_archive=True, priority=7, delay=2.5, affinity=True,
                    requirement="GPU", hitl_message="approve?", max_wait_seconds=60.0,
                    filename="project.zip/src/train.py", archive="ab" * 32)
    wire = job_to_wire(original)
    assert job_from_wire(wire) == original
    # ...and through real bytes, as it travels between master and worker.
    assert job_from_wire(msgpack.unpackb(encode(wire), raw=False)) == original


def test_job_round_trip_with_defaults():
    original = spec("plain")
    assert job_from_wire(msgpack.unpackb(encode(job_to_wire(original)), raw=False)) == original


def test_job_to_wire_passes_its_own_check():
    # What the SDK sends must be accepted by the master's own validation.
    protocol.check_fields("job", job_to_wire(spec("a", parents=["b"], requirement="GPU")), protocol.JOB_FIELDS)


def test_job_from_wire_fills_defaults_for_absent_and_none_fields():
    job = job_from_wire(wire_job(priority=None, requirement=None, parents=None))
    assert job == JobSpec(job_id="j", filename="j.py", script=b"print(1)\n")
    assert job.parents == ()


def test_job_from_wire_parents_become_a_tuple():
    assert job_from_wire(wire_job(parents=["a", "b"])).parents == ("a", "b")


def test_job_from_wire_rejects_non_map_naming_its_index():
    with pytest.raises(ProtocolError, match="job #3 must be a map, got list"):
        job_from_wire(["j"], index=3)


def test_job_from_wire_names_the_job_and_the_field():
    with pytest.raises(ProtocolError) as info:
        job_from_wire(wire_job(job_id="train", priority="high"))
    assert "'train'" in str(info.value) and "'priority'" in str(info.value)
    with pytest.raises(ProtocolError, match="'train'.*missing field 'filename'"):
        job_from_wire({"job_id": "train", "script": b""})
    with pytest.raises(ProtocolError, match="job #2.*'job_id'"):
        job_from_wire({"job_id": 5, "filename": "f", "script": b""}, index=2)


def test_job_from_wire_rejects_unknown_fields():
    with pytest.raises(ProtocolError, match="unknown field.*retrys"):
        job_from_wire(wire_job(retrys=3))


@pytest.mark.parametrize("fields, problem", [({"retries": -1}, "retries"), ({"timeout": 0}, "timeout"),
                                             ({"retries": "3"}, "'retries'")])
def test_job_from_wire_checks_retries_and_timeout(fields, problem):
    with pytest.raises(ProtocolError, match=problem):
        job_from_wire(wire_job(**fields))


def test_job_from_wire_rejects_bool_priority_and_int_archive_flag():
    with pytest.raises(ProtocolError, match="'priority'.*bool"):
        job_from_wire(wire_job(priority=True))
    with pytest.raises(ProtocolError, match="'is_archive'"):
        job_from_wire(wire_job(is_archive=1))
    assert job_from_wire(wire_job(is_archive=True, filename="p.zip/j.py")).is_archive is True


def test_job_from_wire_delay_may_be_int_or_float():
    assert job_from_wire(wire_job(delay=3)).delay == 3
    assert job_from_wire(wire_job(delay=0.5)).delay == 0.5
    with pytest.raises(ProtocolError, match="'delay'"):
        job_from_wire(wire_job(delay="soon"))


@pytest.mark.parametrize("job_id", ["", "   ", "\t"])
def test_job_from_wire_rejects_blank_job_id(job_id):
    with pytest.raises(ProtocolError, match="job_id .* must not be empty"):
        job_from_wire(wire_job(job_id=job_id), index=1)


def test_job_from_wire_rejects_non_string_parents():
    with pytest.raises(ProtocolError, match="'j'.*parent"):
        job_from_wire(wire_job(parents=["a", 3]))


def test_script_must_be_bytes_not_text():
    with pytest.raises(ProtocolError, match="'script'.*bytes.*str"):
        job_from_wire(wire_job(script="print(1)"))


# ----------------------------------------------------------------------------- batches (one frame per turn)

def test_a_single_message_is_sent_as_itself_and_several_as_one_batch():
    heartbeat, bye = {"op": "heartbeat"}, {"op": "bye"}
    assert protocol.decode_batch(protocol.encode_batch([heartbeat]), WORKER_OPS) == [("heartbeat", heartbeat)]
    frame = protocol.encode_batch([heartbeat, bye])
    assert msgpack.unpackb(frame, raw=False)["op"] == "batch"
    assert protocol.decode_batch(frame, WORKER_OPS) == [("heartbeat", heartbeat), ("bye", bye)]


def test_a_malformed_message_in_a_batch_spares_the_others():
    finished = {"op": "finished", "job_id": "a", "attempt": 1, "exit_code": 0}
    frame = encode({"op": "batch", "messages": [finished, {"op": "finished", "job_id": 5}, 7,
                                                {"op": "batch", "messages": []}, {"op": "bye"}]})
    carried = protocol.decode_batch(frame, WORKER_OPS)
    assert carried[0] == ("finished", finished) and carried[-1] == ("bye", {"op": "bye"})
    problems = [str(item) for item in carried[1:4]]
    assert all(isinstance(item, ProtocolError) for item in carried[1:4])
    assert "'job_id' must be str" in problems[0]
    assert "#2 of a batch must be a map" in problems[1] and "#3 of a batch" in problems[2]


def test_a_batch_that_is_not_a_list_is_refused_whole():
    with pytest.raises(ProtocolError, match="'messages' must be list"):
        protocol.decode_batch(encode({"op": "batch", "messages": {"op": "bye"}}), MASTER_TO_WORKER_OPS)


# ----------------------------------------------------------------- numbers no journal or timer can hold

TABLES = {"client": CLIENT_OPS, "store": STORE_OPS, "worker": WORKER_OPS, "master->worker": MASTER_TO_WORKER_OPS}
SAMPLES = {str: "x", bytes: b"", int: 1, float: 1.0, list: [], dict: {}, bool: False}
BAD_INTS = [2 ** 63, -(2 ** 63) - 1, 2 ** 64 - 1]
BAD_FLOATS = [float("nan"), float("inf"), float("-inf")]


def valid_message(op: str, fields: dict) -> dict:
    message = {"op": op, "rid": "r"}
    for name, field in fields.items():
        message[name] = SAMPLES[field.types[0]]
    if op == "submit":
        message["jobs"] = [wire_job()]
    return message


def numeric_fields():
    """(table, op, field, bad value) for every number field of every op of every table."""
    for table, ops in TABLES.items():
        for op, fields in ops.items():
            for name, field in fields.items():
                bad = (BAD_INTS if int in field.types else []) + (BAD_FLOATS if float in field.types else [])
                for value in bad:
                    yield pytest.param(ops, op, name, value, id=f"{table}-{op}-{name}-{value}")


@pytest.mark.parametrize("ops, op, field, value", list(numeric_fields()))
def test_every_number_out_of_range_is_refused_naming_the_op_and_field(ops, op, field, value):
    message = valid_message(op, ops[op])
    assert protocol.check_message(dict(message), ops) == op   # the message is fine before
    message[field] = value
    with pytest.raises(ProtocolError, match=rf"'{op}' message: field '{field}' must be a (signed 64-bit|finite)"):
        protocol.check_message(message, ops)


@pytest.mark.parametrize("ops, op, field", [(WORKER_OPS, "register", "info"), (WORKER_OPS, "register", "running"),
                                            (WORKER_OPS, "heartbeat", "ended"),
                                            (MASTER_TO_WORKER_OPS, "dispatch", "job")])
@pytest.mark.parametrize("value", [2 ** 63, float("nan")])
def test_numbers_inside_lists_and_maps_are_checked_too(ops, op, field, value):
    message = valid_message(op, ops[op])
    message[field] = {"cpus": [1, {"deep": value}]} if ops[op][field].types[0] is dict else [["j", value]]
    with pytest.raises(ProtocolError, match=rf"'{op}' message: field '{field}'"):
        protocol.check_message(message, ops)


@pytest.mark.parametrize("field, value", [("priority", 2 ** 63), ("port", -(2 ** 63) - 1), ("retries", 2 ** 64 - 1),
                                          ("max_wait_seconds", float("nan")), ("delay", float("inf")),
                                          ("timeout", float("nan")), ("max_wait_seconds", 2 ** 63)])
def test_a_job_in_a_submission_with_a_number_out_of_range_is_refused_naming_it(field, value):
    with pytest.raises(ProtocolError, match=rf"job 'j': field '{field}' must be a (signed 64-bit|finite)"):
        job_from_wire(wire_job(**{field: value}))


def test_a_batch_carries_the_refusal_of_its_bad_number_and_spares_the_rest():
    batch = encode({"op": "batch", "messages": [{"op": "finished", "job_id": "a", "attempt": 1, "exit_code": 2 ** 63},
                                                {"op": "bye"}]})
    refused, kept = protocol.decode_batch(batch, WORKER_OPS)
    assert isinstance(refused, ProtocolError) and "'exit_code'" in str(refused)
    assert kept[0] == "bye"


@pytest.mark.parametrize("isolation", [None, "fork", "pool", "process"])
def test_every_isolation_is_accepted_and_none_means_the_workers_default(isolation):
    """Older clients send "fork" explicitly; a job that does not choose leaves it out (None)."""
    raw = {"job_id": "j", "filename": "j.py", "script": b"print(1)\n", "isolation": isolation}
    assert job_from_wire(raw).isolation == isolation
    assert "isolation" not in job_to_wire(JobSpec("j", "j.py", b""))


def test_an_unknown_isolation_is_refused_naming_the_choices():
    raw = {"job_id": "j", "filename": "j.py", "script": b"", "isolation": "thread"}
    with pytest.raises(ProtocolError, match="isolation must be one of fork, pool, process, got 'thread'"):
        job_from_wire(raw)


_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats() | st.text(max_size=5)
    | st.binary(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_one_pass_check_passes_only_what_the_exact_check_passes(data):
    """check_message takes a message that protocol.is_plain passes without the exact check_fields: whatever
    it passes, check_fields must pass too (it is the one that says what is wrong)."""
    table = data.draw(st.sampled_from([WORKER_OPS, CLIENT_OPS, STORE_OPS, MASTER_TO_WORKER_OPS]))
    op = data.draw(st.sampled_from(sorted(table)))
    names = data.draw(st.lists(st.sampled_from([*table[op], "rid", "token", "unknown"]), unique=True))
    message = {"op": op, **{name: data.draw(_values, label=name) for name in names}}
    if protocol.is_plain(message, table.plain_types[op], table.names[op][1]):
        protocol.check_fields("message", message, table[op], ignore=("op", "rid", "token"))
        assert protocol.check_message(message, table) == op


def test_well_formed_worker_messages_take_the_one_pass_check():
    finished = {"op": "finished", "job_id": "j", "attempt": 1, "exit_code": 0}
    plain = WORKER_OPS.plain_types["finished"], WORKER_OPS.names["finished"][1]
    assert protocol.is_plain(finished, *plain)
    assert not protocol.is_plain({**finished, "attempt": True}, *plain)       # a bool is no attempt number
    assert not protocol.is_plain({**finished, "exit_code": 2**63}, *plain)    # past a signed 64-bit int
    assert not protocol.is_plain({k: v for k, v in finished.items() if k != "attempt"}, *plain)
    with pytest.raises(ProtocolError, match="'attempt' must be int, got bool"):
        protocol.check_message({**finished, "attempt": True}, WORKER_OPS)
