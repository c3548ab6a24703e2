"""`python -m benchmarks --quick` runs every shape end to end (speed itself is measured, not tested)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHAPES = ["S1-null", "S1-real", "S2", "S3-null", "S3-real", "S4-null", "S4-real", "S5-null", "S5-real",
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
