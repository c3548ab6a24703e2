"""The Prometheus families of one master `stats` reply, shared by the master's own --metrics-port and the
dashboard's /metrics, so both serve the same names. Prometheus conventions: counters end in _total,
units are the base ones (_seconds, _bytes, _ratio), `titan_build_info` carries the version as a label."""

from __future__ import annotations

from typing import Callable, Tuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

import titan

FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED")


class ClusterCollector:
    """Families from one stats reply, taken when Prometheus scrapes. `read_stats` returns (stats, reached):
    the freshest stats it has, and whether they are current (the master answered)."""

    def __init__(self, read_stats: Callable[[], Tuple[dict, bool]]):
        self.read_stats = read_stats

    def describe(self):
        return []        # no stats call while registering: the master may not be up yet

    def collect(self):
        stats, reached = self.read_stats()
        build = GaugeMetricFamily("titan_build_info", "Titan's version; always 1", labels=["version"])
        build.add_metric([titan.__version__], 1)
        up = GaugeMetricFamily("titan_master_up", "1 if the master answered this scrape, else 0 (the other "
                                                  "figures then show its last answer)")
        up.add_metric([], 1 if reached else 0)
        yield from (build, up)
        if stats.get("uptime_s") is not None:
            uptime = GaugeMetricFamily("titan_master_uptime_seconds", "Seconds since the master started")
            uptime.add_metric([], stats["uptime_s"])
            yield uptime
        yield from _job_gauges(stats)
        yield from _counters(stats.get("totals") or {})
        yield from _worker_gauges(stats.get("workers") or [])


def _job_gauges(stats: dict):
    jobs = GaugeMetricFamily("titan_jobs", "Jobs the master knows, by state", labels=["state"])
    for state, count in sorted((stats.get("jobs_by_state") or {}).items()):
        jobs.add_metric([state], count)
    queued = GaugeMetricFamily("titan_queue_depth", "QUEUED jobs ready to run, by the capability they require",
                               labels=["requirement"])
    for requirement, count in sorted((stats.get("queued_by_requirement") or {}).items()):
        queued.add_metric([requirement], count)
    return jobs, queued


def _counters(totals: dict):
    """Counts since the master started; a restarted master starts them at 0, which rate() allows for."""
    submitted = CounterMetricFamily("titan_jobs_submitted_total", "Job runs admitted (submissions, gates, "
                                                                  "retries by request)")
    submitted.add_metric([], totals.get("submitted", 0))
    ended = CounterMetricFamily("titan_jobs_ended_total", "Jobs that reached a final state, by that state",
                                labels=["state"])
    for state in FINAL_STATES:
        ended.add_metric([state], (totals.get("ended") or {}).get(state, 0))
    retries = CounterMetricFamily("titan_job_retries_total", "Jobs run again: after a failed attempt "
                                                             "(retries=N) or by request (Retry)")
    retries.add_metric([], totals.get("retries", 0))
    lost = CounterMetricFamily("titan_workers_lost_total", "Workers declared dead (no heartbeat)")
    lost.add_metric([], totals.get("workers_lost", 0))
    return submitted, ended, retries, lost


def _worker_gauges(workers: list):
    count = GaugeMetricFamily("titan_workers", "Connected workers")
    count.add_metric([], len(workers))
    families = {
        "slots": GaugeMetricFamily("titan_worker_slots", "Jobs a worker may run at once", labels=["worker"]),
        "used": GaugeMetricFamily("titan_worker_slots_used", "Jobs a worker runs now", labels=["worker"]),
        "load": GaugeMetricFamily("titan_worker_load_ratio", "Slots in use / slots", labels=["worker"]),
        "cpu": GaugeMetricFamily("titan_worker_host_cpu_ratio", "CPU use of the worker's host (0-1), at its "
                                                                "last heartbeat", labels=["worker"]),
        "memory": GaugeMetricFamily("titan_worker_host_memory_used_bytes", "Memory in use on the worker's "
                                                                           "host", labels=["worker"]),
        "memory_total": GaugeMetricFamily("titan_worker_host_memory_total_bytes", "Memory of the worker's host",
                                          labels=["worker"]),
    }
    for worker in workers:
        name, usage = [worker["name"]], worker.get("usage") or {}
        families["slots"].add_metric(name, worker["slots"])
        families["used"].add_metric(name, len(worker.get("running") or []))
        families["load"].add_metric(name, worker.get("load") or 0)
        if usage:
            families["cpu"].add_metric(name, usage["cpu_percent"] / 100)
            families["memory"].add_metric(name, usage["memory_used_bytes"])
            families["memory_total"].add_metric(name, usage["memory_total_bytes"])
    return (count, *families.values())
