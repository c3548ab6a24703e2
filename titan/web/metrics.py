"""The dashboard's Prometheus metrics: the master's figures at scrape time (titan.metrics, the same as the
master's own --metrics-port serves) and histograms of dispatch latency and run time fed by events.

A dedicated CollectorRegistry, so nothing else in the process (or a test) can add to or clash with it.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from titan.metrics import ClusterCollector
from titan_sdk.client import FINAL_STATE_NAMES

DISPATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
RUN_TIME_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


class JobTimings:
    """Dispatch latency (QUEUED -> RUNNING) and run time (RUNNING -> final) from event timestamps, per
    attempt. Only transitions seen whole count: after missed events the half-seen ones are forgotten."""

    def __init__(self, registry: CollectorRegistry):
        self.dispatch_latency = Histogram(
            "titan_job_dispatch_latency_seconds", "From a job attempt's QUEUED event to its RUNNING event",
            buckets=DISPATCH_BUCKETS, registry=registry)
        self.run_time = Histogram(
            "titan_job_run_seconds", "From a job's RUNNING event to its final event (COMPLETED, FAILED, "
                                     "CANCELLED)", buckets=RUN_TIME_BUCKETS, registry=registry)
        self._queued_at: Dict[str, float] = {}
        self._running_since: Dict[str, float] = {}

    def observe(self, event: dict) -> None:
        job_id, state, ts = event.get("job_id"), event.get("state"), event.get("ts")
        if not job_id or ts is None or not event.get("topic", "").startswith("job."):
            return
        started = self._running_since.pop(job_id, None)
        if state == "QUEUED":
            self._queued_at[job_id] = ts
        elif state == "RUNNING":
            self._observe_since(self.dispatch_latency, self._queued_at.pop(job_id, None), ts)
            self._running_since[job_id] = ts
        elif state in FINAL_STATE_NAMES:
            self._queued_at.pop(job_id, None)
            self._observe_since(self.run_time, started, ts)

    @staticmethod
    def _observe_since(histogram: Histogram, since: Optional[float], now: float) -> None:
        if since is not None:
            histogram.observe(max(0.0, now - since))

    def forget_pending(self) -> None:
        self._queued_at.clear()
        self._running_since.clear()


class DashboardMetrics:
    def __init__(self, read_stats: Callable[[], Tuple[dict, bool]]):
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(ClusterCollector(read_stats))
        self.timings = JobTimings(self.registry)

    def text(self) -> bytes:
        return generate_latest(self.registry)
