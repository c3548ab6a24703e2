"""Noticing events lost between the master and a subscriber, by their per-topic numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional


@dataclass(frozen=True)
class EventGap:
    """Events lost just before one that arrived: `missing` of its topic, or None when it comes from another
    run of the master (it restarted: what was lost is unknown)."""

    topic: str
    missing: Optional[int]

    def __str__(self) -> str:
        if self.missing is None:
            return "the master restarted; events of its earlier run may have been lost"
        return f"{self.missing} {self.topic} event{'s' if self.missing != 1 else ''} lost"


class EventOrder:
    """Notices events lost between the master and one subscriber.

    Within one run of the master, the events of each topic are numbered 1, 2, 3, ... (topic_seq), so a
    subscriber to some topics can tell an event it did not ask for from one it lost: a PUB socket drops
    events for a slow subscriber past its high-water mark. Feed it every event the subscription receives.
    """

    def __init__(self) -> None:
        self.run_id: Optional[str] = None
        self._last: Dict[str, int] = {}    # topic -> number of the last event of it seen

    def check(self, event: dict) -> Optional[EventGap]:
        """The gap just before this event, or None if none shows."""
        topic, number = event.get("topic", ""), event.get("topic_seq")
        restarted = event.get("run_id") != self.run_id and self.run_id is not None
        if event.get("run_id") != self.run_id:
            self.run_id, self._last = event.get("run_id"), {}
        if not isinstance(number, int):
            return EventGap(topic, None) if restarted else None
        previous, self._last[topic] = self._last.get(topic), number
        if restarted:
            return EventGap(topic, None)
        if previous is not None and number > previous + 1:
            return EventGap(topic, number - previous - 1)
        return None
