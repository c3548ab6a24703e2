"""YAML pipelines written for the original run unchanged."""

from __future__ import annotations

import os

from tests.integration.test_pipelines import run_titan


def test_an_original_pipeline_runs_from_an_original_driver(run_original):
    code, output = run_original("submit_yaml_v1.py")
    assert code == 0, output
    assert "YAML OK" in output
    assert "unknown key 'owner' ignored" in output   # told, not refused


def test_titan_run_accepts_the_original_pipeline_and_names_the_ignored_key(cluster, originals):
    result = run_titan(cluster, "run", os.path.join(originals, "pipeline_v1.yaml"), "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 of 4 jobs completed" in result.stdout
    assert "line 20, job 'compat_right': unknown key 'owner' ignored" in result.stderr
