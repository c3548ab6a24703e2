"""The worker's check of a dispatch takes a well-formed job's map in one pass (is_plain's `maps`) instead of
looking at each of its keys and values, and refuses exactly what the exact check refuses, with its text.

The check before this shortcut accepted a message only when the exact check (check_fields) did: its own
one-pass test passed nothing check_fields refuses (test_protocol's
test_the_one_pass_check_passes_only_what_the_exact_check_passes). So "the same answer as check_fields"
here is "the same answer as before"."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from titan.net import protocol
from titan.net.messages import CLIENT_OPS, JOB_FIELDS, MASTER_TO_WORKER_OPS, STORE_OPS, WORKER_OPS
from titan.net.protocol import ProtocolError

DISPATCH = MASTER_TO_WORKER_OPS["dispatch"]
PLAIN = (MASTER_TO_WORKER_OPS.plain_types["dispatch"], MASTER_TO_WORKER_OPS.names["dispatch"][1],
         MASTER_TO_WORKER_OPS.plain_maps["dispatch"])
WELL_FORMED_JOB = {"job_id": "t1_7", "filename": "starts_noop.py", "isolation": "pool", "script_sha256": "ab" * 32}
BAD_NUMBERS = [2 ** 63, -(2 ** 63) - 1, 2 ** 64 - 1, float("nan"), float("inf"), float("-inf")]

_numbers = st.sampled_from(BAD_NUMBERS) | st.integers(min_value=-2**65, max_value=2**65) | st.floats()
_values = st.recursive(
    st.none() | st.booleans() | _numbers | st.text(max_size=4) | st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6)


def exact_answer(message: dict):
    """What the exact check says of a dispatch: its op, or the text of its refusal."""
    try:
        protocol.check_fields("'dispatch' message", message, DISPATCH, ignore=("op", "rid", "token"))
    except ProtocolError as exc:
        return str(exc)
    return "dispatch"


def answer(message: dict):
    try:
        return protocol.check_message(message, MASTER_TO_WORKER_OPS)
    except ProtocolError as exc:
        return str(exc)


@st.composite
def dispatches(draw):
    """A dispatch like the master's, then changed: fields of its job replaced by any value (numbers out
    of range deep inside lists and maps among them), left out, or added under a name not declared."""
    job = dict(WELL_FORMED_JOB)
    for name in draw(st.lists(st.sampled_from([*JOB_FIELDS, "unknown", "jobs", "messages"]), unique=True, max_size=4)):
        if draw(st.booleans()):
            job[name] = draw(_values, label=name)
        else:
            job.pop(name, None)
    message = {"op": "dispatch", "job": job, "attempt": draw(st.sampled_from([1, True, 2 ** 63, 1.0])),
               "dag": draw(st.sampled_from([None, "d", 3]))}
    if draw(st.booleans()):
        message["job_key"] = draw(st.sampled_from([["pub", "sec"], [2 ** 63, "sec"], None, "x"]))
    return message


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dispatches())
def test_a_dispatch_gets_the_exact_checks_answer_and_its_text(message):
    expected = exact_answer(message)
    assert answer(message) == expected
    if protocol.is_plain(message, *PLAIN):   # the shortcut only ever says yes to what the exact check takes
        assert expected == "dispatch"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_with_maps_the_one_pass_check_still_passes_only_what_the_exact_check_passes(data):
    """The same as test_protocol's test of is_plain, for every op of every table, its maps declared."""
    table = data.draw(st.sampled_from([WORKER_OPS, CLIENT_OPS, STORE_OPS, MASTER_TO_WORKER_OPS]))
    op = data.draw(st.sampled_from(sorted(table)))
    names = data.draw(st.lists(st.sampled_from([*table[op], "rid", "token", "unknown"]), unique=True))
    message = {"op": op, **{name: data.draw(_values, label=name) for name in names}}
    for name in table.plain_maps[op]:   # a map of its declared fields too, not only random keys
        if name in message and data.draw(st.booleans()):
            message[name] = {key: data.draw(_values, label=key)
                             for key in data.draw(st.lists(st.sampled_from(sorted(table[op][name].shape)), max_size=4))}
    if protocol.is_plain(message, table.plain_types[op], table.names[op][1], table.plain_maps[op]):
        protocol.check_fields("message", message, table[op], ignore=("op", "rid", "token"))
        assert protocol.check_message(message, table) == op


def test_a_well_formed_dispatch_takes_the_one_pass_check():
    assert protocol.is_plain({"op": "dispatch", "job": WELL_FORMED_JOB, "attempt": 1, "dag": "d"}, *PLAIN)


@pytest.mark.parametrize("job, named", [
    ({**WELL_FORMED_JOB, "priority": 2 ** 63}, "must be a signed 64-bit integer, got 9223372036854775808"),
    ({**WELL_FORMED_JOB, "parents": ["a", [float("nan")]]}, "must be a finite number, got nan"),
    ({**WELL_FORMED_JOB, "unknown": {"deep": [-(2 ** 63) - 1]}}, "must be a signed 64-bit integer"),
    ({"filename": "j.py", "timeout": float("inf")}, "must be a finite number, got inf"),
])
def test_a_job_holding_a_number_that_does_not_fit_is_refused_naming_the_field(job, named):
    message = {"op": "dispatch", "job": job, "attempt": 1}
    assert not protocol.is_plain(message, *PLAIN)
    with pytest.raises(ProtocolError, match=rf"'dispatch' message: field 'job' {named}"):
        protocol.check_message(message, MASTER_TO_WORKER_OPS)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=400))
def test_a_corrupt_or_forged_frame_gives_a_protocol_error_and_nothing_else(noise, cut):
    """What Worker._drain_master does with a frame: anything but a ProtocolError would reach its loop."""
    good = protocol.encode_batch([{"op": "dispatch", "job": WELL_FORMED_JOB, "attempt": 1},
                                  {"op": "stop", "job_id": "t1_7", "attempt": 1}])
    for frame in (noise, good[:cut] + noise, msgpack.packb({"op": "dispatch", "job": noise, "attempt": cut})):
        try:
            carried = protocol.decode_batch(frame, MASTER_TO_WORKER_OPS)
        except ProtocolError as exc:
            assert str(exc)
            continue
        for item in carried:
            assert isinstance(item, ProtocolError) and str(item) or item[0] in MASTER_TO_WORKER_OPS
