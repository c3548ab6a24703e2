"""The master's own /metrics (--metrics-port), scraped with a plain HTTP client while no dashboard runs:
counters, gauges, build info and the workers' host figures from their heartbeats; and retry by request."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import titan
from titan.cluster import WorkerSpec
from titan_sdk import TitanJob
from tests.conftest import wait_until


def metrics_url(cluster) -> str:
    """The address the master printed at start (it was given port 0: a free one)."""
    log = os.path.join(cluster.log_dir, "master.log")
    found = wait_until(lambda: re.search(r"metrics at (http://\S+/metrics)", open(log).read()),
                       what="the master's metrics address in master.log")
    return found.group(1)


def scrape(url: str) -> dict:
    """{(sample name, sorted labels): value}, and the family types by name under the key 'types'."""
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    families = list(text_string_to_metric_families(text))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    samples["types"] = {f.name: f.type for f in families}
    return samples


def test_the_master_serves_counters_gauges_and_host_figures(make_cluster, script):
    cluster = make_cluster(WorkerSpec("cpu-1", slots=2), master_args=("--metrics-port", "0"))
    url = metrics_url(cluster)
    ok, bad = script("ok.py", "print('ok')"), script("bad.py", "raise SystemExit(3)")
    with cluster.client(timeout=15) as client:
        client.submit_dag("counted", [TitanJob("c1", ok), TitanJob("c2", ok, parents=["c1"]),
                                      TitanJob("c3", bad, retries=1)])
        assert client.wait(["c1", "c2", "c3"], timeout=60) == {"c1": "COMPLETED", "c2": "COMPLETED", "c3": "FAILED"}
        assert client.retry("c3") in ("QUEUED", "RUNNING")
        assert client.wait("c3", timeout=60) == "FAILED"
    after = wait_until(lambda: (lambda m: m if m[("titan_jobs_ended_total", (("state", "FAILED"),))] == 2
                                else None)(scrape(url)), what="the retried c3 counted as ended twice")
    assert after["types"]["titan_jobs_submitted"] == "counter" and after["types"]["titan_jobs_ended"] == "counter"
    assert after[("titan_jobs_submitted_total", ())] == 4          # c1, c2, c3, and c3 again by request
    assert after[("titan_jobs_ended_total", (("state", "COMPLETED"),))] == 2
    assert after[("titan_jobs_ended_total", (("state", "CANCELLED"),))] == 0
    assert after[("titan_job_retries_total", ())] == 3               # c3: once itself each run, once by request
    assert after[("titan_workers_lost_total", ())] == 0
    assert after[("titan_build_info", (("version", titan.__version__),))] == 1
    assert after[("titan_master_up", ())] == 1 and after[("titan_master_uptime_seconds", ())] > 0
    assert after[("titan_jobs", (("state", "FAILED"),))] == 1 and after[("titan_workers", ())] == 1
    assert after[("titan_worker_slots", (("worker", "cpu-1"),))] == 2
    assert 0 <= after[("titan_worker_host_cpu_ratio", (("worker", "cpu-1"),))] <= 1
    used = after[("titan_worker_host_memory_used_bytes", (("worker", "cpu-1"),))]
    assert 0 < used <= after[("titan_worker_host_memory_total_bytes", (("worker", "cpu-1"),))]


def test_a_worker_declared_dead_is_counted(make_cluster):
    cluster = make_cluster(WorkerSpec("doomed"), master_args=("--metrics-port", "0"))
    url = metrics_url(cluster)
    wait_until(lambda: scrape(url)[("titan_workers", ())] == 1, what="the worker registered")
    cluster.worker_processes["doomed"].kill()
    wait_until(lambda: scrape(url)[("titan_workers_lost_total", ())] == 1, what="the killed worker counted lost")


def test_a_public_metrics_address_without_keys_is_refused(tmp_path):
    result = subprocess.run([sys.executable, "-m", "titan.master", "--port", "0", "--metrics-port", "0",
                             "--metrics-host", "0.0.0.0"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "refusing to listen on 0.0.0.0 without keys" in result.stderr


@pytest.mark.timeout(90)
def test_retry_and_retry_dag_through_the_sdk(client, script):
    bad, ok = script("bad.py", "raise SystemExit(1)"), script("ok.py", "print('ok')")
    client.submit_dag("again", [TitanJob("first", bad), TitanJob("second", ok, parents=["first"])])
    assert client.wait(["first", "second"], timeout=30) == {"first": "FAILED", "second": "CANCELLED"}
    with pytest.raises(Exception, match="only a FAILED or CANCELLED job"):
        client.submit_job(TitanJob("done", ok))
        client.wait("done", timeout=30)
        client.retry("done")
    dag = client.retry_dag("again")
    assert {job["job_id"]: job["state"] for job in dag["jobs"]}["second"] == "PENDING"
    assert client.wait(["first", "second"], timeout=30) == {"first": "FAILED", "second": "CANCELLED"}
