"""Services on a real cluster: a tiny HTTP service, a job that calls it, crashes, stop, a taken port."""

from __future__ import annotations

import os
import signal
import socket
import time

import psutil
import pytest

from titan.cluster import WorkerSpec
from titan_sdk import TitanJob

WAIT_S = 45

SERVICE = """
    import http.server, os, sys, time
    port, pid_file = int(sys.argv[1]), sys.argv[2]
    time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0)   # slow to start: children must wait
    with open(pid_file, "a") as handle:
        handle.write(f"{os.getpid()}\\n")

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"hello from pid {os.getpid()}".encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    http.server.HTTPServer(("127.0.0.1", port), Hello).serve_forever()
    """

CALLER = """
    import sys, urllib.request
    print("answer:", urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=10).read().decode())
    """


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def svc_cluster(make_cluster):
    return make_cluster(WorkerSpec("w1", slots=3), master_args=("--retry-backoff", "0.3"))


@pytest.fixture
def svc_client(svc_cluster):
    with svc_cluster.client(timeout=15) as client:
        yield client


def next_event(stream, matches, timeout: float = WAIT_S) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = stream.get(max(0.0, deadline - time.monotonic()))
        if event is not None and matches(event):
            return event
    raise AssertionError(f"no matching event within {timeout}s")


def service_pids(pid_file) -> list:
    return [int(line) for line in pid_file.read_text().split()] if pid_file.exists() else []


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.timeout(120)
def test_child_starts_once_the_service_is_up_and_stop_ends_it_for_good(svc_client, script, tmp_path):
    port, pid_file = free_port(), tmp_path / "pids"
    service = TitanJob("api", script("api.py", SERVICE), job_type="SERVICE", port=port,
                       args=[str(port), str(pid_file), "1.0"])
    caller = TitanJob("caller", script("caller.py", CALLER), args=str(port), parents=["api"])
    with svc_client.events(["service.", "job.RUNNING"]) as events:
        svc_client.submit_dag("svc", [service, caller])
        up = next_event(events, lambda e: e["topic"] == "service.up")
        assert (up["job_id"], up["port"], up["worker"]) == ("api", port, "w1")
        caller_running = next_event(events, lambda e: e.get("job_id") == "caller")
        assert caller_running["seq"] > up["seq"], "the child started before its service was up"
    assert svc_client.wait("caller", timeout=WAIT_S) == "COMPLETED"
    [pid] = service_pids(pid_file)
    assert f"answer: hello from pid {pid}" in svc_client.fetch_logs("caller")
    info = svc_client.job_info("api")
    assert (info["state"], info["service_up"]) == ("RUNNING", True), "the service outlives its child"
    [worker] = svc_client.stats()["workers"]
    assert worker["services"] == [{"job_id": "api", "port": port, "up": True}]

    assert svc_client.stop_service("api") == "COMPLETED"
    assert svc_client.job_info("api")["reason"] == "stopped by request"
    assert svc_client.wait("api", timeout=5) == "COMPLETED"
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid), "the stopped service's process is still there"
    time.sleep(1.0)   # a restart would have happened by now (backoff 0.3 s)
    assert service_pids(pid_file) == [pid] and svc_client.stats()["workers"][0]["services"] == []


@pytest.mark.timeout(120)
def test_a_killed_service_is_restarted_with_a_service_event(svc_client, script, tmp_path):
    port, pid_file = free_port(), tmp_path / "pids"
    service = TitanJob("api", script("api.py", SERVICE), job_type="SERVICE", port=port,
                       args=[str(port), str(pid_file)])
    with svc_client.events(["service."]) as events:
        svc_client.submit_job(service)
        next_event(events, lambda e: e["topic"] == "service.up" and e["attempt"] == 1)
        [first] = service_pids(pid_file)
        os.kill(first, signal.SIGKILL)
        crash = next_event(events, lambda e: e["topic"] == "service.crashed")
        assert crash["job_id"] == "api" and "exited with code" in crash["reason"]
        assert crash["restart_in"] == pytest.approx(0.3)
        up_again = next_event(events, lambda e: e["topic"] == "service.up")
        assert up_again["attempt"] == 2
    first_gone, second = service_pids(pid_file)
    assert first_gone == first and second != first and alive(second)
    caller = TitanJob("caller", script("caller.py", CALLER), args=str(port), parents=["api"])
    svc_client.submit_job(caller)
    assert svc_client.wait("caller", timeout=WAIT_S) == "COMPLETED"
    assert f"hello from pid {second}" in svc_client.fetch_logs("caller")
    svc_client.stop_service("api")


@pytest.mark.timeout(90)
def test_a_port_already_in_use_fails_the_service_at_once(svc_client, script, tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        service = TitanJob("api", script("api.py", SERVICE), job_type="SERVICE", port=port, retries=3,
                           args=[str(port), str(tmp_path / "pids")])
        caller = TitanJob("caller", script("caller.py", CALLER), args=str(port), parents=["api"])
        svc_client.submit_dag("taken", [service, caller])
        assert svc_client.wait(["api", "caller"], timeout=WAIT_S) == {"api": "FAILED", "caller": "CANCELLED"}
    info = svc_client.job_info("api")
    assert info["reason"] == f"port {port} already in use" and info["attempt"] == 1
    assert f"port {port} already in use" in svc_client.fetch_logs("api")
    assert not (tmp_path / "pids").exists(), "the service must not have been started"


def test_stop_service_refuses_a_plain_job(svc_client, script):
    svc_client.submit_job(TitanJob("plain", script("plain.py", "print('hi')")))
    svc_client.wait("plain", timeout=WAIT_S)
    with pytest.raises(ValueError, match="'plain' is not a service"):
        svc_client.stop_service("plain")


@pytest.mark.timeout(120)
def test_a_restarted_master_learns_again_that_the_service_is_up(make_cluster, script, tmp_path):
    cluster = make_cluster(WorkerSpec("w1", slots=2), data_dir=str(tmp_path / "data"))
    port, pid_file = free_port(), tmp_path / "pids"
    service = TitanJob("api", script("api.py", SERVICE), job_type="SERVICE", port=port,
                       args=[str(port), str(pid_file)])
    with cluster.client(timeout=15) as client:
        with client.events(["service.up"]) as events:
            client.submit_job(service)
            next_event(events, lambda e: e["job_id"] == "api")
    cluster.master.kill()
    cluster.master.wait(10)
    cluster.start_master()
    with cluster.client(timeout=15) as client:
        deadline = time.monotonic() + WAIT_S
        while not client.job_info("api")["service_up"] and time.monotonic() < deadline:
            time.sleep(0.1)
        info = client.job_info("api")
        assert (info["state"], info["service_up"], info["attempt"]) == ("RUNNING", True, 1)
        client.submit_job(TitanJob("caller", script("caller.py", CALLER), args=str(port), parents=["api"]))
        assert client.wait("caller", timeout=WAIT_S) == "COMPLETED"
        assert client.stop_service("api") == "COMPLETED"
    assert len(service_pids(pid_file)) == 1, "the service was started again instead of being claimed back"
