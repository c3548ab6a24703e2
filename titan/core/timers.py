"""Deadlines the scheduler waits for: a delay ending, a retry backoff ending, an orphan's grace ending.

One heap for all of them, so the master asks a single question: when must I tick next?
"""

from __future__ import annotations

import heapq
from typing import List, Optional, Tuple

DELAY = "delay"        # a PENDING job's `delay` is over
BACKOFF = "backoff"    # a failed job's retry may be queued
ORPHAN = "orphan"      # a RUNNING job whose worker has not come back since the master restarted
GATE = "gate"          # a human-in-the-loop gate's max_wait_seconds is over


class Deadlines:
    def __init__(self) -> None:
        self._heap: List[Tuple[float, int, str, str]] = []

    def add(self, at: float, kind: str, seq: int, job_id: str) -> None:
        heapq.heappush(self._heap, (at, seq, kind, job_id))

    def due(self, now: float) -> List[Tuple[str, int, str]]:
        """(kind, seq, job_id) of every deadline at or before `now`, earliest first, removed."""
        due = []
        while self._heap and self._heap[0][0] <= now:
            _, seq, kind, job_id = heapq.heappop(self._heap)
            due.append((kind, seq, job_id))
        return due

    def next(self) -> Optional[float]:
        return self._heap[0][0] if self._heap else None

    def pending(self, kind: str, job_id: str) -> bool:
        return any(entry[2] == kind and entry[3] == job_id for entry in self._heap)
