"""The fork server and the pool run .py jobs exactly as a fresh interpreter would: the same scripts, every
way (the pool twice, so that the second run meets an interpreter the first one used)."""

from __future__ import annotations

import re
import time

import psutil
import pytest

from titan_sdk import TitanJob

WAIT_S = 30
WORKSPACE = re.compile(r"/[^\s\"']*/titan-<id>-\d+-[^/]+")   # each run's own temporary folder

SCRIPTS = {
    "plain.py": ("""
        import os, sys
        print("name", __name__, "argv", sys.argv[1:], "cwd-has-script", os.path.exists(os.path.basename(__file__)))
        print("job", os.environ["TITAN_JOB_ID"], "attempt", os.environ["TITAN_ATTEMPT"])
        print("to stderr", file=sys.stderr)
        """, "COMPLETED", 0),
    "exits.py": ("import sys\nprint('before')\nsys.exit(7)\n", "FAILED", 7),
    "exit_message.py": ("import sys\nsys.exit('giving up: no data')\n", "FAILED", 1),
    "builtin_exit.py": ("print('bye')\nexit(0)\n", "COMPLETED", 0),
    "raises.py": ("def load():\n    raise KeyError('row 12')\nload()\n", "FAILED", 1),
    "killed_by_signal.py": ("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n", "FAILED", -15),
    "atexit_job.py": ("import atexit\natexit.register(lambda: print('atexit ran'))\nprint('main')\n",
                      "COMPLETED", 0),
    "logging_setup.py": ("import logging\nlogging.basicConfig(level=logging.DEBUG, format='%(levelname)s %(message)s')\n"
                         "logging.getLogger('job').debug('debug line')\n", "COMPLETED", 0),
    "waits_for_threads.py": ("import threading, time\n"
                             "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\n"
                             "print('main done')\n", "COMPLETED", 0),
    "finalizer.py": ("class Noisy:\n    def __del__(self):\n        print('finalizer ran')\n"
                     "def helper():\n    pass\nkept = Noisy()\nprint('main')\n", "COMPLETED", 0),
    "os_exit.py": ("import os\nprint('leaving', flush=True)\nos._exit(5)\n", "FAILED", 5),
    "imports_sibling.py": ("import sys, os\nprint(sys.path[0] == os.getcwd())\n", "COMPLETED", 0),
}


def run_both_ways(client, script, name: str, code: str):
    path = script(name, code)
    results = {}
    for isolation in ("fork", "process", "pool", "pool-again"):
        job_id = f"{name[:-3]}_{isolation}"
        client.submit_job(TitanJob(job_id, path, args="--flag 'a b'", isolation=isolation.split("-")[0]))
        state = client.wait(job_id, timeout=WAIT_S)
        info = client.job_info(job_id)
        logs = WORKSPACE.sub("<workspace>", client.fetch_logs(job_id).replace(job_id, "<id>"))
        results[isolation] = (state, info["exit_code"], logs)
    return results


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_fork_and_process_isolation_agree(client, script, name):
    code, expected_state, expected_exit = SCRIPTS[name]
    results = run_both_ways(client, script, name, code)
    assert results["fork"] == results["process"] == results["pool"] == results["pool-again"], results
    state, exit_code, logs = results["fork"]
    assert (state, exit_code) == (expected_state, expected_exit), logs


def test_fork_details_match_a_fresh_interpreter(client, script):
    results = run_both_ways(client, script, "plain.py", SCRIPTS["plain.py"][0])
    logs = results["fork"][2]
    assert "name __main__ argv ['--flag', 'a b'] cwd-has-script True" in logs
    assert "to stderr" in logs and "attempt 1" in logs
    raised = run_both_ways(client, script, "raises.py", SCRIPTS["raises.py"][0])["fork"][2]
    assert "Traceback (most recent call last)" in raised and "KeyError: 'row 12'" in raised
    assert "giving up: no data" in run_both_ways(client, script, "exit_message.py",
                                                 SCRIPTS["exit_message.py"][0])["fork"][2]
    assert "atexit ran" in run_both_ways(client, script, "atexit_job.py", SCRIPTS["atexit_job.py"][0])["fork"][2]


def assert_gone(pid: int, timeout: float = 10.0) -> None:
    """The process has ended (or is a zombie about to be reaped), within `timeout`."""
    try:
        _, alive = psutil.wait_procs([psutil.Process(pid)], timeout=timeout)
    except psutil.NoSuchProcess:
        return
    assert not alive, f"process {pid} outlived its job"


@pytest.mark.parametrize("isolation", ["fork", "process", "pool"])
def test_timeout_and_cancel_kill_forked_trees(client, script, tmp_path, isolation):
    pid_file = tmp_path / f"child-{isolation}.pid"
    path = script(f"tree_{isolation}.py", f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        print("started", flush=True)
        time.sleep(60)
        """)
    client.submit_job(TitanJob(f"slow_{isolation}", path, timeout=1.5, isolation=isolation))
    started = time.monotonic()
    assert client.wait(f"slow_{isolation}", timeout=WAIT_S) == "FAILED"
    assert client.job_info(f"slow_{isolation}")["reason"] == "timeout"
    assert time.monotonic() - started < 10
    assert_gone(int(pid_file.read_text()))
