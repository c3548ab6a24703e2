"""The master's garbage collector: when it runs (Collector) and how long it pauses the loop, per
generation (GcPauses, stats()["gc"]). A collection runs inside the turn that triggers it, so its pause
is part of that turn's time.

Python's own policy collects whenever allocations pass a threshold: in S8 a young collection scanned the
100,000 objects allocated since the one before (24-40 ms of CPU in a turn), and an older generation's
one every object of the jobs kept (436 ms seen). Yet almost nothing the master makes is cyclic garbage
(175 objects freed by the collector over S8's first 100,000 jobs): reference counting frees what a
forgotten job leaves. So the master turns automatic collection off and, at the end of a turn:
- once GC_YOUNG_OBJECTS more objects are tracked than at the last collection, collects the young ones
  (those allocated since) and freezes the survivors (gc.freeze: no later young collection scans them
  again), so a young collection costs what the turns since allocated, not what the master keeps; after
  a turn that admitted a large submission it freezes them unscanned (they are the new jobs, alive), as
  it does a restart's recovered jobs before the first turn (keep_all);
- a full collection (unfreeze, collect all, freeze) when the master has nothing to do, at most every
  GC_IDLE_EVERY_S, and at least every GC_FULL_EVERY_S however busy: cyclic garbage among the frozen
  objects (one that outlived a turn, then lost its last outside reference) waits for it, no longer."""

from __future__ import annotations

import gc
import time
from typing import Optional

from titan import defaults

GENERATIONS = (0, 1, 2)


class Collector:
    """The policy the module's text describes; automatic collection is off from start() to stop().
    Process-wide: for the master's own process (serve())."""

    def __init__(self, young_objects: int = defaults.GC_YOUNG_OBJECTS, idle_every_s: float = defaults.GC_IDLE_EVERY_S,
                 full_every_s: float = defaults.GC_FULL_EVERY_S) -> None:
        self.young_objects, self.idle_every_s, self.full_every_s = young_objects, idle_every_s, full_every_s
        self.young_collections = self.full_collections = 0
        self._last_full = float("-inf")        # monotonic
        self._was_enabled = True

    def start(self, now: float) -> "Collector":
        self._was_enabled = gc.isenabled()
        gc.disable()
        self.collect_all(now)
        return self

    def stop(self) -> None:
        gc.unfreeze()
        if self._was_enabled:
            gc.enable()

    def after_turn(self, now: float, idle: bool = False, admitted: bool = False) -> Optional[str]:
        """Collect what is due (`idle`: the turn had nothing to do; `admitted`: it admitted a large
        submission); "full", "young", "frozen" or None for what it did."""
        since_full = now - self._last_full
        if since_full >= self.full_every_s or (idle and since_full >= self.idle_every_s):
            self.collect_all(now)
            return "full"
        if gc.get_count()[0] < self.young_objects:   # allocated less freed since the last collection
            return None
        if admitted:
            gc.freeze()   # resets the count too
            return "frozen"
        gc.collect(0)
        gc.freeze()
        self.young_collections += 1
        return "young"

    def keep_all(self) -> None:
        """Freeze what is tracked now unscanned (a recovered journal's jobs, before the first turn): a young
        collection of millions of objects would pause that turn for seconds; the next full one looks."""
        gc.freeze()

    def collect_all(self, now: float) -> None:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.full_collections += 1
        self._last_full = now


class GcPauses:
    """Times every collection of this process (gc.callbacks) while installed: per generation, how many,
    their total and the longest, wall and CPU (the collecting thread's)."""

    def __init__(self) -> None:
        self._began: Optional[tuple] = None
        self.totals = {generation: _Tally() for generation in GENERATIONS}   # since start
        self.peaks = {generation: _Tally() for generation in GENERATIONS}    # since the last reset

    def install(self) -> None:
        if self._on_collection not in gc.callbacks:
            gc.callbacks.append(self._on_collection)

    def remove(self) -> None:
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)

    def _on_collection(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._began = (time.perf_counter(), time.thread_time())
            return
        if self._began is None:   # installed during a collection
            return
        wall, cpu = time.perf_counter() - self._began[0], time.thread_time() - self._began[1]
        self._began = None
        generation = info["generation"]
        for tally in (self.totals[generation], self.peaks[generation]):
            tally.add(wall, cpu, info["collected"])

    def stats(self, reset_peaks: bool) -> dict:
        """Per generation ("gen0".."gen2"): collections, their total CPU ms and the unreachable objects
        they freed (cyclic garbage: all else is freed by reference counting) since start; the longest
        (wall and CPU ms) since start or the last reset."""
        answer = {f"gen{generation}": {"collections": self.totals[generation].count,
                                       "total_cpu_ms": round(self.totals[generation].cpu * 1000, 3),
                                       "collected": self.totals[generation].collected,
                                       "longest_ms": round(self.peaks[generation].longest_wall * 1000, 3),
                                       "longest_cpu_ms": round(self.peaks[generation].longest_cpu * 1000, 3)}
                  for generation in GENERATIONS}
        if reset_peaks:
            self.peaks = {generation: _Tally() for generation in GENERATIONS}
        return answer


class _Tally:
    __slots__ = ("count", "cpu", "collected", "longest_wall", "longest_cpu")

    def __init__(self) -> None:
        self.count, self.cpu, self.collected, self.longest_wall, self.longest_cpu = 0, 0.0, 0, 0.0, 0.0

    def add(self, wall: float, cpu: float, collected: int) -> None:
        self.count += 1
        self.collected += collected
        self.cpu += cpu
        self.longest_wall = max(self.longest_wall, wall)
        self.longest_cpu = max(self.longest_cpu, cpu)
