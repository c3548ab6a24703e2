"""The entry points as a user runs them: python -m titan.master / titan.worker, titan up, titan demo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from titan.cluster import free_port_block
from titan_sdk import TitanClient, TitanJob

from tests.conftest import TITAN, start_process, stop


def test_master_says_where_it_listens_and_stops_cleanly():
    port = free_port_block("127.0.0.1", 4)
    master = start_process([sys.executable, "-m", "titan.master", "--port", str(port)])
    first_line = master.stdout.readline()
    assert f"listening on 127.0.0.1: clients {port}, workers {port + 1}, events {port + 2}, " \
           f"store {port + 3}" in first_line
    assert "in memory only" in first_line
    with TitanClient(port=port, timeout=5) as client:
        assert client.ping()["run_id"]
    out, err = stop(master, signal.SIGTERM)
    assert master.returncode == 0
    assert "Traceback" not in err and "stopped" in out


def test_master_refuses_a_port_in_use():
    port = free_port_block("127.0.0.1", 4)
    first = start_process([sys.executable, "-m", "titan.master", "--port", str(port)])
    first.stdout.readline()
    try:
        second = subprocess.run([sys.executable, "-m", "titan.master", "--port", str(port)],
                                capture_output=True, text=True, timeout=20)
        assert second.returncode == 1
        assert f"cannot bind 127.0.0.1:{port}-{port + 3}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        stop(first)


def test_worker_waits_for_a_master_that_starts_later(script):
    port = free_port_block("127.0.0.1", 4)
    worker = start_process([sys.executable, "-m", "titan.worker", "--master", f"127.0.0.1:{port}", "--name", "early",
                            "--cap", "GPU,HIGH_MEM", "--slots", "3", "--heartbeat-interval", "0.2"])
    time.sleep(1.0)
    master = start_process([sys.executable, "-m", "titan.master", "--port", str(port)])
    try:
        with TitanClient(port=port, timeout=15) as client:
            deadline = time.monotonic() + 15
            while not client.stats()["workers"]:
                assert time.monotonic() < deadline, "the worker never registered"
                time.sleep(0.1)
            (worker_info,) = client.stats()["workers"]
            assert worker_info["name"] == "early" and worker_info["slots"] == 3
            assert worker_info["capabilities"] == ["GENERAL", "GPU", "HIGH_MEM"]
            assert worker_info["pid"] == worker.pid and worker_info["cpus"] >= 1 and worker_info["memory_mb"] > 0
            client.submit_job(TitanJob("late", script("ok.py", "print('ok')"), requirement="HIGH_MEM"))
            assert client.wait("late", timeout=15) == "COMPLETED"
    finally:
        _, worker_err = stop(worker)
        stop(master)
    assert worker.returncode == 0 and "Traceback" not in worker_err


def test_worker_reads_master_address_from_the_environment(script):
    port = free_port_block("127.0.0.1", 4)
    master = start_process([sys.executable, "-m", "titan.master", "--port", str(port)])
    master.stdout.readline()
    env = {**os.environ, "TITAN_HOST": "127.0.0.1", "TITAN_PORT": str(port)}
    worker = start_process([sys.executable, "-m", "titan.worker", "--name", "from-env"], env=env)
    try:
        with TitanClient(host="127.0.0.1", port=port, timeout=15) as client:
            client.submit_job(TitanJob("env_job", script("ok.py", "print('ok')")))
            assert client.wait("env_job", timeout=15) == "COMPLETED"
            assert client.job_info("env_job")["worker"] == "from-env"
    finally:
        stop(worker)
        stop(master)


def test_titan_demo_runs_a_dag_to_completion():
    result = subprocess.run([TITAN, "demo"], capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 of 8 jobs completed" in result.stdout
    assert "train     COMPLETED  on gpu-1" in result.stdout
    assert "train     | training the model on gpu-1" in result.stdout


def test_titan_up_serves_until_interrupted(script):
    port = free_port_block("127.0.0.1", 4)
    up = start_process([TITAN, "up", "--port", str(port), "--workers", "1", "--cap", "GPU"])
    try:
        lines = [up.stdout.readline() for _ in range(4)]
        assert f"Titan master on 127.0.0.1:{port}" in lines[0]
        assert "gpu-1" in "".join(lines)
        with TitanClient(port=port, timeout=15) as client:
            client.submit_job(TitanJob("on_gpu", script("ok.py", "print('ok')"), requirement="GPU"))
            assert client.wait("on_gpu", timeout=15) == "COMPLETED"
            assert client.job_info("on_gpu")["worker"] == "gpu-1"
    finally:
        out, err = stop(up)
    assert up.returncode == 0 and "Traceback" not in err, err


@pytest.mark.parametrize("argv", [[], ["--help"], ["up", "--help"], ["demo", "--help"]])
def test_titan_help(argv):
    result = subprocess.run([TITAN, *argv], capture_output=True, text=True, timeout=30)
    assert result.returncode in (0, 2)
    assert "usage: titan" in result.stdout
