"""Jobs that kill their worker's processes. A job that kills the fork server, or the launcher, fails
(using its retries) with a reason that says so, and the worker carries on with a new one; a SIGTERM to a worker's
whole process group stops it cleanly; a job whose attempts cost --max-worker-losses workers is FAILED
with that reason instead of taking down every worker in turn."""

from __future__ import annotations

import os
import signal
import sys
import textwrap

import pytest

from titan.cluster import WorkerSpec
from titan.core.jobs import FORK_SERVER_LOST_ERROR, LAUNCHER_LOST_ERROR
from titan_sdk import TitanJob
from tests.conftest import FAST_HEARTBEAT_S, finish, start_process, wait_until

WAIT_S = 40

KILLS_FORK_SERVER = """
    import os, signal
    os.kill(os.getppid(), signal.SIGKILL)   # a forked job's parent is the fork server (the launcher's, else)
    import time
    time.sleep(30)
    """

KILLS_WORKER = """
    import os, signal, psutil
    server = psutil.Process(os.getppid())
    os.kill(server.ppid(), signal.SIGKILL)   # the fork server's parent is the worker
    import time
    time.sleep(30)
    """


@pytest.mark.timeout(120)
def test_a_job_that_kills_the_fork_server_fails_and_the_worker_carries_on(make_cluster, script):
    cluster = make_cluster(WorkerSpec("w1", slots=1))
    killer = script("kills_server.py", KILLS_FORK_SERVER)
    fine = script("fine.py", "print('still served')\n")
    with cluster.client(timeout=15) as client:
        client.submit_job(TitanJob("killer", killer, retries=1, isolation="fork"))
        assert client.wait("killer", timeout=WAIT_S) == "FAILED"
        info = client.job_info("killer")
        assert info["attempt"] == 2, f"its retry was used, on the same worker: {info}"
        assert FORK_SERVER_LOST_ERROR in info["reason"], info
        assert cluster.worker_processes["w1"].poll() is None, "the worker died with its fork server"
        for isolation in ("fork", "pool", "process"):
            client.submit_job(TitanJob(f"fine_{isolation}", fine, isolation=isolation))
            assert client.wait(f"fine_{isolation}", timeout=WAIT_S) == "COMPLETED"
            assert "still served" in client.fetch_logs(f"fine_{isolation}")


SLOW_TO_PRELOAD = """
    import os, time
    if os.path.exists({marker!r}):   # only the replacement of the fork server is slow to get ready
        time.sleep(4)
    """


@pytest.mark.timeout(120)
def test_the_worker_keeps_in_touch_while_a_slow_replacement_fork_server_gets_ready(make_cluster, script, tmp_path,
                                                                                   monkeypatch):
    """A new fork server with --preload may take longer to be ready than the master waits for a heartbeat
    (2 s here): the worker must not go silent meanwhile, or the master takes it for dead and runs its
    other jobs again."""
    marker = str(tmp_path / "replacing")
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "slow_to_preload.py").write_text(textwrap.dedent(SLOW_TO_PRELOAD.format(marker=marker)))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(modules), os.environ.get("PYTHONPATH")])))
    cluster = make_cluster(WorkerSpec("w1", slots=2, extra_args=("--preload", "slow_to_preload")))
    killer = script("kills_server.py", f"open({marker!r}, 'w').close()\n" + textwrap.dedent(KILLS_FORK_SERVER))
    runs = tmp_path / "bystander_runs"
    bystander = script("bystander.sh", f"echo ran >> {runs}\nsleep 6\necho unharmed\n")
    fine = script("fine.py", "print('still served')\n")
    with cluster.client(timeout=15) as client:
        client.submit_job(TitanJob("bystander", bystander))
        wait_until(lambda: client.get_job_status("bystander") == "RUNNING", WAIT_S, "the bystander runs")
        client.submit_job(TitanJob("killer", killer, isolation="fork"))
        assert client.wait("killer", timeout=WAIT_S) == "FAILED"
        assert FORK_SERVER_LOST_ERROR in client.job_info("killer")["reason"], client.job_info("killer")
        assert client.wait("bystander", timeout=WAIT_S) == "COMPLETED"
        assert runs.read_text().split() == ["ran"], "the worker was taken for dead while its fork server was replaced"
        client.submit_job(TitanJob("fine", fine, isolation="fork"))
        assert client.wait("fine", timeout=WAIT_S) == "COMPLETED"
        assert "still served" in client.fetch_logs("fine")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("script_name", ["kills_launcher.py", "kills_launcher.sh"])
