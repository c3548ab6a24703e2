"""`python -m benchmarks --quick` runs every shape end to end (speed itself is measured, not tested)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHAPES = ["S1-null", "S1-real", "S2", "S2-sh", "S3-null", "S3-real", "S4-null", "S4-real", "S5-null", "S5-real",
          "S5-null-p99", "S5-real-p99", "S6-1", "S6-5", "S6-echo-1", "S6-echo-5", "S7-seconds", "S7-rss-mb"]


@pytest.mark.timeout(240)
def test_quick_benchmark_run_completes_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=220, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    table = json.loads(out.read_text())
    assert sorted(table) == sorted(SHAPES)
    for shape, row in table.items():
        assert row["min"] <= row["median"] <= row["max"] and row["min"] > 0, (shape, row)
        assert row["unit"], shape
    assert "null executor" in result.stdout and "CPUs, load average" in result.stdout


@pytest.mark.timeout(240)
def test_quick_peers_run_of_titan_alone_prints_every_shape_for_every_isolation(tmp_path):
    """The --peers code path with Titan alone (the peers are not run here: they take minutes)."""
    out = tmp_path / "peers.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--peers", "--quick", "--systems", "titan",
                             "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=220,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads(out.read_text())
    assert sorted(results) == ["titan-fork", "titan-pool", "titan-process"]
    for system, shapes in results.items():
        assert sorted(shapes) == ["T1", "T2", "T3", "T4", "T5"], system
        assert all(figure > 0 for figures in shapes.values() for figure in figures), (system, shapes)
    rows = [line.split()[0] for line in result.stdout.splitlines() if line[:2] in ("T1", "T2", "T3", "T4", "T5")]
    assert rows == ["T1", "T2", "T3", "T4", "T5"], result.stdout


@pytest.mark.timeout(300)
def test_quick_failover_benchmark_prints_the_takeover_and_each_journal(postgres):
    """`python -m benchmarks.failover --quick` (needs PostgreSQL, as the `postgres` fixture checks)."""
    result = subprocess.run([sys.executable, "-m", "benchmarks.failover", "--quick", "--runs", "1"], cwd=ROOT,
                            capture_output=True, text=True, timeout=280, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    for label in ("takeover", "S1-null  sqlite", "S1-null  postgresql", "S5-null  pg-async", "S5-null  pg-tmpfs",
                  "disk flush (pg_test_fsync"):
        assert label in result.stdout, result.stdout


@pytest.mark.timeout(120)
def test_master_cpu_benchmark_prints_jobs_per_second_and_cpu_per_job():
    result = subprocess.run([sys.executable, "-m", "benchmarks.master_cpu", "--jobs", "50", "--runs", "1"], cwd=ROOT,
                            capture_output=True, text=True, timeout=100, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "run 1: " in result.stdout and "median: " in result.stdout
    cpu = float(result.stdout.split("master CPU ")[-1].split(" us/job")[0])
    assert cpu > 0, result.stdout


@pytest.mark.timeout(120)
def test_journal_commit_benchmark_prints_each_shape():
    result = subprocess.run([sys.executable, "-m", "benchmarks.journal_commit", "--commits", "20"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    for shape in ("'batch': (", "'submit': (", "'result': ("):
        assert shape in result.stdout, result.stdout
