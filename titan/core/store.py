"""TitanStore's data: strings, sets and counters under string keys (Redis-like semantics)."""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Set, Union

from titan import defaults
from titan.core.errors import LimitExceeded, StoreTypeError

Value = Union[str, Set[str]]

# What counts as an integer, as Redis counts it: ASCII digits, an optional minus, nothing else.
_INTEGER = re.compile(r"-?[0-9]+")


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class Store:
    def __init__(self, max_value_bytes: int = defaults.MAX_STORE_VALUE_BYTES,
                 max_keys: int = defaults.MAX_STORE_KEYS) -> None:
        self._data: Dict[str, Value] = {}
        self.max_value_bytes, self.max_keys = max_value_bytes, max_keys

    def put(self, key: str, value: str) -> str:
        self._check_room(key)
        self._check_value(key, value, "value")
        self._data[key] = value
        return "OK"

    def get(self, key: str) -> Optional[str]:
        return self._string(key, "get")

    def delete(self, key: str) -> int:
        return 1 if self._data.pop(key, None) is not None else 0

    def incr(self, key: str, by: int = 1) -> int:
        current = self._string(key, "incr")
        if current is not None and not _INTEGER.fullmatch(current):
            raise StoreTypeError(f"store incr: key {key!r} holds {current!r}, which is not an integer", key=key)
        value = int(current or 0) + by
        if not INT64_MIN <= value <= INT64_MAX:   # the reply could not carry it, nor a client read it back
            raise StoreTypeError(f"store incr: key {key!r} would hold {value}, outside the signed 64-bit range "
                                 "counters are kept in", key=key)
        self._check_room(key)
        self._data[key] = str(value)
        return value

    def sadd(self, key: str, member: str) -> int:
        self._check_room(key)
        self._check_value(key, member, "set member")
        members = self._set(key, "sadd", create=True)
        if member in members:
            return 0
        members.add(member)
        return 1

    def smembers(self, key: str) -> List[str]:
        return sorted(self._set(key, "smembers", create=False))

    def keys(self, prefix: str = "") -> List[str]:
        return sorted(k for k in self._data if k.startswith(prefix))

    def __len__(self) -> int:
        return len(self._data)

    def raw(self, key: str) -> Optional[Value]:
        """The key's value as held (a string or a set), None if absent: what the journal records."""
        value = self._data.get(key)
        return set(value) if isinstance(value, set) else value

    def restore(self, data: Dict[str, Value]) -> None:
        self._data = {key: set(value) if isinstance(value, set) else value for key, value in data.items()}

    def _check_value(self, key: str, value: str, what: str) -> None:
        if len(value) * 4 <= self.max_value_bytes:
            return   # UTF-8 takes at most 4 bytes a character: only a value that might be over is measured
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > self.max_value_bytes:
            raise LimitExceeded(f"store {what} for {key!r} is {size:,} bytes, over the {self.max_value_bytes:,}-byte "
                                "limit (master flag --max-store-value-bytes)", key=key, limit="max-store-value-bytes")

    def _check_room(self, key: str) -> None:
        """A new key needs room (and a name of reasonable size); changing an existing one never does."""
        if key in self._data:
            return
        if len(key) * 4 > defaults.MAX_STORE_KEY_BYTES and len(key.encode("utf-8", "surrogatepass")) > \
                defaults.MAX_STORE_KEY_BYTES:
            raise LimitExceeded(f"store key of {len(key.encode('utf-8', 'surrogatepass')):,} bytes is over the "
                                f"{defaults.MAX_STORE_KEY_BYTES:,}-byte limit (it starts {key[:40]!r})",
                                key=key[:40], limit="max-store-key-bytes")
        if len(self._data) >= self.max_keys:
            raise LimitExceeded(f"store is full: {len(self._data):,} keys, the limit (master flag "
                                f"--max-store-keys); delete keys or raise the limit to add {key!r}",
                                key=key, limit="max-store-keys")

    def _string(self, key: str, op: str) -> Optional[str]:
        value = self._data.get(key)
        if isinstance(value, set):
            raise StoreTypeError(f"store {op}: key {key!r} holds a set; use store_smembers", key=key)
        return value

    def _set(self, key: str, op: str, create: bool) -> Set[str]:
        value = self._data.get(key)
        if value is None:
            value = set()
            if create:
                self._data[key] = value
        if not isinstance(value, set):
            raise StoreTypeError(f"store {op}: key {key!r} holds a string, not a set", key=key)
        return value
