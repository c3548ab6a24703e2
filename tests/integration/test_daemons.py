"""Jobs that start background processes: a job ends when its own process exits, its timeout fires even
while something it started holds its output pipes, and everything it started is killed at its end,
daemons that called setsid and double-forked included. Every way a job can run: fork, pool, process,
and a shell script."""

from __future__ import annotations

import os
import time

import psutil
import pytest

from titan.cluster import WorkerSpec
from titan_sdk import TitanJob

WAIT_S = 30
DAEMON_LIVES_S = 60   # far past every bound below: a job that waits for it is caught

# A double-forked daemon in a session of its own that keeps the job's stdout and stderr open; its pid
# goes to argv[1]; then the job sleeps argv[2] seconds and exits.
PY_DAEMON = """
    import os, sys, time
    pid_file, linger = sys.argv[1], float(sys.argv[2])
    first = os.fork()
    if first == 0:
        os.setsid()
        if os.fork() == 0:
            with open(pid_file + ".tmp", "w") as handle:
                handle.write(str(os.getpid()))
            os.replace(pid_file + ".tmp", pid_file)
            time.sleep(%d)
        os._exit(0)
    os.waitpid(first, 0)
    while not os.path.exists(pid_file):
        time.sleep(0.01)
    print("daemon started", flush=True)
    time.sleep(linger)
    """ % DAEMON_LIVES_S

SH_BACKGROUND = """
    sleep %d &
    echo $! > "$1"
    echo "started in the background"
    """ % DAEMON_LIVES_S


@pytest.fixture
def one_worker(make_cluster):
    return make_cluster(WorkerSpec("w1", slots=3))


@pytest.fixture
def pid_files(tmp_path):
    """Pid files of the processes the jobs start; whatever is still alive at the end is killed (and the
    test has failed already)."""
    made = []

    def pid_file(name: str) -> str:
        made.append(str(tmp_path / f"{name}.pid"))
        return made[-1]

    yield pid_file
    for path in made:
        pid = _read_pid(path)
        if pid and _alive(pid):
            psutil.Process(pid).kill()


def _read_pid(path: str):
    try:
        with open(path) as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_killed(pid_file: str) -> None:
    pid = _read_pid(pid_file)
    assert pid, f"the job never wrote {pid_file}"
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), f"process {pid} the job started outlived the job"


def run_to_end(client, job: TitanJob, bound_s: float) -> dict:
    started = time.monotonic()
    client.submit_job(job)
    client.wait(job.job_id, timeout=WAIT_S)
    took = time.monotonic() - started
    info = client.job_info(job.job_id)
    assert took < bound_s, f"{job.job_id} took {took:.1f}s: it waited for what it started"
    return info


@pytest.mark.timeout(120)
@pytest.mark.parametrize("isolation", ["fork", "pool", "process"])
def test_a_job_ends_when_its_process_exits_and_its_daemon_is_killed(one_worker, script, pid_files, isolation):
    path = script("daemonizes.py", PY_DAEMON)
    pid_file = pid_files(f"daemon-{isolation}")
    with one_worker.client(timeout=15) as client:
        info = run_to_end(client, TitanJob(f"d_{isolation}", path, args=f"{pid_file} 0", isolation=isolation), 20)
        assert info["state"] == "COMPLETED", info
        assert "daemon started" in client.fetch_logs(f"d_{isolation}")
    assert_killed(pid_file)


@pytest.mark.timeout(120)
def test_a_shell_job_with_a_background_process_completes_at_once(one_worker, script, pid_files):
    path = script("background.sh", SH_BACKGROUND)
    pid_file = pid_files("sleep")
    with one_worker.client(timeout=15) as client:
        info = run_to_end(client, TitanJob("bg_sh", path, args=pid_file), 12)
        assert info["state"] == "COMPLETED", info
        assert "started in the background" in client.fetch_logs("bg_sh")
    assert_killed(pid_file)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("isolation", ["fork", "pool", "process"])
def test_a_timeout_kills_the_job_and_its_daemon(one_worker, script, pid_files, isolation):
    path = script("daemonizes.py", PY_DAEMON)
    pid_file = pid_files(f"timeout-{isolation}")
    with one_worker.client(timeout=15) as client:
        job = TitanJob(f"t_{isolation}", path, args=f"{pid_file} {DAEMON_LIVES_S}", isolation=isolation, timeout=3)
        info = run_to_end(client, job, 20)
        assert info["state"] == "FAILED" and "timeout" in (info["reason"] or ""), info
    assert_killed(pid_file)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("isolation", ["fork", "process"])
def test_a_cancel_kills_the_job_and_its_daemon(one_worker, script, pid_files, isolation):
    path = script("daemonizes.py", PY_DAEMON)
    pid_file = pid_files(f"cancel-{isolation}")
    with one_worker.client(timeout=15) as client:
        job_id = f"c_{isolation}"
        client.submit_job(TitanJob(job_id, path, args=f"{pid_file} {DAEMON_LIVES_S}", isolation=isolation))
        deadline = time.monotonic() + WAIT_S
        while _read_pid(pid_file) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        client.cancel(job_id)
        assert client.wait(job_id, timeout=WAIT_S) is not None
        assert client.job_info(job_id)["state"] == "CANCELLED"
    assert_killed(pid_file)
