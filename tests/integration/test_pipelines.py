"""YAML pipelines against a real cluster: client.submit_yaml and `titan run`."""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest

from titan_sdk import InvalidDag, UnknownJob

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "yaml_pipelines")
from tests.conftest import TITAN


def test_submit_yaml_runs_the_diamond_in_order(client):
    final = client.submit_yaml(os.path.join(EXAMPLES, "diamond.yaml"), wait=True, timeout=60)
    assert final == {job: "COMPLETED" for job in ("prepare", "left", "right", "join")}
    order = {job: int(client.store_get(f"yaml_diamond/ran/{job}")) for job in final}
    assert order["prepare"] == 1 and order["join"] == 4 and {order["left"], order["right"]} == {2, 3}
    assert "join (join) ran as step 4 of yaml_diamond" in client.fetch_logs("join")


def test_submit_yaml_without_wait_returns_the_job_ids(client):
    job_ids = client.submit_yaml(os.path.join(EXAMPLES, "fanout.yaml"))
    assert job_ids[0] == "split" and job_ids[-1] == "merge" and len(job_ids) == 7
    assert set(client.wait(job_ids, timeout=60).values()) == {"COMPLETED"}
    assert int(client.store_get("yaml_fanout/ran/merge")) == 7


def test_cyclic_pipeline_is_refused_before_anything_runs(client, tmp_path):
    (tmp_path / "step.py").write_text("print('step')\n")
    path = tmp_path / "cycle.yaml"
    path.write_text(textwrap.dedent("""
        name: cyclic
        jobs:
          - {id: free, file: step.py}
          - {id: a, file: step.py, depends_on: [b]}
          - {id: b, file: step.py, depends_on: [a]}
        """))
    with pytest.raises(InvalidDag, match="cycle"):
        client.submit_yaml(str(path))
    with pytest.raises(UnknownJob):
        client.job_info("free")


def run_titan(cluster, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "TITAN_HOST": cluster.host, "TITAN_PORT": str(cluster.port)}
    return subprocess.run([TITAN, *args], capture_output=True, text=True, timeout=90, env=env,
                          stdin=subprocess.DEVNULL)


def test_titan_run_wait_follows_the_pipeline(cluster):
    result = run_titan(cluster, "run", os.path.join(EXAMPLES, "diamond.yaml"), "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "submitted pipeline 'yaml_diamond': 4 jobs" in result.stdout
    assert "join      COMPLETED" in result.stdout and "4 of 4 jobs completed" in result.stdout


def test_titan_run_exit_codes(cluster, tmp_path):
    (tmp_path / "fail.py").write_text("raise SystemExit(3)\n")
    failing = tmp_path / "failing.yaml"
    failing.write_text("name: failing\njobs:\n  - {id: bad_step, file: fail.py}\n  - {id: after, file: fail.py, "
                       "depends_on: [bad_step]}\n")
    result = run_titan(cluster, "run", str(failing), "--wait")
    assert result.returncode == 1 and "0 of 2 jobs completed" in result.stdout
    assert "after     CANCELLED" in result.stdout and "parent 'bad_step' FAILED" in result.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\njobs:\n  - {id: x, file: fail.py, retries: many}\n")
    result = run_titan(cluster, "run", str(broken))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{broken}, line 3, job 'x': 'retries' must be int" in result.stderr
    result = run_titan(cluster, "run", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and "missing.yaml" in result.stderr
