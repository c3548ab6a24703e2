"""The pool (isolation="pool"): a warm interpreter runs job after job, puts back what each job changed,
and is replaced when it cannot be trusted. One slot per worker here, so consecutive jobs meet the same
interpreter unless it was replaced."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from titan.cluster import WorkerSpec
from titan_sdk import TitanJob

WAIT_S = 30

PID = "import os\nprint('pid', os.getpid())\n"


@pytest.fixture
def run(make_cluster, script):
    """run(code, **job options) -> (state, exit code, logs) of one pool job on a one-slot worker."""
    cluster = make_cluster(WorkerSpec("w1", slots=1, extra_args=("--pool-max-jobs", "4")))
    client = cluster.client(timeout=15)
    names = iter(range(1000))

    def run_one(code: str, **options):
        job_id = f"job{next(names)}"
        options.setdefault("isolation", "pool")
        client.submit_job(TitanJob(job_id, script(f"{job_id}.py", code), **options))
        state = client.wait(job_id, timeout=WAIT_S)
        return state, client.job_info(job_id)["exit_code"], client.fetch_logs(job_id)

    yield run_one
    client.close()


def pid_of(logs: str) -> int:
    return int(logs.split("pid ")[1].split()[0])


def test_jobs_run_one_after_another_in_one_interpreter(run):
    first, second = run(PID)[2], run(PID)[2]
    assert pid_of(first) == pid_of(second)


def test_what_a_job_changes_is_put_back_for_the_next(run):
    state, _, logs = run("""
        import atexit, logging, os, signal, sys
        os.environ["LEFT_BY_JOB"] = "1"
        os.chdir("/")
        sys.path.append("/left/by/job")
        sys.argv.append("--left")
        signal.signal(signal.SIGTERM, lambda *_: print("job handler"))
        logging.basicConfig(level=logging.DEBUG)
        logging.getLogger("left.by.job").debug("job log line")
        atexit.register(lambda: print("atexit of the first job"))
        os.umask(0o077)
        sys.setrecursionlimit(50_000)
        print("pid", os.getpid())
        """)
    assert state == "COMPLETED" and "atexit of the first job" in logs and "job log line" in logs, logs
    state, _, logs = run("""
        import logging, os, signal, sys
        print("pid", os.getpid())
        print("env", "LEFT_BY_JOB" in os.environ, "cwd-is-root", os.getcwd() == "/", "argv", sys.argv[1:])
        print("path", "/left/by/job" in sys.path, "sigterm-default", signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
        print("umask", oct(os.umask(0o022)), "limit", sys.getrecursionlimit() != 50_000)
        print("known", "left.by.job" in logging.Logger.manager.loggerDict)
        logging.basicConfig(level=logging.INFO)
        logging.getLogger("second").info("second job logs to its own stderr")
        """)
    assert state == "COMPLETED", logs
    assert "env False cwd-is-root False argv []" in logs
    assert "path False sigterm-default True" in logs and "umask 0o22 limit True" in logs and "known False" in logs
    assert "second job logs to its own stderr" in logs and "atexit of the first job" not in logs


def test_a_jobs_own_module_is_not_handed_to_the_next_job(run):
    """Each job writes its own helper.py beside its script; the second must import its own."""
    code = """
        import os, sys
        open(os.path.join(os.path.dirname(__file__), "helper.py"), "w").write("WHO = %r")
        import helper
        print("pid", os.getpid(), "helper", helper.WHO)
        """
    first = run(code % "first")[2]
    second = run(code % "second")[2]
    assert "helper first" in first and "helper second" in second
    assert pid_of(first) == pid_of(second)


@pytest.mark.parametrize("leftover", [
    "import threading, time\nthreading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n",
    "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(2)'],"
    " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n",
    "import resource\nsoft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (soft // 2, hard))\n",
], ids=["daemon-thread", "child-process", "resource-limit"])
def test_an_interpreter_a_job_left_untrustworthy_is_replaced(run, leftover):
    before = pid_of(run(PID)[2])
    state, _, logs = run(PID + leftover)
    assert state == "COMPLETED" and pid_of(logs) == before, logs
    assert pid_of(run(PID)[2]) != before


def test_pool_max_jobs_replaces_the_interpreter(run):
    """The worker runs with --pool-max-jobs 4: the fifth job meets a new interpreter."""
    pids = [pid_of(run(PID)[2]) for _ in range(5)]
    assert len(set(pids[:4])) == 1 and pids[4] != pids[0], pids


@pytest.mark.parametrize("code, exit_code", [
    ("import os\nos._exit(5)\n", 5),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", -9),
])
def test_a_job_that_ends_its_process_is_reported_and_the_pool_goes_on(run, code, exit_code):
    before = pid_of(run(PID)[2])
    state, code_seen, _ = run(code)
    assert (state, code_seen) == ("FAILED", exit_code)
    after = run(PID)
    assert after[0] == "COMPLETED" and pid_of(after[2]) != before


def test_timeout_kills_the_interpreter_and_the_next_job_runs(run):
    before = pid_of(run(PID)[2])
    started = time.monotonic()
    state, _, _ = run("import time\ntime.sleep(60)\n", timeout=1.0)
    assert state == "FAILED" and time.monotonic() - started < 15
    assert not psutil.pid_exists(before) or psutil.Process(before).status() == psutil.STATUS_ZOMBIE
    assert run(PID)[0] == "COMPLETED"


def test_modules_stay_imported_between_jobs(run):
    run("import colorsys\n")
    _, _, logs = run("import sys\nprint('warm', 'colorsys' in sys.modules)\n")
    assert "warm True" in logs


def test_the_workers_isolation_flag_is_the_default_for_jobs_that_do_not_choose(make_cluster, script):
    cluster = make_cluster(WorkerSpec("w1", slots=1, extra_args=("--isolation", "pool")))
    with cluster.client(timeout=15) as client:
        path = script("pid.py", PID)
        pids = []
        for job_id in ("a", "b"):
            client.submit_job(TitanJob(job_id, path))   # isolation=None
            assert client.wait(job_id, timeout=WAIT_S) == "COMPLETED"
            pids.append(pid_of(client.fetch_logs(job_id)))
        client.submit_job(TitanJob("old", path, isolation="fork"))   # what older clients always send
        assert client.wait("old", timeout=WAIT_S) == "COMPLETED"
        assert pids[0] == pids[1] != pid_of(client.fetch_logs("old"))


def test_preload_imports_modules_for_fork_and_pool_jobs(make_cluster, script):
    cluster = make_cluster(WorkerSpec("w1", slots=1, extra_args=("--preload", "colorsys,fractions")))
    with cluster.client(timeout=15) as client:
        path = script("preloaded.py", "import sys\nprint('preloaded', 'colorsys' in sys.modules, 'fractions' in sys.modules)\n")
        seen = {}
        for isolation in ("fork", "pool", "process"):
            client.submit_job(TitanJob(isolation, path, isolation=isolation))
            assert client.wait(isolation, timeout=WAIT_S) == "COMPLETED"
            seen[isolation] = client.fetch_logs(isolation).strip()
        assert seen == {"fork": "preloaded True True", "pool": "preloaded True True",
                        "process": "preloaded False False"}


def test_a_preload_that_fails_stops_the_worker_with_a_clear_error():
    result = subprocess.run([sys.executable, "-m", "titan.worker", "--master", "127.0.0.1:1",
                             "--preload", "json,no_such_module_here"], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert "--preload no_such_module_here: ModuleNotFoundError" in result.stderr, result.stderr


@pytest.mark.parametrize("isolation", ["pool", "fork", "process"])
def test_a_finished_jobs_workspace_is_removed(make_cluster, script, tmp_path, isolation):
    """The finished job's folder is gone: removed off the worker's loop (sweeper.py), or, left untouched,
    renamed as a spare for the next job (workspaces.py)."""
    work = tmp_path / "work"
    cluster = make_cluster(WorkerSpec("w1", slots=1, extra_args=("--work-dir", str(work))))
    with cluster.client(timeout=15) as client:
        client.submit_job(TitanJob("where", script("where.py", "import os\nprint(os.getcwd())\n"), isolation=isolation))
        assert client.wait("where", timeout=WAIT_S) == "COMPLETED"
        workspace = client.fetch_logs("where").strip()
    assert workspace.startswith(str(work))
    deadline = time.monotonic() + 10
    while os.path.exists(workspace) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(workspace)


@pytest.mark.parametrize("isolation", ["pool", "fork"])
def test_a_kept_workspace_holds_only_the_next_jobs_script(make_cluster, script, tmp_path, isolation):
    """A workspace its job left as it was is kept for the next job (workspaces.py): renamed for it, holding
    its script alone; one its job wrote into is not. Nothing is left once the worker stops."""
    work = tmp_path / "work"
    cluster = make_cluster(WorkerSpec("w1", slots=1, extra_args=("--work-dir", str(work))))
    lists = script("lists.py", "import os\nprint(sorted(os.listdir('.')), os.path.basename(os.getcwd()))\n")
    writes = script("writes.py", "import os\nopen('left.txt', 'w').close()\nprint(sorted(os.listdir('.')))\n")
    seen = {}
    with cluster.client(timeout=15) as client:
        for job_id, path in (("a1", lists), ("a2", lists), ("b", writes), ("c", writes), ("d", lists)):
            client.submit_job(TitanJob(job_id, path, isolation=isolation))
            assert client.wait(job_id, timeout=WAIT_S) == "COMPLETED"
            seen[job_id] = client.fetch_logs(job_id).strip()
    for job_id in ("a1", "a2", "d"):
        listed, folder = seen[job_id].rsplit(" ", 1)
        assert listed == "['lists.py']" and folder.startswith(f"titan-{job_id}-1-"), seen
    assert seen["b"] == seen["c"] == "['left.txt', 'writes.py']", seen
    cluster.stop()
    assert not [name for name in os.listdir(work) if "titan-" in name and name != "dags"], os.listdir(work)


def test_what_each_isolation_shows_a_job(make_cluster, script):
    """The rows of README's isolation table that differ: the parent, warm modules (a job's own file
    named like one is not imported under fork and pool), and module state carried between pool jobs."""
    cluster = make_cluster(WorkerSpec("w1", slots=1))
    worker_pid = cluster.worker_processes["w1"].pid
    path = script("shows.py", """
        import json, os
        open(os.path.join(os.path.dirname(__file__), "msgpack.py"), "w").write("OWN = True\\n")
        import msgpack
        print("parent-is-worker", os.getppid() == WORKER_PID)
        print("own-msgpack", getattr(msgpack, "OWN", False))
        print("state-from-before", getattr(json, "titan_test_marker", False))
        json.titan_test_marker = True
        """.replace("WORKER_PID", str(worker_pid)))
    seen = {}
    with cluster.client(timeout=15) as client:
        for run in ("process", "fork", "pool", "pool-again"):
            client.submit_job(TitanJob(run, path, isolation=run.split("-")[0]))
            assert client.wait(run, timeout=WAIT_S) == "COMPLETED", client.fetch_logs(run)
            seen[run] = client.fetch_logs(run).split()
    # Every job's parent is the fork server, which gets back what the job leaves running (reaper.py).
    assert seen["process"] == ["parent-is-worker", "False", "own-msgpack", "True", "state-from-before", "False"]
    assert seen["fork"] == ["parent-is-worker", "False", "own-msgpack", "False", "state-from-before", "False"]
    assert seen["pool"] == seen["fork"]
    assert seen["pool-again"] == ["parent-is-worker", "False", "own-msgpack", "False", "state-from-before", "True"]
