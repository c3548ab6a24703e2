"""Services as the original reported them: deployed means COMPLETED; waits end once services are up."""

from __future__ import annotations

import os
import socket

from tests.integration.test_pipelines import run_titan


def test_a_service_polled_to_completed_then_stopped(run_original):
    code, output = run_original("service_deploy.py")
    assert code == 0, output
    assert "deployed: COMPLETED / job_info: RUNNING" in output
    assert "answer: hello from the deployed service" in output
    assert "stop: COMPLETED" in output and "after stop: COMPLETED stopped by request" in output


def _service_pipeline(folder) -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = os.path.join(folder, "service_pipeline.yaml")
    with open(path, "w") as handle:
        handle.write(f"""version: "1.0"
name: compat_services
jobs:
  - {{id: compat_pong, type: SERVICE, file: steps/serve.py, port: {port}, args: "{port}"}}
  - {{id: compat_caller, file: steps/call.py, args: "{port}", depends_on: [compat_pong]}}
""")
    return path


def test_titan_run_wait_returns_once_the_service_is_up_and_the_jobs_ended(cluster, client, originals):
    result = run_titan(cluster, "run", _service_pipeline(originals), "--wait", "--timeout", "40")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "compat_pong UP" in result.stdout and "2 of 2 jobs completed" in result.stdout
    assert "answer: pong" in client.fetch_logs("compat_caller")
    assert client.stop_service("compat_pong") == "COMPLETED"


def test_submit_yaml_wait_returns_with_the_service_up(client, originals):
    final = client.submit_yaml(_service_pipeline(originals), wait=True, timeout=40)
    assert final == {"compat_pong": "COMPLETED", "compat_caller": "COMPLETED"}
    assert client.job_info("compat_pong")["state"] == "RUNNING" and client.job_info("compat_pong")["service_up"]
    assert client.stop_service("DAG-compat_pong") == "COMPLETED"
