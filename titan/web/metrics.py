"""Prometheus metrics: gauges read from the master's stats at scrape time, histograms fed by events.

A dedicated CollectorRegistry, so nothing else in the process (or a test) can add to or clash with it.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from titan_sdk.client import FINAL_STATE_NAMES

DISPATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
RUN_TIME_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


class ClusterCollector:
    """Gauges from one stats reply, taken when Prometheus scrapes. `read_stats` returns (stats, reached):
    the freshest stats it has, and whether the master answered just now."""

    def __init__(self, read_stats: Callable[[], Tuple[dict, bool]]):
        self.read_stats = read_stats

    def describe(self):
        return []        # no stats call while registering: the master may not be up yet

    def collect(self):
        stats, reached = self.read_stats()
        up = GaugeMetricFamily("titan_master_up", "1 if the master answered this scrape, else 0 (the other "
                                                  "gauges then show its last answer)")
        up.add_metric([], 1 if reached else 0)
        yield up
        yield from _job_gauges(stats)
        yield from _retention_gauges(stats)
        yield from _worker_gauges(stats.get("workers") or [])


def _job_gauges(stats: dict):
    jobs = GaugeMetricFamily("titan_jobs", "Jobs the master knows, by state", labels=["state"])
    for state, count in sorted((stats.get("jobs_by_state") or {}).items()):
        jobs.add_metric([state], count)
    queued = GaugeMetricFamily("titan_queue_depth", "QUEUED jobs by the capability they require",
                               labels=["requirement"])
    for requirement, count in sorted((stats.get("queued_by_requirement") or {}).items()):
        queued.add_metric([requirement], count)
    return jobs, queued


def _retention_gauges(stats: dict):
    """What the master keeps and when it last forgot something (titan.core.retention)."""
    last = stats.get("last_cleaning") or {}
    for name, what, value in (
            ("titan_jobs_kept", "Job runs the master keeps (current and earlier runs)", stats.get("jobs_kept")),
            ("titan_jobs_forgotten", "Job runs forgotten since the master started", stats.get("jobs_forgotten")),
            ("titan_journal_bytes", "Size of the master's journal (titan.db and its WAL)", stats.get("journal_bytes")),
            ("titan_last_cleaning_timestamp_seconds", "When the master last forgot something (Unix time)",
             last.get("at"))):
        if value is not None:
            gauge = GaugeMetricFamily(name, what)
            gauge.add_metric([], value)
            yield gauge


def _worker_gauges(workers: list):
    count = GaugeMetricFamily("titan_workers", "Connected workers")
    count.add_metric([], len(workers))
    slots = GaugeMetricFamily("titan_worker_slots", "Jobs a worker may run at once", labels=["worker"])
    used = GaugeMetricFamily("titan_worker_slots_used", "Jobs a worker runs now", labels=["worker"])
    load = GaugeMetricFamily("titan_worker_load", "A worker's load as it reports it", labels=["worker"])
    for worker in workers:
        slots.add_metric([worker["name"]], worker["slots"])
        used.add_metric([worker["name"]], len(worker.get("running") or []))
        load.add_metric([worker["name"]], worker.get("load") or 0)
    return count, slots, used, load


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