def test_a_job_that_kills_the_launcher_fails_and_the_worker_carries_on(make_cluster, script, script_name):
    cluster = make_cluster(WorkerSpec("w1", slots=2))
    body = KILLS_FORK_SERVER if script_name.endswith(".py") else "kill -9 $PPID\nsleep 30\n"
    killer = script(script_name, body)
    fine = script("fine.py", "print('still served')\n")
    bystander = script("bystander.py", "import time\ntime.sleep(3)\nprint('unharmed')\n")
    with cluster.client(timeout=15) as client:
        client.submit_job(TitanJob("bystander", bystander, isolation="fork"))   # the fork server's
        client.submit_job(TitanJob("killer", killer, retries=1, isolation="process"))
        assert client.wait("killer", timeout=WAIT_S) == "FAILED"
        info = client.job_info("killer")
        assert info["attempt"] == 2, f"its retry was used, on the same worker: {info}"
        assert LAUNCHER_LOST_ERROR in info["reason"], info
        assert client.wait("bystander", timeout=WAIT_S) == "COMPLETED", client.job_info("bystander")
        assert cluster.worker_processes["w1"].poll() is None, "the worker died with its launcher"
        for isolation in ("fork", "pool", "process"):
            client.submit_job(TitanJob(f"fine_{isolation}", fine, isolation=isolation))
            assert client.wait(f"fine_{isolation}", timeout=WAIT_S) == "COMPLETED"
            assert "still served" in client.fetch_logs(f"fine_{isolation}")


@pytest.mark.timeout(120)
def test_a_sigterm_to_the_workers_process_group_stops_it_cleanly(make_cluster, script):
    cluster = make_cluster(WorkerSpec("w1", slots=1))
    sleeper = script("sleeper.py", "import time\nprint('up', flush=True)\ntime.sleep(30)\n")
    with cluster.client(timeout=15) as client:
        for n in range(5):
            name = f"g{n}"
            worker = start_process([sys.executable, "-m", "titan.worker", "--master", f"127.0.0.1:{cluster.port}",
                                    "--name", name, "--slots", "2", "--cap", name,
                                    "--heartbeat-interval", str(FAST_HEARTBEAT_S)])   # a group of its own
            client.submit_job(TitanJob(f"s{n}", sleeper, requirement=name, isolation=("fork", "pool")[n % 2]))
            client.submit_job(TitanJob(f"p{n}", sleeper, requirement=name, isolation="process"))
            wait_until(lambda: all("up" in client.fetch_logs(job) for job in (f"s{n}", f"p{n}")),
                       WAIT_S, "the jobs to run")   # running on the worker, not only dispatched
            os.killpg(worker.pid, signal.SIGTERM)
            out, err = finish(worker, 20)
            assert worker.returncode == 0, f"worker {name} did not stop cleanly: exit {worker.returncode}\n{err}"
            assert "Traceback" not in err and f"Titan worker {name} stopped." in out, err[-3000:]
            client.cancel(f"s{n}")
            client.cancel(f"p{n}")


@pytest.mark.timeout(180)
def test_a_job_that_keeps_killing_its_worker_fails_after_max_worker_losses(make_cluster, script):
    cluster = make_cluster(*[WorkerSpec(f"w{n}", slots=1) for n in range(1, 4)],
                           master_args=["--max-worker-losses", "2"])
    path = script("kills_worker.py", KILLS_WORKER)
    with cluster.client(timeout=15) as client:
        client.submit_job(TitanJob("serial_killer", path, retries=5, isolation="fork"))
        assert client.wait("serial_killer", timeout=WAIT_S) == "FAILED"
        info = client.job_info("serial_killer")
    assert "2 workers" in info["reason"] and "--max-worker-losses" in info["reason"], info
    alive = [name for name, process in cluster.worker_processes.items() if process.poll() is None]
    assert len(alive) == 1, f"it should have cost exactly 2 workers; alive: {alive}"
