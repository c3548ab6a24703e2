"""The reply cache: a retried request (same request id) gets the first answer, not a second action."""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional

from titan import defaults


class ReplyCache:
    """Recent replies by request id, so a retried request gets the first answer instead of a second action."""

    def __init__(self, size: int = defaults.REPLY_CACHE_SIZE):
        self.size = size
        self._replies: "OrderedDict[str, bytes]" = OrderedDict()

    def get(self, rid: str) -> Optional[bytes]:
        return self._replies.get(rid)

    def put(self, rid: str, reply: bytes) -> None:
        self._replies[rid] = reply
        if len(self._replies) > self.size:
            self._replies.popitem(last=False)
