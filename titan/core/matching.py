"""The capability-matching load balancer: (requirement, worker views) -> the worker to use, or None."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

from titan import defaults


@dataclass
class WorkerView:
    """What the scheduler knows of one connected worker."""

    worker_id: str
    name: str
    capabilities: frozenset
    slots: int
    running: set = field(default_factory=set)   # job ids it runs now
    last_seen: float = 0.0
    info: dict = field(default_factory=dict)     # host, pid, cpus, memory: shown, never used to decide
    usage: dict = field(default_factory=dict)    # the host's CPU and memory use at its last heartbeat
    special_capabilities: int = field(init=False, default=0)   # capabilities beyond GENERAL

    @property
    def free_slots(self) -> int:
        return self.slots - len(self.running)

    @property
    def load(self) -> float:
        return len(self.running) / self.slots if self.slots else 1.0

    def __post_init__(self):
        # asked for at every dispatch of a GENERAL job; the capabilities never change
        self.special_capabilities = len(self.capabilities - {defaults.DEFAULT_REQUIREMENT})

    def can_run(self, requirement: str) -> bool:
        return requirement == defaults.DEFAULT_REQUIREMENT or requirement in self.capabilities

    def describe(self, now: Optional[float] = None) -> dict:
        """Its facts; given the clock's `now`, also how many seconds ago it was last heard from (last_seen
        is on the master's own clock, which means nothing elsewhere)."""
        age = None if now is None else round(max(0.0, now - self.last_seen), 3)
        return {   # what the worker says of its host first, so it can never stand in for the master's facts
            **self.info, "worker_id": self.worker_id, "name": self.name, "capabilities": sorted(self.capabilities),
            "slots": self.slots, "running": sorted(self.running), "load": round(self.load, 3),
            "last_seen": self.last_seen, "last_heartbeat_s_ago": age, "usage": self.usage or None,
        }


def choose_worker(requirement: str, workers: Iterable[WorkerView]) -> Optional[WorkerView]:
    """Least-loaded capable worker with a free slot.

    GENERAL jobs prefer workers with fewer special capabilities, so GPU workers stay free for GPU jobs.
    """
    capable = [w for w in workers if w.free_slots > 0 and w.can_run(requirement)]
    if not capable:
        return None
    if requirement == defaults.DEFAULT_REQUIREMENT:
        return min(capable, key=lambda w: (w.special_capabilities, w.load, -w.free_slots, w.name))
    return min(capable, key=lambda w: (w.load, -w.free_slots, w.special_capabilities, w.name))


def anyone_offers(requirement: str, workers: Iterable[WorkerView]) -> bool:
    return any(w.can_run(requirement) for w in workers)


def offered_capabilities(workers: Iterable[WorkerView]) -> list:
    offered = {defaults.DEFAULT_REQUIREMENT}
    for worker in workers:
        offered |= worker.capabilities
    return sorted(offered)
