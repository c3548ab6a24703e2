"""Fixtures that start a real Titan cluster (master and workers as processes) on free loopback ports.

Every test runs with TITAN_STRICT_MESSAGES=1, inherited by the processes it starts: every message, reply
and event they build is checked field by field against the catalogue (titan.net.messages), and a cluster
whose logs show a misbuilt one fails its test at teardown.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

os.environ["TITAN_STRICT_MESSAGES"] = "1"   # before titan.net.protocol is first imported (it reads it once)

from titan.cluster import LocalCluster, WorkerSpec  # noqa: E402
from tests.postgres.pg_server import postgres, pg_url  # noqa: E402,F401  (fixtures: a real PostgreSQL)
from titan.net import fields  # noqa: E402

# The `titan` command of the Python running the tests (a venv's bin/ need not be on PATH), else PATH's.
TITAN = next((path for path in (os.path.join(os.path.dirname(sys.executable), "titan"), shutil.which("titan"))
              if path and os.path.exists(path)), "titan")

# Short enough that dead workers are noticed within a test, long enough for a busy 2-core machine.
FAST_HEARTBEAT_S = 0.2
FAST_DEAD_AFTER_S = 2.0


def start_process(command, **kwargs) -> subprocess.Popen:
    """A command with its output piped, in a session of its own, so a failed test can kill what it
    started, children included (see finish)."""
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)


def finish(process: subprocess.Popen, timeout: float = 30) -> tuple:
    """(stdout, stderr) once it exits; if it does not within `timeout`, its whole session is killed and
    TimeoutExpired raised."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise


def stop(process: subprocess.Popen, sig=signal.SIGINT, timeout: float = 10) -> tuple:
    process.send_signal(sig)
    return finish(process, timeout)


def wait_until(condition, timeout: float = 30.0, what: str = ""):
    """Poll `condition` until it returns something true, and return that; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what or condition}"
        time.sleep(0.05)


def _leftover_processes(before: set) -> list:
    me = psutil.Process()
    return [p for p in me.children(recursive=True) if p.pid not in before and _alive(p)]


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def child_pids() -> set:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def assert_no_process_left(before: set, grace: float = 5.0) -> None:
    """Give processes started since `before` a grace period to exit; kill the rest and fail."""
    deadline = time.monotonic() + grace
    while _leftover_processes(before) and time.monotonic() < deadline:
        time.sleep(0.05)
    leftovers = _leftover_processes(before)
    for process in leftovers:
        process.kill()
    assert not leftovers, f"processes left behind: {[p.cmdline() for p in leftovers]}"


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """Every test must leave no process behind."""
    before = child_pids()
    yield
    assert_no_process_left(before)


@pytest.fixture
def make_cluster(tmp_path):
    """Factory: make_cluster(WorkerSpec(...), ...) starts a cluster; all are stopped at teardown."""
    started = []

    def make(*workers: WorkerSpec, **options) -> LocalCluster:
        options.setdefault("heartbeat_interval", FAST_HEARTBEAT_S)
        options.setdefault("worker_dead_after", FAST_DEAD_AFTER_S)
        options.setdefault("log_dir", str(tmp_path / f"cluster-{len(started)}"))
        cluster = LocalCluster(workers=list(workers) or [WorkerSpec("w1")], **options)
        started.append(cluster)
        cluster.start()
        return cluster

    yield make
    for cluster in started:
        cluster.stop()
    for cluster in started:
        assert_no_misbuilt_message(cluster.log_dir)


def assert_no_misbuilt_message(log_dir) -> None:
    """Fail naming the log and the line where a master or worker reported a message it built wrong."""
    for log in sorted(pathlib.Path(log_dir).glob("*.log")) if log_dir else []:
        for number, line in enumerate(log.read_text(errors="replace").splitlines(), 1):
            assert fields.MISBUILT not in line, f"{log}:{number}: {line}"


@pytest.fixture
def cluster(make_cluster):
    """A master with one plain worker and one GPU worker, two slots each."""
    return make_cluster(WorkerSpec("cpu-1", slots=2), WorkerSpec("gpu-1", ["GPU"], slots=2))


@pytest.fixture
def client(cluster):
    with cluster.client(timeout=15) as titan_client:
        yield titan_client


@pytest.fixture
def script(tmp_path):
    """script("name.py", "code") writes a job script (dedented) and returns its path."""

    def write(name: str, code: str) -> str:
        path = tmp_path / "scripts" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(code))
        return str(path)

    return write

