"""Human-in-the-loop gates against a real cluster: the YAML example, approve, reject, the CLI."""

from __future__ import annotations

import os
import subprocess
import time

from titan_sdk import TitanJob

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "hitl_pipeline", "pipeline.yaml")
from tests.conftest import TITAN
GATE = "hitl-gate-train"


def wait_for_state(client, job_id: str, wanted: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while client.get_job_status(job_id) != wanted:
        assert time.monotonic() < deadline, f"{job_id} never reached {wanted}"
        time.sleep(0.05)


def test_example_pipeline_waits_for_approval(client, cluster):
    client.submit_yaml(EXAMPLE)
    wait_for_state(client, GATE, "WAITING_APPROVAL")
    info = client.job_info(GATE)
    assert info["reason"].startswith("Check the validation loss") and info["worker"] is None
    time.sleep(0.5)
    assert client.get_job_status("deploy") == "PENDING", "nothing below the gate runs before approval"
    env = {**os.environ, "TITAN_HOST": cluster.host, "TITAN_PORT": str(cluster.port)}
    result = subprocess.run([TITAN, "approve", GATE], capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 0 and f"{GATE}: COMPLETED" in result.stdout, result.stderr
    assert client.wait("deploy", timeout=30) == "COMPLETED"
    assert client.fetch_logs("deploy") == "deploying the model with validation loss 0.042\n"
    again = subprocess.run([TITAN, "approve", GATE], capture_output=True, text=True, timeout=30, env=env)
    assert again.returncode == 2 and "not waiting" in again.stderr


def test_reject_cancels_what_is_below_the_gate(client, script):
    ok = script("ok.py", "print('ok')")
    client.submit_dag("gated", [TitanJob("build", ok, hitl_message="ship it?"), TitanJob("ship", ok, parents=["build"]),
                                TitanJob("announce", ok, parents=["ship"])])
    wait_for_state(client, "hitl-gate-build", "WAITING_APPROVAL")
    assert client.reject("hitl-gate-build", "not on a Friday") == "CANCELLED"
    assert client.wait(["ship", "announce"], timeout=30) == {"ship": "CANCELLED", "announce": "CANCELLED"}
    assert client.job_info("hitl-gate-build")["reason"] == "rejected: not on a Friday"
    assert client.job_info("ship")["reason"] == "parent 'hitl-gate-build' CANCELLED (rejected: not on a Friday)"
    assert client.job_info("announce")["reason"] == "parent 'ship' CANCELLED"
    assert client.get_job_status("build") == "COMPLETED"


def test_gate_without_a_decision_fails_after_max_wait(client, script):
    ok = script("ok.py", "print('ok')")
    client.submit_dag("impatient", [TitanJob("step", ok, hitl_message="approve within a second",
                                             max_wait_seconds=1), TitanJob("after", ok, parents=["step"])])
    assert client.wait("hitl-gate-step", timeout=30) == "FAILED"
    assert "no decision within 1s" in client.job_info("hitl-gate-step")["reason"]
    assert client.wait("after", timeout=30) == "CANCELLED"
