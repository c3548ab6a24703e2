"""A new user's first hour, as the README leads them through it: the `titan` command run as a subprocess
against a real cluster, each test for one thing that went wrong or was missing (issue 16)."""

from __future__ import annotations

import os
import threading

from tests.conftest import TITAN, finish, start_process, wait_until
from tests.integration.test_cli import cluster_env, run_in_terminal, titan
from titan.core.errors import UnknownJob

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


# ----------------------------------------------------------------- submit names the job after the script

def test_submit_names_the_job_after_the_script_as_the_readme_uses_it(cluster, client, tmp_path):
    release = tmp_path / "release"
    train = tmp_path / "train.py"
    train.write_text(f"import os, time\nprint('training')\nwhile not os.path.exists({str(release)!r}): "
                     "time.sleep(0.05)\n")
    first = titan(cluster, "submit", str(train))
    assert first.returncode == 0 and first.stdout == "submitted train\n", first.stdout + first.stderr
    wait_until(lambda: client.get_job_status("train") == "RUNNING", what="train to run")
    status = titan(cluster, "status", "train")
    assert status.returncode == 0 and "state: RUNNING" in status.stdout, status.stdout + status.stderr

    second, third = titan(cluster, "submit", str(train)), titan(cluster, "submit", str(train))
    assert (second.stdout, third.stdout) == ("submitted train-2\n", "submitted train-3\n")

    cancelled = titan(cluster, "cancel", "train")
    assert cancelled.returncode == 0 and cancelled.stdout == "train: CANCELLED\n", cancelled.stderr
    assert "training" in titan(cluster, "logs", "train").stdout
    again = titan(cluster, "submit", str(train))   # `train` has ended: the name is free again
    assert again.stdout == "submitted train\n", again.stdout + again.stderr
    release.write_text("go")
    assert client.wait(["train", "train-2", "train-3"], timeout=30) == {
        "train": "COMPLETED", "train-2": "COMPLETED", "train-3": "COMPLETED"}


# ----------------------------------------------------------------- run --wait: a gate is not a job

HITL_PIPELINE = os.path.join(EXAMPLES, "hitl_pipeline", "pipeline.yaml")


def state_of(client, job_id: str):
    try:
        return client.get_job_status(job_id)
    except UnknownJob:   # not submitted yet
        return None


def approve_when_waiting(cluster, client, gate: str) -> None:
    wait_until(lambda: state_of(client, gate) == "WAITING_APPROVAL", what=f"{gate} to wait")
    approved = titan(cluster, "approve", gate)
    assert approved.returncode == 0, approved.stderr


def test_run_wait_off_a_terminal_counts_the_pipelines_jobs_not_its_gate(cluster, client):
    run = start_process([TITAN, "run", HITL_PIPELINE, "--wait"], env=cluster_env(cluster))
    try:
        approve_when_waiting(cluster, client, "hitl-gate-train")
    finally:
        out, err = finish(run)
    assert run.returncode == 0, out + err
    assert out.splitlines()[-1].startswith("2 of 2 jobs completed"), out
    assert "hitl-gate-train WAITING_APPROVAL" in out   # the gate is shown as it happens, not counted


def test_run_wait_on_a_terminal_says_the_same(cluster, client):
    result = {}
    runner = threading.Thread(target=lambda: result.update(
        zip(("code", "output"), run_in_terminal(cluster, "run", HITL_PIPELINE, "--wait"))))
    runner.start()
    approve_when_waiting(cluster, client, "hitl-gate-train")
    runner.join(60)
    assert result["code"] == 0, result["output"]
    assert "2 of 2 jobs completed" in result["output"], result["output"]
