"""titan.metrics: the families of one stats reply, as the master's --metrics-port and the dashboard serve
them, parsed back with Prometheus' own parser."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import titan
from titan.metrics import ClusterCollector

STATS = {"jobs_by_state": {"RUNNING": 1, "FAILED": 2}, "queued_by_requirement": {"GPU": 3}, "uptime_s": 12.5,
         "totals": {"submitted": 9, "ended": {"FAILED": 2}, "retries": 4, "workers_lost": 1},
         "workers": [{"name": "w1", "slots": 4, "running": ["a"], "load": 0.25,
                      "usage": {"cpu_percent": 50.0, "memory_percent": 25.0, "memory_used_bytes": 1024,
                                "memory_total_bytes": 4096}},
                     {"name": "old", "slots": 1, "running": [], "load": 0.0, "usage": None}]}


def scrape(stats: dict, reached: bool = True) -> tuple:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ClusterCollector(lambda: (stats, reached)))
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    return {f.name: f.type for f in families}, samples


def test_counters_gauges_and_units():
    types, samples = scrape(STATS)
    assert types["titan_jobs_submitted"] == types["titan_jobs_ended"] == types["titan_job_retries"] == \
        types["titan_workers_lost"] == "counter"
    assert samples[("titan_jobs_submitted_total", ())] == 9 and samples[("titan_job_retries_total", ())] == 4
    assert {labels: value for (name, labels), value in samples.items() if name == "titan_jobs_ended_total"} == \
        {(("state", "COMPLETED"),): 0, (("state", "FAILED"),): 2, (("state", "CANCELLED"),): 0}
    assert samples[("titan_build_info", (("version", titan.__version__),))] == 1
    assert samples[("titan_master_uptime_seconds", ())] == 12.5 and samples[("titan_master_up", ())] == 1
    assert samples[("titan_worker_load_ratio", (("worker", "w1"),))] == 0.25
    assert samples[("titan_worker_host_cpu_ratio", (("worker", "w1"),))] == 0.5
    assert samples[("titan_worker_host_memory_used_bytes", (("worker", "w1"),))] == 1024
    assert ("titan_worker_host_cpu_ratio", (("worker", "old"),)) not in samples, "no figures: no sample"
    assert samples[("titan_queue_depth", (("requirement", "GPU"),))] == 3


def test_a_master_not_answering_still_gives_every_name():
    types, samples = scrape({}, reached=False)
    assert samples[("titan_master_up", ())] == 0 and samples[("titan_jobs_submitted_total", ())] == 0
    assert samples[("titan_workers", ())] == 0 and "titan_master_uptime_seconds" not in types
