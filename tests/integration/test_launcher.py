"""The launcher alone (titan/worker/launcher.py): it starts a job as subprocess would (argv, cwd, the
environment it inherited plus the job's, stdin /dev/null, signals Python ignores restored, a session of
its own), reports each exit code, kills what a job left running before reporting its end, and stays
small: it never loads what the worker or the fork server hold (forking it is what each job costs)."""

from __future__ import annotations

import os
import signal
import sys
import time

import psutil
import pytest

from titan.worker.forkserver import Launcher

WAIT_S = 20


@pytest.fixture
def launcher():
    started = Launcher()
    yield started
    started.close()


def run(launcher, argv, cwd, env=None, name="job.sh"):
    """(exit code, stdout, stderr) of one job."""
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        process = launcher.launch(argv, str(cwd), env or {}, out_write, err_write, execute=name)
    finally:
        os.close(out_write)
        os.close(err_write)
    code = process.wait(timeout=WAIT_S)
    with os.fdopen(out_read, "rb") as out, os.fdopen(err_read, "rb") as err:
        return code, out.read().decode(), err.read().decode()


SHOWS_ITSELF = """
import os, signal, sys
print(sys.argv[1:], os.getcwd(), os.environ["TITAN_TEST_ADDED"], os.environ.get("PATH") == sys.argv[1])
print(os.getsid(0) == os.getpid(), sys.stdin.read() == "", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
sys.exit(7)
"""


@pytest.mark.timeout(60)
def test_a_job_starts_as_subprocess_would_start_it(launcher, tmp_path):
    script = tmp_path / "shows.py"
    script.write_text(SHOWS_ITSELF)
    code, out, err = run(launcher, [sys.executable, str(script), os.environ["PATH"]], tmp_path,
                         {"TITAN_TEST_ADDED": "yes"})
    assert (code, err) == (7, ""), err
    assert out.splitlines() == [f"[{os.environ['PATH']!r}] {tmp_path} yes True", "True True True"]


@pytest.mark.timeout(60)
def test_a_program_starts_with_the_signals_python_ignores_restored(launcher, tmp_path):
    """SIGPIPE and SIGXFSZ (Python ignores them) and SIGINT (the launcher does) are not ignored in a job."""
    code, out, _ = run(launcher, ["cat", "/proc/self/status"], tmp_path)
    ignored = int(next(line.split()[1] for line in out.splitlines() if line.startswith("SigIgn:")), 16)
    assert code == 0
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
        assert not ignored & (1 << (sig - 1)), f"{sig.name} is ignored in the job"


@pytest.mark.timeout(60)
def test_a_program_that_cannot_start_fails_with_127_saying_why(launcher, tmp_path):
    code, out, err = run(launcher, [str(tmp_path / "missing")], tmp_path, name="missing.sh")
    assert code == 127 and out == ""
    assert "titan worker: cannot start missing.sh:" in err and "No such file" in err


@pytest.mark.timeout(60)
def test_exit_codes_and_signals_come_back_to_the_job_that_earned_them(launcher, tmp_path):
    for n in (0, 1, 3, 255):
        assert run(launcher, ["bash", "-c", f"exit {n}"], tmp_path)[0] == n
    assert run(launcher, ["bash", "-c", "kill -TERM $$"], tmp_path)[0] == -15


@pytest.mark.timeout(60)
def test_what_a_job_leaves_running_is_killed_before_its_end_is_reported(launcher, tmp_path):
    pid_file = tmp_path / "daemon.pid"
    code, out, _ = run(launcher, ["bash", "-c", f"setsid sleep 60 & echo $! > {pid_file}; echo done"], tmp_path)
    assert (code, out) == (0, "done\n")
    pid = int(pid_file.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, \
        f"the background process {pid} outlived its job"


@pytest.mark.timeout(60)
def test_the_launcher_stays_small(launcher):
    """Nothing of the worker's (zmq), the fork server's (titan_sdk) or psutil is loaded into it."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not os.path.exists(f"/proc/{launcher.pid}/maps"):
        time.sleep(0.05)
    with open(f"/proc/{launcher.pid}/maps") as maps:
        loaded = maps.read()
    for heavy in ("zmq", "psutil", "yaml", "_ssl"):
        assert heavy not in loaded, f"the launcher loaded {heavy}"
    anon_kb = int(next(line.split()[1] for line in open(f"/proc/{launcher.pid}/status") if line.startswith("RssAnon")))
    assert anon_kb < 10_000, f"the launcher holds {anon_kb} kB of its own memory"


@pytest.mark.timeout(60)
def test_the_launcher_leaves_with_its_jobs_when_the_worker_goes(tmp_path):
    """Its channel closing (the worker died) makes it kill every job and exit."""
    launcher = Launcher()
    out_read, out_write = os.pipe()
    try:
        job = launcher.launch(["sleep", "60"], str(tmp_path), {}, out_write, out_write, execute="sleep.sh")
    finally:
        os.close(out_write)
    os.close(out_read)
    launcher.channel.close()   # as the worker's death closes it
    try:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and (_alive(job.pid) or _alive(launcher.pid)):
            time.sleep(0.05)
        assert not _alive(job.pid), "the job outlived its launcher"
        assert not _alive(launcher.pid), "the launcher outlived its worker's channel"
    finally:
        launcher.close()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
