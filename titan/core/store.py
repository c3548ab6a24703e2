"""TitanStore's data: strings, sets and counters under string keys (Redis-like semantics)."""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Set, Union

from titan.core.errors import StoreTypeError

Value = Union[str, Set[str]]

# What counts as an integer, as Redis counts it: ASCII digits, an optional minus, nothing else.
_INTEGER = re.compile(r"-?[0-9]+")


class Store:
    def __init__(self) -> None:
        self._data: Dict[str, Value] = {}

    def put(self, key: str, value: str) -> str:
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
        self._data[key] = str(value)
        return value

    def sadd(self, key: str, member: str) -> int:
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
