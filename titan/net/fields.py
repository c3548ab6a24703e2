"""Checking a map's fields against the catalogue (titan.net.messages): the one error type of a message
that does not follow it (ProtocolError), the exact check whose text names what is wrong (check_fields,
check_strictly), and the one-pass test that a well-formed message passes it (is_plain). Every number a peer
sends must fit where it ends up (number_problem)."""

from __future__ import annotations

import math
from typing import Dict, Optional

from titan.core.store import INT64_MAX, INT64_MIN
from titan.net.messages import Field


class ProtocolError(Exception):
    """A message that does not follow this module's shapes; the text says how."""

    kind = "ProtocolError"
    rid = None   # the request id, when the message got far enough to have one


class MisbuiltMessage(ProtocolError):
    """A message, reply or event this process built that does not match the catalogue: a bug here, not a
    peer's bad input. The text starts with MISBUILT, which the test suite looks for in every log."""

    kind = "MisbuiltMessage"

    def __init__(self, problem: str):
        super().__init__(f"{MISBUILT}: {problem}")


MISBUILT = "message does not match the catalogue (titan.net.messages)"




# Every number a peer sends must fit where it ends up: SQLite keeps signed 64-bit integers (a bigger one
# made the journal unloadable), and a NaN or infinite float freezes every timer it is compared with.
# Fields whose contents are checked one by one elsewhere (decode_batch, job_from_wire): not walked twice.
CONTENTS_CHECKED_ELSEWHERE = frozenset({"messages", "jobs"})


def number_problem(value) -> Optional[str]:
    """Why this number cannot be taken from a peer, or None (also for anything not a number)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        return f"must be a signed 64-bit integer, got {value}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    return None


def _nested_number_problem(value) -> Optional[str]:
    """number_problem for the first bad number anywhere inside lists and maps (walked without recursion,
    so a deeply nested value cannot exhaust the stack)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        else:
            problem = number_problem(item)
            if problem:
                return problem
    return None


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
        walked = isinstance(value, (dict, list)) and name not in CONTENTS_CHECKED_ELSEWHERE
        problem = _nested_number_problem(value) if walked else number_problem(value)
        if problem:
            raise ProtocolError(f"{what}: field {name!r} {problem}")


def is_plain(message: dict, types_by_name: Dict[str, tuple], required: frozenset,
             maps: Optional[Dict[str, tuple]] = None) -> bool:
    """True when check_fields would pass the message, checked in one pass without building any text: every
    field is declared with exactly its value's type, every number fits and none required is missing. A
    False only means the exact check (check_fields) must look, for the message that says what is wrong.
    `maps`: name -> (types_by_name, required) of a field holding a map declared field by field (a
    dispatch's job, Table.plain_maps). Such a map passing this same test holds no number that does not
    fit, which is cheaper to learn so than by looking at each of its keys and values; one that does not
    pass is looked at so, as any other map."""
    return _is_plain(message, types_by_name, required, maps, CONTENTS_CHECKED_ELSEWHERE)


_WALK_ALL: frozenset = frozenset()


def _is_plain(message: dict, types_by_name: Dict[str, tuple], required: frozenset,
              maps: Optional[Dict[str, tuple]], not_walked: frozenset) -> bool:
    for name, value in message.items():
        types = types_by_name.get(name)
        kind = type(value)
        if types is None or kind not in types:
            return False
        if kind is int:
            if not INT64_MIN <= value <= INT64_MAX:
                return False
        elif kind is float:
            if not math.isfinite(value):
                return False
        elif (kind is list or kind is dict) and name not in not_walked:
            declared = maps.get(name) if maps and kind is dict else None
            if declared is not None and _is_plain(value, *declared, None, _WALK_ALL):
                continue   # inside it every list and map was walked: nothing is skipped at that level
            if _nested_number_problem(value):
                return False
    return required <= message.keys()


def is_of_type(value, types: tuple) -> bool:
    """isinstance, except that a bool is not taken for an int unless bool is among the types."""
    if isinstance(value, bool) and bool not in types:
        return False  # True is an int to Python, but never a priority or a port
    return isinstance(value, types)


def check_strictly(what: str, message: dict, fields: Dict[str, Field], ignore: tuple = ()) -> None:
    """check_fields, then inside every map and list whose Field declares a shape."""
    check_fields(what, message, fields, ignore)
    for name, field in fields.items():
        value = message.get(name)
        if field.shape is not None and value is not None:
            _check_contents(f"{what}: field {name!r}", value, field.shape)


def check_value(what: str, value, field: Field) -> None:
    """One value (a result, an item of a list) against its Field, shape included."""
    if not is_of_type(value, field.types):
        expected = " or ".join(t.__name__ for t in field.types)
        raise ProtocolError(f"{what} must be {expected}, got {type(value).__name__}")
    if field.shape is not None and value is not None:
        _check_contents(what, value, field.shape)


def _check_contents(what: str, value, shape) -> None:
    if isinstance(shape, Field) and isinstance(value, list):   # every item of a list
        for index, item in enumerate(value):
            check_value(f"{what}, item #{index}", item, shape)
    elif isinstance(shape, dict) and isinstance(value, dict):  # a map's own fields
        check_strictly(what, value, shape)
